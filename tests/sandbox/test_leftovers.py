"""Leftovers on the host: files a program writes piling up in the tests' directory, descriptors
leaked when a fork server dies, directories left in /tmp when a worker is killed."""

from __future__ import annotations

import glob

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

from pgrpo.sandbox.files import MAX_TOTAL_BYTES

FILE_MB = 15  # under the program's 16 MB file-size limit
WRITE_FILES = code(
    """
    import os
    def f(i, keep):
        if not keep and i:
            os.unlink("blob%d" % (i - 1))
        with open("blob%d" % i, "wb") as fh:
            fh.write(b"x" * ({mb} << 20))
        return i
    """,
    mb=FILE_MB,
)
# Test code runs in the tests' directory on the host: it sees what the copies cost there.
HOST_BYTES = "sum(os.stat(n).st_size for n in os.listdir('.'))"


def piling_problem(calls: int, keep: bool, bound: int) -> Problem:
    tests = [AssertTest(f"assert f({i}, {keep}) == {i}") for i in range(calls)]
    tests.append(AssertTest(f"import os\nassert {HOST_BYTES} <= {bound}, {HOST_BYTES}"))
    return problem(*tests, memory_limit_mb=1024)  # files in the sandbox count as its memory


def test_files_the_program_deleted_leave_the_host_too(ex):
    result = run(ex, piling_problem(12, keep=False, bound=FILE_MB << 20), WRITE_FILES)
    assert result.verdict is Verdict.PASSED, f"the tests' directory kept the deleted files: {result}"


def test_files_the_program_keeps_are_bounded_on_the_host(ex):
    result = run(ex, piling_problem(16, keep=True, bound=MAX_TOTAL_BYTES), WRITE_FILES)
    assert result.tests[-1].verdict is Verdict.PASSED, f"the tests' directory grew without bound: {result}"


CRASH_FORK_SERVERS = textwrap.dedent(
    """
    import os, signal, socket, time
    from pgrpo.sandbox.forkserver import ForkServer, SandboxFault
    job = {"mode": "module", "program": b"import time\\ntime.sleep(30)\\n", "filename": "<m>",
           "module_name": "m", "cpu_s": 30, "wall_s": 30, "memory_mb": 256, "exports": []}
    counts = []
    for _ in range(4):
        server = ForkServer()
        mine, theirs = socket.socketpair()
        server.start(job, {"channel": theirs.fileno()})
        theirs.close()
        deadline = time.monotonic() + 10
        while server.run_pid() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.run_pid() is not None
        os.kill(server.pid, signal.SIGKILL)  # the fork server crashes mid-run
        try:
            server.wait_exited()
        except SandboxFault:
            pass
        server.close()
        mine.close()
        counts.append(len(os.listdir("/proc/self/fd")))
    print(counts)
    """
)


def test_a_crashing_fork_server_leaks_no_descriptor():
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_FORK_SERVERS], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(set(counts)) == 1, f"descriptors after each crash: {counts}"


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            out += [int(x) for x in fh.read().split()]
    return out


def test_a_killed_worker_leaves_no_directory_in_tmp():
    with Executor(workers=1) as executor:
        assert run(executor, add_problem(), CORRECT_ADD).verdict is Verdict.PASSED
        worker = executor.workers[0].proc
        outer = _children(worker.pid)
        assert outer, "the worker has no fork server"
        roots = [p for pid in outer for p in glob.glob(f"/tmp/pgrpo-root-{pid}-*")]
        assert roots, "no root directory to watch: the test would prove nothing"
        worker.kill()
        worker.wait()
        deadline = time.monotonic() + 5
        while any(os.path.exists(f"/proc/{pid}") for pid in outer) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in roots if os.path.exists(p)]
        assert left == [], f"left in /tmp: {left}"
    left = glob.glob(f"/tmp/pgrpo-tests-{worker.pid}-*")
    assert left == [], f"left in /tmp after the executor closed: {left}"
