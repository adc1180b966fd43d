"""Native problem JSONL (docs/formats.md): one `Problem.to_dict()` object per line.

Also home to `unique`, the duplicate-id check every file loader shares.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from pgrpo.jsonl import read_jsonl
from pgrpo.types import Problem, ProblemFormatError


def load_native(path: str | os.PathLike) -> list[Problem]:
    """Every problem in a native JSONL file, in file order."""
    return unique((where, Problem.from_dict(row, where=where)) for where, row in read_jsonl(path))


def unique(placed: Iterable[tuple[str, Problem]]) -> list[Problem]:
    """The problems of (`file:line`, problem) pairs; a repeated id is an error naming both lines."""
    first_seen: dict[str, str] = {}
    problems = []
    for where, problem in placed:
        if problem.id in first_seen:
            raise ProblemFormatError(
                f"{where}: duplicate problem id {problem.id!r} (first seen at {first_seen[problem.id]})"
            )
        first_seen[problem.id] = where
        problems.append(problem)
    return problems
