"""Loaders for public benchmark releases, and the math answer checker.

Each fixture under tests/fixtures/ is a few rows in the release's own field names and shapes. A few
references run through the real executor to show the generated tests are runnable as well as parsed.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import os
import pickle
import threading
import zlib
from pathlib import Path

import pytest

from pgrpo.answers import AnswerCheckError, answer_of, check_answer
from pgrpo.problems import export_problems, known_formats, load_problems
from pgrpo.problems.livecodebench import load_livecodebench
from pgrpo.types import AnswerTest, AssertTest, ProblemFormatError, StdioTest, Verdict
from pgrpo.types import test_from_dict as parse_test

FIXTURES = Path(__file__).parent / "fixtures"
HEPLUS = FIXTURES / "humanevalplus_small.jsonl"
HEPLUS_ORIGIN = FIXTURES / "humanevalplus_originfmt_small.jsonl"
MBPPPLUS = FIXTURES / "mbppplus_small.jsonl"
MBPPPLUS_ORIGIN = FIXTURES / "mbppplus_originfmt_small.jsonl"
LCB = FIXTURES / "livecodebench_small.jsonl"
BCB = FIXTURES / "bigcodebench_small.jsonl"
APPS = FIXTURES / "apps_small.jsonl"
TACO = FIXTURES / "taco_small.jsonl"
CODECONTESTS = FIXTURES / "codecontests_small.jsonl"
MATH500 = FIXTURES / "math500_small.jsonl"
GSM8K = FIXTURES / "gsm8k_small.jsonl"
MATH = FIXTURES / "math_small.jsonl"

ALL_SPECS = [
    f"humanevalplus:{HEPLUS}",
    f"humanevalplus:{HEPLUS_ORIGIN}",
    f"mbppplus:{MBPPPLUS}",
    f"mbppplus:{MBPPPLUS_ORIGIN}",
    f"livecodebench:{LCB}",
    f"bigcodebench:{BCB}",
    f"apps:{APPS}",
    f"taco:{TACO}",
    f"math500:{MATH500}",
    f"gsm8k:{GSM8K}",
    f"math:{MATH}",
]


@pytest.fixture(scope="module")
def executor():
    """This module's own pool: workers remember problems by id, and these fixtures reuse public ids
    (HumanEval/0, Mbpp/3) that other test modules load with other tests."""
    from pgrpo.sandbox import Executor

    with Executor(workers=1) as ex:
        yield ex


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_rows(path: Path, *items: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    return path


def visible(problem) -> list:
    return [parse_test(d) for d in problem.metadata["visible_tests"]]


def compress(cases: object) -> str:
    """The LiveCodeBench release's form of private tests: base64(zlib(pickle(JSON text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode("ascii")


# ----------------------------------------------------------------------------- registry


def test_every_public_format_is_registered():
    for name in (
        "humanevalplus",
        "mbppplus",
        "livecodebench",
        "bigcodebench",
        "apps",
        "taco",
        "codecontests",
        "math500",
        "gsm8k",
        "math",
    ):
        assert name in known_formats()


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_export_then_load_as_native_gives_equal_problems(spec, tmp_path):
    out = tmp_path / "problems.jsonl"
    original = load_problems(spec)
    assert export_problems(spec, str(out)) == len(original)
    assert load_problems(str(out)) == original


# ----------------------------------------------------------------------------- HumanEval+ / MBPP+


def test_humanevalplus_release_keeps_base_test_and_plus_inputs():
    source = rows(HEPLUS)
    problems = load_problems(f"humanevalplus:{HEPLUS}")
    assert [p.id for p in problems] == ["HumanEval/0", "HumanEval/2"]
    for p, row in zip(problems, source):
        assert p.prompt == p.setup == row["prompt"]
        assert p.entry_point == row["entry_point"]
        assert p.reference == row["prompt"] + row["canonical_solution"]
        assert p.tests == (AssertTest(row["test"] + f"\ncheck({row['entry_point']})\n"),)
        assert p.metadata == {
            "source": "humanevalplus",
            "atol": row["atol"],
            "plus_tests": False,
            "plus_input": row["plus_input"],
        }
    assert problems[1].metadata["atol"] == 1e-06


