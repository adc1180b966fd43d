"""Red-team attacks that the family files do not cover: each program tries for a verdict it has not
earned (a pass, or a sandbox_error, which is masked in rewards), or to reach another run's data.
Every test asserts the safe outcome."""

from __future__ import annotations

import dataclasses
import signal

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

from pgrpo.problems.bigcodebench import RUN_TEST_CASES


@pytest.fixture(scope="module")
def one_worker():
    """Consecutive runs on one worker, where what one run leaves would meet the next."""
    with Executor(workers=1) as executor:
        yield executor


# ----------------------------------------------------------------------------- exit signals

# Signals that end a Python program (SIGPIPE and SIGXFSZ are ignored by the interpreter, so the
# program goes on and exits 0). Real-time signals between SIGRTMIN and SIGRTMAX are left out: their
# verdict is a sandbox_error (see the red-team report).
EXIT_SIGNALS = ["SIGTERM", "SIGUSR1", "SIGABRT", "SIGXCPU", "SIGRTMIN", "SIGRTMAX"]


@pytest.mark.parametrize("name", EXIT_SIGNALS)
def test_printing_the_answer_then_dying_by_a_signal(ex, name):
    program = (
        CORRECT_STDIO + f"import os, signal, sys\nsys.stdout.flush()\nos.kill(os.getpid(), signal.{name})\n"
    )
    result = run(ex, stdio_problem(), program)
    assert_not_passed(result)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGABRT", "SIGRTMIN", "SIGRTMAX"])
def test_dying_by_a_signal_inside_a_call(ex, name):
    program = f"import os, signal\ndef f(a, b):\n    os.kill(os.getpid(), signal.{name})\n"
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)


def test_stopping_itself_after_printing_the_answer(ex):
    program = (
        CORRECT_STDIO + "import os, signal, sys\nsys.stdout.flush()\nos.kill(os.getpid(), signal.SIGSTOP)\n"
    )
    result = run(ex, stdio_problem(), program)
    assert_not_passed(result, Verdict.TIMEOUT)


# ----------------------------------------------------------------------------- stdout look-alikes


@pytest.mark.parametrize(
    "render",
    [
        "str(a + b) + '\\u200b'",  # zero-width space: not whitespace
        "'\\ufeff' + str(a + b)",  # a byte-order mark in front
        "str(a + b).translate(str.maketrans('0123456789', '\\uff10\\uff11\\uff12\\uff13\\uff14"
        "\\uff15\\uff16\\uff17\\uff18\\uff19'))",  # fullwidth digits
        "str(a + b).translate(str.maketrans('0123456789', '\\u0660\\u0661\\u0662\\u0663\\u0664"
        "\\u0665\\u0666\\u0667\\u0668\\u0669'))",  # Arabic-Indic digits
        "str(a + b) + '\\r'.join(['', 'x'])",  # a carriage return hiding a suffix on a terminal
    ],
    ids=["zero-width-space", "bom", "fullwidth", "arabic-indic", "carriage-return"],
)
def test_unicode_look_alikes_of_the_expected_stdout(ex, render):
    program = f"import sys\nfor line in sys.stdin:\n    a, b = map(int, line.split())\n    print({render})\n"
    result = run(ex, stdio_problem(), program)
    assert_not_passed(result, Verdict.FAILED)


# ----------------------------------------------------------------------------- values after rebuild


