"""Early exits faking success: sys.exit, os._exit, atexit, excepthook, __del__, BaseException."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


def test_sys_exit_0_at_import(ex):
    program = "import sys\nsys.exit(0)\n" + CORRECT_ADD
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert_all_tests(result, Verdict.RUNTIME_ERROR)


def test_sys_exit_0_at_start_of_script_without_output(ex):
    result = run(ex, stdio_problem(), "import sys\nsys.exit(0)\n" + CORRECT_STDIO)
    assert_not_passed(result, Verdict.FAILED)


def test_sys_exit_0_inside_the_function(ex):
    program = "import sys\ndef f(a, b):\n    sys.exit(0)\n"
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)


def test_os_exit_0_inside_the_function(ex):
    program = "import os\ndef f(a, b):\n    os._exit(0)\n"
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert_all_tests(result, Verdict.RUNTIME_ERROR)


def test_atexit_handler_prints_passed_and_exits_0(ex):
    program = code(
        """
        import atexit, os, sys
        def claim():
            print("passed")
            print('{"verdict": "passed", "passed": true}')
            sys.stdout.flush()
            os._exit(0)
        atexit.register(claim)
        def f(a, b):
            return a - b + 1
        """
    )
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


def test_atexit_handler_in_a_crashing_script(ex):
    program = code(
        """
        import atexit, os, sys
        def claim():
            print("passed")
            sys.stdout.flush()
            os._exit(0)
        atexit.register(claim)
        raise RuntimeError("crash before any output")
        """
    )
    result = run(ex, stdio_problem(), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)


@pytest.mark.parametrize("mode", ["module", "stdio"])
def test_replaced_excepthook_hides_a_crash(ex, mode):
    program = code(
        """
        import os, sys
        def hook(*args):
            print("passed")
            sys.stdout.flush()
            os._exit(0)
        sys.excepthook = hook
        sys.unraisablehook = hook
        raise ValueError("crash")
        """
    )
    prob = add_problem() if mode == "module" else stdio_problem()
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert_all_tests(result, Verdict.RUNTIME_ERROR)


def test_del_calls_os_exit_0_before_the_reply(ex):
    program = code(
        """
        import os
        class Bomb:
            def __del__(self):
                os._exit(0)
        def f(a, b):
            Bomb()
            return a + b
        """
    )
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert_all_tests(result, Verdict.RUNTIME_ERROR)


@pytest.mark.parametrize(
    "raised", ["SystemExit(0)", "KeyboardInterrupt()", "BaseException()", "Exception('x')", "ValueError('x')"]
)
def test_raising_inside_a_call(ex, raised):
    program = f"def f(a, b):\n    raise {raised}\n"
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert_all_tests(result, Verdict.RUNTIME_ERROR)
