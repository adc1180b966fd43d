"""Shared helpers for the sandbox attack tests (tests/sandbox/test_*.py, one file per family).

Every attack asserts that it did not pass (and the exact verdict where the cause is specific); escapes
also assert that their effect on the host did not happen. Positive controls (test_controls.py) prove the
harness passes correct programs, so a harness that failed everything would fail the suite too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from pgrpo.sandbox import Executor
from pgrpo.types import AssertTest, CallTest, ExecResult, Problem, StdioTest, Verdict

LIMIT_S = 1.0
MEMORY_MB = 256
MAX_WALL_S = 15.0  # no single run may take longer, whatever the program does
HARNESS_ANSWER_S = 8.0  # a fresh executor must answer a 1 s problem within this (start-up included)
DEGRADED = ("pid_namespace", "net_namespace", "filesystem", "unprivileged_uid")


@pytest.fixture(scope="module")
def ex():
    with Executor(workers=2) as executor:
        yield executor


def code(text: str, **values: object) -> str:
    """A program from an indented literal; `{name}` placeholders are filled with `repr(value)`."""
    text = textwrap.dedent(text)
    for name, value in values.items():
        text = text.replace("{" + name + "}", repr(value))
    return text


def problem(*tests, entry_point: str | None = "f", memory_limit_mb: int = MEMORY_MB) -> Problem:
    return Problem(
        id=f"attack-{uuid.uuid4().hex}",
        prompt="",
        tests=tuple(tests),
        entry_point=entry_point,
        time_limit_s=LIMIT_S,
        memory_limit_mb=memory_limit_mb,
    )


def add_problem() -> Problem:
    """f(a, b) = a + b, checked by assert tests and call tests."""
    return problem(
        AssertTest("assert f(2, 3) == 5"),
        AssertTest("assert f(-1, 1) == 0"),
        CallTest(args=[2, 3], expected=5),
        CallTest(args=[10, 20], expected=30),
    )


def call_problem() -> Problem:
    return problem(CallTest(args=[2, 3], expected=5), CallTest(args=[10, 20], expected=30))


def assert_problem() -> Problem:
    return problem(AssertTest("assert f(2, 3) == 5"), AssertTest("assert f(-1, 1) == 0"))


def stdio_problem() -> Problem:
    """Each stdin line holds two integers; print their sum, one per line."""
    return problem(
        StdioTest(stdin="1 2\n3 4\n", stdout="3\n7\n"),
        StdioTest(stdin="10 20\n", stdout="30\n"),
        entry_point=None,
    )


CORRECT_ADD = "def f(a, b):\n    return a + b\n"
WRONG_ADD = "def f(a, b):\n    return a - b + 1\n"
CORRECT_STDIO = code(
    """
    import sys
    for line in sys.stdin:
        a, b = map(int, line.split())
        print(a + b)
    """
)


def worker_pids(executor: Executor) -> list[int]:
    return [w.proc.pid for w in executor.workers]


def sandbox_uids(executor: Executor) -> set[int]:
    uids = {w.layers.uid for w in executor.workers} | {executor.layers.uid}
    return {u for u in uids if u is not None}


def run(executor: Executor, prob: Problem, program: str) -> ExecResult:
    """One run, with the checks every attack shares: bounded wall time, no infrastructure failure,
    no worker died (a dead worker is a harness crash, even when the retry hides it)."""
    before = worker_pids(executor)
    t0 = time.monotonic()
    result = executor.run(prob, program)
    wall = time.monotonic() - t0
    assert wall < MAX_WALL_S, f"the run took {wall:.1f} s: {result}"
    assert result.verdict is not Verdict.SANDBOX_ERROR, f"the harness failed: {result}"
    assert worker_pids(executor) == before, f"a worker died during the run: {result}"
    return result


def assert_not_passed(result: ExecResult, *verdicts: Verdict) -> None:
    """The attack passed no test; with `verdicts`, the sample's verdict is one of them."""
    assert not result.passed, f"the attack passed: {result}"
    assert not any(t.passed for t in result.tests), f"some test passed: {result}"
    if verdicts:
        assert result.verdict in verdicts, f"expected {[str(v) for v in verdicts]}: {result}"


def assert_all_tests(result: ExecResult, verdict: Verdict) -> None:
    assert result.tests, result
    assert [t.verdict for t in result.tests] == [verdict] * len(result.tests), result


def assert_healthy(executor: Executor) -> None:
    """The workers survived: trivial correct programs pass on every worker, in both modes."""
    jobs = [(add_problem(), CORRECT_ADD), (stdio_problem(), CORRECT_STDIO)] * len(executor.workers)
    before = worker_pids(executor)
    results = list(executor.map(jobs))
    assert [r.verdict for r in results] == [Verdict.PASSED] * len(jobs), results
    assert worker_pids(executor) == before


def processes_with_uid(uids: set[int]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) in uids:
                            found.append(int(entry))
                        break
        except (OSError, ValueError):
            continue
    return found


def processes_with_marker(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def run_in_fresh_executor(prob: Problem, program: str, timeout_s: float) -> dict | None:
    """Run one job on a fresh executor in a process group of its own; None if no answer in time.

    For attacks on the trusted side's own time: if the harness hangs, the whole group is killed
    instead of hanging this test file."""
    script = textwrap.dedent(
        """
        import json, sys
        from pgrpo.sandbox import Executor
        from pgrpo.types import Problem
        problem, program = json.loads(sys.stdin.read())
        with Executor(workers=1) as ex:
            result = ex.run(Problem.from_dict(problem), program)
        print(json.dumps(result.to_dict()))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(json.dumps([prob.to_dict(), program]), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


DAEMON = code(
    """
    import os, sys, time
    def f(a, b):
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                try:
                    for exe in (sys.executable, os.path.join(sys.base_prefix, "bin", "python3")):
                        if os.path.exists(exe):
                            os.execv(exe, [exe, "-c", {daemon}, {marker}])
                finally:
                    time.sleep(5)
                    os._exit(0)
            os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.2)  # the grandchild is running (re-parented) before the reply
        return a - b
    """
)


def daemon_problem(tag: str) -> Problem:
    """First a trusted-side probe (test code reads the host's /proc) that the daemon is alive
    during the run, which proves the checks after the run can fail; then a call test."""
    probe = code(
        """
        import os
        f(2, 3)
        def alive(tag):
            for pid in os.listdir("/proc"):
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as fh:
                        if tag.encode() in fh.read():
                            return True
                except OSError:
                    pass
            return False
        assert alive({tag}), "the daemon is not running"
        """,
        tag=tag,
    )
    return problem(AssertTest(probe), CallTest(args=[2, 3], expected=5))


def assert_daemon_result(result: ExecResult) -> None:
    verdicts = [t.verdict for t in result.tests]
    assert verdicts == [Verdict.PASSED, Verdict.FAILED], f"the daemon did not start, or f passed: {result}"
