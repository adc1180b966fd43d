"""Natural preference pairs, as LCB-RB builds them: reasoning that led to passing code (chosen) against
reasoning that led to failing code (rejected), for the same problem.

Per problem the model samples `samples` completions with the P-GRPO training prompt (`<think>` reasoning,
code in `<answer>`); each is parsed and run exactly as the reward does it (`score_completions`, outcome
variant: one executor run per completion, passed = every test passed). A trace is usable when it has a
think text and code that the sandbox ran; its code passed or failed (any failing verdict: wrong answer,
error, timeout). Per problem up to `pairs_per_problem` pairs are made, each trace used once, matching a
passing and a failing trace of the closest length, so that length says as little as possible about the
label (the benchmark's length-only baseline shows what is left). The sides are the think texts, the reward
model's input; the code, the verdicts and the lengths of both sides are in the pair's meta.

Unlike the OD pairs (`pgrpo.rm.pairs`) nothing is rewritten, so these pairs do not share the OD training
distribution. Limits: a failing trace's reasoning may be sound and its code slip (and a passing trace's
reasoning may be wrong and its code right by luck); LCB-RB has the same noise. Problems where every
sample passes, or every sample fails, give no pair: `NaturalReport` counts them.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pgrpo.llm import Generator, SamplingParams
from pgrpo.rm.pairs import Pair, write_pairs
from pgrpo.types import Problem

KIND = "passed>failed"
DIMENSION = "outcome"


@dataclass
class NaturalConfig:
    """How natural pairs are sampled and matched."""

    samples: int = 8
    """Completions sampled per problem (k). More samples find a pass and a fail on more problems."""
    temperature: float = 0.8
    """Sampling temperature; it must be > 0, or the k samples are one sample repeated."""
    top_p: float = 0.95
    """Nucleus sampling threshold."""
    max_tokens: int = 2048
    """Token limit per completion (reasoning and code together)."""
    pairs_per_problem: int = 1
    """At most this many pairs per problem (LCB-RB keeps one); each trace is used in one pair at most."""
    seed: int = 0
    """Sampling seed."""
    batch_size: int = 16
    """Problems per round of generation; the output file is rewritten after each round."""
    workers: int = 2
    """Sandbox workers, when no executor is passed in."""
    system_prompt: str | None = None
    """The instruction before each problem; default: the P-GRPO training prompt (`pgrpo.prompting`)."""
    chat: bool = True
    """Prompt with chat messages (False: one plain text, for a model without a chat template)."""

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise ValueError(f"samples must be >= 2 (a pair needs a pass and a fail), got {self.samples}")
        if not self.temperature > 0:
            raise ValueError(
                f"temperature must be > 0 (at 0 all samples are the same), got {self.temperature}"
            )
        if min(self.pairs_per_problem, self.batch_size, self.max_tokens, self.workers) < 1:
            raise ValueError("pairs_per_problem, batch_size, max_tokens and workers must be at least 1")


@dataclass
class NaturalReport:
    """What sampling found: verdicts, unusable samples, and the problems that gave no pair."""

    problems: int = 0
    samples: int = 0
    verdicts: Counter = field(default_factory=Counter)
    """Every sample's verdict (`no_code` when there was nothing to run)."""
    unusable: Counter = field(default_factory=Counter)
    """Samples that can be no side: `no_thinking`, `no_code`, `sandbox_error` (the verdict is unknown)."""
    no_passing: list[str] = field(default_factory=list)
    """Ids of problems with no usable passing sample."""
    no_failing: list[str] = field(default_factory=list)
    """Ids of problems with no usable failing sample (every usable sample passed)."""
    identical: int = 0
    """Candidate pairs skipped because the passing and the failing trace have the same reasoning."""
    pairs: int = 0
    chosen_longer: int = 0
    """Pairs whose chosen reasoning is longer (characters) than the rejected one."""

    def to_dict(self) -> dict:
        return {
            "problems": self.problems,
            "samples": self.samples,
            "verdicts": dict(self.verdicts),
            "unusable": dict(self.unusable),
            "problems_without_passing": len(self.no_passing),
            "problems_without_failing": len(self.no_failing),
            "identical_reasoning_skipped": self.identical,
            "pairs": self.pairs,
            "chosen_longer": self.chosen_longer,
        }

    def format(self) -> str:
        verdicts = ", ".join(f"{v}={n}" for v, n in self.verdicts.most_common())
        unusable = ", ".join(f"{r}={n}" for r, n in self.unusable.most_common()) or "none"
        longer = f"{self.chosen_longer / self.pairs:.0%}" if self.pairs else "-"
        return "\n".join(
            [
                f"{self.samples} samples on {self.problems} problems: {verdicts}",
                f"unusable samples: {unusable}",
                f"problems with no passing sample: {len(self.no_passing)}; with no failing sample: "
                f"{len(self.no_failing)}",
                f"{self.pairs} pairs (passed>failed); chosen reasoning longer in {longer}"
                + (f"; {self.identical} skipped with identical reasoning" if self.identical else ""),
            ]
        )


@dataclass(frozen=True)
class _Trace:
    index: int  # the sample's position among its problem's samples
    thinking: str
    code: str
    verdict: str
    passed: bool


