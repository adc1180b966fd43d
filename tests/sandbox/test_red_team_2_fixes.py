"""Red team, second round, the holes it found and their fixes: one attack per test, each asserting
the safe outcome (no pass the program did not earn, no sandbox_error of its making, a bounded run)."""

from __future__ import annotations

import dataclasses
import time

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

from pgrpo.sandbox import files, values, wire


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


# ----------------------------------------------------------------------------- setup and the program's files

PLANTS_WORK = code(
    """
    open("work", "w").close()
    def f(a, b):
        return a + b
    def helper(x):
        return 2 * x
    """
)
CORRECT_WITH_HELPER = "def f(a, b):\n    return a + b\ndef helper(x):\n    return 2 * x\n"


def _setup_making_work() -> Problem:
    prob = problem(AssertTest("assert f(2, 3) == 5 and helper(2) == 4"))
    return dataclasses.replace(prob, setup="import os\nos.mkdir('work')\n")


def test_a_file_the_program_planted_does_not_break_the_problems_setup(ex):
    """Fetching `helper` for the test before setup ran must not bring the program's `work` into the
    tests' directory, where setup's mkdir would fail as the problem's fault (masked)."""
    result = run(ex, _setup_making_work(), PLANTS_WORK)
    assert result.verdict is Verdict.PASSED, result


def test_setup_making_a_directory_passes_a_correct_program(ex):
    assert run(ex, _setup_making_work(), CORRECT_WITH_HELPER).verdict is Verdict.PASSED


# ----------------------------------------------------------------------------- setup's own time


def test_setup_kept_busy_by_the_programs_value_times_out(ex):
    """Setup looping over a count the program chose (10**12) is cut by the same watchdog as tests:
    a timeout well before the pool's backstop, and the worker lives."""
    setup = "N = size()\ntotal = 0\nfor i in range(N):\n    total += i\n"
    prob = dataclasses.replace(problem(AssertTest("assert f(2, 3) == 5")), setup=setup)
    program = "def size():\n    return 10**12\n" + CORRECT_ADD
    t0 = time.monotonic()
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.TIMEOUT)
    assert time.monotonic() - t0 < 4 * LIMIT_S + 3, result  # the pool's backstop: 19 s
    assert_healthy(ex)


def test_setup_busy_on_its_own_is_the_problems_fault(ex):
    """Setup that never asks the program and still runs past the watchdog: the problem's failure."""
    prob = dataclasses.replace(problem(AssertTest("assert f(2, 3) == 5")), setup="while True:\n    pass\n")
    result = ex.run(prob, CORRECT_ADD)
    assert result.verdict is Verdict.SANDBOX_ERROR, result
    assert "setup" in result.tests[0].message, result


# ----------------------------------------------------------------------------- comparisons and handles


def test_a_dict_key_that_names_itself_does_not_match(ex):
    """A key the program's object (a handle here) would spell "a" through its own `__str__`: the
    comparison never asks it, and the answer fails."""
    program = code(
        """
        class K:
            def __str__(self):
                return "a"
            __repr__ = __str__
        def f():
            return {K(): 1}
        """
    )
    result = run(ex, problem(CallTest(args=[], expected={"a": 1})), program)
    assert_not_passed(result, Verdict.FAILED)


def test_plain_dict_keys_still_match_as_their_text(ex):
    program = "import numpy as np\ndef f():\n    return {'a': 1, 2: 2, np.int64(3): 3, (1, 2): 4}\n"
    expected = {"a": 1, "2": 2, "3": 3, "(1, 2)": 4}
    assert run(ex, problem(CallTest(args=[], expected=expected)), program).verdict is Verdict.PASSED


# ----------------------------------------------------------------------------- decoding bounds


def _decoder(deadline_s: float = 5.0) -> values.Decoder:
    decoder = values.Decoder(None, values.resident_kb() + (2048 << 10))
    decoder.start(time.monotonic() + deadline_s)
    return decoder


def _decode(data: object, deadline_s: float = 5.0) -> object:
    data = wire.loads(wire.dumps(data))
    return _decoder(deadline_s).decode(data)


