"""P-GRPO on TRL's GRPOTrainer: the gated reward as TRL reward functions, metrics, the hacking monitor,
plots, checkpoints and resume.

The reward of a completion is `w_f·R_format + w_o·R_outcome + w_t·T` where T is `R_outcome·R_thinking`
(posterior), `R_thinking` (additive) or absent (outcome). Each term is one TRL reward function, so TRL
logs a curve per component and applies the weights; all three come from one `score_completions` call per
batch (the executor runs once per completion, the reward model only where the variant needs it). A
completion whose reward cannot be known (sandbox error, reward model down) gets `None` from every
function, which TRL masks: it leaves the group baseline and gets zero advantage. It is counted.

Under `accelerate launch` (several processes) each process generates and scores its own share of the
batch with its own executor (TRL gathers the rewards of all processes before it forms the groups); the
`pgrpo/*` metrics and reward_stats.json are computed over the whole batch, gathered the same way, and the
files of a run are written by the main process only.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgrpo.log import logger
from pgrpo.prompting import SYSTEM_PROMPT, TrainedPrompt
from pgrpo.rewards import (
    FormatSpec,
    RewardBreakdown,
    RewardStats,
    RewardWeights,
    get_variant,
    score_completions,
)
from pgrpo.types import Problem

# ----------------------------------------------------------------------------- reward functions


def _text(completion: Any) -> str:
    """A TRL completion: a string, or chat messages whose last content is the answer."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if m.get("role", "assistant") == "assistant")


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx == 0 or sy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy)


def _zero_std_share(values: Sequence[float | None], group: int) -> float | None:
    groups = [values[i : i + group] for i in range(0, len(values), group)]
    groups = [[v for v in g if v is not None] for g in groups]
    groups = [g for g in groups if len(g) > 1]
    if not groups:
        return None
    return sum(max(g) - min(g) < 1e-9 for g in groups) / len(groups)


@dataclass
class BatchMetrics:
    """What one scored batch says beyond the reward curves TRL draws itself."""

    values: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        breakdowns: Sequence[RewardBreakdown],
        group: int,
        weights: RewardWeights,
        monitor_thinking: dict[int, float] | None = None,
    ) -> BatchMetrics:
        n = len(breakdowns)
        live = [b for b in breakdowns if not b.masked]
        v: dict[str, float | None] = {
            "pass_rate": sum(b.passed for b in live) / len(live) if live else None,
            "format_rate": sum(b.format for b in breakdowns) / n,
            "rm_call_rate": sum(b.thinking_called for b in breakdowns) / n,
            "masked": float(sum(b.masked for b in breakdowns)),
            "sandbox_errors": float(sum(b.failure == "sandbox_error" for b in breakdowns)),
            "scorer_failures": float(
                sum(b.failure in ("scorer_unavailable", "scorer_nonfinite") for b in breakdowns)
            ),
        }
        thinking = {i: b.thinking for i, b in enumerate(breakdowns) if b.thinking is not None}
        thinking.update({i: t for i, t in (monitor_thinking or {}).items() if i not in thinking})
        passing = [t for i, t in thinking.items() if breakdowns[i].passed]
        failing = [t for i, t in thinking.items() if not breakdowns[i].passed and not breakdowns[i].masked]
        v["thinking_passing"] = sum(passing) / len(passing) if passing else None
        v["thinking_failing"] = sum(failing) / len(failing) if failing else None
        known = [(t, float(breakdowns[i].passed)) for i, t in thinking.items() if not breakdowns[i].masked]
        v["thinking_outcome_corr"] = _pearson([t for t, _ in known], [o for _, o in known])
        without = [
            None if b.masked else weights.format * b.format + weights.outcome * (b.outcome or 0.0)
            for b in breakdowns
        ]
        v["zero_std_groups"] = _zero_std_share([b.total for b in breakdowns], group)
        v["zero_std_groups_without_thinking"] = _zero_std_share(without, group)
        return cls({k: float(x) for k, x in v.items() if x is not None})