def test_humanevalplus_reads_the_gzipped_release(tmp_path):
    packed = tmp_path / "HumanEvalPlus.jsonl.gz"
    packed.write_bytes(gzip.compress(HEPLUS.read_bytes()))
    assert load_problems(f"humanevalplus:{packed}") == load_problems(f"humanevalplus:{HEPLUS}")


def test_humanevalplus_original_format_holds_plus_tests_in_its_test():
    problems = load_problems(f"humanevalplus:{HEPLUS_ORIGIN}")
    assert [p.id for p in problems] == ["HumanEval/0", "HumanEval/2"]
    for p in problems:
        (test,) = p.tests
        assert "inputs = " in test.code and test.code.endswith(f"check({p.entry_point})\n")
        assert p.metadata["plus_tests"] is True and "plus_input" not in p.metadata
    assert [p.metadata["atol"] for p in problems] == [0, 1e-06]  # read from the test's assertion calls


def test_mbppplus_release_uses_its_assertions_and_entry_point():
    problems = load_problems(f"mbppplus:{MBPPPLUS}")
    assert [p.id for p in problems] == ["Mbpp/2", "Mbpp/3"]
    similar, prime = problems
    assert similar.entry_point == "similar_elements" and prime.entry_point == "is_not_prime"
    assert prime.tests == (AssertTest(rows(MBPPPLUS)[1]["assertion"]),)
    assert prime.reference.strip().startswith("import math")
    assert prime.metadata["plus_input"] == [[1], [4], [97], [1000003]]
    assert prime.metadata["plus_tests"] is False


def test_mbppplus_original_format_finds_entry_point_and_binds_candidate():
    problems = load_problems(f"mbppplus:{MBPPPLUS_ORIGIN}")
    assert [p.id for p in problems] == ["Mbpp/3", "Mbpp/4"]  # numeric task ids, named as evalplus does
    assert [p.entry_point for p in problems] == ["is_not_prime", "heap_queue_largest"]
    for p in problems:
        assert p.tests[0].code.startswith(f"candidate = {p.entry_point}\n")
        assert p.metadata["plus_tests"] is True


def test_evalplus_references_pass_and_a_plus_input_catches_a_wrong_program(executor):
    for spec in (f"humanevalplus:{HEPLUS_ORIGIN}", f"mbppplus:{MBPPPLUS_ORIGIN}"):
        for problem in load_problems(spec):
            result = executor.run(problem, problem.reference)
            assert result.passed, (problem.id, result.message)
    close = load_problems(f"humanevalplus:{HEPLUS_ORIGIN}")[0]
    # passes every base input, but a plus input is the empty list
    wrong = (
        "def has_close_elements(numbers, threshold):\n"
        "    s = sorted(numbers)\n"
        "    return min(b - a for a, b in zip(s, s[1:])) < threshold\n"
    )
    assert executor.run(close, wrong).verdict is Verdict.RUNTIME_ERROR


# ----------------------------------------------------------------------------- LiveCodeBench


def test_livecodebench_keeps_hidden_tests_apart_from_visible_ones():
    problems = load_problems(f"livecodebench:{LCB}")
    assert [p.id for p in problems] == ["abc301_a", "2917", "1873_A"]
    stdin, functional, compressed = problems
    source = rows(LCB)

    assert stdin.entry_point is None
    assert stdin.tests == (
        StdioTest("1\nA\n", "A\n"),
        StdioTest("4\nAATT\n", "A\n"),
        StdioTest("3\nTTT\n", "T\n"),
    )
    assert visible(stdin) == [StdioTest("5\nTTAAT\n", "T\n"), StdioTest("6\nATTATA\n", "T\n")]
    assert stdin.prompt.startswith(source[0]["question_content"])
    assert "standard input" in stdin.prompt

    assert functional.entry_point == "Solution"
    assert len(functional.tests) == 3 and len(visible(functional)) == 2
    assert all(
        isinstance(t, AssertTest) and "Solution().countPairs(*_args)" in t.code for t in functional.tests
    )
    assert source[1]["starter_code"].strip() in functional.prompt

    # private tests in the compressed release form decode like plain ones
    assert compressed.tests == (StdioTest("1\nabc\n", "YES\n"), StdioTest("2\nbca\ncba\n", "NO\nYES\n"))
    assert len(visible(compressed)) == 1

    for p in problems:
        assert not set(map(repr, p.tests)) & set(map(repr, visible(p)))
    assert functional.metadata["difficulty"] == "easy"
    assert functional.metadata["platform"] == "leetcode"
    assert functional.metadata["contest_date"] == "2023-08-19T00:00:00"


