"""Preference pairs for the thinking reward model: the JSONL format and two ways to build them.

A pair is (problem, chosen reasoning, rejected reasoning, dimension, kind), docs/formats.md. A side is
reasoning only: builders keep a trace's final code block in the pair's meta (`od_pair`), so the reward
model is trained on the text it scores (`pgrpo.rm.score.format_input`). Builders:

- `build_pairs_llm` — the OD method (DESIGN.md §1 item 2): an LLM writes a base trace per problem, then an
  optimized and a degraded rewrite per dimension; each (problem, dimension) gives optimized>degraded,
  optimized>original and original>degraded. Filters drop refusals, truncated or too-short rewrites,
  rewrites that change the approach, near-duplicate pairs and (optionally) pairs whose better side does not
  lead to passing code; every drop is counted in a `FilterCounts`.
- `build_pairs_synthetic` — no LLM, deterministic: traces templated from the reference solution's syntax
  tree and degraded by rule. It exercises the whole RM pipeline offline; its texts are formulaic, so a
  model trained on them learns templates, not reasoning quality.
- `pgrpo.rm.natural.build_pairs_natural` — LCB-RB style: sampled traces whose code passed vs failed.

Limits: truncation is seen by its symptoms (an unclosed code block, a last sentence without its full stop,
a word count at max_tokens), since generators do not report why they stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from pgrpo.jsonl import read_jsonl, write_jsonl
from pgrpo.llm import Generator, SamplingParams
from pgrpo.prompting import program_for
from pgrpo.rm.filters import (  # re-exported: part of this module's API
    approach_overlap,
    final_code,
    is_refusal,
    is_truncated,
    rewrite_problem,
    similarity,
    split_final_code,
    trace_problem,
)
from pgrpo.rm.overlap import split_by_problem, subsample  # noqa: F401 - re-exported
from pgrpo.rm.synthetic import SyntheticTrace
from pgrpo.types import Problem, ProblemFormatError, Sample

DIMENSION_DESCRIPTIONS = {
    "factual_accuracy": (
        "every statement of fact is true: values worked out in examples, expected outputs, what operators, "
        "built-ins and library functions do, and claims about complexity. Poor factual accuracy means wrong "
        "numbers, wrong expected outputs or wrong claims about how the language or the code behaves."
    ),
    "logical_rigor": (
        "every step is justified and nothing needed is skipped: why each step is correct, which edge cases "
        "exist (empty input, zero, negative values, duplicates, bounds) and how they are handled. Poor rigor "
        "means bare assertions without reasons, skipped steps and ignored edge cases."
    ),
    "logical_coherence": (
        "the reasoning flows in order: each step follows from the previous ones, ideas are introduced before "
        "they are used, and the conclusion follows from the steps. Poor coherence means jumbled order, "
        "non sequiturs, and steps that refer to things not yet explained."
    ),
}
DIMENSIONS = tuple(DIMENSION_DESCRIPTIONS)
KINDS = ("optimized>degraded", "optimized>original", "original>degraded", "passed>failed", "human")
# kind -> (chosen side, rejected side) for the three kinds the OD method makes
OD_KINDS = {
    "optimized>degraded": ("optimized", "degraded"),
    "optimized>original": ("optimized", "original"),
    "original>degraded": ("original", "degraded"),
}
REASONS = (
    "refusal",
    "empty",
    "too_short",
    "truncated",
    "approach_changed",
    "near_duplicate",
    "no_code",
    "execution_failed",
    "execution_error",
)


class PairFormatError(ProblemFormatError):
    """A preference-pair line that does not follow docs/formats.md."""


class FilterCounts(Counter):
    """Pairs dropped, by reason (one of `REASONS`). A dropped base trace counts all its problem's pairs."""

    def format(self, kept: int) -> str:
        dropped = ", ".join(f"{r}={self[r]}" for r in REASONS if self[r])
        return f"kept {kept} pairs, dropped {sum(self.values())}" + (f" ({dropped})" if dropped else "")


