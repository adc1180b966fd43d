"""The ORPS layout of MBPP, LBPP and HumanEval (`shared/data/*/{dev,test}.jsonl`; see that README).

A row holds `task_id`, `instruction`, `completion` (a reference solution), `test_setup` (statements run
before the tests), `test_list` (assert statements) and, for LBPP, `title`, `signature`, `categories`,
`language`. The file stem becomes metadata `split`: `dev` has the visible tests search may use, `test` the
hidden ones. The layout names no entry point, so it is recovered from the reference (`find_entry_point`).
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgrpo.jsonl import read_jsonl
from pgrpo.problems.native import unique
from pgrpo.pysource import parse
from pgrpo.types import AssertTest, Problem, ProblemFormatError

LBPP_CANDIDATE_MODULE = "code"  # LBPP's test_setup does `from code import f`
LBPP_CANARY_IDS = frozenset({"lbpp/41"})  # a dummy problem; the README says to ignore it when scoring

_FIELDS: tuple[tuple[str, type], ...] = (
    ("task_id", str),
    ("instruction", str),
    ("completion", str),
    ("test_setup", str),
    ("test_list", list),
)
_SIGNATURE_NAME = re.compile(r"\s*(?:async\s+)?(?:def\s+)?([A-Za-z_]\w*)\s*\(")

Convert = Callable[[Any, str, str, str], Problem]


def load_mbpp(path: str | os.PathLike) -> list[Problem]:
    return _load(path, "mbpp", _problem)


def load_humaneval(path: str | os.PathLike) -> list[Problem]:
    return _load(path, "humaneval", _problem)


def load_lbpp(path: str | os.PathLike) -> list[Problem]:
    return _load(path, "lbpp", _lbpp_problem)


def find_entry_point(
    reference: str, tests: list[str], setup: str = "", hint: str | None = None
) -> str | None:
    """The top-level name of `reference` that the tests exercise.

    `hint` wins when the reference defines it as a top-level function. Otherwise: a top-level function
    the tests (or setup's imports) use, else such a class (LBPP's design problems), else the last top-level
    function. Among several, the last defined wins: helpers come before the function that uses them.
    """
    module = _parse(reference)
    if module is None:
        return hint
    body = module.body
    functions = [n.name for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    classes = [n.name for n in body if isinstance(n, ast.ClassDef)]
    if hint in functions:
        return hint
    used = _names_used([*tests, setup])
    for candidates in ([f for f in functions if f in used], [c for c in classes if c in used], functions):
        if candidates:
            return candidates[-1]
    return None


def _names_used(sources: list[str]) -> set[str]:
    """Names called or imported by the given snippets; snippets that do not parse are skipped."""
    names: set[str] = set()
    for tree in filter(None, map(_parse, sources)):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                names.add(node.func.id)
            elif isinstance(node, ast.ImportFrom):
                names.update(alias.name for alias in node.names)
    return names


def _parse(source: str) -> ast.Module | None:
    """The syntax tree, or None; old data's warnings (invalid escapes like '\\w') are not ours to print."""
    return parse(source)


def _load(path: str | os.PathLike, source: str, convert: Convert) -> list[Problem]:
    split = Path(path).stem
    return unique((where, convert(row, where, source, split)) for where, row in read_jsonl(path))


def _problem(
    row: Any, where: str, source: str, split: str, hint: str | None = None, extra: dict | None = None
) -> Problem:
    task_id, instruction, completion, setup, test_list = (_field(row, k, kind, where) for k, kind in _FIELDS)
    for i, test in enumerate(test_list):
        if not isinstance(test, str):
            raise ProblemFormatError(
                f"{where}: field 'test_list[{i}]' must be str, got {type(test).__name__}"
            )
    return Problem(
        id=task_id,
        prompt=instruction,
        tests=tuple(AssertTest(code=t) for t in test_list),
        entry_point=find_entry_point(completion, test_list, setup, hint),
        setup=setup,
        reference=completion,
        metadata={"source": source, "split": split, **(extra or {})},
    )


def _lbpp_problem(row: Any, where: str, source: str, split: str) -> Problem:
    signature = _field(row, "signature", str, where)
    match = _SIGNATURE_NAME.match(signature)
    extra: dict[str, Any] = {"candidate_module": LBPP_CANDIDATE_MODULE}
    if row.get("task_id") in LBPP_CANARY_IDS:
        extra["canary"] = True
    return _problem(row, where, source, split, hint=match.group(1) if match else None, extra=extra)


def _field(row: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(row, dict):
        raise ProblemFormatError(f"{where}: a row must be a JSON object, got {type(row).__name__}")
    if key not in row:
        raise ProblemFormatError(f"{where}: missing field '{key}'")
    if not isinstance(row[key], kind):
        raise ProblemFormatError(
            f"{where}: field '{key}' must be {kind.__name__}, got {type(row[key]).__name__}"
        )
    return row[key]