@pytest.mark.parametrize(
    "expected, answer",
    [
        (5, "float('nan')"),
        (0.5, "float('nan')"),
        (5, "float('inf')"),
        (100000000000000000001, "1e20"),
        ("5", "b'5'"),
        ("5", "bytearray(b'5')"),
        (5, "decimal.Decimal(5)"),
        (5, "fractions.Fraction(5)"),
        (5, "complex(5, 0)"),
        (True, "numpy.int64(1)"),
        (None, "float('nan')"),
        ([1, 2], "{1, 2}"),
        ([1, 2], "range(1, 3)"),
        ([1, 2], "collections.deque([1, 2])"),
        ([1, 2], "numpy.array([1.0, 2.000001])"),
        ({"1": 5}, "{1: 5, '1': 5}"),
        ({"1": 5}, "collections.Counter({'1': 5, '2': 0})"),
    ],
)
def test_values_that_only_look_equal_after_the_rebuild(ex, expected, answer):
    program = f"import collections, decimal, fractions, numpy\ndef f():\n    return {answer}\n"
    result = run(ex, problem(CallTest(args=[], expected=expected)), program)
    assert_not_passed(result, Verdict.FAILED)


# ----------------------------------------------------------------------------- exceptions by name


@pytest.mark.parametrize(
    "name, base",
    [
        ("TrustedTimeout", "Exception"),
        ("SandboxGone", "Exception"),
        ("RequestTimeout", "Exception"),
        ("HarnessLimit", "Exception"),
        ("CandidateRaised", "Exception"),
        ("FrameTooLarge", "Exception"),
        ("SkipTest", "Exception"),
        ("KeyboardInterrupt", "Exception"),
        ("SystemExit", "Exception"),
        ("GeneratorExit", "Exception"),
        ("StopIteration", "Exception"),
        ("AssertionError", "AssertionError"),
        ("MemoryError", "MemoryError"),
    ],
)
def test_exceptions_named_like_the_harnesses_own(ex, name, base):
    program = code(
        f"""
        class E({base}):
            pass
        E.__name__ = E.__qualname__ = {name!r}
        def f(a, b):
            raise E("passed")
        """
    )
    result = run(ex, add_problem(), program)
    assert_not_passed(result)
    want = Verdict.MEMORY_EXCEEDED if base == "MemoryError" else Verdict.RUNTIME_ERROR
    assert_all_tests(result, want)


UNITTEST_CASES = code(
    """
    import unittest
    class TestCases(unittest.TestCase):
        def test_add(self):
            self.assertEqual(f(2, 3), 5)
    """
)


@pytest.mark.parametrize("raised", ["unittest.SkipTest('skip me')", "unittest.case._ShouldStop()"])
def test_a_unittest_case_cannot_be_skipped_or_stopped_by_the_program(ex, raised):
    """BigCodeBench's harness runs unittest here: the program's SkipTest is not the real one."""
    program = f"import unittest, unittest.case\ndef f(a, b):\n    raise {raised}\n"
    result = run(ex, problem(AssertTest(UNITTEST_CASES + RUN_TEST_CASES)), program)
    assert_not_passed(result, Verdict.FAILED)
    assert "1 of 1 test cases failed" in result.message, result


@pytest.mark.parametrize(
    "program",
    [
        "class f(Exception):\n    pass\n",
        "f = ValueError\n",
        "class f(AssertionError):\n    def __init__(self, *a):\n        raise AssertionError('no')\n",
    ],
    ids=["own-exception", "builtin-exception", "raising-init"],
)
def test_the_entry_point_is_an_exception_class(ex, program):
    result = run(ex, add_problem(), program)
    assert_not_passed(result)


# ----------------------------------------------------------------------------- files and leftovers


def test_a_fifo_where_a_test_writes_its_file(ex):
    """The trusted side copies the test's files into the program's directory before each call; a
    FIFO planted under that name must not hang the worker."""
    program = "import os\nos.mkfifo('in.txt')\ndef f(a, b):\n    return a + b\n"
    prob = problem(AssertTest("open('in.txt', 'w').write('2 3')\nassert f(2, 3) == 5"))
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.TIMEOUT)
    assert_healthy(ex)


SNOOP = code(
    """
    import os, sys
    found = []
    for fd in (0, 1, 2):
        try:
            found.append(os.pread(fd, 1 << 16, 0))
        except OSError as e:
            found.append(repr(e).encode())
    sys.stderr.write("found: %r\\n" % found)
    """
)