# ----------------------------------------------------------------------------- the JSONL format


@dataclass
class Pair:
    """One preference: `chosen` is the better reasoning for `problem` along `dimension`."""

    id: str
    problem: str
    chosen: str
    rejected: str
    dimension: str
    kind: str
    meta: dict = field(default_factory=dict)
    """Free facts about the pair (problem_id, model, synthetic, ...); written under "meta" when not empty."""
    extra: dict = field(default_factory=dict)
    """Unknown top-level fields of a line read from a file, written back unchanged."""

    def to_dict(self) -> dict:
        d = {**self.extra, **{k: getattr(self, k) for k in _FIELDS}}
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str, dimensions: Sequence[str] | None = DIMENSIONS) -> Pair:
        if not isinstance(d, dict):
            raise PairFormatError(f"{where}: a pair must be a JSON object, got {type(d).__name__}")
        for key in _FIELDS:
            if not isinstance(d.get(key), str) or not d[key].strip():
                got = "missing" if key not in d else f"got {d[key]!r:.40}"
                raise PairFormatError(f"{where}: field '{key}' must be a non-empty string ({got})")
        if d["kind"] not in KINDS:
            raise PairFormatError(
                f"{where}: field 'kind' must be one of {', '.join(KINDS)}; got {d['kind']!r}"
            )
        if dimensions is not None and d["dimension"] not in dimensions:
            raise PairFormatError(
                f"{where}: field 'dimension' must be one of {', '.join(dimensions)}; got {d['dimension']!r} "
                "(pass more dimensions to read_pairs to allow it)"
            )
        meta = d.get("meta") or {}
        if not isinstance(meta, dict):
            raise PairFormatError(f"{where}: field 'meta' must be an object, got {type(meta).__name__}")
        extra = {k: v for k, v in d.items() if k not in (*_FIELDS, "meta")}
        return cls(**{k: d[k] for k in _FIELDS}, meta=meta, extra=extra)


_FIELDS = ("id", "problem", "chosen", "rejected", "dimension", "kind")


def read_pairs(
    path: str | os.PathLike, dimensions: Sequence[str] | None = DIMENSIONS, flag: str | None = None
) -> list[Pair]:
    """The pairs in a JSONL file. `dimensions` are the names allowed (None: any); errors name file:line,
    and a file that holds no pairs is an error naming `flag` (the flag that gave it) and the file."""
    pairs: list[Pair] = []
    seen: dict[str, str] = {}
    for where, row in read_jsonl(path):
        pair = Pair.from_dict(row, where, dimensions)
        if pair.id in seen:
            raise PairFormatError(f"{where}: field 'id' repeats {pair.id!r} (first at {seen[pair.id]})")
        seen[pair.id] = where
        pairs.append(pair)
    if not pairs:
        raise PairFormatError(f"{flag + ' ' if flag else ''}{path}: holds no pairs")
    return pairs


def write_pairs(path: str | os.PathLike, pairs: Iterable[Pair]) -> int:
    """Write pairs as JSONL (to a temporary file, then renamed); returns how many were written."""
    return write_jsonl(path, (p.to_dict() for p in pairs))


# ----------------------------------------------------------------------------- configuration


