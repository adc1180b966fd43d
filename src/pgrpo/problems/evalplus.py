"""EvalPlus's HumanEval+ and MBPP+ releases (JSONL, or `.jsonl.gz` as published).

Two shapes are published and both load:
- the evalplus release (`HumanEvalPlus.jsonl.gz`, `MbppPlus.jsonl.gz`): `task_id`, `prompt`,
  `entry_point`, `canonical_solution`, `contract`, `base_input`, `plus_input`, `atol`, and the base
  tests as code (`test`, HumanEval's `check(candidate)`; MBPP+'s bare asserts in `assertion`).
  The rows carry the plus *inputs* but not their expected outputs (evalplus computes those by running
  the reference), so the plus inputs cannot become tests here: the base test is the only test, the
  plus inputs are kept in `metadata["plus_input"]`, and `metadata["plus_tests"]` is False.
- the "original format" release (`HumanEvalPlus-OriginFmt.jsonl.gz`, the Hugging Face
  `evalplus/humanevalplus` and `evalplus/mbppplus` sets): `test` already holds every base and plus
  input with its expected result and evalplus's `assertion(out, exp, atol)` helper (numpy's allclose
  for floats). That code is the one assert test; `metadata["plus_tests"]` is True. MBPP+ rows of this
  shape name no entry point (it is recovered from the reference) and their `task_id` is a number.

HumanEval+: the prompt is the function header, `setup` is the prompt too (helpers such as `poly` exist on
the test side), the reference is prompt + canonical solution. MBPP+: the candidate writes the whole
program; `test_imports` become `setup`. Test code is the release's own and runs on the trusted side:
load only releases you trust.
"""

from __future__ import annotations

import os
import re
from typing import Any

from pgrpo.jsonl import read_jsonl
from pgrpo.problems.native import unique
from pgrpo.problems.orps import _field, find_entry_point
from pgrpo.types import AssertTest, Problem, ProblemFormatError

# The original-format test assigns every input and result; the evalplus release's test does not.
_HOLDS_ALL_INPUTS = re.compile(r"^\s*inputs\s*=", re.M)
_ATOL_IN_TEST = re.compile(  # `assertion(candidate(*inp), exp, ATOL)`; HumanEval/32: `_poly(...) <= ATOL`
    r"(?:assertion\(candidate\(\*inp\),\s*(?:exp|ref_func\(\*inp\)),\s*|_poly\(\*candidate\(\*inp\),\s*inp\)\s*<=\s*)([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\)?$",
    re.M,
)
# The release's `assertion` ends in `np.testing.assert_allclose(out, exp, atol=atol)`, which
# broadcasts a scalar on either side: `[]` or `[x, x]` matches the number x, and x matches `[x, x]`
# or `[]`. Later evalplus checks type and length first; so does this guard, run just before it.
_ALLCLOSE = re.compile(r"^([ \t]+)(np\.testing\.assert_allclose\(out, exp\b)", re.M)
_SHAPE_GUARD = """
def _pgrpo_same_shape(out, exp):
    import numbers

    import numpy

    if isinstance(exp, (list, tuple)):
        assert isinstance(out, (list, tuple)) and len(out) == len(exp), (
            f"expected {len(exp)} items, got {out!r:.200}"
        )
        for o, e in zip(out, exp):
            _pgrpo_same_shape(o, e)
    elif isinstance(exp, (int, float)):
        assert isinstance(out, (numbers.Real, numpy.bool_)), f"expected a number, got {out!r:.200}"
"""


def load_humanevalplus(path: str | os.PathLike) -> list[Problem]:
    """HumanEval+ problems in file order; each has one assert test (`check(<entry point>)`)."""
    return unique((where, _humanevalplus(row, where)) for where, row in read_jsonl(path))


def load_mbppplus(path: str | os.PathLike) -> list[Problem]:
    """MBPP+ problems in file order; each has one assert test."""
    return unique((where, _mbppplus(row, where)) for where, row in read_jsonl(path))


