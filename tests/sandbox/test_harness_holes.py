"""Holes in the trusted test harness (module_tests.py, remote.py): a program that turns its own failure
into sandbox_error (masked in rewards), takes a worker down, or lets a handle claim what its object
cannot do. Each test asserts the safe outcome."""

from __future__ import annotations

import dataclasses

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

# ----------------------------------------------------------------------------- assert messages


def _str_program(body: str) -> str:
    return code(
        """
        import os, time
        class R:
            def __str__(self):
                BODY
        def f(a, b):
            return R()
        """
    ).replace("BODY", body)


@pytest.mark.parametrize(
    "body", ["raise ValueError('no')", "time.sleep(30)", "os._exit(0)"], ids=["raises", "sleeps", "exits"]
)
def test_assert_message_is_a_handle_whose_str_misbehaves(ex, body):
    """`assert r == 5, r`: the message is the program's object; its `str` is never asked."""
    prob = problem(AssertTest("r = f(2, 3)\nassert r == 5, r"), CallTest(args=[2, 3], expected=5))
    result = run(ex, prob, _str_program(body))
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)
    assert result.tests[0].message == "assertion failed: <sandboxed R>", result


def test_setup_failure_message_holds_a_handle(ex):
    """Setup raising with the program's object in its message: formatting it asks nothing of the program."""
    setup = "r = f(2, 3)\nif r != 5:\n    raise RuntimeError(r)\n"
    prob = dataclasses.replace(problem(AssertTest("assert f(2, 3) == 5")), setup=setup)
    result = run(ex, prob, _str_program("raise ValueError('no')"))
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert "RuntimeError: <sandboxed R>" in result.tests[0].message, result
