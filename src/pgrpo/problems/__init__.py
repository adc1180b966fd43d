"""Problem sources by name: turn a dataset spec from the command line into a list of `Problem`.

A spec is one of (docs/formats.md):
- a path to native JSONL, ending in `.jsonl`;
- a bare name for data shipped inside an installed package: `humaneval`;
- `NAME:PATH` for a file in a known format: `mbpp:PATH`, `lbpp:PATH`, `humaneval:PATH` (the ORPS
  layout) or `native:PATH` (native JSONL under any file name);
  public benchmark releases: `humanevalplus:PATH`, `mbppplus:PATH` (evalplus, `.jsonl` or `.jsonl.gz`),
  `livecodebench:PATH` (a file or a directory; `?since=YYYY-MM-DD&until=YYYY-MM-DD` filters by contest
  date), `bigcodebench:PATH`, `apps:PATH`, `taco:PATH`, `codecontests:PATH`; math sets, whose answers are
  checked rather than executed: `math500:PATH`, `gsm8k:PATH`, `math:PATH` (`problem`/`question` + `answer`).
Where a set has tests meant to be seen (LiveCodeBench and CodeContests public tests), they are in
`metadata["visible_tests"]` and `tests` holds only the hidden ones.
A new format is a loader function plus one entry in `FORMATS`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pgrpo.jsonl import write_jsonl
from pgrpo.options import UsageError
from pgrpo.problems.bigcodebench import load_bigcodebench
from pgrpo.problems.evalplus import load_humanevalplus, load_mbppplus
from pgrpo.problems.humaneval import load_humaneval_package
from pgrpo.problems.livecodebench import load_livecodebench_spec
from pgrpo.problems.math import load_gsm8k, load_math, load_math500
from pgrpo.problems.native import load_native
from pgrpo.problems.orps import load_humaneval, load_lbpp, load_mbpp
from pgrpo.problems.stdio_sets import load_apps, load_codecontests, load_taco
from pgrpo.types import Problem

FORMATS: dict[str, Callable[[str], list[Problem]]] = {
    "native": load_native,
    "mbpp": load_mbpp,
    "lbpp": load_lbpp,
    "humaneval": load_humaneval,
    "humanevalplus": load_humanevalplus,
    "mbppplus": load_mbppplus,
    "livecodebench": load_livecodebench_spec,
    "bigcodebench": load_bigcodebench,
    "apps": load_apps,
    "taco": load_taco,
    "codecontests": load_codecontests,
    "math500": load_math500,
    "gsm8k": load_gsm8k,
    "math": load_math,
}
PACKAGED: dict[str, Callable[[], list[Problem]]] = {
    "humaneval": load_humaneval_package,
}


def known_formats() -> list[str]:
    """The NAMEs valid in a `NAME:PATH` spec."""
    return sorted(FORMATS)


def known_datasets() -> list[str]:
    """The bare names valid as a spec (data inside an installed package)."""
    return sorted(PACKAGED)


def load_problems(spec: str) -> list[Problem]:
    """The problems a spec names, in source order; raises ValueError for a spec naming no source or
    a source that holds no problems."""
    problems = _load(spec)
    if not problems:
        raise UsageError(f"problem source {spec!r}: holds no problems")
    return problems


def _load(spec: str) -> list[Problem]:
    if spec in PACKAGED:
        return PACKAGED[spec]()
    name, sep, path = spec.partition(":")
    if sep and name in FORMATS:
        if not path:
            raise ValueError(f"problem source {spec!r}: give a file after '{name}:'")
        return FORMATS[name](path)
    if spec.endswith(".jsonl") and (not sep or os.path.exists(spec)):
        return load_native(spec)
    raise ValueError(
        f"unknown problem source {spec!r}; use a packaged dataset ({', '.join(known_datasets())}), "
        f"NAME:PATH with NAME one of {', '.join(known_formats())}, or a native JSONL path ending in .jsonl"
    )


def export_problems(spec: str, out: str | os.PathLike) -> int:
    """Write the problems a spec names to `out` as native JSONL; returns how many were written."""
    return write_jsonl(out, (p.to_dict() for p in load_problems(spec)))