def _humanevalplus(row: Any, where: str) -> Problem:
    task_id = _field(row, "task_id", str, where)
    prompt = _field(row, "prompt", str, where)
    entry_point = _identifier(row, "entry_point", where)
    solution = _field(row, "canonical_solution", str, where)
    test = _field(row, "test", str, where)
    return Problem(
        id=task_id,
        prompt=prompt,
        entry_point=entry_point,
        setup=prompt,
        tests=(AssertTest(code=f"{_guard_allclose(test)}\ncheck({entry_point})\n"),),
        reference=prompt + solution,
        metadata=_metadata(row, "humanevalplus", test, where),
    )


def _mbppplus(row: Any, where: str) -> Problem:
    task_id = _field(row, "task_id", object, where)
    if isinstance(task_id, bool) or not isinstance(task_id, (str, int)):
        raise ProblemFormatError(f"{where}: field 'task_id' must be str or int, got {type(task_id).__name__}")
    key = "canonical_solution" if "canonical_solution" in row else "code"
    reference = _field(row, key, str, where)
    test = _field(row, "test" if "test" in row else "assertion", str, where)
    test_list = _strings(row, "test_list", where)
    test_imports = _strings(row, "test_imports", where)
    if "entry_point" in row:
        entry_point = _identifier(row, "entry_point", where)
    else:
        entry_point = find_entry_point(reference, test_list or [test])
        if entry_point is None:
            raise ProblemFormatError(f"{where}: no field 'entry_point' and none found in field '{key}'")
    code = _guard_allclose(test)
    if re.search(r"\bcandidate\b", test) and "def check(" not in test:
        code = f"candidate = {entry_point}\n{code}"  # the original-format template calls `candidate`
    return Problem(
        id=task_id if isinstance(task_id, str) else f"Mbpp/{task_id}",
        prompt=_field(row, "prompt", str, where),
        entry_point=entry_point,
        setup="\n".join(test_imports),
        tests=(AssertTest(code=code),),
        reference=reference,
        metadata=_metadata(row, "mbppplus", test, where),
    )


def _guard_allclose(test: str) -> str:
    """The test with the type and length guard before the release assertion's allclose (a test
    without that allclose, as in the evalplus release, is returned as it is)."""
    guarded, count = _ALLCLOSE.subn(r"\1_pgrpo_same_shape(out, exp)\n\1\2", test)
    return _SHAPE_GUARD + guarded if count else test


def _metadata(row: dict, source: str, test: str, where: str) -> dict:
    """Source, tolerance, and whether the plus inputs are among the tests (else kept as inputs)."""
    plus_tests = bool(_HOLDS_ALL_INPUTS.search(test))
    if "atol" in row:
        atol = row["atol"]
        if isinstance(atol, bool) or not isinstance(atol, (int, float)):
            raise ProblemFormatError(f"{where}: field 'atol' must be a number, got {type(atol).__name__}")
    else:
        match = _ATOL_IN_TEST.search(test)
        atol = float(match.group(1)) if match else 0
    metadata: dict[str, Any] = {"source": source, "atol": atol, "plus_tests": plus_tests}
    if not plus_tests and "plus_input" in row:
        metadata["plus_input"] = _field(row, "plus_input", list, where)
    return metadata


def _identifier(row: Any, key: str, where: str) -> str:
    value = _field(row, key, str, where)
    if not value.isidentifier():
        raise ProblemFormatError(f"{where}: field '{key}' must be a Python name, got {value!r}")
    return value


def _strings(row: dict, key: str, where: str) -> list[str]:
    """An optional list-of-strings field ([] when absent)."""
    if key not in row:
        return []
    values = _field(row, key, list, where)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ProblemFormatError(f"{where}: field '{key}[{i}]' must be str, got {type(value).__name__}")
    return values