class GatedReward:
    """The reward as TRL reward functions sharing one scoring pass per batch.

    `functions()` gives the format, outcome and thinking-term functions for the variant (TRL names its
    curves after them: `rewards/format`, `rewards/outcome`, `rewards/outcome_x_thinking` or
    `rewards/thinking`); `weights()` their weights for `GRPOConfig.reward_weights`. The dataset must have
    a `problem_id` column."""

    def __init__(
        self,
        problems: Sequence[Problem],
        executor: Any,
        scorer: Any = None,
        *,
        variant: str = "posterior",
        weights: RewardWeights = RewardWeights(),
        spec: FormatSpec = FormatSpec(),
        outcome_mode: str = "all",
        unit: str = "sigmoid",
        group_size: int = 8,
        monitor_score_all: bool = False,
    ) -> None:
        self.problems = {p.id: p for p in problems}
        self.executor = executor
        self.scorer = scorer
        self.variant = variant
        self.reward_weights = weights
        self.spec = spec
        self.outcome_mode = outcome_mode
        self.unit = unit
        self.group_size = group_size
        self.monitor_score_all = monitor_score_all and scorer is not None
        self.stats = RewardStats()
        self.monitor_calls = 0  # texts scored for the monitor only (never part of a reward)
        self.monitor_failures = 0  # batches whose monitor scores were lost to an unavailable reward model
        self.history: list[BatchMetrics] = []
        # with several processes: gathers a list from every process, concatenated in rank order (TRL's
        # order for the rewards), so that the metrics see whole groups; None when there is one process
        self.gather: Any = None
        self._key: tuple | None = None
        self._breakdowns: list[RewardBreakdown] = []

    # -- one scoring pass per batch, shared by the functions
    def breakdowns(
        self,
        completions: Sequence[Any],
        problem_id: Sequence[str],
        log_metric: Any = None,
        fresh: bool = False,
    ) -> list:
        """The batch's breakdowns; computed once per batch (`fresh`: the first function of a batch, so
        that every process gathers exactly once per batch, whatever its texts)."""
        texts = [_text(c) for c in completions]
        key = (tuple(texts), tuple(problem_id))
        if key == self._key and not fresh:
            return self._breakdowns
        try:
            problems = [self.problems[i] for i in problem_id]
        except KeyError as e:
            raise KeyError(
                f"the dataset's problem_id {e.args[0]!r} is not among the training problems"
            ) from None
        breakdowns = score_completions(
            problems,
            texts,
            executor=self.executor,
            scorer=self.scorer,
            variant=self.variant,
            weights=self.reward_weights,
            spec=self.spec,
            outcome_mode=self.outcome_mode,
            unit=self.unit,
            stats=self.stats,
        )
        monitored = self._monitor(problems, texts, breakdowns)
        everyone, monitored = breakdowns, monitored
        if self.gather is not None:  # the whole batch, in rank order; the monitor's indices shifted with it
            parts = self.gather([(breakdowns, monitored)])
            everyone, monitored, offset = [], {}, 0
            for part, seen in parts:
                monitored.update({offset + i: t for i, t in seen.items()})
                everyone += part
                offset += len(part)
        metrics = BatchMetrics.of(everyone, self.group_size, self.reward_weights, monitored)
        self.history.append(metrics)
        if log_metric is not None:
            for name, value in metrics.values.items():
                log_metric(f"pgrpo/{name}", value)
        self._key, self._breakdowns = key, breakdowns
        return breakdowns

    def _monitor(self, problems, texts, breakdowns) -> dict[int, float]:
        """Thinking scores of the samples the reward did not score (monitor only, counted apart)."""
        if not self.monitor_score_all:
            return {}
        from pgrpo.rewards import parse_completion
        from pgrpo.rm.score import ScorerUnavailable, to_unit

        todo = [
            (i, parse_completion(texts[i], self.spec).thinking)
            for i, b in enumerate(breakdowns)
            if b.thinking is None and not b.masked
        ]
        todo = [(i, t) for i, t in todo if t]
        if not todo:
            return {}
        self.monitor_calls += len(todo)
        try:
            raw = self.scorer.score([problems[i].prompt for i, _ in todo], [t for _, t in todo])
        except ScorerUnavailable as e:
            self.monitor_failures += 1
            logger.warning(
                f"hacking monitor: the reward model did not answer ({e}); this step has no monitor scores"
            )
            return {}
        return {i: s for (i, _), s in zip(todo, to_unit(raw, "sigmoid")) if s is not None}

    def functions(self) -> list:
        """format, outcome and the variant's thinking term (from the variant registry), in that order."""

        def format(completions, problem_id, log_metric=None, **_):  # noqa: A001 - TRL names the curve after it
            batch = self.breakdowns(completions, problem_id, log_metric, fresh=True)  # TRL calls it first
            return [None if b.masked else b.format for b in batch]

        def outcome(completions, problem_id, log_metric=None, **_):
            return [
                None if b.masked else b.outcome for b in self.breakdowns(completions, problem_id, log_metric)
            ]

        term = get_variant(self.variant).thinking_term
        if term is None:
            return [format, outcome]

        def thinking_term(completions, problem_id, log_metric=None, **_):
            return [
                None if b.masked else term(b.outcome, b.thinking)
                for b in self.breakdowns(completions, problem_id, log_metric)
            ]

        thinking_term.__name__ = get_variant(self.variant).term_name  # TRL's curve name
        return [format, outcome, thinking_term]

    def weights(self) -> list[float]:
        w = self.reward_weights
        return [w.format, w.outcome] + ([w.thinking] if get_variant(self.variant).thinking_term else [])


# ----------------------------------------------------------------------------- monitoring and logging


def hacking_signal(history: Sequence[dict], window: int = 5, threshold: float = 0.05) -> str | None:
    """A warning when the thinking reward rose while the pass rate fell, comparing the mean of the last
    `window` logged steps with the `window` before them; None when there is no such trend (or too little
    history). Uses the thinking reward of all scored samples (passing, and failing when monitored)."""
    rows = [
        r
        for r in history
        if "pgrpo/pass_rate" in r and ("pgrpo/thinking_passing" in r or "pgrpo/thinking_failing" in r)
    ]
    if len(rows) < 2 * window:
        return None

    def mean(rs, key_fn):
        values = [key_fn(r) for r in rs]
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    def thinking(r):
        # the mean over whichever groups were scored, weighted by the pass rate
        p, tp, tf = r["pgrpo/pass_rate"], r.get("pgrpo/thinking_passing"), r.get("pgrpo/thinking_failing")
        if tp is not None and tf is not None:
            return p * tp + (1 - p) * tf
        return tp if tp is not None else tf

    before, after = rows[-2 * window : -window], rows[-window:]
    d_think = mean(after, thinking) - mean(before, thinking)
    d_pass = mean(after, lambda r: r["pgrpo/pass_rate"]) - mean(before, lambda r: r["pgrpo/pass_rate"])
    if d_think > threshold and d_pass < -threshold:
        return (
            f"possible reward hacking: over the last {window} logged steps the thinking reward rose by "
            f"{d_think:+.3f} while the pass rate changed by {d_pass:+.3f}"
        )
    return None


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