def test_a_namedtuple_with_too_many_fields_is_refused_at_once():
    fields = [f"a{i}" for i in range(600_000)]
    t0 = time.monotonic()
    with pytest.raises(wire.WireError):
        _decode(["nt", "T0", fields, *range(len(fields))])
    assert time.monotonic() - t0 < 1.0


def test_namedtuple_classes_belong_to_their_decoder():
    """Classes built for one run's values are not kept for the life of the process."""
    first = _decoder().decode(["nt", "P", ["x", "y"], 1, 2])
    again = _decoder().decode(["nt", "P", ["x", "y"], 1, 2])
    assert first == (1, 2) and first.x == 1 and type(first) is not type(again)


def test_a_namedtuple_with_many_fields_but_under_the_cap_decodes():
    fields = [f"a{i}" for i in range(values.MAX_NAMEDTUPLE_FIELDS)]
    assert len(_decode(["nt", "T", fields, *range(len(fields))])) == len(fields)


def test_a_frame_of_many_empty_columns_stops_at_the_deadline():
    n = 60_000
    t0 = time.monotonic()
    with pytest.raises(wire.DeadlinePassed):
        _decode(["pd.df", ["l", *range(n)], [None, "int64", []], [[None, "int64", []]] * n], 0.3)
    assert time.monotonic() - t0 < 1.0


FORGES_A_VALUE = code(
    """
    from pgrpo.sandbox import values
    _encode = values.Encoder.encode
    class Forged:
        pass
    def encode(self, obj, depth=0):
        if type(obj) is Forged:
            return {forged}
        return _encode(self, obj, depth)
    values.Encoder.encode = encode
    def f(a, b):
        return Forged()
    """
)


@pytest.mark.parametrize(
    "forged",
    [
        '["nt", "T0", ["a%d" % i for i in range(600_000)], 0]',
        '["pd.df", ["l", *range(150_000)], [None, "int64", []], [[None, "int64", []]] * 150_000]',
    ],
    ids=["namedtuple-fields", "frame-columns"],
)
def test_a_forged_value_costly_to_decode_does_not_hold_the_runner(ex, forged):
    t0 = time.monotonic()
    """The program sends tagged JSON of its own making (its encoder patched): the trusted side
    stops decoding it within the run's deadline."""
    result = run(ex, call_problem(), FORGES_A_VALUE.replace("{forged}", forged))
    assert_not_passed(result)
    assert time.monotonic() - t0 < 3 * LIMIT_S + 1, result


# ----------------------------------------------------------------------------- files mirrored to the host

MAKES_MANY_FILES = code(
    """
    import os
    for i in range({n}):
        os.close(os.open("f%d" % i, os.O_CREAT | os.O_WRONLY))
    def f(a, b):
        return a + b
    """
)


def test_the_tests_directory_holds_a_bounded_number_of_the_programs_files(tmp_path):
    """Files past MAX_FILES are not copied (as bytes past MAX_TOTAL_BYTES), and a sync reads at most
    MAX_FILES entries of the program's directory, so each request's sync stays cheap."""
    tests_dir, program_dir = tmp_path / "tests", tmp_path / "program"
    tests_dir.mkdir()
    program_dir.mkdir()
    for i in range(files.MAX_FILES + 500):
        (program_dir / f"f{i}").touch()
    shared = files.SharedFiles(str(tests_dir), str(program_dir))
    try:
        shared.from_program()
        assert len(list(tests_dir.iterdir())) == files.MAX_FILES
        copied = next(tests_dir.iterdir()).name
        t0 = time.monotonic()
        shared.from_program()
        assert time.monotonic() - t0 < 0.5
        (program_dir / copied).unlink()  # a deletion is still mirrored
        shared.from_program()
        assert not (tests_dir / copied).exists()
        assert len(list(tests_dir.iterdir())) <= files.MAX_FILES
    finally:
        shared.reset()
        shared.close()


def test_a_program_making_many_files_gets_a_bounded_run(ex):
    """30,000 empty files made while loading: no sandbox_error, no worker lost, a short run."""
    t0 = time.monotonic()
    result = run(ex, add_problem(), code(MAKES_MANY_FILES, n=30_000))
    assert result.verdict in (Verdict.PASSED, Verdict.TIMEOUT), result
    assert time.monotonic() - t0 < 3 * LIMIT_S + 2, result
