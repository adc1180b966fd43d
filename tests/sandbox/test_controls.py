"""Positive controls: correct programs pass and wrong ones fail, with every layer active."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


@pytest.mark.parametrize(
    "make, program",
    [
        (add_problem, CORRECT_ADD),
        (call_problem, CORRECT_ADD),
        (assert_problem, CORRECT_ADD),
        (stdio_problem, CORRECT_STDIO),
    ],
    ids=["assert+call", "call", "assert", "stdio"],
)
def test_control_correct_program_passes(ex, make, program):
    result = run(ex, make(), program)
    assert result.verdict is Verdict.PASSED, result
    assert_all_tests(result, Verdict.PASSED)


@pytest.mark.parametrize(
    "make, program",
    [(add_problem, WRONG_ADD), (stdio_problem, "print(0)\n")],
    ids=["module", "stdio"],
)
def test_control_wrong_program_fails(ex, make, program):
    result = run(ex, make(), program)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


def test_control_all_layers_active(ex):
    assert all(ex.layers.active.values()), ex.layers
