"""`pgrpo check` on bad input and program-controlled text: one clear error naming the file, line and
field (exit 2, no traceback), and results that no program output can stop or truncate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgrpo import types
from pgrpo.cli import main

GOOD = {
    "id": "demo/add",
    "prompt": "Write add(a, b).",
    "entry_point": "add",
    "tests": [
        {"type": "assert", "code": "assert add(1, 2) == 3"},
        {"type": "call", "args": [2, 5], "expected": 7},
    ],
}
CORRECT = "def add(a, b):\n    return a + b\n"


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def check(capsys, *args: str) -> tuple[int, str]:
    """Runs `pgrpo check` in this process; an exception escaping it fails the test (a traceback)."""
    try:
        rc = main(["check", *args])
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return rc, err


def problem_with(**fields: object) -> dict:
    return {**GOOD, "id": "demo/bad", **fields}


BAD_PROBLEMS = {
    "time-nan": (problem_with(time_limit_s=float("nan")), "time_limit_s"),
    "time-inf": (problem_with(time_limit_s=float("inf")), "time_limit_s"),
    "time-1e308": (problem_with(time_limit_s=1e308), "time_limit_s"),
    "time-bool": (problem_with(time_limit_s=True), "time_limit_s"),
    "memory-bool": (problem_with(memory_limit_mb=True), "memory_limit_mb"),
    "kwargs-list": (
        problem_with(tests=[{"type": "call", "args": [1], "kwargs": [2], "expected": 3}]),
        "kwargs",
    ),
    "entry-empty": (problem_with(entry_point=""), "entry_point"),
    "entry-not-identifier": (problem_with(entry_point="add two"), "entry_point"),
    "entry-keyword": (problem_with(entry_point="class"), "entry_point"),
    "assert-does-not-parse": (
        problem_with(tests=[{"type": "assert", "code": "assert add(1, 2) =="}]),
        "code",
    ),
    "assert-too-deep-to-compile": (
        problem_with(tests=[{"type": "assert", "code": "assert " + "-" * 100_000 + "1"}]),
        "code",
    ),
    "setup-does-not-parse": (problem_with(setup="def helper(:\n    pass"), "setup"),
    "args-nested-too-deeply": (
        problem_with(tests=[{"type": "call", "args": json.loads("[" * 150 + "]" * 150), "expected": 1}]),
        "args",
    ),
}


@pytest.mark.parametrize("bad, field", BAD_PROBLEMS.values(), ids=BAD_PROBLEMS.keys())
def test_a_bad_problem_field_is_one_error_naming_file_line_and_field(capsys, tmp_path, bad, field):
    problems = write_lines(tmp_path / "problems.jsonl", [json.dumps(GOOD), json.dumps(bad)])
    samples = write_lines(tmp_path / "samples.jsonl", [json.dumps({"id": "demo/add", "solution": CORRECT})])
    rc, err = check(capsys, "--problems", str(problems), "--samples", str(samples))
    assert rc == 2, err
    assert f"{problems}:2" in err and f"'{field}'" in err, err
    assert len(err.strip().splitlines()) == 1, err


BAD_LINES = {
    "nested-too-deeply": "[" * 100_000 + "]" * 100_000,
    "5000-digit-int": '{"id": "demo/add", "solution": "x", "n": ' + "9" * 5000 + "}",
    "invalid-utf8": b'{"id": "demo/add", "solution": "\xff"}',
}


@pytest.mark.parametrize("which", ["problems", "samples"])
@pytest.mark.parametrize("line", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_an_unreadable_line_is_one_error_naming_file_and_line(capsys, tmp_path, which, line):
    problems = write_lines(tmp_path / "problems.jsonl", [json.dumps(GOOD)])
    samples = write_lines(tmp_path / "samples.jsonl", [json.dumps({"id": "demo/add", "solution": CORRECT})])
    target = problems if which == "problems" else samples
    write_lines(target, [target.read_text().strip(), line])
    rc, err = check(capsys, "--problems", str(problems), "--samples", str(samples))
    assert rc == 2, err
    assert f"{target}:2" in err, err


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e308"])
def test_a_bad_timeout_flag_is_refused(capsys, tmp_path, value):
    rc, err = check(capsys, "--problems", str(tmp_path / "none.jsonl"), "--references", "--timeout", value)
    assert rc == 2, err
    assert "--timeout" in err and "(0, 3600]" in err and len(err.strip().splitlines()) == 1, err


def test_a_lone_surrogate_in_a_message_loses_no_row(tmp_path):
    import subprocess
    import sys

    problems = write_lines(tmp_path / "problems.jsonl", [json.dumps(GOOD)])
    raising = "def add(a, b):\n    raise ValueError('\\ud800' + chr(0xDFFF))\n"
    rows = [
        {"id": "demo/add", "solution": raising},
        {"id": "demo/add", "solution": CORRECT, "note": "\ud83d"},
    ]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))  # ASCII: the note is an escape
    out = tmp_path / "results.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "pgrpo.cli", "check", "--problems", str(problems), "--samples", str(samples)]
        + ["--out", str(out), "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_bytes().decode("utf-8")  # strict: the file is valid UTF-8
    results = [json.loads(line) for line in text.splitlines()]
    assert [r["verdict"] for r in results] == ["runtime_error", "passed"], results
    assert "ValueError" in results[0]["message"], results[0]
    assert not (tmp_path / "results.jsonl.partial").exists()


class _StoppingExecutor:
    """Stands in for the executor: one result, then the user presses Ctrl-C."""

    def __init__(self, **kwargs: object):
        self.layers = type("Layers", (), {"active": {}})()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def map(self, jobs, progress=None):
        yield types.ExecResult.from_tests([types.TestResult(types.Verdict.PASSED)])
        raise KeyboardInterrupt


def test_an_interrupted_run_leaves_the_previous_results_whole(tmp_path, monkeypatch):
    import pgrpo.sandbox
    from pgrpo.check import read_samples, run_check
    from pgrpo.problems import load_problems

    problems = write_lines(tmp_path / "problems.jsonl", [json.dumps(GOOD)])
    samples = write_lines(
        tmp_path / "samples.jsonl", [json.dumps({"id": "demo/add", "solution": CORRECT})] * 3
    )
    out = tmp_path / "results.jsonl"
    out.write_text('{"previous": "run"}\n')
    monkeypatch.setattr(pgrpo.sandbox, "Executor", _StoppingExecutor)
    pairs = read_samples(str(samples), {p.id: p for p in load_problems(str(problems))})
    with pytest.raises(KeyboardInterrupt):
        run_check(pairs, str(out), progress=False)
    assert out.read_text() == '{"previous": "run"}\n'  # never truncated under its final name
    partial = (tmp_path / "results.jsonl.partial").read_text().splitlines()
    assert len(partial) == 1 and json.loads(partial[0])["verdict"] == "passed"


def test_ctrl_c_says_where_the_judged_rows_are(capsys, tmp_path, monkeypatch):
    import pgrpo.sandbox

    problems = write_lines(tmp_path / "problems.jsonl", [json.dumps(GOOD)])
    samples = write_lines(
        tmp_path / "samples.jsonl", [json.dumps({"id": "demo/add", "solution": CORRECT})] * 3
    )
    out = tmp_path / "results.jsonl"
    monkeypatch.setattr(pgrpo.sandbox, "Executor", _StoppingExecutor)
    rc, err = check(capsys, "--problems", str(problems), "--samples", str(samples), "--out", str(out))
    assert rc == 130 and f"{out}.partial" in err, err
    assert not out.exists()