def build_pairs_natural(
    problems: Sequence[Problem],
    generator: Generator,
    config: NaturalConfig | None = None,
    *,
    executor: Any = None,
    out: Any = None,
    progress: bool = True,
) -> tuple[list[Pair], NaturalReport]:
    """Natural pairs for `problems` sampled from `generator`; returns the pairs and what sampling found.

    The execution uses `executor` or starts its own; with `out` the pairs so far are written after each
    batch of problems (wrap the generator in `pgrpo.llm.cache.CachedGenerator` to resume a run)."""
    from pgrpo import log

    config = config or NaturalConfig()
    report = NaturalReport()
    pairs: list[Pair] = []
    with contextlib.ExitStack() as stack:
        if executor is None:
            from pgrpo.sandbox import Executor

            executor = stack.enter_context(Executor(workers=config.workers))
        bar = stack.enter_context(
            log.progress(len(problems), "natural pairs", "problem", disable=not progress)
        )
        for start in range(0, len(problems), config.batch_size):
            batch = problems[start : start + config.batch_size]
            for problem, traces in zip(batch, _sample_and_run(batch, generator, config, executor, report)):
                pairs += _pairs_for(problem, traces, config, generator.name, report)
            if out is not None:
                write_pairs(out, pairs)
            bar.update(len(batch))
            bar.set_postfix(pairs=len(pairs))
    return pairs, report


def _sample_and_run(
    batch: Sequence[Problem],
    generator: Generator,
    config: NaturalConfig,
    executor: Any,
    report: NaturalReport,
) -> list[list[_Trace]]:
    """Each problem's usable traces, after sampling and running every completion once."""
    from pgrpo.prompting import SYSTEM_PROMPT, training_prompt
    from pgrpo.rewards import parse_completion, score_completions

    system = SYSTEM_PROMPT if config.system_prompt is None else config.system_prompt
    params = SamplingParams(
        n=config.samples,
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_tokens,
        seed=config.seed,
    )
    outputs = generator.generate([training_prompt(p, config.chat, system) for p in batch], params)
    flat = [(b, i, text) for b, texts in enumerate(outputs) for i, text in enumerate(texts)]
    results = score_completions(
        [batch[b] for b, _, _ in flat], [t for _, _, t in flat], executor=executor, variant="outcome"
    )
    report.problems += len(batch)
    report.samples += len(flat)
    traces: list[list[_Trace]] = [[] for _ in batch]
    for (b, i, text), result in zip(flat, results):
        report.verdicts[result.verdict] += 1
        parsed = parse_completion(text)
        if result.failure:
            reason = "sandbox_error"
        elif result.verdict == "no_code":
            reason = "no_code"
        elif parsed.thinking is None:
            reason = "no_thinking"
        else:
            traces[b].append(_Trace(i, parsed.thinking, parsed.code or "", result.verdict, result.passed))
            continue
        report.unusable[reason] += 1
    return traces


def _pairs_for(
    problem: Problem, traces: list[_Trace], config: NaturalConfig, model: str, report: NaturalReport
) -> list[Pair]:
    passing = [t for t in traces if t.passed]
    failing = [t for t in traces if not t.passed]
    if not passing:
        report.no_passing.append(problem.id)
    if not failing:
        report.no_failing.append(problem.id)
    candidates = []
    for good in passing:
        for bad in failing:
            if good.thinking == bad.thinking:
                report.identical += 1
            else:
                candidates.append(
                    (abs(len(good.thinking) - len(bad.thinking)), good.index, bad.index, good, bad)
                )
    used: set[int] = set()
    pairs: list[Pair] = []
    for _, _, _, good, bad in sorted(candidates, key=lambda c: c[:3]):
        if len(pairs) == config.pairs_per_problem:
            break
        if good.index in used or bad.index in used:
            continue
        used |= {good.index, bad.index}
        pairs.append(_pair(problem, len(pairs), good, bad, config, model))
    report.pairs += len(pairs)
    report.chosen_longer += sum(len(p.chosen) > len(p.rejected) for p in pairs)
    return pairs


def _pair(problem: Problem, n: int, good: _Trace, bad: _Trace, config: NaturalConfig, model: str) -> Pair:
    meta: dict[str, Any] = {"problem_id": problem.id, "model": model, "method": "natural"}
    meta.update(samples=config.samples, temperature=config.temperature)
    for side, trace in (("chosen", good), ("rejected", bad)):
        meta[f"{side}_verdict"] = trace.verdict
        meta[f"{side}_sample"] = trace.index
        meta[f"{side}_chars"] = len(trace.thinking)
        meta[f"{side}_words"] = len(trace.thinking.split())
        meta[f"{side}_code"] = trace.code
    return Pair(
        id=f"{problem.id}/{DIMENSION}/{KIND}/{n}",
        problem=problem.prompt.strip(),
        chosen=good.thinking,
        rejected=bad.thinking,
        dimension=DIMENSION,
        kind=KIND,
        meta=meta,
    )


__all__ = ["DIMENSION", "KIND", "NaturalConfig", "NaturalReport", "build_pairs_natural"]
