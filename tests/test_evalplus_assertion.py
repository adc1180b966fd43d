"""The original-format HumanEval+/MBPP+ `assertion` compares floats with numpy's allclose, which
broadcasts: an empty list or a list holding the answer matched a float expectation. The loader adds
the type and length check later evalplus releases make before it."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import pytest

from pgrpo.problems import load_problems
from pgrpo.types import Verdict

FIXTURES = Path(__file__).parent / "fixtures"
HEPLUS_ORIGIN = FIXTURES / "humanevalplus_originfmt_small.jsonl"
MBPPPLUS_ORIGIN = FIXTURES / "mbppplus_originfmt_small.jsonl"


@pytest.fixture(scope="module")
def executor():
    from pgrpo.sandbox import Executor

    with Executor(workers=1) as ex:
        yield ex


def fresh(problem):
    """Workers remember problems by id; these reuse public ids with other tests."""
    return dataclasses.replace(problem, id=f"{problem.id}-{uuid.uuid4().hex}")


def truncate_number():
    """HumanEval/2: the float part of a positive float, expected with atol 1e-6."""
    (problem,) = [p for p in load_problems(f"humanevalplus:{HEPLUS_ORIGIN}") if p.id == "HumanEval/2"]
    return fresh(problem)


def list_valued(tmp_path: Path, results: str):
    """HumanEval/2's row with list-valued expectations (`results`, for the inputs 2.5 then 3.5), as
    HumanEval+ tasks returning lists of floats have."""
    (row,) = [
        r for r in map(json.loads, HEPLUS_ORIGIN.read_text().splitlines()) if r["task_id"] == "HumanEval/2"
    ]
    lines = row["test"].splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("inputs ="):
            lines[i] = "    inputs = [[2.5], [3.5]]"
        elif line.strip().startswith("results ="):
            lines[i] = f"    results = {results}"
    path = tmp_path / "list.jsonl"
    path.write_text(json.dumps({**row, "test": "\n".join(lines)}) + "\n")
    return fresh(load_problems(f"humanevalplus:{path}")[0])


@pytest.mark.parametrize(
    "body",
    [
        "return []",  # allclose([], 0.5) holds: nothing to compare
        "return [number % 1.0]",  # a one-item list broadcasts against the number
        "return [number % 1.0] * 3",
        "return (number % 1.0,)",
        "return None if number < 0 else []",
    ],
)
def test_a_list_for_a_float_result_fails(executor, body):
    result = executor.run(truncate_number(), f"def truncate_number(number):\n    {body}\n")
    assert result.verdict is Verdict.FAILED, result


@pytest.mark.parametrize(
    "body",
    [
        "return number % 1.0",  # the reference's answer
        "import numpy\n    return numpy.float64(number) % 1.0",  # a numpy scalar is a number
        "return number - int(number) + 1e-9",  # within atol
    ],
)
def test_control_a_number_for_a_float_result_passes(executor, body):
    result = executor.run(truncate_number(), f"def truncate_number(number):\n    {body}\n")
    assert result.passed, result


@pytest.mark.parametrize(
    "results, body",
    [
        ("[[0.5, 0.5], [0.5, 0.5]]", "return number % 1.0"),  # the number broadcast to the list
        ("[[], []]", "return number % 1.0"),  # a number for an empty list
        ("[[0.5, 0.5], [0.5, 0.5]]", "return [number % 1.0, [number % 1.0]]"),  # an item that is a list
    ],
)
def test_a_number_for_a_list_result_fails(executor, tmp_path, results, body):
    result = executor.run(list_valued(tmp_path, results), f"def truncate_number(number):\n    {body}\n")
    assert result.verdict is Verdict.FAILED, result


def test_control_the_right_list_passes_as_a_list_or_a_tuple(executor, tmp_path):
    problem = list_valued(tmp_path, "[[0.5, 1.5], [0.5, 1.5]]")
    for value in ("[number % 1.0, 1.5000000001]", "(number % 1.0, 1.5)"):
        result = executor.run(problem, f"def truncate_number(number):\n    return {value}\n")
        assert result.passed, (value, result)


def test_control_the_references_of_both_releases_still_pass(executor):
    for spec in (f"humanevalplus:{HEPLUS_ORIGIN}", f"mbppplus:{MBPPPLUS_ORIGIN}"):
        for problem in load_problems(spec):
            result = executor.run(fresh(problem), problem.reference)
            assert result.passed, (problem.id, result.message)
