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

While training, the Trainer saves `checkpoint-N/` (model, optimizer, scheduler, step) every `save_steps`
steps, keeping the last `save_total_limit`; `resume` continues from the newest, and they are deleted once
the final model is saved. The console shows a progress bar with the last loss (`--verbose`: TRL's dicts).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgrpo import log
from pgrpo.options import (
    AT_LEAST_ONE,
    POSITIVE,
    SEED,
    Range,
    UsageError,
    check_options,
    on_interrupt,
    option,
)
from pgrpo.outputs import write_text
from pgrpo.rm.score import (
    DEFAULT_MAX_LENGTH,
    MAX_LENGTH_BASIS,
    META_FILE,
    TEMPLATE,
    LocalScorer,
    encode,
    format_input,
    load_reward_backbone,
    max_positions,
    quiet_weight_bars,
)


def _max_steps(text: str) -> int:
    """`--max-steps`: -1 (train for --epochs) or a number of steps >= 1."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value != -1 and value < 1:
        raise argparse.ArgumentTypeError(f"expected -1 (train for --epochs) or an integer >= 1, got {text!r}")
    return value


def _unknown_kinds(margin: dict) -> str | None:
    """What is wrong with `margin`'s keys (a kind no pair has), or None."""
    from pgrpo.rm.pairs import KINDS

    unknown = [kind for kind in margin if kind not in KINDS]
    if not unknown:
        return None
    return f"unknown pair kind {', '.join(map(repr, unknown))}; the kinds are {', '.join(KINDS)}"


def _margins(text: str) -> dict:
    """`--margin`: a JSON object of finite numbers by pair kind."""
    import argparse

    from pgrpo.llm.options import json_object

    value = json_object(text)
    if _unknown_kinds(value):
        raise argparse.ArgumentTypeError(_unknown_kinds(value))
    if not all(
        isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m) for m in value.values()
    ):
        raise argparse.ArgumentTypeError(f"expected finite numbers by pair kind, got {text!r}")
    return value


@dataclass
class RMTrainConfig:
    """How to train a reward model; each field's help is its `pgrpo rm train` flag's help."""

    backbone: str = option(
        None,
        "local model directory: a causal LM (a score head is added) or a BERT-style encoder",
        required=True,
    )
    output_dir: str = option(
        "runs/rm",
        "output directory: the trained model, its tokenizer, pgrpo_rm.json, and checkpoint-N/ while training",
        flag="--out",
        required=True,  # on the command line; "runs/rm" only for configs built in Python
    )
    epochs: float = option(1.0, "passes over the training pairs", range=POSITIVE)
    max_steps: int = option(
        -1,
        "stop after this many optimizer steps (>= 1; overrides --epochs), -1: train for --epochs",
        parse=_max_steps,
    )
    learning_rate: float = option(
        1e-5,
        "peak AdamW learning rate (linear decay); small models and LoRA want more (1e-4 .. 1e-3)",
        range=POSITIVE,
    )
    batch_size: int = option(8, "pairs per device per step (each pair is two sequences)", range=AT_LEAST_ONE)
    gradient_accumulation_steps: int = 1
    """Steps whose gradients add up before one optimizer update."""
    max_length: int = option(
        DEFAULT_MAX_LENGTH,
        f"tokens per text, problem + reasoning (default {DEFAULT_MAX_LENGTH}: {MAX_LENGTH_BASIS}; capped by "
        "the backbone's positions, 512 for MiniLM); longer texts lose their end",
        range=Range(low=8, integer=True),
    )
    margin: dict | None = option(
        None,
        "Bradley-Terry margin by pair kind as JSON, e.g. '{\"optimized>degraded\": 1.0}'; others get 0",
        parse=_margins,
    )
    lora: bool = option(
        False, "train LoRA adapters (plus the score head) instead of all weights; merged before saving"
    )
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    eval_pairs: str | None = option(None, "held-out pairs JSONL, evaluated every epoch")
    allow_overlap: bool = option(
        False, "evaluate on --eval-pairs even if some share a problem with the training pairs (recorded)"
    )
    seed: int = option(0, "seed of the head's initialisation and the data order", range=SEED)
    save_steps: int = option(
        50,
        "save a checkpoint (model, optimizer, step) in OUT/checkpoint-N every this many steps",
        range=AT_LEAST_ONE,
    )
    save_total_limit: int = option(2, "checkpoints kept (the oldest are deleted)", range=AT_LEAST_ONE)
    resume: bool = option(
        False, "continue from the last checkpoint in --out (same flags as the interrupted run)"
    )
    bf16: bool | None = None
    """bf16 mixed precision; default: on where CUDA supports bf16, off on CPU (several times slower there)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~20% slower (for 7B backbones)."""
    logging_steps: int = 10
    """Log the training loss every this many steps."""

    def __post_init__(self) -> None:
        check_options(self)
        if self.max_steps != -1 and self.max_steps < 1:
            raise UsageError(
                f"--max-steps: expected -1 (train for --epochs) or an integer >= 1, got {self.max_steps}"
            )

    def validate(self) -> None:
        """Fail fast, saying which value is wrong and why (the ranges are checked when the config is made)."""
        problems = []
        if not Path(self.backbone).is_dir():
            problems.append(f"--backbone {self.backbone}: not a directory (models are never downloaded)")
        if self.gradient_accumulation_steps < 1:
            problems.append("gradient_accumulation_steps must be >= 1")
        if any(not math.isfinite(m) for m in (self.margin or {}).values()):
            problems.append(f"--margin: margins must be finite numbers, got {self.margin}")
        if _unknown_kinds(self.margin or {}):
            problems.append(f"--margin: {_unknown_kinds(self.margin)}")
        if self.lora and (self.lora_r < 1 or self.lora_alpha < 1):
            problems.append("lora_r and lora_alpha must be >= 1")
        if self.bf16 and not _cuda_bf16():
            problems.append(
                "bf16=True needs a CUDA device with bf16; leave bf16 unset to choose automatically"
            )
        if problems:
            raise UsageError("invalid reward-model config: " + "; ".join(problems))


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
        # checkpoints to resume from; the final model is saved apart, merged, by train_reward_model
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        report_to="none",
        dataloader_pin_memory=_cuda(),
        disable_tqdm=log.verbose(),  # a progress bar; under --verbose the Trainer's dict per log instead
        **{checkpointing: cfg.gradient_checkpointing},
    )


