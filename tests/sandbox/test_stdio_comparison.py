"""Gaming the stdout comparison."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


@pytest.mark.parametrize(
    "program, verdict",
    [
        ("print(3)\n", Verdict.FAILED),
        ("print(3)\nprint(7)\nprint('extra')\n", Verdict.FAILED),
        ("print(3)\nprint(7)\nprint(0)\n", Verdict.FAILED),
        ("", Verdict.FAILED),
        ("import sys\nsys.stdout.buffer.write(b'\\xff\\xfe')\n", Verdict.FAILED),
        ("import sys\nsys.stdout.buffer.write(b'3\\n7\\n\\xff\\n')\n", Verdict.FAILED),
        ("print(3)\nprint(7)\nimport sys\nsys.exit(1)\n", Verdict.RUNTIME_ERROR),
        ("print(3)\nprint(7)\nraise SystemExit('bye')\n", Verdict.RUNTIME_ERROR),
    ],
    ids=[
        "prefix-only",
        "extra-line",
        "extra-number",
        "empty",
        "undecodable",
        "correct-then-undecodable",
        "correct-then-exit-1",
        "correct-then-exit-message",
    ],
)
def test_wrong_stdout(ex, program, verdict):
    # Only the first test's stdout is "3\n7\n"; all variants print it or a near miss of it.
    prob = problem(StdioTest(stdin="1 2\n3 4\n", stdout="3\n7\n"), entry_point=None)
    result = run(ex, prob, program)
    assert_not_passed(result, verdict)
    assert_all_tests(result, verdict)


@pytest.mark.parametrize(
    "output",
    ["3  \n7\t\n", "3\n7\n\n\n", "3\n7", "3\r\n7\r\n"],
    ids=["trailing-space", "trailing-blank-lines", "no-final-newline", "crlf"],
)
def test_control_stdout_whitespace_differences_pass(ex, output):
    prob = problem(StdioTest(stdin="1 2\n3 4\n", stdout="3\n7\n"), entry_point=None)
    program = f"import sys\nsys.stdout.write({output!r})\n"
    result = run(ex, prob, program)
    assert result.verdict is Verdict.PASSED, result
