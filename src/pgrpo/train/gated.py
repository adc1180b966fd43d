"""The gated reward as TRL reward functions, its per-batch metrics and the hacking monitor.

The reward of a completion is `w_f·R_format + w_o·R_outcome + w_t·T` where T is `R_outcome·R_thinking`
(posterior), `R_thinking` (additive) or absent (outcome). Each term is one TRL reward function, so TRL
logs a curve per component and applies the weights; all three come from one `score_completions` call per
batch (the executor runs once per completion, the reward model only where the variant needs it). A
completion whose reward cannot be known (sandbox error, reward model down) gets `None` from every
function, which TRL masks: it leaves the group baseline and gets zero advantage. It is counted. Under
several processes the `pgrpo/*` metrics are computed over the whole batch, gathered as TRL gathers the
rewards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pgrpo.log import logger
from pgrpo.rewards import (
    FormatSpec,
    RewardBreakdown,
    RewardStats,
    RewardWeights,
    get_variant,
    score_completions,
)
from pgrpo.types import Problem


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
