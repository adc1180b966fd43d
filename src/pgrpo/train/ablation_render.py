"""How the ablation report looks: the curves (one PNG per arm, variants overlaid with seed bands) and
report.md, both drawn from what `pgrpo.train.ablation_report` reads and computes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from pgrpo.outputs import atomic_file
from pgrpo.train.ablation_report import (
    RISE,
    RM_FACTS,
    STALL,
    Run,
    think_words,
)
from pgrpo.train.flawed import FLAW

# (metric key, panel title, y label); the <think>-length panel is added from the held-out completions
CURVES = (
    ("pgrpo/pass_rate", "pass rate (training samples)", "share passed"),
    ("pgrpo/thinking_passing", "thinking reward, passing samples", "reward-model score"),
    ("pgrpo/thinking_failing", "thinking reward, failing samples", "reward-model score"),
    ("pgrpo/format_rate", "format rate", "share well formed"),
    ("completions/mean_length", "completion length", "tokens"),
    ("pgrpo/zero_std_groups", "groups with zero reward variance", "share of groups"),
    ("clip_ratio/low_mean", "clip ratio, low side", "share of tokens"),
    ("clip_ratio/high_mean", "clip ratio, high side", "share of tokens"),
)
COLORS = {"outcome": "tab:gray", "additive": "tab:red", "posterior": "tab:blue"}
STYLES = {"outcome": ":", "additive": "--", "posterior": "-"}  # overlapping lines stay visible


# ----------------------------------------------------------------------------- plots


def _band(runs: list[Run], key: str) -> tuple[list, list, list, list] | None:
    """(steps, mean, min, max) of `key` over the seeds, per logged step (a run's rows for one step are
    averaged first)."""
    by_step: dict[int, list[float]] = {}
    for run in runs:
        mine: dict[int, list[float]] = {}
        for row in run.metrics:
            value = row.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value) and "step" in row:
                mine.setdefault(int(row["step"]), []).append(float(value))
        for step, values in mine.items():
            by_step.setdefault(step, []).append(float(np.mean(values)))
    if not by_step:
        return None
    steps = sorted(by_step)
    return (
        steps,
        [float(np.mean(by_step[s])) for s in steps],
        [min(by_step[s]) for s in steps],
        [max(by_step[s]) for s in steps],
    )


def plot_arm(arm: str, runs: list[Run], out: Path) -> Path:
    """out/curves-ARM.png: per metric, each variant's per-step mean over seeds with the seeds' min–max as
    a band (metrics no run logged are left out); and the held-out <think> length before/after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r.variant for r in runs))
    panels = [panel for panel in CURVES if _band(runs, panel[0]) is not None]
    fig, axes = plt.subplots(3, 3, figsize=(14, 10), squeeze=False)
    for ax, (key, title, ylabel) in zip(axes.flat, panels):
        for variant in variants:
            band = _band([r for r in runs if r.variant == variant], key)
            if band is None:
                continue
            steps, mean, low, high = band
            color = COLORS.get(variant)
            ax.plot(
                steps, mean, label=variant, color=color, linestyle=STYLES.get(variant, "-"), linewidth=1.6
            )
            ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes.flat[len(panels)]
    _think_length_panel(ax, runs, variants)
    for ax in list(axes.flat)[len(panels) + 1 :]:
        ax.axis("off")
    seeds = sorted({r.seed for r in runs})
    fig.suptitle(
        f"arm {arm}: variants overlaid, mean over seeds {', '.join(map(str, seeds))} (band: min–max)",
        fontsize=12,
    )
    fig.tight_layout()
    path = out / f"curves-{arm}.png"
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def _think_length_panel(ax, runs: list[Run], variants: list[str]) -> None:
    width = 0.38
    for i, variant in enumerate(variants):
        for j, when in enumerate(("before", "after")):
            values = [
                w for r in runs if r.variant == variant for w in [think_words(r.completions(when))] if w
            ]
            if not values:
                continue
            mean = float(np.mean(values))
            ax.bar(
                i + (j - 0.5) * width,
                mean,
                width,
                yerr=[[mean - min(values)], [max(values) - mean]],
                color=COLORS.get(variant),
                alpha=0.45 if when == "before" else 0.9,
                label=when if i == 0 else None,
            )
    ax.set_xticks(range(len(variants)), variants)
    ax.set_title("<think> words, held-out (light: before, dark: after)", fontsize=10)
    ax.set_ylabel("words (mean over seeds, min–max)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")