@pytest.mark.parametrize("mode", ["stdio", "module"])
def test_the_reused_output_files_hold_nothing_of_the_last_run(one_worker, mode):
    marker = f"secret-{uuid.uuid4().hex}"
    victim = f"import sys\nprint({marker!r})\nsys.stderr.write({marker!r})\n"
    first = run(one_worker, problem(StdioTest(stdin="", stdout=marker + "\n"), entry_point=None), victim)
    assert first.passed, first  # the marker was in this worker's stdout file
    if mode == "stdio":
        prob, program = problem(StdioTest(stdin="", stdout="x\n"), entry_point=None), SNOOP
    else:
        prob, program = problem(CallTest(args=[], expected=1)), SNOOP + "def f():\n    return 2\n"
    result = run(one_worker, prob, program)
    assert "found:" in result.stderr, result
    assert marker not in result.stderr, f"the next run read the last one's output: {result.stderr}"


# ----------------------------------------------------------------------------- processes and channel


def test_a_forked_child_answers_after_the_main_process_exits(ex):
    program = code(
        """
        import os
        def f(a, b):
            if os.fork():
                os._exit(0)
            return a - b
        """
    )
    result = run(ex, add_problem(), program)
    assert_not_passed(result)


def test_hostile_calls_of_a_trusted_callback(ex):
    """A test passes a function that reads its own globals (so it stays here, called back): the
    program calls it with handles, bad arguments and unknown callback ids."""
    program = code(
        """
        import sys
        def f(g, x):
            for args, kwargs in [((object(),), {}), ((), {"nope": 1}), (tuple(range(300)), {}), ((g,), {})]:
                try:
                    g(*args, **kwargs)
                except Exception:
                    pass
            server = next(fr.f_locals["self"] for fr in iter_frames() if hasattr(fr.f_locals.get("self"), "_callback"))
            for cb_id in (-1, 99, 10**30):
                try:
                    server._callback(cb_id)(1)
                except Exception:
                    pass
            return -1
        def iter_frames():
            fr = sys._getframe()
            while fr is not None:
                yield fr
                fr = fr.f_back
        """
    )
    prob = problem(AssertTest("k = 2\nassert f(lambda y: y * k, 3) == 6"))
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.FAILED)


# ----------------------------------------------------------------------------- setup that imports the program


def candidate_module_problem(setup: str, *tests) -> Problem:
    """LBPP's shape: the setup imports the solution as module `code`."""
    prob = problem(*tests)
    return dataclasses.replace(prob, setup=setup, metadata={"candidate_module": "code"})


def test_setup_importing_an_entry_point_the_program_lacks(ex):
    prob = candidate_module_problem("from code import f\n", AssertTest("assert f(2, 3) == 5"))
    result = run(ex, prob, "def g(a, b):\n    return a + b\n")
    assert_not_passed(result, Verdict.RUNTIME_ERROR)


def test_setup_import_answered_by_a_raising_module_getattr(ex):
    program = code(
        """
        def f(a, b):
            return a + b
        def __getattr__(name):
            raise ValueError(name)
        """
    )
    prob = candidate_module_problem("from code import f, helper\n", AssertTest("assert f(2, 3) == 5"))
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)


def test_control_setup_importing_the_program_passes_a_correct_one(ex):
    prob = candidate_module_problem("from code import f\n", AssertTest("assert f(2, 3) == 5"))
    assert run(ex, prob, CORRECT_ADD).passed


# ----------------------------------------------------------------------------- compiling hostile text


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "lambda: " * 200_000 + "0\n",
        "x = " + "not " * 500_000 + "0\n",
        "x = " + "-" * 2_000_000 + "1\n",
        "x = " + "f'{" * 1000 + "1" + "}'" * 1000 + "\n",
        "async def g():\n    return " + "await " * 300_000 + "0\n",
        "def g():\n    with " + ", ".join("a" for _ in range(200_000)) + ": pass\n",
    ],
    ids=["lambda-chain", "not-chain", "unary-chain", "nested-fstrings", "await-chain", "with-items"],
)
def test_text_that_exhausts_the_parser_is_a_compile_error(ex, text):
    result = run(ex, add_problem(), text + CORRECT_ADD)
    assert_all_tests(result, Verdict.COMPILE_ERROR)
    assert_healthy(ex)


