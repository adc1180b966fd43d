"""Exhausting resources: CPU, memory, processes, output, threads."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


def test_fork_bomb(ex):
    program = code(
        """
        import os
        def f(a, b):
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        """
    )
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.TIMEOUT)
    assert processes_with_uid(sandbox_uids(ex)) == []
    assert_healthy(ex)


@pytest.mark.parametrize(
    "mode, body",
    [
        ("call", "x = bytearray(10**10)"),
        ("call", "x = []\nwhile True:\n    x.append(bytearray(10**6))"),
        ("import", "x = bytearray(10**10)"),
        ("stdio", "x = bytearray(10**10)"),
    ],
    ids=["bytearray-in-call", "growing-list-in-call", "bytearray-at-import", "bytearray-in-script"],
)
def test_memory_exhaustion(ex, mode, body):
    if mode == "call":
        program = "def f(a, b):\n" + textwrap.indent(body, "    ") + "\n    return a + b\n"
    else:
        program = body + "\n" + (CORRECT_ADD if mode == "import" else CORRECT_STDIO)
    prob = stdio_problem() if mode == "stdio" else add_problem()
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.MEMORY_EXCEEDED, Verdict.RUNTIME_ERROR)
    assert_healthy(ex)


BUSY_IGNORING_SIGNALS = code(
    """
    import signal
    for sig in (signal.SIGXCPU, signal.SIGTERM, signal.SIGALRM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    def f(a, b):
        while True:
            pass
    """
)


@pytest.mark.parametrize("mode", ["module", "stdio"])
def test_busy_loop_ignoring_signals(ex, mode):
    if mode == "module":
        prob, program = add_problem(), BUSY_IGNORING_SIGNALS
    else:
        prob, program = stdio_problem(), BUSY_IGNORING_SIGNALS + "f(1, 2)\n"
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.TIMEOUT)
    assert_healthy(ex)


@pytest.mark.parametrize("mode", ["module", "stdio"])
def test_sleep_100(ex, mode):
    if mode == "module":
        prob, program = add_problem(), "import time\ndef f(a, b):\n    time.sleep(100)\n"
    else:
        prob, program = stdio_problem(), "import time\ntime.sleep(100)\n"
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.TIMEOUT)
    assert_healthy(ex)


FLOOD = code(
    """
    import signal, sys
    chunk = "x" * (1 << 20) + "\\n"
    def flood(swallow):
        if swallow:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        for _ in range(100):
            try:
                sys.stdout.write(chunk)
                sys.stdout.flush()
            except OSError:
                if not swallow:
                    raise
    """
)


@pytest.mark.parametrize("swallow", [False, True], ids=["plain", "errors-swallowed"])
def test_stdout_flood_in_a_script(ex, swallow):
    program = FLOOD + f"flood({swallow})\nprint(3)\nprint(7)\n"
    result = run(ex, stdio_problem(), program)
    assert_not_passed(result, Verdict.OUTPUT_EXCEEDED)
    assert_healthy(ex)


def test_stdout_flood_in_a_call(ex):
    program = FLOOD + "def f(a, b):\n    flood(False)\n    return a + b\n"
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.OUTPUT_EXCEEDED, Verdict.RUNTIME_ERROR)
    assert_healthy(ex)


def test_a_thousand_threads(ex):
    program = code(
        """
        import threading, time
        def f(a, b):
            threads = [threading.Thread(target=time.sleep, args=(10,)) for _ in range(1000)]
            for t in threads:
                t.start()
            return a + b
        """
    )
    before = worker_pids(ex)
    jobs = [(add_problem(), program), (add_problem(), CORRECT_ADD), (stdio_problem(), CORRECT_STDIO)]
    t0 = time.monotonic()
    attack, *controls = list(ex.map(jobs))
    assert time.monotonic() - t0 < MAX_WALL_S
    assert_not_passed(attack)
    assert attack.verdict is not Verdict.SANDBOX_ERROR, attack
    assert [r.verdict for r in controls] == [Verdict.PASSED] * 2, controls
    assert worker_pids(ex) == before
    assert_healthy(ex)


def test_control_fresh_executor_answers_in_time():
    result = run_in_fresh_executor(add_problem(), CORRECT_ADD, HARNESS_ANSWER_S)
    assert result is not None and result["verdict"] == "passed", result


def test_value_that_keeps_trusted_test_code_busy():
    # `sum(f(3))` runs on the trusted side; a `range` travels by value, so a huge one makes the
    # test code itself loop for hours unless the harness bounds its own time.
    prob = problem(AssertTest("assert sum(f(3)) == 3"))
    program = "def f(n):\n    return range(10**15)\n"
    result = run_in_fresh_executor(prob, program, HARNESS_ANSWER_S)
    assert result is not None, f"the harness gave no answer within {HARNESS_ANSWER_S} s"
    assert result["verdict"] not in ("passed", "sandbox_error"), result


def test_reply_that_is_expensive_to_decode():
    # A forged reply of 100k namedtuples with distinct class names: each costs the trusted decoder
    # a class creation (~0.15 ms, ~5 KB); a 64 MB frame would hold 2.4 million of them.
    prob = problem(CallTest(args=[1], expected=1))
    program = code(
        """
        import json, os, struct, time
        def f(n):
            value = ["l"] + [["nt", "n%d" % i, ["a"], 0] for i in range(100000)]
            payload = json.dumps(["ok", 1, value, None]).encode()
            os.write(3, struct.pack(">I", len(payload)) + payload)
            time.sleep(100)
        """
    )
    result = run_in_fresh_executor(prob, program, HARNESS_ANSWER_S)
    assert result is not None, f"the harness gave no answer within {HARNESS_ANSWER_S} s"
    assert result["verdict"] not in ("passed", "sandbox_error"), result


def test_a_run_cannot_send_the_trusted_side_more_than_its_budget(ex):
    """16 MB answers to every request of a long test would fill the host's memory: output_exceeded
    past 256 MB for the whole run (each answer alone is within the frame limit)."""
    import dataclasses

    test = AssertTest("for _ in range(40):\n    assert len(f()) == 15_000_000")
    prob = dataclasses.replace(problem(test), time_limit_s=30.0)
    result = run(ex, prob, "def f():\n    return 'x' * 15_000_000\n")
    assert_not_passed(result, Verdict.OUTPUT_EXCEEDED)
    within = dataclasses.replace(
        problem(AssertTest("for _ in range(10):\n    assert len(f()) == 15_000_000")), time_limit_s=30.0
    )
    assert run(ex, within, "def f():\n    return 'x' * 15_000_000\n").verdict is Verdict.PASSED