def train_reward_model(
    cfg: RMTrainConfig, train_pairs: Sequence[Any], eval_pairs: Sequence[Any] | None = None
) -> dict:
    """Train on `train_pairs` (objects with problem/chosen/rejected/dimension/kind), evaluate on
    `eval_pairs` (default: cfg.eval_pairs read from disk) each epoch, save to cfg.output_dir, and
    return the metrics (also written to pgrpo_rm.json). On Ctrl-C, says which checkpoint holds the work
    and how to resume (`pgrpo.options.on_interrupt`).

    `eval_history` is TRL's per-epoch evaluation (accuracy averaged over batches, a tie counting 0);
    `eval_accuracy`, its interval and `eval_report` are the final model's, a tie counting half."""
    try:
        return _train(cfg, train_pairs, eval_pairs)
    except KeyboardInterrupt:
        _say_where_the_work_is(cfg)
        raise


def _train(cfg: RMTrainConfig, train_pairs: Sequence[Any], eval_pairs: Sequence[Any] | None) -> dict:
    """`train_reward_model` itself."""
    from trl import RewardTrainer

    from pgrpo.rm.bench import pairwise_accuracy, without_identical
    from pgrpo.rm.overlap import check_overlap, training_problems
    from pgrpo.rm.pairs import read_pairs

    cfg.validate()
    if not train_pairs:
        raise UsageError("no training pairs (is the --pairs file empty?)")
    checkpoint = last_checkpoint(cfg.output_dir)
    if checkpoint and not cfg.resume:
        log.logger.warning(
            f"{cfg.output_dir} holds {Path(checkpoint).name} from an earlier run; starting afresh "
            "(add --resume to continue it instead)"
        )
        checkpoint = None
    if cfg.resume:
        if checkpoint is None:
            finished = (Path(cfg.output_dir) / META_FILE).is_file()
            raise UsageError(
                f"--resume: no checkpoint-N directory in {cfg.output_dir} to continue from"
                + ("; it holds a finished model (a finished run deletes its checkpoints)" if finished else "")
                + "; run without --resume to start afresh"
            )
    if eval_pairs is None and cfg.eval_pairs:
        eval_pairs = read_pairs(cfg.eval_pairs, None, "--eval-pairs")
    trained_on = training_problems(train_pairs)
    eval_overlap = None
    if eval_pairs:
        where = "the training pairs (held-out pairs must come from unseen problems)"
        eval_overlap = check_overlap(eval_pairs, trained_on, where, allow=cfg.allow_overlap)
    bf16 = _cuda_bf16() if cfg.bf16 is None else cfg.bf16

    model, tokenizer = load_reward_backbone(cfg.backbone, seed=cfg.seed, where="--backbone")
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
    if not log.verbose():
        from transformers.trainer_callback import ProgressCallback

        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(_progress_bar())
    with quiet_weight_bars():  # checkpoints are written during training
        result = trainer.train(resume_from_checkpoint=checkpoint)

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
    if checkpoint is not None:
        metrics["resumed_from"] = Path(checkpoint).name
    with quiet_weight_bars():
        _save(cfg, model, tokenizer, max_length, metrics, trained_on)
    for old in Path(cfg.output_dir).glob("checkpoint-*"):  # the final model holds their work now
        shutil.rmtree(old, ignore_errors=True)
    metrics["output_dir"] = cfg.output_dir
    return metrics


def last_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-N` directory the Trainer saved in `output_dir`, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None


def _say_where_the_work_is(cfg: RMTrainConfig) -> None:
    """On Ctrl-C: which checkpoint holds the work, and how to continue from it."""
    checkpoint = last_checkpoint(cfg.output_dir)
    if checkpoint is None:
        on_interrupt(
            f"no checkpoint saved yet (one every {cfg.save_steps} steps in {cfg.output_dir}); rerun to start again"
        )
    else:
        on_interrupt(
            f"the training so far is in {checkpoint}; continue it with the same `pgrpo rm train` command "
            "plus --resume"
        )


def _progress_bar():
    """The Trainer's progress bar, with the last loss (and held-out accuracy) on the bar instead of a
    printed dict per log."""
    from transformers.trainer_callback import ProgressCallback

    from pgrpo import log

    class Progress(ProgressCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:  # the package's bar: sparse when stderr is not a terminal
                self.training_bar = log.progress(state.max_steps, "reward model", "step")
            self.current_step = 0

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.training_bar is None or not logs:
                return
            shown = {k: f"{logs[k]:.4g}" for k in ("loss", "eval_accuracy") if isinstance(logs.get(k), float)}
            if shown:
                self.training_bar.set_postfix(shown)

    return Progress()


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
    write_text(out / META_FILE, json.dumps(meta, indent=2) + "\n")  # last: the model is complete
