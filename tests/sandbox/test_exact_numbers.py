"""Numeric exactness: an integer the test expects is not matched by a float that is merely close.

Assert tests compare with the test's own `==` (as the MBPP, HumanEval and LBPP harnesses do); call
tests allow a tolerance only where `expected` is a float (docs/formats.md, `compare.values_match`).
"""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


def returns(value: str) -> str:
    return f"def f(*args):\n    return {value}\n"


@pytest.mark.parametrize(
    "expected, answer",
    [(5, "5.000004"), (5, "4.999996"), (1000000007, "1000000500.0"), (0, "1e-10"), (-3, "-3.0000001")],
)
def test_close_float_for_an_integer_call_test(ex, expected, answer):
    prob = problem(CallTest(args=[1], expected=expected), CallTest(args=[2], expected=expected))
    result = run(ex, prob, returns(answer))
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


def test_close_floats_inside_an_integer_list(ex):
    prob = problem(CallTest(args=[1], expected=[1, 2, 1000000007]))
    result = run(ex, prob, returns("[1, 2, 1000000007.5]"))
    assert_not_passed(result, Verdict.FAILED)


def test_close_float_numpy_scalar_for_an_integer(ex):
    prob = problem(CallTest(args=[1], expected=5))
    result = run(ex, prob, "import numpy as np\n" + returns("np.float64(5.000004)"))
    assert_not_passed(result, Verdict.FAILED)


@pytest.mark.parametrize("expected, answer", [(1, "True"), (0, "False"), (True, "1"), (False, "0")])
def test_control_json_true_is_not_one(ex, expected, answer):
    """Control (held before too): JSON keeps `true` and `1` apart, and so do call tests."""
    result = run(ex, problem(CallTest(args=[1], expected=expected)), returns(answer))
    assert_not_passed(result, Verdict.FAILED)


def test_control_assert_tests_use_plain_equality(ex):
    result = run(
        ex, problem(AssertTest("assert f(1) == 5"), AssertTest("assert f(1) in (5,)")), returns("5.000004")
    )
    assert_not_passed(result, Verdict.FAILED)


@pytest.mark.parametrize(
    "expected, answer",
    [(5, "5"), (5, "5.0"), (0.3, "0.1 + 0.2"), (1e12, "1e12 + 1"), (float("nan"), "float('nan')")],
)
def test_control_exact_and_float_answers_still_pass(ex, expected, answer):
    """Control: `==` for integers (5.0 is 5), the documented tolerance for float expectations."""
    result = run(ex, problem(CallTest(args=[1], expected=expected)), returns(answer))
    assert result.passed, result
