"""Per-test verdicts after a test that ends the program's process.

By default the tests after a timeout (or a crash) are "not run" and carry its verdict: enough to
decide that not every test passes. `every_test=True` (pass rates: ORPS, `outcome_mode = pass_rate`)
runs them in a fresh process, so each test has its own verdict; the culprit keeps its own.
"""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

# f(2) never returns; f(3) ends the whole process without an answer; every other call is right.
PROGRAM = code(
    """
    import os

    def f(x):
        if x == 2:
            while True:
                pass
        if x == 3:
            os._exit(0)
        return x * 10
    """
)


def _problem() -> Problem:
    return problem(*(AssertTest(f"assert f({x}) == {10 * x}") for x in (1, 2, 4, 3, 5)))


def _verdicts(result: ExecResult) -> list[Verdict]:
    return [t.verdict for t in result.tests]


def test_by_default_the_tests_after_a_timeout_are_not_run():
    with Executor(workers=1) as executor:
        result = run(executor, _problem(), PROGRAM)
    assert _verdicts(result) == [Verdict.PASSED] + [Verdict.TIMEOUT] * 4, result
    assert all(t.message.startswith("not run") for t in result.tests[2:]), result
    assert result.pass_rate == 0.2


def test_every_test_gives_each_test_its_own_verdict():
    with Executor(workers=1, every_test=True) as executor:
        result = run(executor, _problem(), PROGRAM)
    expected = [Verdict.PASSED, Verdict.TIMEOUT, Verdict.PASSED, Verdict.RUNTIME_ERROR, Verdict.PASSED]
    assert _verdicts(result) == expected, result
    assert result.verdict is not Verdict.PASSED and result.pass_rate == 0.6
    assert not any(t.message.startswith("not run") for t in result.tests), result


def test_every_test_still_stops_at_a_broken_protocol():
    """A program that forges frames on the channel gets nothing more than before."""
    forging = code(
        """
        import os

        def f(x):
            os.write(3, b"\\x00\\x00\\x00\\x05hello")
            return x * 10
        """
    )
    with Executor(workers=1, every_test=True) as executor:
        result = run(executor, _problem(), forging)
    assert set(_verdicts(result)) == {Verdict.RUNTIME_ERROR}, result