@dataclass
class PairsConfig:
    """How preference pairs are built and filtered."""

    dimensions: tuple[str, ...] = DIMENSIONS
    """Quality dimensions to rewrite along; names beyond the built-in three need a description below."""
    dimension_descriptions: dict[str, str] = field(default_factory=dict)
    """Descriptions for extra dimensions (or to reword built-in ones); they fill {dimension_description}."""
    max_tokens: int = 2048
    """Token limit for each generated trace or rewrite."""
    temperature: float = 0.0
    """Sampling temperature for the LLM; 0 keeps rewrites faithful and makes reruns repeat themselves."""
    seed: int = 0
    """Seed for sampling, and for the order shuffles of the synthetic coherence degradation."""
    batch_size: int = 16
    """Problems per round of LLM calls; the output file is rewritten after each round."""
    min_length_ratio: float = 0.5
    """A rewrite shorter than this fraction of the original is dropped as too short (likely cut off)."""
    min_approach_overlap: float = 0.5
    """A rewrite whose final code (or, without code, its algorithmic terms) overlaps the original's less
    than this changed the approach and is dropped. Code: Jaccard of identifiers and keywords, leaving out
    `def`, `return` and the defined function and parameter names; prose: share of the original's terms kept."""
    max_similarity: float = 0.97
    """A pair whose two sides are more alike than this (difflib ratio over words) is dropped. One changed
    value in a 500-word trace scores ~0.998: raise this if subtle factual degradations matter more."""
    execution_check: bool = False
    """Keep only pairs whose chosen trace ends with code that passes the problem's tests (runs the sandbox;
    the code is in the pair's meta `chosen_code`, the side itself holds the reasoning)."""
    workers: int = 2
    """Sandbox workers for the execution check, when no executor is passed in."""

    def __post_init__(self) -> None:
        self.dimensions = tuple(self.dimensions)
        if not self.dimensions:
            raise ValueError("PairsConfig.dimensions is empty; give at least one of " + ", ".join(DIMENSIONS))
        unknown = [d for d in self.dimensions if d not in self.descriptions]
        if unknown:
            raise ValueError(
                f"dimension(s) {', '.join(unknown)} have no description; built-in: {', '.join(DIMENSIONS)}; "
                "describe others in dimension_descriptions"
            )
        for name in ("min_length_ratio", "min_approach_overlap", "max_similarity"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"PairsConfig.{name} is a fraction in [0, 1], got {getattr(self, name)}")
        if self.batch_size < 1 or self.max_tokens < 1 or self.workers < 1:
            raise ValueError("PairsConfig.batch_size, max_tokens and workers must be at least 1")

    @property
    def descriptions(self) -> dict[str, str]:
        return {**DIMENSION_DESCRIPTIONS, **self.dimension_descriptions}


# ----------------------------------------------------------------------------- quality filters


@dataclass(frozen=True)
class Rewrites:
    """A problem's base trace and its two rewrites along one dimension."""

    problem: Problem
    dimension: str
    original: str
    optimized: str
    degraded: str

    def text(self, side: str) -> str:
        return getattr(self, side)


def pairs_from_rewrites(
    r: Rewrites,
    config: PairsConfig,
    counts: FilterCounts,
    meta: dict | None = None,
    executed: dict[str, str | None] | None = None,
) -> list[Pair]:
    """The three OD pairs of `r` minus those a filter drops (counted in `counts`).

    `executed` (the execution check): chosen text -> None if its code passed, else the reason to drop.
    """
    side_reason = {
        "original": trace_problem(r.original, config),
        "optimized": rewrite_problem(r.original, r.optimized, config),
        "degraded": rewrite_problem(r.original, r.degraded, config),
    }
    pairs = []
    for kind, (good, bad) in OD_KINDS.items():
        chosen, rejected = r.text(good), r.text(bad)
        reason = side_reason[good] or side_reason[bad]
        if not reason and similarity(split_final_code(chosen)[0], split_final_code(rejected)[0]) > (
            config.max_similarity
        ):
            reason = "near_duplicate"  # judged on the reasoning alone: what the reward model reads
        if not reason and executed is not None:
            reason = executed.get(chosen, "no_code")
        if reason:
            counts[reason] += 1
            continue
        pairs.append(od_pair(r.problem, r.dimension, kind, chosen, rejected, meta or {}))
    return pairs


