"""Train the thinking reward model on preference pairs with the Bradley–Terry loss (TRL's RewardTrainer).

Each side of a pair is one text, `format_input(problem, reasoning)` — the very text the reward model
scores in rewards and in the benchmark (the reasoning alone; pair builders keep code apart); the loss is
-log σ(r_chosen - r_rejected - margin), the margin chosen per pair kind (e.g. larger for
optimized>degraded than for optimized>original). Any causal LM (it gets a one-output
sequence-classification head; the EOS token pads when there is no pad token) or BERT-style encoder works.

How RewardTrainer is used, and why: pairs are tokenized here (`chosen_ids`/`rejected_ids`), which
TRL takes as they are. On raw text TRL appends `tokenizer.eos_token` (None for BERT-style tokenizers:
a TypeError) and drops, rather than cuts, pairs longer than max_length; here long texts are cut, no
EOS is added, and scoring (`pgrpo.rm.score`) tokenizes the same way. A pair whose two sides are the same
tokens after the cut teaches nothing (a zero-gradient tie); it is dropped and counted. The output
directory holds the model (LoRA merged), its tokenizer and `pgrpo_rm.json` (template, backbone,
max_length, config, metrics, and the training problems that `pgrpo rm bench` checks for overlap).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgrpo.rm.score import (
    DEFAULT_MAX_LENGTH,
    META_FILE,
    TEMPLATE,
    LocalScorer,
    encode,
    format_input,
    load_reward_backbone,
    max_positions,
)


@dataclass
class RMTrainConfig:
    """How to train a reward model; each field's docstring is its help text."""

    backbone: str
    """Local model directory: a causal LM (a score head is added) or a BERT-style encoder."""
    output_dir: str = "runs/rm"
    """Where the trained model, its tokenizer and pgrpo_rm.json are written."""
    epochs: float = 1.0
    """Passes over the training pairs."""
    max_steps: int = -1
    """Stop after this many optimizer steps (overrides epochs when > 0)."""
    learning_rate: float = 1e-5
    """Peak AdamW learning rate (linear decay); small models and LoRA want more (1e-4 .. 1e-3)."""
    batch_size: int = 8
    """Pairs per device per step (each pair is two sequences)."""
    gradient_accumulation_steps: int = 1
    """Steps whose gradients add up before one optimizer update."""
    max_length: int = DEFAULT_MAX_LENGTH
    """Tokens per text (problem + reasoning); longer texts lose their end. Capped by the model's positions
    (512 for MiniLM/BERT). The default fits the data: see `pgrpo.rm.score.DEFAULT_MAX_LENGTH`."""
    margin: dict[str, float] = field(default_factory=dict)
    """Bradley–Terry margin by pair kind, e.g. {"optimized>degraded": 1.0}; unlisted kinds get 0."""
    lora: bool = False
    """Train LoRA adapters (plus the score head) instead of all weights; merged before saving."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    eval_pairs: str | None = None
    """Held-out pairs JSONL, evaluated each epoch (pairwise accuracy) when no pairs are passed in."""
    allow_overlap: bool = False
    """Evaluate on held-out pairs even when some share a problem with the training pairs (by id or
    normalised text); otherwise that is refused. Recorded in the metrics (`eval_overlap`)."""
    seed: int = 0
    """Seed for the head's initialisation and data order."""
    bf16: bool | None = None
    """bf16 mixed precision; default: on where CUDA supports bf16, off on CPU (several times slower there)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~20% slower (for 7B backbones)."""
    logging_steps: int = 10
    """Log the training loss every this many steps."""

    def validate(self) -> None:
        """Fail fast, saying which value is wrong and why."""
        problems = []
        if not Path(self.backbone).is_dir():
            problems.append(f"backbone {self.backbone!r} is not a directory (models are never downloaded)")
        if not self.epochs > 0 and self.max_steps <= 0:
            problems.append(f"epochs must be > 0 (or max_steps set), got {self.epochs}")
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            problems.append("batch_size and gradient_accumulation_steps must be >= 1")
        if self.max_length < 8:
            problems.append(f"max_length must be >= 8 tokens, got {self.max_length}")
        if any(not math.isfinite(m) for m in self.margin.values()):
            problems.append(f"margins must be finite numbers, got {self.margin}")
        if self.lora and (self.lora_r < 1 or self.lora_alpha < 1):
            problems.append("lora_r and lora_alpha must be >= 1")
        if self.bf16 and not _cuda_bf16():
            problems.append(
                "bf16=True needs a CUDA device with bf16; leave bf16 unset to choose automatically"
            )
        if problems:
            raise ValueError("invalid reward-model config: " + "; ".join(problems))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _dataset(pairs: Sequence[Any], tokenizer: Any, max_length: int, margin: dict[str, float]):
    """(the tokenized pairs TRL trains on, pairs kept with a side cut at max_length, pairs dropped because
    their two sides are identical after the cut)."""
    from datasets import Dataset

    chosen = encode(tokenizer, [format_input(p.problem, p.chosen) for p in pairs], max_length)
    rejected = encode(tokenizer, [format_input(p.problem, p.rejected) for p in pairs], max_length)
    keep = [i for i, (c, r) in enumerate(zip(chosen, rejected)) if c != r]
    columns: dict[str, list] = {
        "chosen_ids": [chosen[i] for i in keep],
        "rejected_ids": [rejected[i] for i in keep],
    }
    if margin:
        columns["margin"] = [float(margin.get(pairs[i].kind, 0.0)) for i in keep]
    cut = sum(max(len(chosen[i]), len(rejected[i])) >= max_length for i in keep)
    return Dataset.from_dict(columns), cut, len(pairs) - len(keep)


