"""Natural (LCB-RB-style) pairs: sampled traces are run for real, a passing trace's reasoning is paired
with a failing one's; the completions come from a scripted stand-in for the model."""

from __future__ import annotations

import json

import pytest

from pgrpo.cli import main
from pgrpo.prompting import SYSTEM_PROMPT, task_text
from pgrpo.rm.natural import NaturalConfig, build_pairs_natural
from pgrpo.rm.pairs import read_pairs
from pgrpo.types import AssertTest, CallTest, Problem, StdioTest

ADD = Problem(
    id="t/add",
    prompt="Write add(a, b) that returns the sum of a and b.\n",
    tests=(CallTest(args=[1, 2], expected=3), CallTest(args=[-1, 1], expected=0)),
    entry_point="add",
    time_limit_s=0.5,  # one sample loops forever
)
EVENS = Problem(
    id="t/evens",
    prompt="Write count_evens(xs) that counts the even numbers in the list xs.",
    tests=(AssertTest("assert count_evens([1, 2, 4]) == 2"), AssertTest("assert count_evens([]) == 0")),
    entry_point="count_evens",
)
DOUBLE = Problem(
    id="t/double", prompt="Read an integer n and print 2 * n.", tests=(StdioTest(stdin="4\n", stdout="8\n"),)
)


def completion(thinking: str, code: str) -> str:
    return f"<think>{thinking}</think>\n<answer>\n```python\n{code}\n```\n</answer>"


ADD_SAMPLES = [
    completion(
        "Adding needs +, and + on two ints gives their sum, so return a + b.",
        "def add(a, b):\n    return a + b",
    ),
    completion("Subtract: a - b is the sum.", "def add(a, b):\n    return a - b"),  # fails
    completion(
        "The sum of a and b is a + b; for example add(1, 2) is 3 and add(-1, 1) is 0, as the tests expect.",
        "def add(a, b):\n    return a + b",
    ),
    completion(
        "Loop forever until the sum appears by itself, then it must be right.",
        "def add(a, b):\n    while True:\n        pass",
    ),
    "def add(a, b): return a + b",  # no think block: can be no side
    completion("Return it.", "raise ValueError('no')"),  # fails: the entry point is never defined
]
EVENS_SAMPLES = [
    completion("Count x with x % 2 == 0.", "def count_evens(xs):\n    return sum(x % 2 == 0 for x in xs)")
] * 2
DOUBLE_SAMPLES = [
    completion("Print n.", "print(int(input()))"),
    "<think>Just print 8.</think><answer></answer>",
]


class ScriptedModel:
    """Answers each problem with its fixed list of completions (n of them), and records the prompts."""

    name = "scripted-model"

    def __init__(self, by_prompt: dict[str, list[str]]):
        self.by_prompt = by_prompt
        self.prompts: list = []
        self.params = None

    def generate(self, prompts, params):
        self.prompts += prompts
        self.params = params
        out = []
        for prompt in prompts:
            texts = self.by_prompt[prompt[-1]["content"]]
            out.append([texts[i % len(texts)] for i in range(params.n)])
        return out


def _model() -> ScriptedModel:
    return ScriptedModel(
        {task_text(ADD): ADD_SAMPLES, task_text(EVENS): EVENS_SAMPLES, task_text(DOUBLE): DOUBLE_SAMPLES}
    )


def test_natural_pairs_match_passing_and_failing_traces_of_the_same_problem(executor):
    model = _model()
    config = NaturalConfig(samples=6, pairs_per_problem=2, batch_size=2)
    pairs, report = build_pairs_natural(
        [ADD, EVENS, DOUBLE], model, config, executor=executor, progress=False
    )

    # the training prompt, sampled with the configured settings
    assert model.prompts[0] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": task_text(ADD)},
    ]
    assert model.params.n == 6 and model.params.temperature == 0.8
    # ADD: passing samples 0 and 2; failing 1, 3 (timeout) and 5; sample 4 has no reasoning
    assert [p.id for p in pairs] == ["t/add/outcome/passed>failed/0", "t/add/outcome/passed>failed/1"]
    first, second = pairs
    assert (
        first.problem == ADD.prompt.strip() and first.kind == "passed>failed" and first.dimension == "outcome"
    )
    # closest lengths first: sample 0 (67 chars) with sample 3 (68), then sample 2 (97) with the closest
    # failing sample still unused, sample 1 (27)
    assert (first.meta["chosen_sample"], first.meta["rejected_sample"]) == (0, 3)
    assert (second.meta["chosen_sample"], second.meta["rejected_sample"]) == (2, 1)
    assert first.chosen.startswith("Adding needs +") and "```" not in first.chosen + first.rejected
    assert first.meta["chosen_verdict"] == "passed" and first.meta["rejected_verdict"] == "timeout"
    assert second.meta["rejected_verdict"] == "failed"
    assert first.meta["chosen_chars"] == len(first.chosen) and first.meta["rejected_words"] == len(
        first.rejected.split()
    )
    assert second.meta["rejected_code"] == "def add(a, b):\n    return a - b\n"

    assert report.problems == 3 and report.samples == 18 and report.pairs == 2
    assert report.no_failing == ["t/evens"] and report.no_passing == ["t/double"]
    assert report.unusable == {"no_thinking": 1, "no_code": 3}
    assert report.verdicts["passed"] == 3 + 6 and report.verdicts["timeout"] == 1  # ADD's sample 4 passed
    text = report.format()
    assert "no passing sample: 1; with no failing sample: 1" in text and "2 pairs (passed>failed)" in text


def test_natural_config_rejects_what_cannot_give_pairs():
    with pytest.raises(ValueError, match="samples must be >= 2"):
        NaturalConfig(samples=1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        NaturalConfig(temperature=0)


def test_build_bench_natural_is_the_default_and_writes_a_report(tmp_path, monkeypatch, capsys):
    problems = tmp_path / "problems.jsonl"
    problems.write_text(
        json.dumps(
            {
                "id": "t/add",
                "prompt": ADD.prompt,
                "entry_point": "add",
                "time_limit_s": 0.5,
                "tests": [
                    {"type": "call", "args": [1, 2], "expected": 3},
                    {"type": "call", "args": [-1, 1], "expected": 0},
                ],
            }
        )
        + "\n"
    )
    monkeypatch.setattr("pgrpo.llm.load_generator", lambda model, backend, **options: _model())
    out = tmp_path / "bench.jsonl"
    args = ["rm", "build-bench", "--problems", str(problems), "--model", "m"]
    assert main([*args, "--samples", "6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 problems -> 1 natural pairs" in printed and "with no failing sample: 0" in printed
    (pair,) = read_pairs(out, dimensions=None)
    assert pair.kind == "passed>failed" and pair.meta["chosen_verdict"] == "passed"
    summary = json.loads((tmp_path / "bench.report.json").read_text())
    assert summary["pairs"] == 1 and summary["problems_without_passing"] == 0

    with pytest.raises(SystemExit) as refused:  # refused as the flags are parsed
        main([*args, "--samples", "1", "--out", str(out)])
    assert refused.value.code == 2
    assert "--samples: expected an integer >= 2, got '1'" in capsys.readouterr().err