def od_pair(problem: Problem, dimension: str, kind: str, chosen: str, rejected: str, meta: dict) -> Pair:
    """The pair every OD builder (LLM, synthetic, the demo's toy pairs) makes from two traces: the sides
    hold the reasoning without its final code block (the reward model judges reasoning, and reads exactly
    `format_input(problem, side)`); the code goes to meta `chosen_code` / `rejected_code` where a trace
    has one."""
    (chosen_text, chosen_code), (rejected_text, rejected_code) = (
        split_final_code(chosen),
        split_final_code(rejected),
    )
    codes = {"chosen_code": chosen_code, "rejected_code": rejected_code}
    return Pair(
        id=f"{problem.id}/{dimension}/{kind}",
        problem=problem.prompt.strip(),
        chosen=chosen_text,
        rejected=rejected_text,
        dimension=dimension,
        kind=kind,
        meta={"problem_id": problem.id, **meta, **{k: v for k, v in codes.items() if v is not None}},
    )


# ----------------------------------------------------------------------------- the OD method with an LLM


@functools.cache
def template(name: str) -> str:
    return resources.files("pgrpo.prompts").joinpath(name).read_text(encoding="utf-8")


def _ask(name: str, **fields: str) -> list[dict]:
    return [{"role": "user", "content": template(name).format(**fields)}]


_PREFACE = re.compile(r"\A\s*(?:sure|certainly|okay|here(?:'s|’s| is)\b)[^\n]*:[ \t]*\n", re.I)


def _clean(text: str) -> str:
    """The text without a chatty first line ("Here is the rewritten reasoning:")."""
    return _PREFACE.sub("", text, count=1).strip()


def build_pairs_llm(
    problems: Sequence[Problem],
    generator: Generator,
    dimensions: Sequence[str] | None = None,
    *,
    config: PairsConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    executor: Any = None,
    progress: bool = True,
) -> tuple[list[Pair], FilterCounts]:
    """OD pairs for `problems` written by `generator`; returns the kept pairs and the drop counts.

    `dimensions` overrides `config.dimensions`. With `cache_dir` every completion is cached on disk, so an
    interrupted run resumes where it stopped; with `out` the pairs so far are written after each batch.
    The execution check uses `executor` or starts its own.
    """
    config = config or PairsConfig()
    if dimensions is not None:
        config = dataclasses.replace(config, dimensions=tuple(dimensions))
    if cache_dir is not None:
        from pgrpo.llm.cache import CachedGenerator

        generator = CachedGenerator(generator, cache_dir)
    from pgrpo import log

    pairs: list[Pair] = []
    counts = FilterCounts()
    with contextlib.ExitStack() as stack:
        if config.execution_check and executor is None:
            from pgrpo.sandbox import Executor

            executor = stack.enter_context(Executor(workers=config.workers))
        bar = stack.enter_context(log.progress(len(problems), "pairs", "problem", disable=not progress))
        for start in range(0, len(problems), config.batch_size):
            batch = problems[start : start + config.batch_size]
            pairs.extend(_llm_batch(batch, generator, config, counts, executor))
            if out is not None:
                write_pairs(out, pairs)
            bar.update(len(batch))
            bar.set_postfix(kept=len(pairs), dropped=sum(counts.values()))
    return pairs, counts


def _llm_batch(
    batch: Sequence[Problem], generator: Generator, config: PairsConfig, counts: FilterCounts, executor: Any
) -> list[Pair]:
    params = SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature, seed=config.seed)
    bases = generator.generate([_ask("rm_base.txt", problem=p.prompt.strip()) for p in batch], params)
    jobs: list[tuple[Problem, str, str]] = []
    for problem, (base, *_) in zip(batch, bases):
        base = _clean(base)
        reason = trace_problem(base, config)
        if reason:
            counts[reason] += len(OD_KINDS) * len(config.dimensions)
        else:
            jobs += [(problem, base, d) for d in config.dimensions]
    prompts = [
        _ask(
            name,
            problem=p.prompt.strip(),
            reasoning=base,
            dimension=d,
            dimension_description=config.descriptions[d],
        )
        for p, base, d in jobs
        for name in ("rm_optimize.txt", "rm_degrade.txt")
    ]
    texts = [_clean(t[0]) for t in generator.generate(prompts, params)] if prompts else []
    rewrites = [Rewrites(p, d, base, texts[2 * i], texts[2 * i + 1]) for i, (p, base, d) in enumerate(jobs)]
    executed = _execution_check(rewrites, executor) if config.execution_check else None
    meta = {"model": generator.name}
    return [pair for r in rewrites for pair in pairs_from_rewrites(r, config, counts, meta, executed)]