def _reward_config(cfg: RMTrainConfig, has_eval: bool, bf16: bool):
    from trl import RewardConfig

    names = {f.name for f in dataclasses.fields(RewardConfig)}
    # TRL defaults gradient_checkpointing to True, which transformers 5 reads as a deprecated alias of
    # activation_checkpointing (a FutureWarning, and slow on CPU): set the new name where it exists.
    checkpointing = (
        "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    )
    return RewardConfig(
        output_dir=cfg.output_dir,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=None,  # already cut to length in _dataset; TRL would drop longer pairs instead
        bf16=bf16,
        seed=cfg.seed,
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="no",  # the final model is saved once, merged, by train_reward_model
        logging_steps=cfg.logging_steps,
        report_to="none",
        dataloader_pin_memory=_cuda(),
        disable_tqdm=True,
        **{checkpointing: cfg.gradient_checkpointing},
    )


def train_reward_model(
    cfg: RMTrainConfig, train_pairs: Sequence[Any], eval_pairs: Sequence[Any] | None = None
) -> dict:
    """Train on `train_pairs` (objects with problem/chosen/rejected/dimension/kind), evaluate on
    `eval_pairs` (default: cfg.eval_pairs read from disk) each epoch, save to cfg.output_dir, and
    return the metrics (also written to pgrpo_rm.json).

    `eval_history` is TRL's per-epoch evaluation (accuracy averaged over batches, a tie counting 0);
    `eval_accuracy`, its interval and `eval_report` are the final model's, a tie counting half."""
    from trl import RewardTrainer

    from pgrpo.rm.bench import pairwise_accuracy, without_identical
    from pgrpo.rm.overlap import check_overlap, training_problems
    from pgrpo.rm.pairs import read_pairs

    cfg.validate()
    if not train_pairs:
        raise ValueError("no training pairs")
    if eval_pairs is None and cfg.eval_pairs:
        eval_pairs = read_pairs(cfg.eval_pairs, dimensions=None)
    trained_on = training_problems(train_pairs)
    eval_overlap = None
    if eval_pairs:
        where = "the training pairs (held-out pairs must come from unseen problems)"
        eval_overlap = check_overlap(eval_pairs, trained_on, where, allow=cfg.allow_overlap)
    bf16 = _cuda_bf16() if cfg.bf16 is None else cfg.bf16

    model, tokenizer = load_reward_backbone(cfg.backbone, seed=cfg.seed)
    max_length = max_positions(model, cfg.max_length)
    train_set, cut, identical = _dataset(train_pairs, tokenizer, max_length, cfg.margin)
    if len(train_set) == 0:
        raise ValueError(
            f"all {len(train_pairs)} training pairs have identical sides after truncation at {max_length} "
            "tokens: raise max_length, or put the difference earlier in the reasoning"
        )
    eval_set, eval_identical = None, None
    if eval_pairs:
        eval_set, _, eval_identical = _dataset(eval_pairs, tokenizer, max_length, cfg.margin)
        eval_set = eval_set if len(eval_set) else None

    trainer = RewardTrainer(
        model=model,
        args=_reward_config(cfg, eval_set is not None, bf16),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        peft_config=_lora_config(cfg) if cfg.lora else None,
    )
    result = trainer.train()

    model = trainer.model
    if cfg.lora:
        model = model.merge_and_unload()
    metrics: dict[str, Any] = {
        "train_pairs": len(train_pairs),
        "train_pairs_identical_after_truncation": identical,
        "train_pairs_used": len(train_set),
        "train_pairs_cut": cut,
        "max_length": max_length,
        "train_loss": result.training_loss,
        "train_seconds": result.metrics.get("train_runtime"),
        "train_pairs_per_s": result.metrics.get("train_samples_per_second"),
        "eval_history": [
            {"epoch": row.get("epoch"), "accuracy": row["eval_accuracy"], "loss": row.get("eval_loss")}
            for row in trainer.state.log_history
            if "eval_accuracy" in row
        ],
    }
    if eval_pairs:
        metrics.update(eval_pairs=len(eval_pairs), eval_pairs_identical_after_truncation=eval_identical)
        metrics.update(eval_overlap=eval_overlap)
    if eval_set is not None:
        scorer = LocalScorer.from_model(model, tokenizer, batch_size=cfg.batch_size, max_length=max_length)
        kept, _ = without_identical(eval_pairs, scorer)
        problems = [p.problem for p in kept]
        chosen = scorer.score(problems, [p.chosen for p in kept])
        rejected = scorer.score(problems, [p.rejected for p in kept])
        report = pairwise_accuracy(kept, chosen, rejected, seed=cfg.seed)
        metrics.update(eval_accuracy=report["overall"]["accuracy"])
        metrics.update(eval_accuracy_ci=report["overall"]["ci"], eval_report=report)
    _save(cfg, model, tokenizer, max_length, metrics, trained_on)
    metrics["output_dir"] = cfg.output_dir
    return metrics


def _lora_config(cfg: RMTrainConfig):
    from peft import LoraConfig, TaskType

    # SEQ_CLS keeps the new score/classifier head fully trainable (peft adds it to modules_to_save)
    return LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
    )


def _save(
    cfg: RMTrainConfig, model: Any, tokenizer: Any, max_length: int, metrics: dict, problems: dict
) -> None:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta = {
        "template": TEMPLATE,
        "backbone": str(Path(cfg.backbone).resolve()),
        "max_length": max_length,
        "config": dataclasses.asdict(cfg),
        "metrics": metrics,
        "train_problems": problems,
        "versions": {p: installed(p) for p in ("torch", "transformers", "trl", "peft")},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
