"""Holes in the trusted test harness (module_tests.py, remote.py): a program that turns its own failure
into sandbox_error (masked in rewards), takes a worker down, or lets a handle claim what its object
cannot do. Each test asserts the safe outcome."""

from __future__ import annotations

import dataclasses

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

# ----------------------------------------------------------------------------- assert messages


def _str_program(body: str) -> str:
    return code(
        """
        import os, time
        class R:
            def __str__(self):
                BODY
        def f(a, b):
            return R()
        """
    ).replace("BODY", body)


@pytest.mark.parametrize(
    "body", ["raise ValueError('no')", "time.sleep(30)", "os._exit(0)"], ids=["raises", "sleeps", "exits"]
)
def test_assert_message_is_a_handle_whose_str_misbehaves(ex, body):
    """`assert r == 5, r`: the message is the program's object; its `str` is never asked."""
    prob = problem(AssertTest("r = f(2, 3)\nassert r == 5, r"), CallTest(args=[2, 3], expected=5))
    result = run(ex, prob, _str_program(body))
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)
    assert result.tests[0].message == "assertion failed: <sandboxed R>", result


def test_setup_failure_message_holds_a_handle(ex):
    """Setup raising with the program's object in its message: formatting it asks nothing of the program."""
    setup = "r = f(2, 3)\nif r != 5:\n    raise RuntimeError(r)\n"
    prob = dataclasses.replace(problem(AssertTest("assert f(2, 3) == 5")), setup=setup)
    result = run(ex, prob, _str_program("raise ValueError('no')"))
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert "RuntimeError: <sandboxed R>" in result.tests[0].message, result


# ----------------------------------------------------------------------------- setup


def _lbpp(setup: str, *tests) -> Problem:
    """An LBPP-shaped problem: setup imports from the candidate module, named `code`."""
    return dataclasses.replace(problem(*tests), setup=setup, metadata={"candidate_module": "code"})


DELETES_F_AFTER_READY = code(
    """
    import sys
    from pgrpo.sandbox import wire
    _send = wire.send_frame
    def send(fd, payload, deadline=None):
        _send(fd, payload, deadline)
        if payload.startswith(b'["ready"'):
            sys.modules[__name__].__dict__.pop("f", None)
    wire.send_frame = send
    def f(a, b):
        return a + b
    """
)


