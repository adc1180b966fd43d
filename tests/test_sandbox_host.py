"""What a check run leaves on the host and needs from it: nothing lands in the caller's working
directory, and a benchmark library that is not installed is named as such, never blamed on the program."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import SHARED_DATA, needs_shared_data
from pgrpo.sandbox.runner import PROGRAM_LIBRARIES, blame_missing_library
from pgrpo.types import TestResult as OneTest  # a name pytest would try to collect
from pgrpo.types import Verdict

# A program and its tests that write files by relative paths, and hand them to each other.
WRITERS = [
    {
        "id": "host/module",
        "prompt": "",
        "entry_point": "f",
        "tests": [
            {"type": "assert", "code": "open('from_test.txt', 'w').write('t')\nassert f() == 't'"},
            {"type": "assert", "code": "assert open('from_program.txt').read() == 'p'"},
        ],
        "reference": (
            "open('at_import.txt', 'w').write('i')\n"
            "def f():\n"
            "    open('from_program.txt', 'w').write('p')\n"
            "    return open('from_test.txt').read()\n"
        ),
    },
    {
        "id": "host/stdio",
        "prompt": "",
        "tests": [{"type": "stdio", "stdin": "", "stdout": "ok\n"}],
        "reference": "open('stdio.txt', 'w').write('s')\nprint(open('stdio.txt').read() and 'ok')\n",
    },
]
LBPP_WRITERS = ("lbpp/92", "lbpp/99", "lbpp/154")  # their tests write data1.csv…, test1.csv, test1.tsv


def _check_references_from(cwd: Path, problems: Path, out: Path) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "pgrpo.cli", "check", "--problems", str(problems), "--references"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_check_run_writes_nothing_into_the_working_directory(tmp_path):
    cwd, files = tmp_path / "cwd", tmp_path / "files"
    cwd.mkdir()
    files.mkdir()
    rows = list(WRITERS)
    if SHARED_DATA.is_dir():
        from pgrpo.problems import load_problems

        lbpp = load_problems(f"lbpp:{SHARED_DATA / 'lbpp' / 'test.jsonl'}")
        rows += [p.to_dict() for p in lbpp if p.id in LBPP_WRITERS]
    problems = files / "problems.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = _check_references_from(cwd, problems, files / "results.jsonl")
    assert sorted(p.name for p in cwd.iterdir()) == []
    # and the writes did happen: the tests read back what the program wrote, and the reverse
    assert [(r["id"], r["verdict"]) for r in results] == [(r["id"], "passed") for r in rows]


@needs_shared_data
def test_lbpp_problems_that_write_files_are_still_present():
    """The cwd test above is only as strong as its LBPP writers: they must exist in the data."""
    text = (SHARED_DATA / "lbpp" / "test.jsonl").read_text()
    ids = {json.loads(line)["task_id"] for line in text.splitlines()}
    assert set(LBPP_WRITERS) <= ids


def test_programs_extra_names_the_libraries_the_sandbox_knows():
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower() for req in extras["programs"]}
    assert names == set(PROGRAM_LIBRARIES)


@pytest.mark.parametrize(
    "result, stderr",
    [
        # module mode: the program failed to load
        (OneTest(Verdict.RUNTIME_ERROR, message="ModuleNotFoundError: No module named 'pandas'"), ""),
        # stdio: the traceback is on stderr
        (
            OneTest(Verdict.RUNTIME_ERROR, message="exit status 1"),
            "Traceback (most recent call last):\nModuleNotFoundError: No module named 'pandas.core'\n",
        ),
        # the problem's own setup (LBPP's `import pytest`)
        (
            OneTest(
                Verdict.SANDBOX_ERROR,
                message="the problem's setup code failed: ModuleNotFoundError: No module named 'pytest'",
            ),
            "",
        ),
    ],
)
def test_a_missing_benchmark_library_is_a_sandbox_error_that_says_what_to_install(result, stderr):
    blamed = blame_missing_library(result, stderr, installed=lambda name: False)
    assert blamed.verdict is Verdict.SANDBOX_ERROR
    assert "not installed" in blamed.message and "pgrpo[programs]" in blamed.message
    # where the library is installed, the program's own failure stands as it was
    assert blame_missing_library(result, stderr, installed=lambda name: True) == result


def test_a_library_outside_the_benchmark_set_is_the_programs_own_mistake():
    result = OneTest(Verdict.RUNTIME_ERROR, message="ModuleNotFoundError: No module named 'requests'")
    assert blame_missing_library(result, installed=lambda name: False) == result
    timeout = OneTest(Verdict.TIMEOUT, message="No module named 'pandas'")
    assert blame_missing_library(timeout, installed=lambda name: False) == timeout


def test_with_a_worker_per_cpu_each_worker_and_its_programs_stay_on_one_cpu():
    import os

    from pgrpo.sandbox import Executor
    from pgrpo.types import AssertTest, Problem

    cpus = sorted(os.sched_getaffinity(0))
    problem = Problem(
        id="host/cpus",
        prompt="",
        entry_point="cpus",
        tests=[AssertTest(f"assert cpus() in {[[c] for c in cpus]!r}")],
    )
    program = "import os\ndef cpus():\n    return sorted(os.sched_getaffinity(0))\n"
    with Executor(workers=len(cpus)) as ex:
        assert [sorted(os.sched_getaffinity(w.proc.pid)) for w in ex.workers] == [[c] for c in cpus]
        assert all(r.passed for r in ex.map([(problem, program)] * 4))
    with Executor(workers=1) as ex:  # fewer workers than CPUs: free to move
        if len(cpus) > 1:
            assert sorted(os.sched_getaffinity(ex.workers[0].proc.pid)) == cpus
