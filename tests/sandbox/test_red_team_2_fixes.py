"""Red team, second round, the holes it found and their fixes: one attack per test, each asserting
the safe outcome (no pass the program did not earn, no sandbox_error of its making, a bounded run)."""

from __future__ import annotations

import dataclasses

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


def _lbpp(setup: str, *tests) -> Problem:
    """An LBPP-shaped problem: setup imports from the candidate module, named `code`."""
    return dataclasses.replace(problem(*tests), setup=setup, metadata={"candidate_module": "code"})


# ----------------------------------------------------------------------------- star imports and builtins

SHADOWS_BUILTINS = code(
    """
    def sorted(values):
        return [1, 2, 3]
    def all(values):
        return True
    def f(values):
        return values
    """
)


@pytest.mark.parametrize(
    "setup, test",
    [
        ("from code import *\n", "assert sorted(f([3, 2, 2])) == [1, 2, 3]"),
        ("from code import *\n", "assert all(x == 1 for x in f([3, 2, 2]))"),
        ("", "from code import *\nassert sorted(f([3, 2, 2])) == [1, 2, 3]"),
    ],
    ids=["sorted-in-setup", "all-in-setup", "sorted-in-a-test"],
)
def test_star_import_binds_no_builtin_name(ex, setup, test):
    """The program's `sorted` and `all` do not replace the test's: the wrong `f` fails."""
    result = run(ex, _lbpp(setup, AssertTest(test)), SHADOWS_BUILTINS)
    assert_not_passed(result, Verdict.FAILED)


def test_star_import_still_passes_a_correct_program_defining_a_builtin_name(ex):
    """The test's `sorted` is the real one, whatever the program calls `sorted` for itself."""
    program = "def sorted(values):\n    return [1, 2, 3]\ndef f(values):\n    return values\n"
    prob = _lbpp("from code import *\n", AssertTest("assert sorted(f([3, 2, 2])) == [2, 2, 3]"))
    assert run(ex, prob, program).verdict is Verdict.PASSED