@pytest.mark.parametrize(
    "since, until, ids",
    [
        (None, None, ["abc301_a", "2917", "1873_A"]),
        ("2023-08-01", None, ["2917", "1873_A"]),
        (None, "2023-08-19", ["abc301_a", "2917"]),  # both ends inclusive, as in LCB
        ("2023-08-19", "2023-08-19", ["2917"]),
        ("2024-01-01", None, []),
    ],
)
def test_livecodebench_contest_date_filter(since, until, ids):
    assert [p.id for p in load_livecodebench(LCB, since=since, until=until)] == ids


def test_livecodebench_spec_takes_the_filter_as_a_query():
    problems = load_problems(f"livecodebench:{LCB}?since=2023-08-01&until=2023-09-01")
    assert [p.id for p in problems] == ["2917"]


@pytest.mark.parametrize("query, message", [("since=yesterday", "since"), ("after=2023-01-01", "after")])
def test_livecodebench_bad_query_is_named(query, message):
    with pytest.raises(ValueError, match=message):
        load_problems(f"livecodebench:{LCB}?{query}")


def test_livecodebench_directory_loads_every_file_in_name_order(tmp_path):
    lines = LCB.read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "test.jsonl").write_text(lines[0] + lines[1], encoding="utf-8")
    (tmp_path / "test2.jsonl").write_text(lines[2], encoding="utf-8")
    assert [p.id for p in load_livecodebench(tmp_path)] == ["abc301_a", "2917", "1873_A"]


def test_livecodebench_compressed_tests_may_not_name_code(tmp_path):
    row = rows(LCB)[0]
    row["private_test_cases"] = base64.b64encode(zlib.compress(pickle.dumps(os.system))).decode()
    path = write_rows(tmp_path / "lcb.jsonl", row)
    with pytest.raises(ProblemFormatError, match="refused") as err:
        load_problems(f"livecodebench:{path}")
    assert f"{path}:1" in str(err.value) and "private_test_cases" in str(err.value)


def test_livecodebench_solutions_run_against_hidden_tests(executor):
    _, functional, stdin = load_problems(f"livecodebench:{LCB}")
    right = (
        "from typing import List\n\n"
        "class Solution:\n"
        "    def countPairs(self, nums: List[int], target: int) -> int:\n"
        "        n = len(nums)\n"
        "        return sum(nums[i] + nums[j] < target for i in range(n) for j in range(i + 1, n))\n"
    )
    assert executor.run(functional, right).passed
    wrong = "class Solution:\n    def countPairs(self, nums, target):\n        return len(nums)\n"
    assert executor.run(functional, wrong).verdict is Verdict.FAILED
    short_sort = (
        "for _ in range(int(input())):\n"
        "    s = input().strip()\n"
        "    print('YES' if sum(a != b for a, b in zip(s, 'abc')) <= 2 else 'NO')\n"
    )
    assert executor.run(stdin, short_sort).passed


def test_livecodebench_answers_get_the_graders_imports_above_them(executor):
    from pgrpo.prompting import program_for
    from pgrpo.types import Sample

    _, functional, _ = load_problems(f"livecodebench:{LCB}")
    bare = (  # `List` comes from the grader's prefix, as in LiveCodeBench
        "```python\nclass Solution:\n    def countPairs(self, nums: List[int], target: int) -> int:\n"
        "        return sum(a + b < target for i, a in enumerate(nums) for b in nums[i + 1 :])\n```"
    )
    program = program_for(functional, Sample(id=functional.id, completion=bare))
    assert program.startswith(functional.metadata["program_prefix"])
    assert executor.run(functional, program).passed
    assert executor.run(functional, program_for(functional, Sample(id="x", solution=bare[10:-3]))).passed


