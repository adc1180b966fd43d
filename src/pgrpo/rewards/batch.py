"""Scoring a batch of completions: run each program once, then score only the gated reasoning.

`score_completions` is the one path from raw completions to rewards, used by the TRL trainer and the
verl adapter alike:
1. parse every completion (R_format; the thinking text; the code, by `extract_code`'s rules — the same
   program `pgrpo eval` would run, so the training reward and the benchmark agree);
2. R_outcome: one `executor.map` over every completion that has code, in parallel; math problems (tests
   of type `answer`) are checked with math-verify instead; no code at all is outcome 0, verdict `no_code`;
3. R_thinking: ONE `scorer.score` call over the samples the variant gates in (`needs_thinking`), with the
   problem's prompt and the think text; raw scores mapped to [0, 1] by `to_unit` — `sigmoid` per score,
   or `minmax` within each group of completions in this call that share a problem id (only the scored
   ones take part; a group with one scored sample gets 0.5). A gated sample with no think text gets
   R_thinking = 0 without a call (there is no reasoning to reward);
4. compose the total per variant.
Infrastructure failures (sandbox error, math-verify timeout, reward model unavailable after its retries,
a non-finite score) give `None` components and a `None` total, counted in `RewardStats`; never 0.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

from pgrpo.prompting import program_for
from pgrpo.rewards.compose import (
    OUTCOME_MODES,
    RewardWeights,
    check_choice,
    compose,
    get_variant,
    needs_thinking,
    outcome_reward,
)
from pgrpo.rewards.format import FormatSpec, Parsed, answer_code, parse_completion
from pgrpo.rewards.math import math_answer_reward
from pgrpo.rm.score import UNIT_METHODS, Scorer, ScorerUnavailable, to_unit
from pgrpo.types import AnswerTest, ExecResult, Problem, Sample

log = logging.getLogger(__name__)


class ProgramRunner(Protocol):
    """What `score_completions` needs of an executor (`pgrpo.sandbox.Executor` is one)."""

    def map(self, jobs: Iterable[tuple[Problem, str]]) -> Iterator[ExecResult]: ...


@dataclass
class RewardBreakdown:
    """One completion's reward and where it came from. `total` None = masked (see `failure`)."""

    format: float
    outcome: float | None  # None: the outcome is unknown (infrastructure failure)
    thinking: float | None  # None: not part of this total (gate closed, variant) or the scorer failed
    total: float | None
    verdict: str  # the executor's verdict, or `no_code`; math: passed / failed / answer_check_error
    passed: bool  # every test passed (math: the answer is right)
    thinking_called: bool  # the reward model scored this sample's reasoning
    failure: str | None = None  # sandbox_error, answer_check_error, scorer_unavailable, scorer_nonfinite
    detail: str = ""  # the failure's message, for logs

    @property
    def masked(self) -> bool:
        return self.total is None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RewardStats:
    """Counters over every batch scored with this object (pass one in to accumulate across steps)."""

    completions: int = 0
    well_formed: int = 0
    no_code: int = 0
    executed: int = 0  # programs sent to the executor
    math_checked: int = 0
    passed: int = 0
    sandbox_errors: int = 0
    answer_check_errors: int = 0
    thinking_gated: int = 0  # samples whose total needs R_thinking
    no_thinking: int = 0  # gated samples with no think text (R_thinking = 0, no call)
    scorer_requests: int = 0  # scorer.score() calls
    scorer_calls: int = 0  # texts sent to the reward model
    scorer_failures: int = 0  # texts that came back without a usable score
    masked: int = 0  # completions whose total is None
    by_failure: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def score_completions(
    problems: Sequence[Problem],
    completions: Sequence[str],
    *,
    executor: ProgramRunner,
    scorer: Scorer | None = None,
    variant: str = "posterior",
    weights: RewardWeights = RewardWeights(),
    spec: FormatSpec = FormatSpec(),
    outcome_mode: str = "all",
    unit: str = "sigmoid",
    stats: RewardStats | None = None,
) -> list[RewardBreakdown]:
    """One RewardBreakdown per completion, in order; `problems[i]` is the problem `completions[i]` answers."""
    uses_reward_model = get_variant(variant).uses_reward_model
    check_choice("outcome mode", outcome_mode, OUTCOME_MODES)
    check_choice("unit method", unit, UNIT_METHODS)
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems for {len(completions)} completions: one per completion")
    if scorer is None and uses_reward_model:
        raise ValueError(f"variant {variant!r} needs a reward-model scorer; pass scorer= or use 'outcome'")
    stats = stats if stats is not None else RewardStats()

    parsed = [parse_completion(c, _spec_for(p, spec)) for p, c in zip(problems, completions)]
    outcomes = _outcomes(problems, completions, spec, outcome_mode, executor, stats)
    gated = [i for i, o in enumerate(outcomes) if needs_thinking(variant, o.reward)]
    thinking, called, failures = _thinking(problems, parsed, gated, scorer, unit, stats)

    breakdowns = []
    for i, (p, o) in enumerate(zip(parsed, outcomes)):
        r_format = 1.0 if p.well_formed else 0.0
        failure, detail = (o.failure, o.detail) if o.failure else failures.get(i, (None, ""))
        b = RewardBreakdown(
            format=r_format,
            outcome=o.reward,
            thinking=thinking.get(i),
            total=compose(variant, r_format, o.reward, thinking.get(i), weights),
            verdict=o.verdict,
            passed=o.passed,
            thinking_called=i in called,
            failure=failure,
            detail=detail,
        )
        breakdowns.append(b)
        stats.completions += 1
        stats.well_formed += p.well_formed
        stats.passed += o.passed
        if b.masked:
            stats.masked += 1
            stats.by_failure[failure] = stats.by_failure.get(failure, 0) + 1
    return breakdowns