# ----------------------------------------------------------------------------- report.md


def _f(x, fmt: str = ".3f") -> str:
    return "–" if x is None else format(x, fmt)


def _ci(stat: dict, fmt: str = ".3f") -> str:
    if stat["mean"] is None:
        return "–"
    return f"{stat['mean']:{fmt}} [{stat['low']:{fmt}}, {stat['high']:{fmt}}]"


def _yes(verdict) -> str:
    return "–" if verdict is None else ("**yes**" if verdict else "no")


def _arm_heading(arm: str) -> list[str]:
    if arm == "flawed-rm":
        return [
            "## Arm `flawed-rm`: a reward model with a planted flaw (NOT the paper's setting)",
            "",
            f"The flaw: {FLAW}. This arm is a stress test that makes the gate's mechanism visible on "
            "purpose; the paper's setting is the `rm` arm.",
        ]
    if arm == "rm":
        return ["## Arm `rm`: the thinking reward model as the demo trains it (the paper's setting)"]
    return [f"## Arm `{arm}`"]


def _arm_section(arm: str, stats: dict, facts: list[dict], plot: str | None) -> list[str]:
    variants = stats["variants"]
    seeds = sorted({f["seed"] for f in facts})
    lines = [*_arm_heading(arm), "", "### Held-out pass@1 (greedy)", ""]
    lines += [
        "| variant | "
        + " | ".join(f"seed {s}: before → after" for s in seeds)
        + " | mean before | mean after [95% CI] | gain after − before [95% CI] |",
        "|---" * (len(seeds) + 4) + "|",
    ]
    for variant, v in variants.items():
        cells = []
        for seed in seeds:
            f = next((f for f in facts if f["variant"] == variant and f["seed"] == seed), None)
            cells.append(
                "missing" if f is None else f"{f['pass_at_1_before']:.3f} → {f['pass_at_1_after']:.3f}"
            )
        lines.append(
            f"| {variant} | {' | '.join(cells)} | {_f(v['before']['mean'])} | {_ci(v['after'])} | "
            f"{_ci(v['gain'], '+.3f')} |"
        )
    lines += _rm_facts(facts)
    start = stats["same_start"]
    differing = [s for s, same in start.items() if not same]
    lines += [
        "",
        "Paired start: "
        + (
            f"in every seed ({', '.join(start)}) all variants had identical greedy completions before RL."
            if not differing
            else f"**seed(s) {', '.join(differing)}: the variants' completions before RL differ** — "
            "they did not start from the same policy, so their comparison there is not paired."
        ),
        "",
        "### Paired differences (after training, same problem and seed)",
        "",
        "| difference | mean | 95% CI | units |",
        "|---|---|---|---|",
    ]
    for d in stats["differences"]:
        lines.append(
            f"| {d['a']} − {d['b']} | {_f(d['mean'], '+.3f')} | "
            f"[{_f(d['low'], '+.3f')}, {_f(d['high'], '+.3f')}] | {d['units']} |"
        )
    if not stats["differences"]:
        lines.append("| (no pair of variants to compare) | | | |")
    lines += _hacking_table(facts) + _length_table(arm, variants)
    if plot:
        lines += ["", "### Curves", "", f"![{arm}: per-step curves by variant]({plot})"]
    return lines


def _rm_facts(facts: list[dict]) -> list[str]:
    """One line per reward-model fact the runner recorded, per seed (the model is shared by a seed's runs)."""
    lines = []
    for key in RM_FACTS:
        by_seed = {}
        for f in facts:
            if f[key] is not None:
                by_seed.setdefault(f["seed"], f[key])
        if by_seed:
            shown = ", ".join(
                f"seed {seed}: " + (f"{v:.3f}" if isinstance(v, (int, float)) else json.dumps(v))
                for seed, v in sorted(by_seed.items())
            )
            lines += ["", f"Reward model, summary.json `{key}`: {shown}."]
    return lines