# ----------------------------------------------------------------------------- BigCodeBench


def test_bigcodebench_fields():
    problems = load_problems(f"bigcodebench:{BCB}")
    source = rows(BCB)
    assert [p.id for p in problems] == ["BigCodeBench/1", "BigCodeBench/2"]
    for p, row in zip(problems, source):
        assert p.prompt == row["instruct_prompt"]
        assert p.entry_point == "task_func"
        assert p.reference == row["code_prompt"] + row["canonical_solution"]
        assert p.metadata["complete_prompt"] == row["complete_prompt"]
        (test,) = p.tests
        assert test.code.startswith(row["test"]) and "loadTestsFromTestCase(TestCases)" in test.code
    assert problems[0].metadata["libs"] == ["re", "collections"]
    # the tests may use what the solution's module defines above task_func
    assert "LETTERS = string.ascii_lowercase" in problems[1].setup
    assert "def task_func" not in problems[1].setup


def test_bigcodebench_unittest_cases_run_and_failures_are_named(executor):
    words, letters = load_problems(f"bigcodebench:{BCB}")
    assert executor.run(words, words.reference).passed
    assert executor.run(letters, letters.reference).passed
    lenient = letters.reference.replace("if n < 0:", "if n < -5:")
    result = executor.run(letters, lenient)
    assert result.verdict is Verdict.FAILED
    assert "1 of 4 test cases failed" in result.message and "test_negative" in result.message


def test_bigcodebench_harness_faults_are_not_failures(executor):
    words = load_problems(f"bigcodebench:{BCB}")[0]
    test = (
        "import unittest\n\nclass Opaque:\n    pass\n\n"
        "class TestCases(unittest.TestCase):\n"
        "    def test_opaque(self):\n"
        "        task_func(Opaque())\n"
    )
    code = words.tests[0].code.replace(rows(BCB)[0]["test"], test)
    problem = dataclasses.replace(words, id="opaque-argument", tests=(AssertTest(code),))
    assert executor.run(problem, words.reference).verdict is Verdict.SANDBOX_ERROR


# ----------------------------------------------------------------------------- APPS, TACO, CodeContests


def test_apps_stdio_and_call_based_problems():
    stdin, call = load_problems(f"apps:{APPS}")
    assert (stdin.id, call.id) == ("apps/0", "apps/4000")
    assert stdin.entry_point is None and len(stdin.tests) == 3
    assert stdin.tests[0] == StdioTest("1 2\n", "3\n")
    assert stdin.reference == "a, b = map(int, input().split())\nprint(a + b)\n"
    assert call.entry_point == "solve"
    assert all(isinstance(t, AssertTest) and "solve(*_args)" in t.code for t in call.tests)
    assert "visible_tests" not in stdin.metadata  # APPS publishes one test set: all of it is graded
    assert call.metadata["difficulty"] == "introductory"


def test_taco_ids_are_row_positions_and_solution_classes_are_called():
    method, stdin = load_problems(f"taco:{TACO}")
    assert (method.id, stdin.id) == ("taco/0", "taco/1")
    assert method.entry_point == "Solution"
    assert "Solution().addDigits(*_args)" in method.tests[0].code
    assert stdin.tests == (StdioTest("3\n", "1\n4\n9\n"), StdioTest("1\n", "1\n"))
    assert method.metadata["name"] == "add-digits"


