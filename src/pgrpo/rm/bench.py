"""Pairwise benchmark of reward models on preference pairs (LCB-RB style), and the baselines to beat.

The metric is pairwise accuracy: the share of pairs whose chosen reasoning scores higher than the
rejected one, a tie counting as half. It is reported overall, per dimension and per kind, each with a
percentile-bootstrap 95% interval that resamples pairs (within the slice). Baselines are scorers too:
`LengthScorer` (longer reasoning wins) and `untrained_scorer` (the backbone with a fresh, seeded head).

A pair whose two sides become the same tokens once cut at the model's max length cannot be told apart by
any score; `without_identical` leaves such pairs out (and counts them) so that they do not sit in the
accuracy as forced ties.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgrpo.rm.score import LocalScorer, Scorer, load_reward_backbone


def _bootstrap_mean(
    values: np.ndarray, resamples: int, level: float, rng: np.random.Generator
) -> tuple[float, float]:
    """A percentile bootstrap interval for the mean of `values`, resampling them with replacement."""
    if len(values) == 0:
        return 0.0, 0.0
    draws = rng.integers(0, len(values), size=(resamples, len(values)))
    alpha = (1.0 - level) / 2
    low, high = np.quantile(values[draws].mean(axis=1), [alpha, 1.0 - alpha])
    return float(low), float(high)


def pairwise_accuracy(
    pairs: Sequence[Any],
    scores_chosen: Sequence[float],
    scores_rejected: Sequence[float],
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Accuracy of `scores_chosen[i] > scores_rejected[i]` over pairs (ties count 0.5).

    Returns {"overall": S, "by_dimension": {dim: S}, "by_kind": {kind: S}} where S is
    {"accuracy", "n", "ci": [low, high]}. Pairs need `dimension` and `kind` attributes."""
    if not len(pairs) == len(scores_chosen) == len(scores_rejected):
        raise ValueError(
            f"{len(pairs)} pairs, {len(scores_chosen)} chosen and {len(scores_rejected)} rejected scores"
        )
    chosen = np.asarray(scores_chosen, dtype=float)
    rejected = np.asarray(scores_rejected, dtype=float)
    outcome = np.where(chosen > rejected, 1.0, np.where(chosen == rejected, 0.5, 0.0))
    rng = np.random.default_rng(seed)

    def summary(mask: np.ndarray) -> dict:
        values = outcome[mask]
        low, high = _bootstrap_mean(values, resamples, level, rng)
        accuracy = float(values.mean()) if len(values) else 0.0
        return {"accuracy": accuracy, "n": int(len(values)), "ci": [low, high]}

    def split(attribute: str) -> dict:
        labels = np.array([str(getattr(p, attribute)) for p in pairs])
        return {label: summary(labels == label) for label in sorted(set(labels.tolist()))}

    return {
        "overall": summary(np.ones(len(outcome), dtype=bool)),
        "by_dimension": split("dimension"),
        "by_kind": split("kind"),
    }


def without_identical(pairs: Sequence[Any], scorer: Any) -> tuple[list, int | None]:
    """(the pairs whose two sides differ in what `scorer` reads, how many were left out). The count is
    None, and every pair kept, when the scorer cannot say (no `input_ids`: an HTTP server, a baseline)."""
    input_ids = getattr(scorer, "input_ids", None)
    if input_ids is None:
        return list(pairs), None
    problems = [p.problem for p in pairs]
    chosen = input_ids(problems, [p.chosen for p in pairs])
    rejected = input_ids(problems, [p.rejected for p in pairs])
    kept = [p for p, c, r in zip(pairs, chosen, rejected) if c != r]
    return kept, len(pairs) - len(kept)


