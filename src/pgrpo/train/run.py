"""`pgrpo train --config FILE.toml`: build everything a config names and hand it to `run_grpo`."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pgrpo.train.config import TrainConfig


def load_training_problems(cfg: TrainConfig) -> list:
    from pgrpo.problems import load_problems

    problems = [p for spec in cfg.data.dataset for p in load_problems(spec) if not p.metadata.get("canary")]
    random.Random(cfg.data.seed).shuffle(problems)
    if cfg.data.limit:
        problems = problems[: cfg.data.limit]
    if not problems:
        raise ValueError(f"{cfg.source}: data.dataset names no problems")
    return problems


def load_policy(cfg: TrainConfig, problems: list) -> tuple[Any, Any]:
    """(model, tokenizer) for policy.model: "tiny" (built from the problems' text), a .gguf file, a
    directory or a hub id available offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.policy.model == "tiny":
        from pgrpo.train.tiny import build_policy, build_tokenizer

        texts = [p.prompt + "\n" + (p.reference or "") for p in problems]
        tokenizer = build_tokenizer(texts)
        return build_policy(
            tokenizer, cfg.policy.tiny_hidden, cfg.policy.tiny_layers, seed=cfg.grpo_args()["seed"]
        ), tokenizer
    from pgrpo.llm.hf import _locate

    where, gguf = _locate(cfg.policy.model, cfg.policy.gguf_file)
    options = {"gguf_file": gguf} if gguf else {}
    tokenizer = AutoTokenizer.from_pretrained(where, **options)
    model = AutoModelForCausalLM.from_pretrained(where, **options)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_scorer(cfg: TrainConfig) -> Any:
    if cfg.reward.variant == "outcome":
        return None
    model = cfg.reward.model
    if model.startswith(("http://", "https://")):
        from pgrpo.rm.score import HttpScorer

        return HttpScorer(model)
    from pgrpo.rm.score import LocalScorer

    if not Path(model).is_dir():
        raise FileNotFoundError(f"{cfg.source}: reward.model {model!r} is neither a directory nor a URL")
    return LocalScorer(model)


def lora_config(cfg: TrainConfig) -> Any:
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def train_from_config(cfg: TrainConfig, resume: bool = False) -> dict:
    import torch

    from pgrpo.rewards import FormatSpec, RewardWeights
    from pgrpo.sandbox.pool import Executor
    from pgrpo.train.grpo import SYSTEM_PROMPT, GatedReward, run_grpo

    out = Path(cfg.output.dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
    problems = load_training_problems(cfg)
    model, tokenizer = load_policy(cfg, problems)
    chat = cfg.policy.chat if cfg.policy.chat is not None else bool(getattr(tokenizer, "chat_template", None))
    grpo_args = cfg.grpo_args()
    grpo_args.setdefault("report_to", cfg.output.report_to)
    if not torch.cuda.is_available():
        grpo_args.setdefault("use_cpu", True)
        grpo_args["bf16"] = False
    with Executor(workers=cfg.reward.executor_workers, time_limit_s=cfg.reward.time_limit_s) as executor:
        reward = GatedReward(
            problems,
            executor,
            load_scorer(cfg),
            variant=cfg.reward.variant,
            weights=RewardWeights(**cfg.reward.weights),
            spec=FormatSpec(think_tag=cfg.reward.think_tag, answer_tag=cfg.reward.answer_tag),
            outcome_mode=cfg.reward.outcome_mode,
            unit=cfg.reward.unit,
            monitor_score_all=cfg.reward.monitor_score_all,
        )
        result = run_grpo(
            model=model,
            tokenizer=tokenizer,
            problems=problems,
            reward=reward,
            grpo_args=grpo_args,
            out_dir=out,
            chat=chat,
            system_prompt=cfg.policy.system_prompt if cfg.policy.system_prompt is not None else SYSTEM_PROMPT,
            peft_config=lora_config(cfg),
            resume=resume,
            plots=cfg.output.plots,
        )
    summary = {
        "output_dir": result.output_dir,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "variant": cfg.reward.variant,
        "reward_stats": result.reward_stats,
        "monitor_calls": result.monitor_calls,
        "hacking_warnings": result.hacking_warnings,
        "plots": result.plots,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
