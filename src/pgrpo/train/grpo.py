"""P-GRPO on TRL's GRPOTrainer: the trainer (clip-higher ratio logging), the monitoring callback, plots,
checkpoints and resume. The gated reward itself, as TRL reward functions, is `pgrpo.train.gated`.

Under `accelerate launch` (several processes) each process generates and scores its own share of the
batch with its own executor (TRL gathers the rewards of all processes before it forms the groups); the
`pgrpo/*` metrics and reward_stats.json are computed over the whole batch, gathered the same way, and the
files of a run are written by the main process only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgrpo.log import logger
from pgrpo.prompting import SYSTEM_PROMPT, TrainedPrompt
from pgrpo.train.gated import GatedReward, hacking_signal
from pgrpo.types import Problem


def _callback_class():
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        """Appends every log to metrics.jsonl (cut back to the checkpoint's step on resume), runs the
        hacking monitor, and counts its warnings."""

        def __init__(self, out_dir: Path, resume_step: int = 0) -> None:
            self.path = out_dir / "metrics.jsonl"
            self.resume_step = resume_step
            self.history: list[dict] = []
            self.warnings: list[dict] = []

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero and self.path.exists():  # one process owns the file
                kept = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
                self.history = [r for r in kept if r.get("step", 0) <= self.resume_step]
                self.path.write_text("".join(json.dumps(r) + "\n" for r in self.history))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            row = {"step": state.global_step, "time": time.time(), **logs}
            self.history.append(row)
            message = hacking_signal(self.history)
            if message:
                row["pgrpo/hacking_warning"] = 1.0
                self.warnings.append({"step": state.global_step, "message": message})
                logger.warning(f"step {state.global_step}: {message}")
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    return MetricsCallback


# ----------------------------------------------------------------------------- the trainer


def _trainer_class():
    """TRL's GRPOTrainer plus one measurement: how far the policy ratio is from 1 on each micro-batch
    (over all processes' micro-batches of the step).

    The clip (ε_low/ε_high) acts only where the ratio π/π_old leaves [1-ε_low, 1+ε_high]; with one optimizer
    step per generation batch π_old is the current policy and the ratio is exactly 1. Logging
    `pgrpo/policy_ratio_dev` (mean |ratio - 1| over completion tokens) and `pgrpo/policy_ratio_max` beside
    TRL's `clip_ratio/*` shows that the clip really acts."""
    import torch
    from trl import GRPOTrainer

    class PGRPOTrainer(GRPOTrainer):
        _ratio_inputs: dict | None = None

        def _compute_loss(self, model, inputs):
            self._ratio_inputs = inputs
            try:
                return super()._compute_loss(model, inputs)
            finally:
                self._ratio_inputs = None

        def _get_per_token_logps_and_entropies(self, *args, **kwargs):
            out = super()._get_per_token_logps_and_entropies(*args, **kwargs)
            inputs, self._ratio_inputs = self._ratio_inputs, None  # the first call inside _compute_loss
            if inputs is not None:
                logps = out[0].detach()
                old = inputs.get("old_per_token_logps")
                ratio = torch.ones_like(logps) if old is None else torch.exp(logps - old)
                mask = inputs["completion_mask"].bool()
                # (sum |ratio - 1|, tokens, max ratio) over every process's micro-batch: each process
                # calls this once per micro-batch, so the gather is always matched
                stats = torch.stack(
                    [(ratio - 1).abs()[mask].sum(), mask.sum().float(), ratio.masked_fill(~mask, 0).max()]
                ).unsqueeze(0)
                if self.accelerator.num_processes > 1:
                    stats = self.accelerator.gather(stats)
                total, tokens, largest = stats[:, 0].sum(), stats[:, 1].sum(), stats[:, 2].max()
                if tokens > 0:
                    mode = "train" if self.model.training else "eval"
                    self._metrics[mode]["pgrpo/policy_ratio_dev"].append((total / tokens).item())
                    self._metrics[mode]["pgrpo/policy_ratio_max"].append(largest.item())
            return out

    return PGRPOTrainer


@dataclass
class TrainResult:
    output_dir: str
    steps: int
    seconds: float
    reward_stats: dict
    monitor_calls: int
    hacking_warnings: list[dict]
    plots: list[str]


def is_main_process() -> bool:
    """True unless a launcher (torchrun, accelerate launch, mpirun) started this process as rank > 0; it
    reads the environment, so it holds before the Trainer joins the process group."""
    import os

    for name in ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name]) == 0
    return True


def _sum_stats(parts: Sequence[dict]) -> dict:
    """RewardStats.as_dict() of every process, added up."""
    total: dict = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                inner = total.setdefault(key, {})
                for k, v in value.items():
                    inner[k] = inner.get(k, 0) + v
            else:
                total[key] = total.get(key, 0) + value
    return total


def problems_dataset(problems: Sequence[Problem], chat: bool, system_prompt: str = SYSTEM_PROMPT):
    """A `datasets.Dataset` with `prompt` (text, or chat messages) and `problem_id` columns."""
    from datasets import Dataset

    from pgrpo.prompting import training_prompt

    prompts = [training_prompt(p, chat, system_prompt) for p in problems]
    return Dataset.from_dict({"prompt": prompts, "problem_id": [p.id for p in problems]})


