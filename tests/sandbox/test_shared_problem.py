"""One sample must never change the next sample's test: call-test arguments the program mutates
stay in the sandbox; every sample on a worker is tested with the problem as loaded."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

SORTS_IN_PLACE = "def f(xs, key=None):\n    xs.sort()\n    return xs\n"  # correct, and mutates its input
CORRECT = "def f(xs, key=None):\n    return sorted(xs)\n"
POISONS = "def f(xs, key=None):\n    xs[:] = [0]\n    return [1, 2, 3]\n"  # wrong args for whoever comes next
IDENTITY = "def f(xs, key=None):\n    return list(xs)\n"  # wrong: right only if the input arrives sorted


@pytest.fixture(scope="module")
def one_worker():
    with Executor(workers=1) as executor:
        yield executor


def sort_problem(as_kwarg: bool) -> Problem:
    def call(xs: list) -> CallTest:
        return (
            CallTest(args=[], kwargs={"xs": xs}, expected=sorted(xs))
            if as_kwarg
            else CallTest([xs], sorted(xs))
        )

    return problem(call([3, 1, 2]), call([[2], [1]]), call([5, 4, 3, 2, 1]))


def test_a_mutated_argument_does_not_fix_a_wrong_program(one_worker):
    prob = sort_problem(as_kwarg=False)
    results = list(one_worker.map([(prob, SORTS_IN_PLACE), (prob, IDENTITY)]))
    assert results[0].passed, results[0]
    assert_not_passed(results[1], Verdict.FAILED)


def test_a_mutated_argument_does_not_fail_a_correct_program(one_worker):
    prob = sort_problem(as_kwarg=False)
    results = list(one_worker.map([(prob, POISONS), (prob, CORRECT), (prob, SORTS_IN_PLACE)]))
    assert not results[0].passed, results[0]
    assert [r.verdict for r in results[1:]] == [Verdict.PASSED] * 2, results


def test_control_mutated_keyword_arguments(one_worker):
    """Control (held before too: keyword arguments were never written back)."""
    prob = sort_problem(as_kwarg=True)
    results = list(
        one_worker.map([(prob, SORTS_IN_PLACE), (prob, IDENTITY), (prob, POISONS), (prob, CORRECT)])
    )
    assert [r.verdict for r in results] == [Verdict.PASSED, Verdict.FAILED, Verdict.FAILED, Verdict.PASSED], (
        results
    )