def test_codecontests_hidden_and_visible_tests():
    with pytest.warns(UserWarning, match=f"{CODECONTESTS}:2: no hidden tests"):
        problems = load_problems(f"codecontests:{CODECONTESTS}")
    (problem,) = problems
    assert problem.id == "1873_A. Short Sort"
    assert problem.tests == (
        StdioTest("1\nbca\n", "NO\n"),  # private, then generated
        StdioTest("2\ncab\nabc\n", "NO\nYES\n"),
        StdioTest("1\ncba\n", "YES\n"),
    )
    assert visible(problem) == [
        StdioTest("6\nabc\nacb\nbac\nbca\ncab\ncba\n", "YES\nYES\nYES\nNO\nNO\nYES\n")
    ]
    assert problem.reference.startswith("t = int(input())")  # the Python 3 solution, not the C++ one
    assert problem.metadata["platform"] == "codeforces"
    assert problem.metadata["contest_time_limit_s"] == 1.0


@pytest.mark.filterwarnings("ignore:.*no hidden tests")
@pytest.mark.parametrize("spec", [f"apps:{APPS}", f"taco:{TACO}", f"codecontests:{CODECONTESTS}"])
def test_competitive_references_pass(spec, executor):
    for problem in load_problems(spec):
        result = executor.run(problem, problem.reference)
        assert result.passed, (problem.id, result.message)


# ----------------------------------------------------------------------------- math sets


def test_math500():
    polar, fraction = load_problems(f"math500:{MATH500}")
    assert polar.id == "test/precalculus/807.json"
    assert polar.tests == (AnswerTest(r"\left( 3, \frac{\pi}{2} \right)"),)
    assert polar.entry_point is None
    assert polar.reference.endswith(r"$\boxed{\left( 3, \frac{\pi}{2} \right)}.$")
    assert polar.metadata == {"source": "math500", "subject": "Precalculus", "level": 2}
    assert check_answer(fraction.reference, fraction.tests[0].expected)


def test_gsm8k_final_answer_follows_the_marker():
    ducks, items = load_problems(f"gsm8k:{GSM8K}")
    assert (ducks.id, items.id) == ("gsm8k/0", "gsm8k/1")
    assert ducks.tests == (AnswerTest("18"),)
    assert items.tests == (AnswerTest("1234"),)  # "#### 1,234"
    assert ducks.reference == rows(GSM8K)[0]["answer"]
    assert ducks.prompt.startswith("Janet’s ducks lay 16 eggs")


def test_generic_math_ids_and_fields():
    named, unnamed = load_problems(f"math:{MATH}")
    assert (named.id, unnamed.id) == ("aime24/1", "math/1")
    assert named.tests == (AnswerTest("24"),) and named.reference is not None
    assert unnamed.prompt.startswith("What is $0.25$") and unnamed.reference is None


# ----------------------------------------------------------------------------- malformed rows


def _lcb_row(**changes) -> dict:
    return {**rows(LCB)[1], **changes}


MALFORMED = [
    ("humanevalplus", {**rows(HEPLUS)[0], "entry_point": 3}, "entry_point"),
    ("humanevalplus", {k: v for k, v in rows(HEPLUS)[0].items() if k != "test"}, "test"),
    ("mbppplus", {**rows(MBPPPLUS)[0], "atol": "small"}, "atol"),
    ("livecodebench", _lcb_row(contest_date="last week"), "contest_date"),
    ("livecodebench", _lcb_row(metadata="{}"), "metadata"),
    ("livecodebench", _lcb_row(metadata=json.dumps({"func_name": "os.system"})), "func_name"),
    ("livecodebench", _lcb_row(public_test_cases="[{"), "public_test_cases"),
    (
        "livecodebench",
        _lcb_row(private_test_cases=compress([{"input": "[1", "output": "0", "testtype": "functional"}])),
        "private_test_cases[0]",
    ),
    ("bigcodebench", {**rows(BCB)[0], "libs": "re, collections"}, "libs"),
    ("bigcodebench", {**rows(BCB)[0], "test": "def test(): pass"}, "test"),
    (
        "apps",
        {**rows(APPS)[0], "input_output": json.dumps({"inputs": ["1\n"], "outputs": []})},
        "input_output",
    ),
    ("apps", {**rows(APPS)[0], "solutions": "not json"}, "solutions"),
    (
        "taco",
        {**rows(TACO)[0], "input_output": json.dumps({"fn_name": "add digits", "inputs": [], "outputs": []})},
        "fn_name",
    ),
    (
        "codecontests",
        {**rows(CODECONTESTS)[0], "private_tests": {"input": ["1\n"], "output": [1]}},
        "private_tests",
    ),
    ("math500", {k: v for k, v in rows(MATH500)[0].items() if k != "answer"}, "answer"),
    ("gsm8k", {"question": "2+2?", "answer": "It is 4."}, "answer"),
    ("math", {"problem": "1+1?", "answer": None}, "answer"),
]