def grpo_config(args: dict[str, Any], out_dir: str | Path, reward_weights: list[float], source: str) -> Any:
    """TRL's GRPOConfig from our arguments; what it refuses (a TypeError or ValueError from its own checks,
    e.g. a generation batch that is not a multiple of num_generations) is a ConfigError naming `source`."""
    from trl import GRPOConfig

    from pgrpo.train.config import ConfigError

    args = dict(args)
    args.setdefault("report_to", [])
    args.setdefault("logging_steps", 1)  # the monitor and the curves want every step
    try:
        return GRPOConfig(output_dir=str(out_dir), reward_weights=reward_weights, **args)
    except (TypeError, ValueError) as e:
        message = " ".join(str(e).split())
        raise ConfigError(f"{source}: [grpo] refused by trl.GRPOConfig: {message}") from None


def last_checkpoint(out_dir: str | Path) -> str | None:
    """The newest complete `checkpoint-N` in `out_dir` (the Trainer writes trainer_state.json last, so a
    save cut short by Ctrl-C is skipped), or None."""
    if not Path(out_dir).is_dir():
        return None
    found = [
        (int(d.name.split("-")[1]), d)
        for d in Path(out_dir).glob("checkpoint-*")
        if d.name.split("-")[1].isdigit() and (d / "trainer_state.json").is_file()
    ]
    return str(max(found)[1]) if found else None


def run_grpo(
    *,
    model: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    reward: GatedReward,
    grpo_args: dict[str, Any],
    out_dir: str | Path,
    chat: bool = False,
    system_prompt: str = SYSTEM_PROMPT,
    peft_config: Any = None,
    resume: bool = False,
    plots: bool = True,
    source: str = "grpo_args",
    run_name: str | None = None,
) -> TrainResult:
    """Train `model` with GRPO on `problems` under `reward`; checkpoints, metrics.jsonl and plots land in
    `out_dir`. `grpo_args` are GRPOConfig fields (`source` names where they came from in errors).
    `resume` continues from the last checkpoint there. The console shows one progress bar and a summary
    (`pgrpo.train.progress`), or the Trainer's per-step dicts under `--verbose`."""
    from pgrpo import log
    from pgrpo.train.progress import quiet_trainer, summary_lines

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = last_checkpoint(out) if resume else None
    if resume and checkpoint is None:
        raise FileNotFoundError(f"--resume: no checkpoint-* directory in {out}")
    resume_step = int(Path(checkpoint).name.split("-")[-1]) if checkpoint else 0
    config = grpo_config(grpo_args, out, reward.weights(), source)
    reward.group_size = config.num_generations
    if config.num_iterations == 1 and config.steps_per_generation <= config.gradient_accumulation_steps:
        logger.warning(
            "one optimizer step per generation batch: the policy ratio is exactly 1 and the "
            f"{config.epsilon}/{config.epsilon_high} clip never acts; set steps_per_generation above "
            "gradient_accumulation_steps (pgrpo.train.config.grpo_defaults does) or num_iterations >= 2"
        )
    per_batch = config.generation_batch_size // config.num_generations  # prompts per generation batch
    if len(problems) < per_batch:  # TRL would drop the incomplete batch and train zero steps
        raise ValueError(
            f"{len(problems)} training problems, but one generation batch takes {per_batch} prompts "
            f"(per_device_train_batch_size {config.per_device_train_batch_size} x steps_per_generation "
            f"{config.steps_per_generation} / num_generations {config.num_generations}): "
            "use more problems or a smaller batch"
        )
    callback = _callback_class()(out, resume_step)
    trainer = _trainer_class()(
        model=model,
        processing_class=tokenizer,
        reward_funcs=reward.functions(),
        args=config,
        train_dataset=problems_dataset(problems, chat, system_prompt),
        peft_config=peft_config,
        callbacks=[callback],
    )
    if trainer.accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        reward.gather = gather_object
    bar = None if log.verbose() else quiet_trainer(trainer)
    start = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        if bar is not None and bar.bar is not None:  # interrupted: end the bar's line before any message
            bar.bar.close()
    seconds = time.perf_counter() - start
    trainer.model.eval()
    trainer.save_model(str(out / "final"))  # every process calls it (ZeRO-3 gathers); the main one writes
    counts = {"monitor_calls": reward.monitor_calls, "monitor_failures": reward.monitor_failures}
    stats = reward.stats.as_dict()
    if reward.gather is not None:  # every process scored its own completions
        stats = _sum_stats(reward.gather([stats]))
        counts = _sum_stats(reward.gather([counts]))
    steps = trainer.state.global_step - resume_step
    result = TrainResult(
        output_dir=str(out),
        steps=trainer.state.global_step,
        seconds=seconds,
        reward_stats=stats,
        monitor_calls=counts["monitor_calls"],
        hacking_warnings=callback.warnings,
        plots=[],
    )
    if not trainer.is_world_process_zero():
        return result
    # how the policy was prompted, beside it: `pgrpo eval --prompt-style pgrpo` and natural pairs read it
    spec = reward.spec
    TrainedPrompt(system_prompt, chat, spec.think_tag, spec.answer_tag).write(out, out / "final")
    (out / "reward_stats.json").write_text(json.dumps({**stats, **counts}, indent=2))
    pngs = []
    if plots:
        from pgrpo.train.plots import plot_metrics

        title = f"{run_name or out.resolve().name}: P-GRPO, {reward.variant} variant"
        pngs = plot_metrics(out / "metrics.jsonl", out, title=title)
    for line in summary_lines(out, steps, seconds, bar, list(config.report_to or []), pngs):
        logger.info(line)
    result.plots = [str(p) for p in pngs]
    return result