def test_signal_names_used_here_exist():
    assert all(hasattr(signal, name) for name in EXIT_SIGNALS)


# ----------------------------------------------------------------------------- privileges


PRIVILEGED_CALLS = code(
    """
    import ctypes, os, stat
    libc = ctypes.CDLL(None, use_errno=True)
    def f():
        got = []
        def attempt(name, call):
            try:
                r = call()
            except (OSError, AttributeError):
                return
            if r is None or (isinstance(r, int) and r >= 0):
                got.append(name)
        for flag, name in ((0x10000000, "unshare-user"), (0x00020000, "unshare-mount"),
                           (0x40000000, "unshare-net"), (0x20000000, "unshare-pid"),
                           (0x04000000, "unshare-uts")):
            attempt(name, lambda flag=flag: libc.unshare(flag))
        attempt("chroot", lambda: os.chroot("."))
        attempt("setuid-0", lambda: os.setuid(0))
        attempt("setgroups", lambda: os.setgroups([0]))
        attempt("mknod-mem", lambda: os.mknod("mem", stat.S_IFCHR | 0o600, os.makedev(1, 1)))
        attempt("mount-tmpfs", lambda: libc.mount(b"none", b".", b"tmpfs", 0, None))
        attempt("ptrace-init", lambda: libc.ptrace(16, 1, None, None))
        attempt("signal-init", lambda: os.kill(1, 0))
        attempt("kernel-log", lambda: libc.klogctl(3, ctypes.create_string_buffer(4096), 4096) - 1)
        attempt("sethostname", lambda: libc.sethostname(b"x", 1))
        attempt("raise-priority", lambda: os.setpriority(os.PRIO_PROCESS, 0, -20))
        attempt("bpf", lambda: libc.syscall(321, 0, None, 0))
        attempt("list-proc", lambda: os.listdir("/proc"))
        attempt("list-sys", lambda: os.listdir("/sys"))
        attempt("write-root", lambda: open("/x", "w").close())
        attempt("write-usr", lambda: open("/usr/x", "w").close())
        return got
    """
)


def test_privileged_calls_are_refused(ex):
    """A new user namespace inside the chroot would give back CAP_SYS_CHROOT (and an escape from
    it); none of these may succeed."""
    if ex.layers.uid is None or not ex.layers.active["filesystem"]:
        pytest.skip("needs the uid and filesystem layers")
    result = run(ex, problem(CallTest(args=[], expected=[])), PRIVILEGED_CALLS)
    assert result.passed, f"a privileged call succeeded: {result}"


# ----------------------------------------------------------------------------- claims and leftovers


@pytest.mark.parametrize(
    "program",
    [
        "def f(a, b):\n    raise ModuleNotFoundError(\"No module named 'numpy'\")\n",
        "def f(a, b):\n    return \"No module named 'pandas'\"\n",
        "import sys\nsys.stderr.write(\"No module named 'pytest'\\n\")\nsys.exit(1)\n",
    ],
    ids=["raised", "returned", "stderr"],
)
def test_claiming_a_missing_library_that_is_installed(ex, program):
    """A missing benchmark library is a sandbox_error (masked); where it is installed, a program
    saying it is missing is the program's failure."""
    for name in ("numpy", "pandas", "pytest"):
        pytest.importorskip(name)
    prob = stdio_problem() if program.startswith("import sys") else add_problem()
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR, Verdict.FAILED)


SHADOWS = ("numpy", "pandas", "decimal", "fractions", "datetime", "copy", "tempfile", "shutil", "traceback")