def _execution_check(rewrites: list[Rewrites], executor: Any) -> dict[str, str | None]:
    """For each text that can be a chosen side: None if the code it ends with passes its problem's tests,
    else the reason to drop it (`no_code`, `execution_failed`, or `execution_error` for a sandbox failure)."""
    todo = {(r.text(side), r.problem.id): r.problem for r in rewrites for side in ("original", "optimized")}
    verdicts: dict[str, str | None] = {text: "no_code" for text, _ in todo}
    runnable = [k for k in todo if final_code(k[0]) is not None]
    jobs = [(todo[k], program_for(todo[k], Sample(id=k[1], completion=final_code(k[0])))) for k in runnable]
    for (text, _), result in zip(runnable, executor.map(jobs)):
        failed = "execution_error" if result.is_infrastructure_failure else "execution_failed"
        verdicts[text] = None if result.passed else failed
    return verdicts


# ----------------------------------------------------------------------------- synthetic mode


def build_pairs_synthetic(
    problems: Sequence[Problem],
    dimensions: Sequence[str] = DIMENSIONS,
    seed: int = 0,
    counts: FilterCounts | None = None,
) -> list[Pair]:
    """Deterministic OD pairs from the problems' reference solutions, with no LLM.

    The base trace restates the task, names the inputs, describes each top-level step of the reference
    (with a reason), works one test example and one edge case, and ends with the reference code (which
    `od_pair` moves to the pair's meta). Per
    dimension: factual — optimized adds a check of the examples against the tests, degraded changes one
    value or identifier in a claim; rigor — optimized adds a correctness argument and more edge cases,
    degraded drops the reasons and the edge case; coherence — optimized numbers the steps and links them
    with "therefore", degraded shuffles the paragraphs (seeded). Problems without a reference that parses
    are skipped (counted as "empty"). Assumes the reference passes its tests.
    """
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"the synthetic mode knows only {', '.join(DIMENSIONS)}; got {', '.join(unknown)}")
    counts = FilterCounts() if counts is None else counts
    pairs = []
    for problem in problems:
        trace = SyntheticTrace.from_problem(problem)
        if trace is None:
            counts["empty"] += len(OD_KINDS) * len(dimensions)
            continue
        base = trace.render(trace.units())
        for dim in dimensions:
            optimized, degraded, facts = trace.variants(dim, random.Random(f"{seed}:{problem.id}:{dim}"))
            meta = {"synthetic": True, "seed": seed, **facts}
            texts = {"original": base, "optimized": optimized, "degraded": degraded}
            pairs += [
                od_pair(problem, dim, kind, texts[good], texts[bad], meta)
                for kind, (good, bad) in OD_KINDS.items()
            ]
    return pairs


__all__ = [
    "DIMENSIONS",
    "DIMENSION_DESCRIPTIONS",
    "KINDS",
    "REASONS",
    "FilterCounts",
    "Pair",
    "PairFormatError",
    "PairsConfig",
    "Rewrites",
    "approach_overlap",
    "build_pairs_llm",
    "build_pairs_synthetic",
    "final_code",
    "od_pair",
    "is_refusal",
    "is_truncated",
    "pairs_from_rewrites",
    "read_pairs",
    "rewrite_problem",
    "similarity",
    "split_final_code",
    "trace_problem",
    "write_pairs",
]
