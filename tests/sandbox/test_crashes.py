"""Crashes of any kind end as runtime_error."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


@pytest.mark.parametrize("mode", ["module", "stdio"])
def test_segfault(ex, mode):
    crash = "import ctypes\nctypes.string_at(0)\n"
    if mode == "module":
        prob, program = add_problem(), "def f(a, b):\n" + textwrap.indent(crash, "    ")
    else:
        prob, program = stdio_problem(), "print(3)\nprint(7)\n" + crash
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert_all_tests(result, Verdict.RUNTIME_ERROR)
    assert_healthy(ex)


RAISED_LIMIT = "import sys\nsys.setrecursionlimit(10**6)\n"


@pytest.mark.parametrize(
    "program, verdicts",
    [
        ("def f(a, b):\n    return f(a, b) + 1\n", [Verdict.RUNTIME_ERROR]),
        # A million Python frames take longer than the 1 s limit, or more than 256 MB.
        (
            RAISED_LIMIT + "def f(a, b):\n    return f(a, b) + 1\n",
            [Verdict.RUNTIME_ERROR, Verdict.TIMEOUT, Verdict.MEMORY_EXCEEDED],
        ),
        # Through C (map), the C stack overflows: a segfault.
        (RAISED_LIMIT + "def f(a, b):\n    return list(map(f, [a], [b]))\n", [Verdict.RUNTIME_ERROR]),
    ],
    ids=["default-limit", "limit-1e6", "limit-1e6-through-C"],
)
def test_unbounded_recursion(ex, program, verdicts):
    result = run(ex, add_problem(), program)
    assert_not_passed(result, *verdicts)
    assert_healthy(ex)


CLOSERS = {"os-close": "import os\nos.close(1)\n", "sys-stdout-close": "import sys\nsys.stdout.close()\n"}


@pytest.mark.parametrize("closer", CLOSERS)
def test_closed_stdout_then_printing_in_a_script(ex, closer):
    result = run(ex, stdio_problem(), CLOSERS[closer] + CORRECT_STDIO)
    assert_not_passed(result, Verdict.FAILED, Verdict.RUNTIME_ERROR)


@pytest.mark.parametrize("closer", CLOSERS)
def test_closed_stdout_in_a_correct_module_still_passes(ex, closer):
    program = CLOSERS[closer] + CORRECT_ADD
    result = run(ex, add_problem(), program)
    assert result.verdict is Verdict.PASSED, result


@pytest.mark.parametrize("number", [34, 40, 64])  # real-time signals, which Python's Signals does not name
@pytest.mark.parametrize("where", ["stdio", "call"])
def test_death_by_a_real_time_signal_is_a_runtime_error(ex, number, where):
    if where == "stdio":
        result = run(ex, stdio_problem(), f"import os\nos.kill(os.getpid(), {number})\n")
    else:
        program = f"import os\ndef f(a, b):\n    os.kill(os.getpid(), {number})\n"
        result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert any("killed by signal" in t.message for t in result.tests), result  # SIGRTMIN, 40, SIGRTMAX
    assert_healthy(ex)
