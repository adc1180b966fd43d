"""False measurements: CPU spent in threads and child processes, memory held in memfd and shared
memory. What a run uses must be counted, and held to the problem's limits."""

from __future__ import annotations

import dataclasses

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

BUSY_S = 0.3
ROOMY_S = 5.0  # a time limit that a loaded machine cannot turn into a timeout
SPIN = code(
    """
    import os, threading, time
    def spin(seconds):
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass
    def f(where):
        if where == "threads":
            workers = [threading.Thread(target=spin, args=({busy} / 2,)) for _ in range(2)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        else:  # a child process that burns CPU, reaped by us or left to the sandbox
            done, told = os.pipe()
            pid = os.fork()
            if pid == 0:
                spin({busy})
                os.write(told, b"x")
                os._exit(0)
            if where == "child":
                os.waitpid(pid, 0)
            else:
                os.read(done, 1)  # it has spun; it is never waited for
        return 1
    """,
    busy=BUSY_S,
)


@pytest.mark.parametrize("where", ["threads", "child", "orphan"])
def test_cpu_spent_outside_the_main_thread_is_counted(ex, where):
    prob = dataclasses.replace(problem(CallTest(args=[where], expected=1)), time_limit_s=ROOMY_S)
    result = run(ex, prob, SPIN)
    assert result.verdict is Verdict.PASSED, result
    cpu = result.tests[0].cpu_s
    assert cpu is not None and cpu >= BUSY_S * 0.75, f"{BUSY_S} s of CPU in {where} reported as {cpu}"


def test_cpu_of_a_scripts_orphan_is_counted(ex):
    script = code(
        """
        import os, time
        done, told = os.pipe()
        if os.fork() == 0:
            end = time.process_time() + {busy}
            while time.process_time() < end:
                pass
            os.write(told, b"x")
            os._exit(0)
        os.read(done, 1)  # it has spun; it is never waited for
        print(1)
        """,
        busy=BUSY_S,
    )
    prob = dataclasses.replace(
        problem(StdioTest(stdin="", stdout="1\n"), entry_point=None), time_limit_s=ROOMY_S
    )
    result = run(ex, prob, script)
    assert result.verdict is Verdict.PASSED, result
    cpu = result.tests[0].cpu_s
    assert cpu is not None and cpu >= BUSY_S * 0.75, f"{BUSY_S} s of CPU in an orphan reported as {cpu}"


HOLD = code(
    """
    import ctypes, mmap, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    held = []
    def f(kind, pieces):
        for _ in range(pieces):  # 15 MB at a time: under the file-size and address-space limits
            if kind == "memfd":
                fd = os.memfd_create("x")
                os.write(fd, b"x" * (15 << 20))
                held.append(fd)
            elif kind == "msg":  # queues of two 8 KB messages (the defaults' most)
                message = ctypes.create_string_buffer(b"\\x01" + b"\\0" * 7 + b"m" * 8192)
                for _ in range((15 << 20) // (16 << 10)):
                    queue = libc.msgget(0, 0o1600)
                    for _ in range(2):
                        libc.msgsnd(queue, message, 8192, 0o4000)
            else:
                ident = libc.shmget(0, 15 << 20, 0o1600)
                address = libc.shmat(ident, None, 0)
                ctypes.memset(address, 1, 15 << 20)
                libc.shmdt(ctypes.c_void_p(address))
        return "held"
    """
)


@pytest.mark.parametrize("kind", ["memfd", "shm"])
def test_memory_held_outside_the_address_space_is_counted(ex, kind):
    result = run(ex, problem(CallTest(args=[kind, 6], expected="held"), memory_limit_mb=512), HOLD)
    assert result.verdict is Verdict.PASSED, result
    peak = result.tests[0].peak_mb
    assert peak is not None and peak >= 80, f"90 MB in {kind} reported as a peak of {peak} MB"


@pytest.mark.parametrize("kind", ["memfd", "shm"])
def test_memory_held_outside_the_address_space_is_limited(ex, kind):
    result = run(ex, problem(CallTest(args=[kind, 20], expected="held"), memory_limit_mb=128), HOLD)
    assert_not_passed(result, Verdict.MEMORY_EXCEEDED)
    assert_healthy(ex)


@pytest.fixture(scope="module")
def one_worker():
    with Executor(workers=1) as executor:
        yield executor


@pytest.mark.parametrize("kind", ["shm", "msg"])
def test_the_next_run_does_not_start_with_the_last_ones_ipc_memory(one_worker, kind):
    held = run(one_worker, problem(CallTest(args=[kind, 6], expected="held"), memory_limit_mb=512), HOLD)
    assert held.verdict is Verdict.PASSED, held
    trivial = run(one_worker, problem(CallTest(args=[], expected=1)), "def f():\n    return 1\n")
    assert trivial.verdict is Verdict.PASSED, trivial
    peak = trivial.tests[0].peak_mb
    assert peak is not None and peak < 40, f"a trivial run after 90 MB in {kind} peaked at {peak} MB"


def test_without_cgroups_a_scripts_orphan_still_counts():
    with Executor(workers=1, disable=("cgroup",)) as executor:
        assert executor.layers.active["cgroup"] is False
        test_cpu_of_a_scripts_orphan_is_counted(executor)


def test_a_built_in_type_as_the_entry_point_runs_and_is_measured_in_the_sandbox(ex):
    """`f = list` must not travel as the trusted side's own `list`: its calls would run (and be timed)
    outside the sandbox, so a search ranking by CPU time would favour it."""
    prob = problem(CallTest(args=(tuple(range(200_000)),), expected=list(range(200_000))), entry_point="f")
    as_type = run(ex, prob, "f = list\n")
    as_function = run(ex, prob, "def f(t):\n    return list(t)\n")
    assert as_type.verdict is Verdict.PASSED and as_function.verdict is Verdict.PASSED, (as_type, as_function)
    # both convert 200,000 items in the sandbox: the same order of CPU time, not 10,000 times less
    assert as_type.tests[0].cpu_s > as_function.tests[0].cpu_s / 20, (as_type, as_function)
