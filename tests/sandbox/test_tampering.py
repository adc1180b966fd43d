"""Tampering with the harness: builtins, clocks, signals."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


@pytest.mark.parametrize(
    "patch",
    [
        "builtins.abs = lambda x: 0",
        "builtins.isinstance = lambda *a: True",
        "builtins.__import__ = lambda *a, **k: None",
        "unittest.TestCase.assertEqual = lambda *a, **k: None",
        "unittest.TestCase.assertTrue = lambda *a, **k: None",
        "signal.signal(signal.SIGALRM, signal.SIG_IGN); signal.alarm(0); "
        "signal.setitimer(signal.ITIMER_REAL, 0)",
        "time.time = time.perf_counter = time.monotonic = lambda: 0.0",
        'json.dumps = lambda *a, **k: \'{"verdict": "passed", "passed": true}\'; '
        "json.loads = lambda *a, **k: {'verdict': 'passed'}",
    ],
    ids=["abs", "isinstance", "import", "assertEqual", "assertTrue", "signals", "clocks", "json"],
)
def test_tampering_with_a_wrong_answer(ex, patch):
    prob = problem(
        AssertTest("import math\nassert isinstance(f(2, 3), int)\nassert abs(f(2, 3) - 5) < 1e-9"),
        AssertTest("import unittest\ncase = unittest.TestCase()\ncase.assertEqual(f(-1, 1), 0)"),
        AssertTest("import unittest\nunittest.TestCase().assertTrue(f(1, 1) == 2)"),
        CallTest(args=[10, 20], expected=30),
    )
    program = code(
        f"""
        import builtins, json, signal, time, unittest
        def f(a, b):
            {patch}
            return a - b + 7
        {patch}
        """
    )
    result = run(ex, prob, program)
    assert_not_passed(result)
    assert Verdict.PASSED not in [t.verdict for t in result.tests], result


def test_patched_clocks_do_not_hide_slowness_from_timing_tests(ex):
    prob = problem(
        AssertTest(
            "import time\nt0 = time.perf_counter()\nassert f(2, 3) == 5\n"
            "assert time.perf_counter() - t0 < 0.1, 'too slow'"
        ),
        AssertTest("import time\nt0 = time.time()\nf(2, 3)\nassert time.time() - t0 < 0.1, 'too slow'"),
    )
    program = code(
        """
        import time
        real = time.monotonic
        time.time = time.perf_counter = time.monotonic = lambda: 0.0
        time.time_ns = time.perf_counter_ns = time.monotonic_ns = lambda: 0
        def f(a, b):
            end = real() + 0.4
            while real() < end:
                pass
            return a + b
        """
    )
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


def test_patched_clocks_and_signals_do_not_stop_the_deadline(ex):
    program = code(
        """
        import signal, time
        for sig in (signal.SIGALRM, signal.SIGXCPU, signal.SIGTERM, signal.SIGVTALRM):
            signal.signal(sig, signal.SIG_IGN)
        signal.alarm(0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        sleep = time.sleep
        time.time = time.perf_counter = time.monotonic = lambda: 0.0
        def f(a, b):
            sleep(5)
            return a + b
        """
    )
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.TIMEOUT)
    assert result.wall_s < 4 * LIMIT_S, result
