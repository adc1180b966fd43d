"""Red team, second round: attacks on what changed last (programs compiled in their sandboxed child,
every_test reruns, the restricted unpickler, the trusted side's decoding bounds, star imports).
Each test asserts the safe outcome: no pass the program did not earn, no sandbox_error of its making,
and nothing that behaves differently from the interpreter's own `compile()`."""

from __future__ import annotations

import dataclasses
import pickle
import time

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

from pgrpo.sandbox import unpickle, values, wire

# ----------------------------------------------------------------------------- compiling in the child

ADD = "def f(a, b):\n    return a + b\n"
# Texts whose compile() verdict must be the same in the child as in this interpreter.
TEXTS = {
    "nul-byte": ADD + "\x00\n",
    "lone-surrogate-in-a-string": ADD + 's = "\ud800"\n',
    "lone-surrogate-in-a-comment": ADD + "# \udcff\n",
    "bom-first": "\ufeff" + ADD,
    "bom-later": "x = 1\n\ufeff" + ADD,
    "latin-1-cookie": "# -*- coding: latin-1 -*-\n" + ADD + "s = 'é'\n",
    "unknown-cookie": "# coding: rot13\n" + ADD,
    "utf-16-cookie": "# coding: utf-16\n" + ADD,
    "barry-as-flufl": "from __future__ import barry_as_FLUFL\n" + ADD,
    "braces": "from __future__ import braces\n" + ADD,
    "late-future": "x = 1\nfrom __future__ import annotations\n" + ADD,
    "unknown-future": "from __future__ import nonsense\n" + ADD,
    "future-annotations": "from __future__ import annotations\ndef f(a: Undefined, b) -> Nope:\n    return a + b\n",
    "carriage-returns": ADD.replace("\n", "\r"),
    "form-feeds": "\x0c" + ADD.replace("    ", "\x0c    "),
    "tab-error": "def f(a, b):\n\tif a:\n        return a + b\n\treturn a + b\n",
    "control-character": ADD + "x = 1 \x01\n",
    "nfkc-identifier": "def f(a, b):\n    ﬁ = a + b\n    return fi\n",
    "trailing-backslash": ADD + "\\",
    "return-outside-function": "return 5\n" + ADD,
    "too-many-parentheses": "x = " + "(" * 300 + ")" * 300 + "\n" + ADD,
    "int-literal-over-the-digit-limit": "x = " + "9" * 5000 + "\n" + ADD,
}


