"""What a training run shows on the console: one progress bar with the numbers a person watches, and a
short summary at the end. The full metrics go to metrics.jsonl (and TensorBoard when asked for); the
Trainer's per-step dicts come back with `--verbose`.

The bar (stderr) reads `GRPO 12/40 [...] reward 0.81 pass 0.31 think 0.22 clip 0.004, 2.1 s/step`:
reward is TRL's mean total reward, pass the share of live completions whose tests all passed, think the
variant's thinking term (absent for `outcome`), clip the share of completion tokens clipped. Rewards are
logged on the steps that generate, so the bar keeps the last values it saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WATCHED = {
    "reward": ("reward",),
    "pass": ("pgrpo/pass_rate",),
    "think": ("rewards/outcome_x_thinking/mean", "rewards/thinking/mean"),
    "clip": ("clip_ratio/region_mean",),
}


def watched(logs: dict[str, Any]) -> dict[str, float]:
    """The watched numbers present in one log row."""
    out = {}
    for name, keys in WATCHED.items():
        for key in keys:
            if isinstance(logs.get(key), (int, float)):
                out[name] = float(logs[key])
                break
    return out


def progress_callback():
    """A TrainerCallback class drawing the bar and remembering the first and last watched values."""
    from transformers import TrainerCallback

    from pgrpo import log

    class ProgressBar(TrainerCallback):
        def __init__(self) -> None:
            self.bar = None
            self.first: dict[str, float] = {}
            self.last: dict[str, float] = {}
            self.start_step = 0

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero and self.bar is None:
                self.start_step = state.global_step
                self.bar = log.progress(state.max_steps, "GRPO", "step", initial=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            values = watched(logs or {})
            for name, value in values.items():
                self.first.setdefault(name, value)
            self.last.update(values)
            if self.bar is not None:
                fmt = {"clip": "{:.3f}"}
                shown = " ".join(f"{k} {fmt.get(k, '{:.2f}').format(v)}" for k, v in self.last.items())
                self.bar.set_postfix_str(shown, refresh=False)
                self.bar.update(state.global_step - self.bar.n)  # draws the step with its numbers

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None and not control.should_log:  # else on_log draws it
                self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return ProgressBar


def quiet_library_bars() -> None:
    """Unless `--verbose`: no transformers bars for loading or writing weights (one per checkpoint), so
    that the training bar is the one bar on the console."""
    from pgrpo import log

    if not log.verbose():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def quiet_trainer(trainer: Any) -> Any:
    """Swap the Trainer's printer/progress callbacks for one ProgressBar (returned)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    bar = progress_callback()()
    trainer.add_callback(bar)
    return bar


def summary_lines(
    out_dir: Path, steps: int, seconds: float, bar: Any, report_to: list[str], plots: list
) -> list[str]:
    """The end-of-run summary: steps and time, first -> last reward and pass rate, where things are."""
    per_step = f", {seconds / steps:.1f} s/step" if steps else ""
    lines = [f"GRPO: {steps} steps in {seconds:.0f} s{per_step}"]
    if bar is not None:
        moved = [
            f"{label} {bar.first[k]:.3f} -> {bar.last[k]:.3f}"
            for k, label in (("reward", "reward"), ("pass", "pass rate"), ("think", "thinking term"))
            if k in bar.first
        ]
        if moved:
            lines.append("first -> last logged step: " + ", ".join(moved))
    where = f"metrics: {out_dir / 'metrics.jsonl'}"
    if "tensorboard" in report_to or "all" in report_to:
        where += f" (TensorBoard: tensorboard --logdir {out_dir})"
    lines.append(where)
    if plots:
        lines.append("curves: " + ", ".join(str(p) for p in plots))
    return lines