@pytest.mark.parametrize(
    "setup, program",
    [("from code import f, helper\n", CORRECT_ADD), ("from code import f\n", DELETES_F_AFTER_READY)],
    ids=["second-name-missing", "entry-point-deleted-after-ready"],
)
def test_setup_importing_from_the_candidate_module_fails_on_the_program(ex, setup, program):
    """An import of the candidate module in setup asks the program: its failure is the program's."""
    result = run(ex, _lbpp(setup, AssertTest("assert f(2, 3) == 5")), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert "ImportError" in result.tests[0].message, result


def test_setup_importing_from_the_candidate_module_passes_a_correct_program(ex):
    result = run(ex, _lbpp("from code import f\n", AssertTest("assert f(2, 3) == 5")), CORRECT_ADD)
    assert result.verdict is Verdict.PASSED, result


@pytest.mark.parametrize(
    "setup, test",
    [("from code import *\n", "assert f(2, 3) == 5"), ("", "from code import *\nassert f(2, 3) == 5")],
    ids=["in-setup", "in-a-test"],
)
def test_star_import_of_the_candidate_module(ex, setup, test):
    """Counting setup's imports as asking the program must not fail correct programs on `import *`."""
    prob = _lbpp(setup, AssertTest(test))
    assert run(ex, prob, CORRECT_ADD).verdict is Verdict.PASSED
    assert_not_passed(run(ex, prob, WRONG_ADD), Verdict.FAILED)


def test_star_import_leaves_private_globals_in_the_sandbox(ex):
    """A private table larger than a frame stays where it is: only public names travel."""
    program = "_TABLE = 'x' * (20 * 1024 * 1024)\n" + CORRECT_ADD
    result = run(ex, _lbpp("from code import *\n", AssertTest("assert f(2, 3) == 5")), program)
    assert result.verdict is Verdict.PASSED, result


def test_star_import_brings_no_module_of_the_program(ex):
    """The program's `math` (patched in the sandbox) does not replace the test's real one."""
    program = "import math\nmath.isclose = lambda *a, **k: True\n__all__ = ['f', 'math']\ndef f(a, b):\n    return 0\n"
    result = run(ex, _lbpp("from code import *\n", AssertTest("assert math.isclose(f(2, 3), 5)")), program)
    assert_not_passed(result, Verdict.FAILED)


@pytest.mark.parametrize(
    "setup",
    ["import os\nHOME = os.environ['PGRPO_NOT_SET']\n", "x = 1 / 0\n"],
    ids=["key-error", "zero-division"],
)
def test_setup_failing_on_its_own_is_not_blamed_on_the_program(ex, setup):
    """Setup that asks nothing of the program and fails: the problem's fault (sandbox_error), whatever
    it raised; a KeyError is not mistaken for a missing entry point."""
    prob = dataclasses.replace(problem(AssertTest("assert f(2, 3) == 5")), setup=setup)
    result = ex.run(prob, CORRECT_ADD)
    assert result.verdict is Verdict.SANDBOX_ERROR, result
    assert "the problem's setup code failed" in result.tests[0].message, result


def test_program_without_the_entry_point(ex):
    result = run(ex, add_problem(), "def g(a, b):\n    return a + b\n")
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert result.tests[0].message == "the program does not define 'f'", result


# ----------------------------------------------------------------------------- what a handle claims

PLAIN_OBJECT = "class Plain:\n    pass\ndef f(x):\n    return Plain()\n"


@pytest.mark.parametrize(
    "test",
    ["assert callable(f(1))", "import typing\nassert isinstance(f(1), typing.Callable)"],
    ids=["callable", "typing.Callable"],
)
def test_handle_of_a_plain_object_is_not_callable(ex, test):
    result = run(ex, problem(AssertTest(test)), PLAIN_OBJECT)
    assert_not_passed(result, Verdict.FAILED)


def test_handle_of_a_callable_object_is_callable(ex):
    program = (
        "class Adder:\n    def __call__(self, y):\n        return y + 1\ndef f(x):\n    return Adder()\n"
    )
    result = run(ex, problem(AssertTest("g = f(1)\nassert callable(g) and g(2) == 3")), program)
    assert result.verdict is Verdict.PASSED, result


@pytest.mark.parametrize(
    "test",
    [
        "import collections.abc\nassert isinstance(f(1), collections.abc.Iterable)",
        "import collections.abc\nassert isinstance(f(1), collections.abc.Sized)",
        "assert hasattr(f(1), '__iter__') or hasattr(f(1), '__len__')",
    ],
    ids=["Iterable", "Sized", "hasattr"],
)
def test_handle_of_a_plain_object_is_neither_iterable_nor_sized(ex, test):
    result = run(ex, problem(AssertTest(test)), PLAIN_OBJECT)
    assert_not_passed(result, Verdict.FAILED)


def test_handle_offers_what_the_program_side_reports():
    """The trusted side of the flags above: a handle reported plain has no __iter__ or __len__; one
    whose report lacks a flag still offers that capability (its use asks the program)."""
    import collections.abc
    import socket

    from pgrpo.sandbox.remote import Session

    mine, theirs = socket.socketpair()
    with mine, theirs:
        session = Session(mine.fileno(), 0.0)
        plain = session.decoder.decode(["h", 1, "Plain", False, False, False])
        sized = session.decoder.decode(["h", 2, "Bag", False, True, True])
        old = session.decoder.decode(["h", 3, "function", True])
    assert not callable(plain) and not isinstance(plain, (collections.abc.Iterable, collections.abc.Sized))
    assert not callable(sized) and isinstance(sized, collections.abc.Iterable) and hasattr(sized, "__len__")
    assert callable(old) and isinstance(old, collections.abc.Iterable)
    with pytest.raises(Exception, match="malformed handle"):
        session.decoder.decode(["h", 4, "Plain", "yes"])


# ----------------------------------------------------------------------------- harness limitations

PASSES_BACK_WHAT_F_RAISED = "try:\n    r = f(1)\nexcept Exception as e:\n    r = e\nassert f(r) == 3\n"


def test_exception_the_program_raised_passed_back_to_it(ex):
    """The channel cannot carry an exception instance; this one exists because the program raised."""
    prob = problem(AssertTest(PASSES_BACK_WHAT_F_RAISED))
    assert run(ex, prob, "def f(x):\n    return x + 1\n").verdict is Verdict.PASSED
    result = run(ex, prob, "def f(x):\n    raise ValueError('no')\n")
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert "harness limitation" in result.tests[0].message, result


def test_program_builds_its_exception_through_a_callback(ex):
    """A program's exception class comes back as a class of the trusted side; passed to the program it
    is a callback, and calling it makes an instance that cannot travel: the program's doing."""
    program = "class E(Exception):\n    pass\ndef f(x):\n    if callable(x):\n        x()\n    return E\n"
    result = run(ex, problem(AssertTest("assert f(f(1)) == 3")), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert "harness limitation" in result.tests[0].message, result


# ----------------------------------------------------------------------------- the program's exceptions

RAISES_UNICODE = "def f(a, b):\n    b'\\xff'.decode()\n"


def test_exception_needing_more_than_a_message_raised_while_the_tests_load(ex):
    """A name the tests read is asked of the program, whose module `__getattr__` raises an exception
    that cannot be rebuilt here from its message alone: the program's failure, not the harness's."""
    program = (
        "def __getattr__(name):\n    raise UnicodeDecodeError('utf-8', b'', 0, 1, 'x')\n"
        "def f(a, b):\n    return a + b\n"
    )
    result = run(ex, problem(AssertTest("assert f(2, 3) == Pair")), program)
    assert_not_passed(result, Verdict.FAILED)
    assert "NameError" in result.tests[0].message, result


@pytest.mark.parametrize(
    "program",
    [RAISES_UNICODE, "def f(a, b):\n    raise ExceptionGroup('g', [ValueError(1)])\n"],
    ids=["unicode", "exception-group"],
)
def test_exception_needing_more_than_a_message_raised_by_a_call(ex, program):
    """It arrives as the candidate's error (its nearest base that takes a message), not a TypeError."""
    result = run(ex, problem(AssertTest("assert f(2, 3) == 5")), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert "TypeError" not in result.tests[0].message, result


def test_unicode_error_of_the_program_is_caught_as_one(ex):
    test = "try:\n    f(2, 3)\nexcept UnicodeError:\n    assert False, 'caught'"
    result = run(ex, problem(AssertTest(test)), RAISES_UNICODE)
    assert_not_passed(result, Verdict.FAILED)
    assert result.tests[0].message == "assertion failed: caught", result


def test_callback_error_holding_a_handle_asks_nothing_of_the_program(ex):
    """A test's callback (it reads a global, so it stays here) raises with the program's object in its
    message while the program waits for its answer: the error goes back without asking the program."""
    test = code(
        """
        K = 1
        def check(x):
            if x != K:
                raise ValueError(x)
            return True
        assert f(check) == 5
        """
    )
    program = code(
        """
        import os
        class R:
            def __str__(self):
                os._exit(0)
        def f(check):
            try:
                check(R())
            except Exception as e:
                assert "<sandboxed R>" in str(e), str(e)
                return 5
        """
    )
    result = run(ex, problem(AssertTest(test)), program)
    assert result.verdict is Verdict.PASSED, result


def test_program_calls_a_test_class_whose_instance_cannot_travel(ex):
    """A test-defined class passed to the program stays here (a callback); a correct program only
    reads it, a wrong one builds an instance, which cannot travel into the sandbox: its doing."""
    test = "class Node:\n    def __init__(self, v):\n        self.v = v\nassert f(Node, 2) == 2\n"
    prob = problem(AssertTest(test))
    assert run(ex, prob, "def f(cls, x):\n    return x\n").verdict is Verdict.PASSED
    result = run(ex, prob, "def f(cls, x):\n    cls(x)\n    return x\n")
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert "harness limitation" in result.tests[0].message, result
