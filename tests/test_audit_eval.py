"""`pgrpo eval` on math answers checks them with the training reward's own function: math-verify that
cannot decide in its time limit is an infrastructure failure (counted, verdict sandbox_error), not a
traceback; a completion in the answer tags the model was trained with is read with those tags. An
evalplus release without the plus tests' outputs is reported as base tests only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("math_verify")

from pgrpo.cli import main  # noqa: E402


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def math_set(tmp_path):
    problems = [
        {"id": "m/1", "prompt": "What is 1 + 1?", "tests": [{"type": "answer", "expected": "2"}]},
        {"id": "m/2", "prompt": "What is 2 + 2?", "tests": [{"type": "answer", "expected": "4"}]},
    ]
    return _write(tmp_path / "math.jsonl", problems)


def test_a_math_verify_timeout_is_counted_not_a_traceback(tmp_path, capsys, monkeypatch, math_set):
    import pgrpo.answers as answers

    real_parse = answers._parse

    def slow_on_four(text, timeout_s):
        if "4" in text:
            raise answers.AnswerCheckError(f"math-verify took over {timeout_s}s to parse {text!r}")
        return real_parse(text, timeout_s)

    monkeypatch.setattr(answers, "_parse", slow_on_four)
    samples = _write(
        tmp_path / "s.jsonl",
        [
            {"id": "m/1", "completion": "<think>one and one</think><answer>2</answer>"},
            {"id": "m/2", "completion": "<think>two and two</think><answer>4</answer>"},
        ],
    )
    out = tmp_path / "run"
    code = main(["eval", "--dataset", math_set, "--samples", samples, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    report = json.loads((out / "report.json").read_text())
    assert report["infrastructure_failures"] == 1
    assert report["verdicts"]["passed"] == 1 and report["verdicts"]["sandbox_error"] == 1
    # counted as a failure in the headline figure, and shown without it beside (as rewards mask it)
    assert report["pass_at_k"]["1"] == 0.5
    assert report["without_infrastructure_failures"] == {"pass_at_k": {"1": 1.0}, "problems": {"1": 1}}
    assert "INFRASTRUCTURE FAILURES: 1 samples" in (out / "report.md").read_text()
    assert "pass@1 1.0000 over 1 problems" in (out / "report.md").read_text()
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert rows[1]["verdict"] == "sandbox_error" and "math-verify" in rows[1]["message"]


def test_math_answers_are_read_with_the_trained_answer_tag(tmp_path, math_set):
    """A model trained with answer_tag "final" (pgrpo_prompt.json beside it): eval reads its answer as the
    reward did, from <final>, not from the last number of the whole text."""
    model = tmp_path / "model"
    model.mkdir()
    record = {"system_prompt": "s", "chat": False, "think_tag": "think", "answer_tag": "final"}
    (model / "pgrpo_prompt.json").write_text(json.dumps(record))
    samples = _write(
        tmp_path / "s.jsonl",
        [
            {"id": "m/1", "completion": "<think>1 + 1 is 2, not 3</think><final>2</final> (checked 3 times)"},
            {"id": "m/2", "completion": "<think>2 + 2</think><final>4</final>"},
        ],
    )
    from pgrpo.eval.run import EvalConfig, run_eval

    cfg = EvalConfig(dataset=math_set, samples=samples, out=str(tmp_path / "run"), model=str(model))
    report = run_eval(cfg)
    assert report["pass_at_k"]["1"] == 1.0


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    "spec, base_only",
    [
        (f"humanevalplus:{FIXTURES / 'humanevalplus_small.jsonl'}", True),
        (f"humanevalplus:{FIXTURES / 'humanevalplus_originfmt_small.jsonl'}", False),
    ],
)
def test_an_evalplus_release_without_plus_outputs_is_reported_as_base_tests_only(tmp_path, spec, base_only):
    """evalplus's own release carries the plus inputs without their expected outputs, so only the base
    test runs: the pass@k is HumanEval's, not HumanEval+'s, and the report says so up front."""
    from pgrpo.eval.run import EvalConfig, run_eval
    from pgrpo.problems import load_problems

    rows = [{"id": p.id, "solution": p.reference} for p in load_problems(spec)]
    samples = _write(tmp_path / "s.jsonl", rows)
    out = tmp_path / "run"
    report = run_eval(EvalConfig(dataset=spec, samples=samples, out=str(out)))
    assert report["pass_at_k"]["1"] == 1.0
    text = (out / "report.md").read_text()
    if base_only:
        assert report["base_tests_only"] == {"problems": 2, "of": 2}
        assert "BASE TESTS ONLY" in text
    else:
        assert "base_tests_only" not in report and "BASE TESTS ONLY" not in text