def test_files_the_program_writes_never_shadow_a_module_the_trusted_side_imports(ex, tmp_path):
    """The program's files are copied into the tests' working directory on the host: a `decimal.py`
    there must never be what the trusted side imports when a Decimal arrives."""
    marker = tmp_path / "escaped"
    payload = f"open({str(marker)!r}, 'w').write('ran on the trusted side')\n"
    program = code(
        """
        import datetime, decimal, fractions
        def f(a, b):
            if a == 2:
                for name in {names}:
                    with open(name + ".py", "w") as fh:
                        fh.write({payload})
                return a - b
            return [decimal.Decimal(1), fractions.Fraction(1, 3), datetime.date(2020, 1, 1)]
        """,
        names=SHADOWS,
        payload=payload,
    )
    prob = problem(
        CallTest(args=[2, 3], expected=5), CallTest(args=[10, 20], expected=30), AssertTest("f(1, 2) + 1")
    )
    result = run(ex, prob, program)
    assert_not_passed(result)
    assert not marker.exists(), "a file the program wrote ran on the trusted side"


def test_runs_ending_every_way_leave_no_descriptor_in_the_worker(one_worker):
    endings = [
        (
            call_problem(),
            "import os\ndef f(a, b):\n    os.write(3, b'\\x00\\x00\\x00\\x02{}')\n    return 1\n",
        ),
        (call_problem(), "import time\ndef f(a, b):\n    time.sleep(5)\n"),
        (call_problem(), "import os\ndef f(a, b):\n    os._exit(0)\n"),
        (stdio_problem(), "import os\nos.kill(os.getpid(), 9)\n"),
        (add_problem(), CORRECT_ADD),
    ]
    run(one_worker, add_problem(), CORRECT_ADD)
    pid = worker_pids(one_worker)[0]
    before = len(os.listdir(f"/proc/{pid}/fd"))
    for prob, program in endings:
        run(one_worker, prob, program)
    assert len(os.listdir(f"/proc/{pid}/fd")) == before


WRITEBACK_FORGER = code(
    """
    import sys
    def forge(writeback):
        fr = sys._getframe()
        while fr is not None:
            server = fr.f_locals.get("self")
            if server is not None and hasattr(server, "_dispatch"):
                break
            fr = fr.f_back
        dispatch = type(server)._dispatch
        def forged(self, request):
            value, _ = dispatch(self, request)
            return value, writeback
        type(server)._dispatch = forged
    def f(x, y=None):
        forge(WRITEBACK)
        return 5
    """
)


@pytest.mark.parametrize(
    "writeback",
    [
        [["d", "a", 1], None],  # a dict for the list
        [["l", 9]],  # one entry for two arguments
        [["l", 9], ["l", 9], ["l", 9]],  # three for two
        [None, ["l", 9]],  # a list for the tuple
        [["s", 1], None],  # a set for the list
        "not a list",
    ],
    ids=["dict-for-list", "too-short", "too-long", "into-a-tuple", "set-for-list", "not-a-list"],
)
def test_a_forged_writeback_of_another_shape_is_ignored(ex, writeback):
    """Arguments travel back only as what they were: the test's list stays a list, its tuple a tuple."""
    program = WRITEBACK_FORGER.replace("WRITEBACK", repr(writeback))
    test = "x, t = [1, 2], (1, 2)\nassert f(x, t) == 5\nf(x, t)\nassert x == [1, 2] and t == (1, 2)"
    result = run(ex, problem(AssertTest(test)), program)
    assert result.passed, result


def test_control_a_writeback_of_the_same_shape_is_applied(ex):
    """The forger above works: a list for the list changes the test's list (as an in-place edit would)."""
    program = WRITEBACK_FORGER.replace("WRITEBACK", repr([["l", 9], None]))
    test = "x, t = [1, 2], (1, 2)\nassert f(x, t) == 5\nf(x, t)\nassert x == [1, 2] and t == (1, 2)"
    result = run(ex, problem(AssertTest(test)), program)
    assert_not_passed(result, Verdict.FAILED)
