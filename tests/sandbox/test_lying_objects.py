"""Objects lying about equality or truth."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

ALWAYS_EQUAL = code(
    """
    class Liar:
        def __eq__(self, other):
            return True
        def __ne__(self, other):
            return False
        def __hash__(self):
            return 0
        def __bool__(self):
            return True
    def f(*args):
        return Liar()
    """
)


def test_always_equal_object_in_assert_tests(ex):
    result = run(ex, assert_problem(), ALWAYS_EQUAL)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


def test_always_equal_object_in_call_tests(ex):
    result = run(ex, call_problem(), ALWAYS_EQUAL)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


def test_always_equal_object_reversed_and_negated_comparisons(ex):
    prob = problem(
        AssertTest("assert 5 == f(2, 3)"),
        AssertTest("assert not (f(2, 3) != 5)"),
        AssertTest("assert f(2, 3) in [5]"),
        AssertTest("assert [f(2, 3)] == [5]"),
        AssertTest("assert {'k': f(2, 3)} == {'k': 5}"),
    )
    result = run(ex, prob, ALWAYS_EQUAL)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


@pytest.mark.parametrize(
    "base, wrong",
    [("int", "-999"), ("str", "'wrong'"), ("list", "[-999]"), ("float", "-999.5"), ("tuple", "(-999,)")],
)
def test_builtin_subclass_with_lying_eq(ex, base, wrong):
    program = code(
        f"""
        class Liar({base}):
            def __eq__(self, other):
                return True
            def __ne__(self, other):
                return False
            __hash__ = {base}.__hash__
        def f(*args):
            return Liar({wrong})
        """
    )
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


def test_truthy_object_for_bare_assert(ex):
    # is_odd: only a genuine True passes `assert f(3)`; an object that calls itself true must not.
    prob = problem(AssertTest("assert f(3)"), AssertTest("assert f(5) and f(7)"))
    program = code(
        """
        class Yes:
            def __bool__(self):
                return True
            def __len__(self):
                return 1
        def f(n):
            return Yes()
        """
    )
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


def test_not_implemented_tricks(ex):
    program = code(
        """
        class Shrug:
            def __eq__(self, other):
                return NotImplemented
            def __ne__(self, other):
                return NotImplemented
            __req__ = __eq__
            __hash__ = object.__hash__
        def f(a, b):
            return NotImplemented if a > 0 else Shrug()
        """
    )
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


def test_lying_arithmetic_in_a_tolerance_assert(ex):
    # HumanEval's float checks read `assert abs(candidate(x) - expected) < 1e-6`: an object whose
    # `__sub__` answers 0.0 for any operand must not satisfy them without knowing the answer.
    prob = problem(
        AssertTest("assert abs(f([1.0, 2.0, 3.0]) - 2.0) < 1e-6"),
        AssertTest("assert abs(f([1.0, 5.0]) - 3.0) < 1e-6"),
    )
    program = code(
        """
        class Zero:
            def __sub__(self, other):
                return 0.0
            def __abs__(self):
                return 0.0
            def __lt__(self, other):
                return True
        def f(xs):
            return Zero()
        """
    )
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)
