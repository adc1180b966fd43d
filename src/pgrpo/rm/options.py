"""The flags of `pgrpo rm ...`, one dataclass per subcommand: each field is a flag (`pgrpo.options`), its
help and range written once and checked at parse time. Commands that generate inherit the generator's
flags (`GeneratorOptions`); `rm train`'s flags are `RMTrainConfig`'s fields (`pgrpo.rm.train`)."""

from __future__ import annotations

from dataclasses import dataclass

from pgrpo.llm.options import GeneratorOptions, parse_device
from pgrpo.options import (
    AT_LEAST_ONE,
    FRACTION,
    PORT,
    POSITIVE,
    SEED,
    Range,
    UsageError,
    check_options,
    option,
)
from pgrpo.rm.train import RMTrainConfig

AT_LEAST_TWO = Range(low=2, integer=True)


def _problems(help: str):
    return option(None, help, required=True, repeat=True)


@dataclass
class PairsOptions(GeneratorOptions):
    """`pgrpo rm pairs`."""

    model: str | None = option(
        None, "the LLM that writes and rewrites reasoning (a directory, a .gguf file or an http(s):// URL)"
    )
    problems: list[str] | None = _problems("dataset spec; repeat for several")
    out: str | None = option(None, "pairs JSONL to write", required=True)
    synthetic: bool = option(
        False, "offline: deterministic rule-based rewrites of a trace made from the reference"
    )
    cache_dir: str | None = option(None, "LLM response cache: reruns resume without paying twice")
    dimensions: str | None = option(
        None, "comma-separated (default factual_accuracy,logical_rigor,logical_coherence)"
    )
    execution_check: bool = option(
        False, "keep only pairs whose better side ends in code that passes the tests"
    )
    max_tokens: int = option(2048, "token limit of each generated trace or rewrite", range=AT_LEAST_ONE)
    limit: int | None = option(None, "only the first N problems (canaries dropped)", range=AT_LEAST_ONE)
    seed: int = option(0, "sampling seed, and the seed of the synthetic rewrites", range=SEED)

    def __post_init__(self) -> None:
        from pgrpo.rm.pairs import DIMENSIONS

        check_options(self)
        unknown = [d for d in (self.dimensions or "").split(",") if d and d not in DIMENSIONS]
        if self.dimensions is not None and (unknown or not self.dimensions.strip(",")):
            raise UsageError(
                f"--dimensions {self.dimensions!r}: expected comma-separated names among {', '.join(DIMENSIONS)}"
            )
        if not self.synthetic and not self.model:
            raise UsageError("rm pairs: give --model (an LLM to write and rewrite reasoning) or --synthetic")


@dataclass
class BuildBenchOptions(GeneratorOptions):
    """`pgrpo rm build-bench`."""

    model: str | None = option(
        None,
        "the LLM that writes reasoning and code (a directory, a .gguf file or an http(s):// URL)",
        required=True,
    )
    problems: list[str] | None = _problems("e.g. livecodebench:PATH?since=2024-08-01; repeat for several")
    method: str = option(
        "natural",
        "natural (default): sample k traces per problem, run them, pair a passing trace's reasoning "
        "(chosen) with a failing one's (rejected); od: optimized/degraded rewrites of one trace, kept when "
        "the better trace's code passes",
        choices=("natural", "od"),
    )
    out: str | None = option(
        None, "pairs JSONL to write (natural also writes OUT's name with .report.json)", required=True
    )
    cache_dir: str | None = option(None, "LLM response cache: a rerun resumes without paying twice")
    max_tokens: int = option(2048, "token limit per completion", range=AT_LEAST_ONE)
    samples: int = option(8, "natural: completions per problem (k, at least 2)", range=AT_LEAST_TWO)
    temperature: float = option(
        0.8, "natural: sampling temperature (> 0, or the k samples are one)", range=POSITIVE
    )
    pairs_per_problem: int = option(1, "natural: at most this many pairs per problem", range=AT_LEAST_ONE)
    workers: int = option(2, "natural: sandbox workers", range=AT_LEAST_ONE)
    no_chat: bool = option(
        False,
        "natural: prompt with plain text (a model without a chat template), unless the model's "
        "pgrpo train record says how it was prompted",
    )
    limit: int | None = option(None, "only the first N problems (canaries dropped)", range=AT_LEAST_ONE)
    seed: int = option(0, "sampling seed", range=SEED)

    def __post_init__(self) -> None:
        check_options(self)

    @property
    def report(self) -> str:
        """Where `natural` writes its report: OUT with the suffix .report.json."""
        from pathlib import Path

        return str(Path(self.out).with_suffix(".report.json"))


@dataclass
class SplitOptions:
    """`pgrpo rm split`."""

    pairs: str = option(None, "pairs JSONL to split", required=True)
    train: str = option(None, "training pairs JSONL to write", required=True)
    test: str = option(None, "held-out pairs JSONL to write (problems unseen in training)", required=True)
    test_fraction: float = option(0.2, "share of the problems held out, in [0, 1]", range=FRACTION)
    max_train: int | None = option(
        None, "at most N training pairs, subsampled evenly over dimension and kind", range=AT_LEAST_ONE
    )
    max_test: int | None = option(
        None, "at most N held-out pairs, subsampled the same way", range=AT_LEAST_ONE
    )
    seed: int = option(0, "seed of the split and the subsampling", range=SEED)

    def __post_init__(self) -> None:
        check_options(self)


@dataclass
class TrainOptions(RMTrainConfig):
    """`pgrpo rm train`: the training config and the pairs it reads."""

    pairs: str = option(None, "training pairs JSONL", required=True)


@dataclass
class BenchOptions:
    """`pgrpo rm bench`."""

    pairs: str = option(None, "preference pairs JSONL to score", required=True)
    model: str = option(
        None, "a reward-model directory (pgrpo rm train) or an http(s):// scoring server", required=True
    )
    baselines: bool = option(False, "also score length-only (and the untrained --backbone)")
    backbone: str | None = option(None, "the untrained backbone to compare against (with --baselines)")
    out: str | None = option(
        None,
        "a directory to write report.json and report.md in (created if missing; an existing one is "
        "written into, the two files replaced whole)",
    )
    allow_overlap: bool = option(
        False,
        "benchmark even if some pairs' problems were in the model's training pairs (said in the report)",
    )

    def __post_init__(self) -> None:
        check_options(self)
        if self.backbone and not self.baselines:
            raise UsageError("--backbone is the untrained baseline: give it with --baselines")


@dataclass
class ServeOptions:
    """`pgrpo rm serve`."""

    model: str = option(None, "a reward-model directory written by `pgrpo rm train`", required=True)
    host: str = option("127.0.0.1", "address to bind (0.0.0.0 for all)")
    port: int = option(8000, "port to listen on", range=PORT)
    device: str | None = option(
        None, "cpu, cuda, cuda:1 ... (default: cuda when available)", parse=parse_device
    )
    batch_size: int = option(16, "sequences per forward pass", range=AT_LEAST_ONE)
    max_length: int | None = option(None, "tokens per input (default: as trained)", range=AT_LEAST_ONE)
    verbose: bool = option(False, "log every request to stderr")

    def __post_init__(self) -> None:
        check_options(self)


__all__ = [
    "BenchOptions",
    "BuildBenchOptions",
    "PairsOptions",
    "ServeOptions",
    "SplitOptions",
    "TrainOptions",
]
