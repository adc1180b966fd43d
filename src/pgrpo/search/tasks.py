"""Visible and hidden tests as separate objects, so that hidden tests cannot reach search.

Search receives `SearchTask`s only: the statement, the setup and the visible tests, as a `Problem`
with no reference solution and no metadata beyond what the executor needs. The hidden tests and the
reference stay in a separate `Problem` that only the final scoring sees. In an oracle run (`--oracle`)
the hidden tests are copied into the search task on purpose, and every report says so.

Where visible tests come from:
- `NAME:DIR`, DIR holding `dev.jsonl` and `test.jsonl` (the ORPS layout of MBPP, LBPP, HumanEval):
  visible = dev tests, hidden = test tests, matched by problem id;
- any other spec whose problems carry `metadata["visible_tests"]` (LiveCodeBench, CodeContests):
  visible = those, hidden = `tests`.

A visible test that is also one of the problem's hidden tests (same code once normalised: parsed and
unparsed, so spacing and quotes do not matter) is dropped from the visible set, else search would
optimise for, and select on, a hidden test (HumanEval's dev file repeats 223 of its 1062 hidden asserts,
LBPP's 34 of 812). `SearchTask.repeats_dropped` counts them for the report. A problem left with no
visible test is still searched, without test feedback: see `methods.judged_good` and `tree.select`.
"""

from __future__ import annotations

import ast
import json
import os
import warnings
from dataclasses import dataclass
from typing import Any

from pgrpo.types import Problem, test_from_dict

# metadata that turns an answer into the program the executor runs (the module name tests import; the
# imports LCB's grader puts above LeetCode answers, which `program_for` adds): nothing else reaches search
EXECUTOR_METADATA = ("candidate_module", "program_prefix")


@dataclass(frozen=True)
class SearchTask:
    """What search may see. `problem.tests` are the tests search may run (visible ones, or in an oracle
    run the hidden ones). `answer_format`: None, or (pgrpo prompt style) the `FormatSpec` a reply is read
    with, as the training reward reads it."""

    id: str
    problem: Problem
    oracle: bool = False
    answer_format: Any = None
    repeats_dropped: int = 0  # visible tests dropped because they are hidden tests too


def same_test_key(test) -> str:
    """What makes two tests the same test: the code, parsed and unparsed where it parses (spacing, quotes
    and parentheses do not matter); other kinds by their fields."""
    data = test.to_dict()
    code = data.get("code")
    if code is None:
        return json.dumps(data, sort_keys=True)
    try:
        with warnings.catch_warnings():  # test code is data: its invalid escapes are not ours to report
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return ast.unparse(ast.parse(code))
    except SyntaxError:
        return " ".join(code.split())


def search_view(problem: Problem, tests: tuple, oracle: bool, repeats_dropped: int = 0) -> SearchTask:
    visible = Problem(
        id=problem.id,
        prompt=problem.prompt,
        tests=tuple(tests),
        entry_point=problem.entry_point,
        setup=problem.setup,
        reference=None,
        time_limit_s=problem.time_limit_s,
        memory_limit_mb=problem.memory_limit_mb,
        metadata={k: problem.metadata[k] for k in EXECUTOR_METADATA if k in problem.metadata},
    )
    return SearchTask(id=problem.id, problem=visible, oracle=oracle, repeats_dropped=repeats_dropped)


def split_tasks(
    visible: list[Problem], hidden: list[Problem], oracle: bool = False
) -> list[tuple[SearchTask, Problem]]:
    """(search task, hidden problem) per problem of `hidden`, its visible tests taken from the problem of
    the same id in `visible`."""
    by_id = {p.id: p for p in visible}
    missing = [p.id for p in hidden if p.id not in by_id]
    if missing:
        raise ValueError(f"no visible tests for {len(missing)} problem(s), e.g. {missing[:3]}")
    pairs = []
    for problem in hidden:
        if oracle:
            pairs.append((search_view(problem, problem.tests, oracle=True), problem))
        else:
            shown = by_id[problem.id]
            hidden_keys = {same_test_key(t) for t in problem.tests}
            kept = tuple(t for t in shown.tests if same_test_key(t) not in hidden_keys)
            dropped = len(shown.tests) - len(kept)
            pairs.append((search_view(shown, kept, oracle=False, repeats_dropped=dropped), problem))
    return pairs


def load_tasks(spec: str, oracle: bool = False) -> list[tuple[SearchTask, Problem]]:
    """(search task, hidden problem) pairs for a dataset spec; canaries dropped."""
    from pgrpo.problems import load_problems

    name, sep, path = spec.partition(":")
    if sep and os.path.isdir(path):
        files = [os.path.join(path, f"{split}.jsonl") for split in ("dev", "test")]
        absent = [f for f in files if not os.path.exists(f)]
        if absent:
            raise ValueError(
                f"{spec}: an ORPS-layout directory needs dev.jsonl and test.jsonl; missing {absent}"
            )
        visible = load_problems(f"{name}:{files[0]}")
        hidden = load_problems(f"{name}:{files[1]}")
    else:
        hidden = load_problems(spec)
        if not oracle and not all("visible_tests" in p.metadata for p in hidden):
            raise ValueError(
                f"{spec}: these problems have no visible tests to search on. Give an ORPS-layout directory "
                "(NAME:DIR with dev.jsonl and test.jsonl), a set with metadata.visible_tests, or --oracle "
                "to search on the hidden tests (an oracle run, labelled as such)"
            )
        visible = [
            p.with_tests(
                [test_from_dict(t, f"{p.id}: visible_tests") for t in p.metadata.get("visible_tests", [])]
            )
            for p in hidden
        ]
    hidden = [p for p in hidden if not p.metadata.get("canary")]
    return split_tasks(visible, hidden, oracle=oracle)