def _hacking_table(facts: list[dict]) -> list[str]:
    lines = [
        "",
        "### Hacking signature",
        "",
        "Per run, over the generation steps: mean of the last half minus mean of the first half. "
        f"*Signature*: the thinking reward (all scored samples) rose by more than {RISE} while the pass rate "
        f"rose by less than {STALL}. *Failing rises*: the thinking reward of failing samples rose by more "
        f"than {RISE}. *Monitor*: warnings of the live hacking monitor (summary.json `hacking_warnings`, "
        "else the steps marked `pgrpo/hacking_warning` in metrics.jsonl; – when the run recorded neither).",
        "",
        "| variant | seed | thinking: first → last half (Δ) | pass rate (Δ) | thinking, failing (Δ) "
        "| signature | failing rises | monitor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in facts:
        h = f["hacking"]
        changes = " | ".join(_halves_cell(h, name) for name in ("thinking", "pass", "failing"))
        lines.append(
            f"| {f['variant']} | {f['seed']} | {changes} | {_yes(h['signature'])} | "
            f"{_yes(h['failing_rises'])} | {_f(f['monitor_warnings'], 'd')} |"
        )
    return lines


def _halves_cell(h: dict, name: str) -> str:
    if h[f"{name}_change"] is None:
        return "–"
    return f"{h[f'{name}_first']:.3f} → {h[f'{name}_last']:.3f} ({h[f'{name}_change']:+.3f})"


def _length_table(arm: str, variants: dict) -> list[str]:
    lines = [
        "",
        "### Reasoning length" + (" and the cue" if arm == "flawed-rm" else ""),
        "",
        "Words inside `<think>` in the held-out greedy completions (per-step `<think>` length is not logged; "
        "`completions/mean_length` in the curves counts the whole completion in tokens). Cue rate: share of "
        "completions whose `<think>` holds the flawed arm's cue sentence (in the `rm` arm it is a control).",
        "",
        "| variant | <think> words before | after (min–max over seeds) | cue rate before | after "
        "| after, among failing completions |",
        "|---|---|---|---|---|---|",
    ]
    for variant, v in variants.items():
        rng = v["think_words_after_range"]
        spread = f" ({rng[0]:.1f}–{rng[1]:.1f})" if rng else ""
        words = f"{_f(v['think_words_before'], '.1f')} | {_f(v['think_words_after'], '.1f')}{spread}"
        cues = " | ".join(_f(v[k]) for k in ("cue_rate_before", "cue_rate_after", "cue_rate_after_failing"))
        lines.append(f"| {variant} | {words} | {cues} |")
    return lines


def render_markdown(report: dict) -> str:
    runs, missing = report["runs"], report["missing"]
    problems = sorted({f["problems"] for f in runs})
    seconds = sum(f["seconds"] or 0 for f in runs)
    lines = [
        "# Ablation: outcome / additive / posterior",
        "",
        f"{len(runs)} runs read ({len(missing)} missing); held-out problems per run: "
        f"{', '.join(map(str, problems)) or '–'}; {seconds / 60:.1f} minutes of runs in all. "
        "Within a seed every variant starts from the same warm-start policy and the same reward model; "
        f"intervals are {report['definitions']['interval']}.",
        "",
        "## Missing runs",
        "",
    ]
    lines += [f"- seed {m['seed']}, arm {m['arm']}, variant {m['variant']}: {m['reason']}" for m in missing]
    lines += ["None: every run of the grid was read."] if not missing else []
    notes = [
        f"- seed {f['seed']}, arm {f['arm']}, variant {f['variant']}: {n}" for f in runs for n in f["notes"]
    ]
    lines += ["", "Runs read with a problem:", "", *notes] if notes else []
    for arm, stats in report["arms"].items():
        facts = [f for f in runs if f["arm"] == arm]
        lines += ["", *_arm_section(arm, stats, facts, report["plots"].get(arm))]
    return "\n".join(lines) + "\n"
