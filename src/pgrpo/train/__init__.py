"""Training: P-GRPO on TRL's GRPOTrainer, its configs, and the verl reward adapter (`verl_reward`)."""
