"""The program's text is compiled in its sandboxed child, under the run's limits: the compiler is
attack surface. Text that crashes CPython's compiler, or takes it to gigabytes or seconds, is the
program's failure (never sandbox_error, never the trusted runner's memory, CPU or log)."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


def _module_problem() -> Problem:
    return problem(AssertTest("assert f(2, 3) == 5"), AssertTest("assert f(1, 1) == 2"))


def test_text_that_crashes_the_compiler_is_a_runtime_error(ex):
    crash = "x = [0 " + "for a in b " * 60000 + "]\n" + CORRECT_ADD  # CPython 3.11's compiler overflows
    result = run(ex, _module_problem(), crash)
    assert_not_passed(result)
    assert result.verdict is not Verdict.SANDBOX_ERROR, result
    assert ex.infrastructure_failures == 0


def test_a_pattern_that_takes_the_compiler_to_gigabytes_stays_within_the_memory_limit(ex):
    # memory grows with the square of the captures: 20,000 of them wanted ~20 GB of the trusted side
    bomb = "match 0:\n    case [" + ", ".join(f"a{i}" for i in range(20000)) + "]: pass\n" + CORRECT_ADD
    result = run(ex, _module_problem(), bomb)
    assert_not_passed(result)
    assert result.verdict in (Verdict.COMPILE_ERROR, Verdict.MEMORY_EXCEEDED), result


def test_a_pattern_that_takes_the_compiler_seconds_is_a_timeout():
    slow = "match 0:\n    case C(" + ", ".join(f"a{i}=0" for i in range(60000)) + "): pass\n" + CORRECT_ADD
    with Executor(workers=1) as executor:
        result = run(executor, _module_problem(), slow)
    assert_not_passed(result, Verdict.TIMEOUT)


def test_compiler_warnings_go_to_the_run_not_to_the_host(ex, capfd):
    noisy = "".join(f"y{i} = x is {i}\n" for i in range(2000)) + CORRECT_ADD  # a SyntaxWarning each
    capfd.readouterr()
    result = run(ex, _module_problem(), noisy)
    assert_not_passed(result)  # x is not defined
    assert "SyntaxWarning" not in capfd.readouterr().err


@pytest.mark.parametrize("make", [_module_problem, stdio_problem], ids=["module", "stdio"])
def test_a_syntax_error_is_a_compile_error_with_the_compilers_message(ex, make):
    result = run(ex, make(), "def f(a, b)\n    return a + b\n")
    assert_all_tests(result, Verdict.COMPILE_ERROR)
    assert "SyntaxError" in result.tests[0].message and "expected ':'" in result.tests[0].message, result
