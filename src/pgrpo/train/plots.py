"""PNG curves of a training run from its metrics.jsonl (matplotlib, no display needed)."""

from __future__ import annotations

import json
from pathlib import Path

# (title, y-axis label, curves)
PANELS = (
    (
        "reward components",
        "mean reward per completion",
        (
            "rewards/format/mean",
            "rewards/outcome/mean",
            "rewards/outcome_x_thinking/mean",
            "rewards/thinking/mean",
            "reward",
        ),
    ),
    (
        "pass rate and thinking reward",
        "share passed / reward in [0, 1]",
        ("pgrpo/pass_rate", "pgrpo/thinking_passing", "pgrpo/thinking_failing"),
    ),
    ("reward-model calls per completion", "calls per completion", ("pgrpo/rm_call_rate",)),
    (
        "groups with zero reward variance",
        "share of groups",
        ("pgrpo/zero_std_groups", "pgrpo/zero_std_groups_without_thinking"),
    ),
    ("hacking monitor: corr(thinking, outcome)", "Pearson correlation", ("pgrpo/thinking_outcome_corr",)),
    ("masked completions (infrastructure failures)", "completions per step", ("pgrpo/masked",)),
    (
        "clip-higher: share of tokens clipped, mean |ratio - 1|",
        "share of tokens / |ratio - 1|",
        ("clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean", "pgrpo/policy_ratio_dev"),
    ),
)


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_metrics(
    metrics_path: str | Path, out_dir: str | Path, name: str = "training_curves.png", title: str | None = None
) -> list[Path]:
    """One figure with a panel per group of curves (panels without data are left out), every axis
    labelled; `title` (the run's name and variant) heads the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(metrics_path) if "loss" in r or any(k.startswith("pgrpo/") for k in r)]
    panels = []
    for panel, ylabel, keys in PANELS:
        series = {k: [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))] for k in keys}
        series = {k: v for k, v in series.items() if v}
        if series:
            panels.append((panel, ylabel, series))
    if not panels:
        return []
    cols = 2
    rows_n = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(11, 3.2 * rows_n), squeeze=False)
    for ax, (panel, ylabel, series) in zip(axes.flat, panels):
        for key, points in series.items():
            xs, ys = zip(*points)
            ax.plot(
                xs,
                ys,
                marker="." if len(xs) < 40 else None,
                label=key.split("/", 1)[-1].removesuffix("/mean"),
            )
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    out = Path(out_dir) / name
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return [out]