# ----------------------------------------------------------------------------- outcome


@dataclass
class _Outcome:
    reward: float | None
    verdict: str
    passed: bool
    failure: str | None = None
    detail: str = ""


def _is_math(problem: Problem) -> bool:
    return any(isinstance(t, AnswerTest) for t in problem.tests)


def _spec_for(problem: Problem, spec: FormatSpec) -> FormatSpec:
    return replace(spec, require_code=False) if _is_math(problem) else spec


def _program(problem: Problem, text: str, spec: FormatSpec) -> str | None:
    """The program the outcome judges (None: no code at all). With the default tags this is exactly
    `program_for` on the completion, as in `pgrpo eval`; other tags are read first, then the same rules."""
    code = answer_code(text, spec)
    if not code.strip():
        return None
    completion = text if spec.answer_tag == "answer" else code
    return program_for(problem, Sample(id=problem.id, completion=completion))


def _outcomes(problems, completions, spec, mode, executor, stats) -> list[_Outcome]:
    outcomes: list[_Outcome | None] = [None] * len(problems)
    jobs: list[tuple[int, Problem, str]] = []
    for i, (problem, text) in enumerate(zip(problems, completions)):
        if _is_math(problem):
            outcomes[i] = _math_outcome(problem, text, spec, mode, stats)
            continue
        program = _program(problem, text, spec)
        if program is None:
            stats.no_code += 1
            outcomes[i] = _Outcome(0.0, "no_code", False)
        else:
            jobs.append((i, problem, program))
    stats.executed += len(jobs)
    if jobs:
        results = executor.map([(problem, program) for _, problem, program in jobs])
        for (i, _, _), result in zip(jobs, results, strict=True):
            reward = outcome_reward(result, mode)
            if reward is None:
                stats.sandbox_errors += 1
                outcomes[i] = _Outcome(None, result.verdict.value, False, "sandbox_error", result.message)
            else:
                outcomes[i] = _Outcome(reward, result.verdict.value, result.passed)
    return outcomes  # type: ignore[return-value]


def _math_outcome(problem: Problem, text: str, spec: FormatSpec, mode: str, stats: RewardStats) -> _Outcome:
    stats.math_checked += 1
    checks = [math_answer_reward(text, t.expected, spec) for t in problem.tests if isinstance(t, AnswerTest)]
    if any(c is None for c in checks):
        stats.answer_check_errors += 1
        detail = "math-verify could not decide in its time limit"
        return _Outcome(None, "answer_check_error", False, "answer_check_error", detail)
    passed = all(c == 1.0 for c in checks)
    reward = sum(checks) / len(checks) if mode == "pass_rate" else float(passed)  # type: ignore[arg-type]
    return _Outcome(reward, "passed" if passed else "failed", passed)


# ----------------------------------------------------------------------------- thinking


def _thinking(
    problems: Sequence[Problem],
    parsed: list[Parsed],
    gated: list[int],
    scorer: Scorer | None,
    unit: str,
    stats: RewardStats,
) -> tuple[dict[int, float | None], set[int], dict[int, tuple[str, str]]]:
    """({index: R_thinking or None}, indices scored by the model, {index: (failure, detail)})."""
    stats.thinking_gated += len(gated)
    thinking: dict[int, float | None] = {}
    failures: dict[int, tuple[str, str]] = {}
    to_score = []
    for i in gated:
        if parsed[i].thinking is None:
            stats.no_thinking += 1
            thinking[i] = 0.0
        else:
            to_score.append(i)
    if not to_score:
        return thinking, set(), failures

    assert scorer is not None  # checked by score_completions
    stats.scorer_requests += 1
    stats.scorer_calls += len(to_score)
    try:
        raw = scorer.score([problems[i].prompt for i in to_score], [parsed[i].thinking for i in to_score])
    except ScorerUnavailable as e:
        log.warning("reward model unavailable; %d thinking rewards masked: %s", len(to_score), e)
        stats.scorer_failures += len(to_score)
        for i in to_score:
            thinking[i], failures[i] = None, ("scorer_unavailable", str(e))
        return thinking, set(), failures
    if len(raw) != len(to_score):
        raise ValueError(f"the scorer returned {len(raw)} scores for {len(to_score)} texts")

    scores: dict[int, float | None] = {}
    for i, s in zip(to_score, raw):
        if isinstance(s, (int, float)) and math.isfinite(s):
            scores[i] = float(s)
        else:
            stats.scorer_failures += 1
            scores[i], failures[i] = None, ("scorer_nonfinite", f"the reward model returned {s!r}")
    thinking.update(_unit_scores(problems, scores, unit))
    return thinking, set(to_score), failures


def _unit_scores(problems: Sequence[Problem], scores: dict[int, float | None], unit: str) -> dict:
    """Raw scores to [0, 1]; `minmax` within each problem's group (by problem id)."""
    if unit == "sigmoid":
        return dict(zip(scores, to_unit(list(scores.values()), "sigmoid")))
    groups: dict[str, list[int]] = defaultdict(list)
    for i in scores:
        groups[problems[i].id].append(i)
    unit_scores = {}
    for members in groups.values():
        unit_scores.update(zip(members, to_unit([scores[i] for i in members], "minmax")))
    return unit_scores