@pytest.mark.parametrize("fmt, bad, field", MALFORMED, ids=[f"{m[0]}-{m[2]}" for m in MALFORMED])
def test_malformed_row_names_file_line_and_field(fmt, bad, field, tmp_path):
    good = {
        "humanevalplus": HEPLUS,
        "mbppplus": MBPPPLUS,
        "livecodebench": LCB,
        "bigcodebench": BCB,
        "apps": APPS,
        "taco": TACO,
        "codecontests": CODECONTESTS,
        "math500": MATH500,
        "gsm8k": GSM8K,
        "math": MATH,
    }[fmt]
    path = write_rows(tmp_path / "rows.jsonl", rows(good)[0], bad)
    with pytest.raises(ProblemFormatError) as err:
        load_problems(f"{fmt}:{path}")
    assert f"{path}:2" in str(err.value)
    assert field in str(err.value)


# ----------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    "completion, expected, ok",
    [
        (r"The answer is \boxed{1/2}.", "0.5", True),
        (r"\boxed{\frac{1}{2}}", "0.5", True),
        ("<answer>42</answer>", "42", True),
        ("<think>6 * 7</think><answer>41</answer>", "42", False),
        (r"<answer>so \boxed{7}</answer>", "7", True),
        (r"first \boxed{3}, finally \boxed{4}", "4", True),
        (r"first \boxed{3}, finally \boxed{4}", "3", False),
        (r"\boxed{1,234}", "1234", True),  # GSM8K's '#### 1,234' loads as "1234"
        ("She makes 1,234 dollars.", "1234", True),  # no tag, no box: the whole text
        (r"\boxed{(3, \pi/2)}", r"\left( 3, \frac{\pi}{2} \right)", True),
        (r"\boxed{\text{Evelyn}}", r"\text{Evelyn}", True),
        (r"\boxed{5}", r"\frac{5}{6}", False),
        ("I do not know.", "5", False),
        ("", "5", False),
    ],
)
def test_check_answer(completion, expected, ok):
    assert check_answer(completion, expected) is ok


def test_answer_of():
    assert answer_of("<answer> 42 </answer>") == "42"
    assert answer_of(r"<answer>x = \boxed{\frac{1}{2}}</answer>") == r"\frac{1}{2}"
    assert answer_of(r"so \boxed{\frac{a}{\sqrt{b}}} done") == r"\frac{a}{\sqrt{b}}"  # nested braces
    assert answer_of("  just 7 ") == "just 7"
    assert answer_of("   ") is None


def test_gsm8k_reference_answer_checks_against_its_own_final_answer():
    for problem in load_problems(f"gsm8k:{GSM8K}"):
        final = problem.reference.rpartition("####")[2]
        assert check_answer(rf"\boxed{{{final.strip()}}}", problem.tests[0].expected)


def test_answer_check_off_the_main_thread_raises_instead_of_false():
    outcome: list = []

    def check() -> None:
        try:
            outcome.append(check_answer(r"\boxed{2}", "2"))
        except AnswerCheckError as e:
            outcome.append(e)

    worker = threading.Thread(target=check)
    worker.start()
    worker.join()
    assert isinstance(outcome[0], AnswerCheckError)


def test_answer_check_timeout_raises_instead_of_false(monkeypatch):
    import math_verify
    from math_verify.errors import TimeoutException

    def slow(*args, **kwargs):
        raise TimeoutException("Operation timed out!")

    monkeypatch.setattr(math_verify, "parse", slow)
    with pytest.raises(AnswerCheckError, match="took over"):
        check_answer(r"\boxed{2}", "2")