def run_bench(
    pairs: Sequence[Any],
    scorer: Scorer,
    name: str | None = None,
    *,
    progress: bool = False,
    **accuracy_options,
) -> dict:
    """Score every pair's chosen and rejected reasoning with `scorer` and report accuracy. With
    `progress`, a bar on stderr counts the texts scored (they are sent in chunks of `PROGRESS_CHUNK`)."""
    start = time.perf_counter()
    problems = [p.problem for p in pairs] * 2
    reasonings = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    name = name or getattr(scorer, "name", type(scorer).__name__)
    if progress:
        scores = _score_with_bar(scorer, problems, reasonings, name)
    else:
        scores = scorer.score(problems, reasonings)
    seconds = time.perf_counter() - start
    report = pairwise_accuracy(pairs, scores[: len(pairs)], scores[len(pairs) :], **accuracy_options)
    report["scorer"] = name
    report["n"] = len(pairs)
    report["seconds"] = round(seconds, 3)
    return report


PROGRESS_CHUNK = 256


def _score_with_bar(scorer: Scorer, problems: list[str], reasonings: list[str], name: str) -> list[float]:
    from pgrpo.log import progress

    scores: list[float] = []
    with progress(len(problems), f"scoring ({name})", "text") as bar:
        for start in range(0, len(problems), PROGRESS_CHUNK):
            end = start + PROGRESS_CHUNK
            scores.extend(scorer.score(problems[start:end], reasonings[start:end]))
            bar.update(len(problems[start:end]))
    return scores


def _cell(summary: dict | None) -> str:
    if summary is None:
        return "–"
    low, high = summary["ci"]
    return f"{100 * summary['accuracy']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def markdown(report: dict | Sequence[dict]) -> str:
    """Tables of accuracy (%, with the 95% interval) for one report or several side by side: one row per
    scorer, columns overall, then per dimension; a second table per kind."""
    reports = [report] if isinstance(report, dict) else list(report)
    lines: list[str] = []
    for title, key in (("dimension", "by_dimension"), ("kind", "by_kind")):
        labels = sorted({label for r in reports for label in r[key]})
        counts = {label: max(r[key][label]["n"] for r in reports if label in r[key]) for label in labels}
        n = max(r["overall"]["n"] for r in reports)
        header = ["scorer", f"overall (n={n})"] + [f"{label} (n={counts[label]})" for label in labels]
        lines += [f"Pairwise accuracy by {title}, % [95% CI]", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in reports:
            cells = [str(r.get("scorer", "?")), _cell(r["overall"])]
            cells += [_cell(r[key].get(label)) for label in labels]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    notes = _notes(reports[0])
    return "\n".join(lines + notes + ([""] if notes else []))


def _notes(report: dict) -> list[str]:
    """Lines under the tables: pairs left out, and whether the pairs overlap the model's training."""
    notes = []
    if report.get("identical_after_truncation") is not None:
        notes.append(
            f"Left out: {report['identical_after_truncation']} pairs whose two sides are identical after "
            f"truncation at {report.get('max_length', '?')} tokens (no score can tell them apart)."
        )
    overlap = report.get("overlap")
    if overlap and not overlap["checked"]:
        notes.append("Overlap with training not checked: the model has no record of its training problems.")
    elif overlap and overlap["shared"]:
        notes.append(
            f"Overlap allowed (--allow-overlap): {overlap['shared']} problems of these pairs are among the "
            "model's training problems, so this is not a held-out accuracy."
        )
    elif overlap:
        notes.append("No overlap: none of these pairs' problems is among the model's training problems.")
    return notes


class LengthScorer:
    """Baseline: the longer reasoning wins (score = its length in characters)."""

    name = "length"

    def score(self, problems: list[str], reasonings: list[str]) -> list[float]:
        if len(problems) != len(reasonings):
            raise ValueError(f"{len(problems)} problems but {len(reasonings)} reasonings")
        return [float(len(r)) for r in reasonings]


def untrained_scorer(backbone_path: str | Path, seed: int = 0, **scorer_options) -> LocalScorer:
    """Baseline: the backbone with a fresh classification head drawn with `seed` (what training starts
    from). `scorer_options` go to `LocalScorer.from_model` (batch_size, device, max_length, template)."""
    model, tokenizer = load_reward_backbone(backbone_path, seed=seed, where="--backbone")
    name = f"untrained {Path(backbone_path).name} (seed {seed})"
    return LocalScorer.from_model(model, tokenizer, name=name, **scorer_options)