def _compiles_here(text: str) -> bool:
    try:
        compile(text, "<check>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def _add_asserts() -> Problem:
    return problem(AssertTest("assert f(2, 3) == 5"), AssertTest("assert f(1, 1) == 2"))


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_the_child_compiles_like_compile_does(ex, name):
    text = TEXTS[name]
    result = run(ex, _add_asserts(), text)
    if _compiles_here(text):
        assert result.verdict is Verdict.PASSED, result
    else:
        assert_all_tests(result, Verdict.COMPILE_ERROR)
        assert "Error" in result.tests[0].message, result  # the compiler's own words, from the child


@pytest.mark.parametrize(
    "name", ["nul-byte", "lone-surrogate-in-a-string", "bom-first", "latin-1-cookie", "tab-error"]
)
def test_the_child_compiles_scripts_like_compile_does(ex, name):
    text = TEXTS[name].replace(ADD, CORRECT_STDIO)
    result = run(ex, stdio_problem(), text)
    if _compiles_here(text):
        assert result.verdict is Verdict.PASSED, result
    else:
        assert_all_tests(result, Verdict.COMPILE_ERROR)


# ----------------------------------------------------------------------------- exit code 3 (EXIT_COMPILE_ERROR)

PRINTS_THEN_EXITS_3 = code(
    """
    import os, sys
    for line in sys.stdin:
        a, b = map(int, line.split())
        print(a + b)
    sys.stdout.flush()
    os.write(2, b"SyntaxError: invalid syntax")
    os._exit(3)
    """
)


def test_a_script_exiting_3_after_the_right_output_passes_nothing(ex):
    """Exit status 3 only calls the program uncompilable: the right output does not pass, no test is
    re-run or judged any better, and nothing is masked."""
    result = run(ex, stdio_problem(), PRINTS_THEN_EXITS_3)
    assert_not_passed(result, Verdict.COMPILE_ERROR)
    assert_all_tests(result, Verdict.COMPILE_ERROR)


def test_a_module_exiting_3_in_a_call_fails_that_test_and_the_rest(ex):
    program = "import os\ndef f(a, b):\n    if a == 1:\n        os._exit(3)\n    return a + b\n"
    result = run(ex, _add_asserts(), program)
    assert [t.verdict for t in result.tests] == [Verdict.PASSED, Verdict.COMPILE_ERROR], result
    assert not result.passed


def test_a_module_exiting_3_while_loading_passes_nothing(ex):
    program = "import os\nos.write(2, b'needs pandas')\nos._exit(3)\n" + ADD
    assert_not_passed(run(ex, _add_asserts(), program), Verdict.COMPILE_ERROR)


# ----------------------------------------------------------------------------- every_test reruns


@pytest.fixture(scope="module")
def every():
    with Executor(workers=1, every_test=True) as executor:
        yield executor


def _tests(*xs: int) -> Problem:
    return problem(*(AssertTest(f"assert f({x}) == {10 * x}") for x in xs))


def test_every_test_reruns_end_however_the_program_dies(every):
    """A program that ends its process in every test, each way it can: one verdict per test, each of
    them its own, and one fresh process per test at most."""
    program = code(
        """
        import os, signal
        def f(x):
            if x == 1:
                while True:
                    pass
            if x == 2:
                os._exit(0)
            if x == 3:
                os.kill(os.getpid(), signal.SIGSEGV)
            if x == 4:
                os._exit(3)
            if x == 5:
                return "x" * (20 * 1024 * 1024)
            return x * 10
        """
    )
    t0 = time.monotonic()
    result = run(every, _tests(1, 2, 6, 3, 4, 7), program)
    verdicts = [t.verdict for t in result.tests]
    assert verdicts == [
        Verdict.TIMEOUT,
        Verdict.RUNTIME_ERROR,
        Verdict.PASSED,
        Verdict.RUNTIME_ERROR,
        Verdict.COMPILE_ERROR,
        Verdict.PASSED,
    ], result
    assert result.pass_rate == pytest.approx(2 / 6)
    assert time.monotonic() - t0 < 8 * LIMIT_S


def test_every_test_after_an_oversized_value_does_not_rerun(every):
    """A frame over the limit leaves the stream mid-frame: the run stops there (output_exceeded),
    and the tests after it are not run in a fresh process either."""
    program = "def f(x):\n    return 'x' * (20 * 1024 * 1024) if x == 5 else x * 10\n"
    result = run(every, _tests(1, 5, 2), program)
    assert [t.verdict for t in result.tests] == [
        Verdict.PASSED,
        Verdict.OUTPUT_EXCEEDED,
        Verdict.OUTPUT_EXCEEDED,
    ], result


def test_every_test_after_a_timeout_while_loading_does_not_loop(every):
    """A program whose every load times out: one load, every test timeout, no rerun per test."""
    program = "while True:\n    pass\n"
    t0 = time.monotonic()
    result = run(every, _tests(1, 2, 3, 4), program)
    assert_all_tests(result, Verdict.TIMEOUT)
    assert time.monotonic() - t0 < 2 * LIMIT_S + 4.0, result


def test_every_test_after_a_compile_error_loads_once(every):
    """Text that does not compile fails every test as compile_error in one load, not one per test."""
    t0 = time.monotonic()
    result = run(every, _tests(1, 2, 3, 4), "def f(x)\n    return x * 10\n")
    assert_all_tests(result, Verdict.COMPILE_ERROR)
    assert "SyntaxError" in result.tests[3].message, result
    assert time.monotonic() - t0 < 2.0, result


def test_every_test_counts_each_test_once_when_the_last_one_dies(every):
    program = "import os\ndef f(x):\n    if x == 3:\n        os._exit(0)\n    return x * 10\n"
    result = run(every, _tests(1, 2, 3), program)
    assert [t.verdict for t in result.tests] == [Verdict.PASSED, Verdict.PASSED, Verdict.RUNTIME_ERROR], (
        result
    )


# ----------------------------------------------------------------------------- star imports


def _lbpp(setup: str, *tests) -> Problem:
    return dataclasses.replace(problem(*tests), setup=setup, metadata={"candidate_module": "code"})


WRONG_WITH_ITS_OWN_TRUTH = code(
    """
    __all__ = ["f", "__pgrpo_strict_truth__", "__builtins__"]
    __builtins__ = {"AssertionError": None}
    def __pgrpo_strict_truth__(value):
        return True
    def f(a, b):
        return 0
    """
)


@pytest.mark.parametrize(
    "setup, test",
    [("from code import *\n", "assert f(2, 3) == 5"), ("", "from code import *\nassert f(2, 3) == 5")],
    ids=["in-setup", "in-a-test"],
)
def test_star_import_cannot_replace_the_harness_names(ex, setup, test):
    """`__all__` naming the assert check and `__builtins__`: neither reaches the test's namespace."""
    result = run(ex, _lbpp(setup, AssertTest(test)), WRONG_WITH_ITS_OWN_TRUTH)
    assert_not_passed(result, Verdict.FAILED)


# ----------------------------------------------------------------------------- the restricted unpickler


def _op_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _op_call(module: str, name: str, *args: object) -> bytes:
    """A protocol 2 pickle calling module.name(*args) (REDUCE)."""
    body = pickle.dumps(args, 2)[2:-1]
    return b"\x80\x02" + _op_global(module, name) + body + b"R."


def _zone(key: str) -> bytes:
    unpickle_zone = (
        _op_global("builtins", "getattr")
        + b"("
        + _op_global("zoneinfo", "ZoneInfo")
        + b"X\x09\x00\x00\x00_unpickletR"
    )
    return b"\x80\x02" + unpickle_zone + pickle.dumps((key, 1), 2)[2:-1] + b"R."


def _block_manager() -> bytes:
    import pandas as pd

    block = pickle.dumps(pd.DataFrame({"a": [1, 2]})._mgr.blocks[0], 2)[2:-1]
    axes = pickle.dumps([pd.Index(["a", "b", "c"]), pd.RangeIndex(5)], 2)[2:-1]
    data = b"\x80\x02" + _op_global("pandas.core.internals.managers", "BlockManager") + b"(](" + block
    return data + b"e" + axes + b"tR."


FORGED_PICKLES = {
    "zoneinfo-key-outside": lambda: _zone("../../../../etc/passwd"),
    "zoneinfo-absolute-key": lambda: _zone("/etc/passwd"),
    "numpy-small-buffer": lambda: _op_call("numpy", "ndarray", (4,), "i8", b"\x00" * 8),
    "numpy-offset": lambda: _op_call("numpy", "ndarray", (1,), "i8", b"\x00" * 8, 8),
    "numpy-frombuffer-shape": lambda: _op_call(
        "numpy._core.numeric", "_frombuffer", b"\x00" * 8, "i8", (4,), "C"
    ),
    "numpy-short-scalar": lambda: _op_call("numpy._core.multiarray", "scalar", "V100", b"x"),
    "block-manager-past-its-axes": _block_manager,
}


@pytest.mark.parametrize("make", FORGED_PICKLES.values(), ids=FORGED_PICKLES.keys())
def test_the_runner_never_unpickles_a_forged_pickle_itself(make):
    """Outside a program's run nothing unpickles in the trusted runner; during one, `pickle.load` sends
    the bytes to the program's sandbox (tests/sandbox/test_data_holes.py runs those end to end)."""
    with pytest.raises(pickle.UnpicklingError, match="in its sandbox"):
        unpickle.loads(make())


# ----------------------------------------------------------------------------- decoding bounds


def _decode(data: object) -> object:
    decoder = values.Decoder(None, values.resident_kb() + (2048 << 10))
    decoder.start(time.monotonic() + 5)
    return decoder.decode(wire.loads(wire.dumps(data)))


@pytest.mark.parametrize(
    "data",
    [
        ["r", 0, 10**12, 1],  # a range by value past MAX_RANGE_BY_VALUE
        ["nd", "<f8", [10**12], ""],  # a shape the data does not fill
        ["ndo", [10**9], []],
        ["nd", "|O", [1], "QUFBQUFBQUE="],  # object pointers from the program's bytes
        ["nd", "|V8", [1], "QUFBQUFBQUE="],
        ["np", "<U1000000000", ""],
        ["td", 10**30, 0, 0],
        ["dq", -1],
        ["frac", 1, 0],
    ],
    ids=["range", "nd-shape", "ndo-shape", "nd-object", "nd-void", "np-huge-str", "td", "dq", "frac"],
)
def test_values_that_would_expand_or_lie_do_not_decode(data):
    with pytest.raises(wire.WireError):
        _decode(data)


def test_an_empty_array_of_a_huge_shape_costs_nothing():
    arr = _decode(["nd", "<f8", [0, 10**12], ""])
    assert arr.shape == (0, 10**12) and arr.nbytes == 0
