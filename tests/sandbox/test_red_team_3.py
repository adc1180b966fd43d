"""Red team, third round: pickles unpickled in the program's own sandbox (the program answers the
request), setup before the program's files arrive. Each test asserts the safe outcome."""

from __future__ import annotations

import dataclasses

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

# A test that loads a pickle the program wrote: the program's own bytes, so its own answer is fair.
LOADS_PROGRAMS_PICKLE = AssertTest(
    "import pickle\nf('out.pkl')\nwith open('out.pkl', 'rb') as fh:\n    assert pickle.load(fh) == [1, 2, 3]\n"
)


def test_a_correct_program_whose_pickle_the_test_loads_passes(ex):
    program = code(
        """
        import pickle
        def f(path):
            with open(path, 'wb') as fh:
                pickle.dump([1, 2, 3], fh)
        """
    )
    # room for the loading sandbox's first start on this worker
    result = run(ex, dataclasses.replace(problem(LOADS_PROGRAMS_PICKLE), time_limit_s=5.0), program)
    assert result.verdict is Verdict.PASSED, result


def test_an_exception_answering_the_unpickle_request_is_the_programs_failure(ex):
    program = code(
        """
        import pickle
        def f(path):
            open(path, 'wb').write(b'x')
            pickle.loads = lambda *a, **k: (_ for _ in ()).throw(MemoryError('no'))
        """
    )
    assert_not_passed(run(ex, problem(LOADS_PROGRAMS_PICKLE), program))


def test_exiting_during_the_unpickle_request_is_the_programs_failure(ex):
    program = code(
        """
        import os, pickle
        def f(path):
            open(path, 'wb').write(b'x')
            pickle.loads = lambda *a, **k: os._exit(0)
        """
    )
    assert_not_passed(run(ex, problem(LOADS_PROGRAMS_PICKLE), program))


def test_a_handle_answering_the_unpickle_request_does_not_pass(ex):
    program = code(
        """
        import pickle
        class Yes:
            def __eq__(self, other): return True
            __hash__ = object.__hash__
        def f(path):
            open(path, 'wb').write(b'x')
            pickle.loads = lambda *a, **k: Yes()
        """
    )
    assert_not_passed(run(ex, problem(LOADS_PROGRAMS_PICKLE), program))


def test_a_huge_or_deep_value_answering_the_unpickle_request_is_the_programs_failure(ex):
    for answer in (
        "lambda *a, **k: list(range(3 * 10**7))",
        "lambda *a, **k: __import__('functools').reduce(lambda x, _: [x], range(10**5), [])",
    ):
        program = "import pickle\ndef f(path):\n    open(path, 'wb').write(b'x')\n"
        program += f"    pickle.loads = {answer}\n"
        assert_not_passed(run(ex, problem(LOADS_PROGRAMS_PICKLE), program))


def test_an_exception_object_as_the_unpickled_value_does_not_pass(ex):
    program = code(
        """
        import pickle
        def f(path):
            open(path, 'wb').write(b'x')
            pickle.loads = lambda *a, **k: AssertionError('x')
        """
    )
    assert_not_passed(run(ex, problem(LOADS_PROGRAMS_PICKLE), program), Verdict.FAILED)


def test_correct_programs_whose_npy_and_pandas_pickles_the_test_loads_pass(ex):
    npy = AssertTest(
        "import numpy as np\nf('o.npy')\nassert np.load('o.npy', allow_pickle=True).tolist() == [1, 2]\n"
    )
    npy_program = (
        "import numpy as np\ndef f(p):\n    np.save(p, np.array([1, 2], dtype=object), allow_pickle=True)\n"
    )
    frame = AssertTest(
        "import pandas as pd\nf('o.pkl')\nassert pd.read_pickle('o.pkl').equals(pd.DataFrame({'a': [1]}))\n"
    )
    frame_program = "import pandas as pd\ndef f(p):\n    pd.DataFrame({'a': [1]}).to_pickle(p)\n"
    for test, program in ((npy, npy_program), (frame, frame_program)):
        # room for the loading sandbox's own first start and its import of NumPy or pandas
        result = run(ex, dataclasses.replace(problem(test), time_limit_s=10.0), program)
        assert result.verdict is Verdict.PASSED, result


# Setup that unpickles (it never names the program): the pickle loads in a sandbox of its own, so
# whatever the program does to its own unpickler changes nothing, and is never the problem's (masked).
SETUP_UNPICKLES = "import pickle\nDATA = pickle.loads(pickle.dumps([1, 2]))\n"
SETUP_ANSWERS = {
    "raises": "pickle.loads = lambda *a, **k: 1 / 0",
    "spins": "pickle.loads = lambda *a, **k: [0 for _ in iter(int, 1)]",
    "exits": "pickle.loads = lambda *a, **k: __import__('os')._exit(0)",
}


@pytest.mark.parametrize("name", sorted(SETUP_ANSWERS))
def test_a_program_answering_setups_unpickle_badly_is_not_masked(ex, name):
    prob = dataclasses.replace(problem(AssertTest("assert f(2, 3) == 5")), setup=SETUP_UNPICKLES)
    program = f"import pickle\n{SETUP_ANSWERS[name]}\ndef f(a, b):\n    return 0\n"
    assert_not_passed(run(ex, prob, program))


def test_a_correct_program_passes_with_a_setup_that_unpickles(ex):
    prob = dataclasses.replace(
        problem(AssertTest("assert f(2, 3) == 5")), setup=SETUP_UNPICKLES, time_limit_s=5.0
    )
    assert run(ex, prob, "def f(a, b):\n    return a + b\n").verdict is Verdict.PASSED


def test_the_programs_files_do_not_replace_a_file_setup_wrote(ex):
    prob = dataclasses.replace(
        problem(AssertTest("assert f() == open('expected.txt').read()")),
        setup="with open('expected.txt', 'w') as fh:\n    fh.write('right')\n",
    )
    at_import = "open('expected.txt', 'w').write('wrong')\ndef f():\n    return 'wrong'\n"
    in_call = "def f():\n    open('expected.txt', 'w').write('wrong')\n    return 'wrong'\n"
    for program in (at_import, in_call):
        assert_not_passed(run(ex, prob, program))
    assert run(ex, prob, "def f():\n    return 'right'\n").verdict is Verdict.PASSED


def test_a_handle_key_whose_str_is_the_expected_key_does_not_pass(ex):
    program = code(
        """
        class K:
            def __str__(self): return '(1, 2)'
            __repr__ = __str__
            def __hash__(self): return hash((1, 2))
            def __eq__(self, other): return True
        def f():
            return {K(): 3}
        """
    )
    prob = problem(CallTest(args=[], expected={"(1, 2)": 3}))
    assert_not_passed(run(ex, prob, program), Verdict.FAILED)
    assert run(ex, prob, "def f():\n    return {(1, 2): 3}\n").verdict is Verdict.PASSED


# ----------------------------------------------------------------------------- holes of the third pass, fixed

PATCHES_ITS_UNPICKLER = code(
    """
    import pickle
    import numpy as np
    import pandas as pd

    class Agrees:
        def equals(self, other):
            return True
        def tolist(self):
            return [1, 2, 3]

    def f(path):
        pd.DataFrame({"a": [9]}).to_pickle(path + ".df")  # the wrong answers
        np.save(path + ".npy", np.array([9], dtype=object), allow_pickle=True)
        pickle.loads = pickle.load = lambda *a, **k: Agrees()  # and a loader that says otherwise
        return True
    """
)


@pytest.mark.parametrize(
    "check",
    [
        "assert pd.read_pickle('out.df').equals(pd.DataFrame({'a': [1, 2, 3]}))",
        "assert np.load('out.npy', allow_pickle=True).tolist() == [1, 2, 3]",
    ],
    ids=["read_pickle", "np.load"],
)
def test_the_program_cannot_answer_for_the_pickles_a_test_loads(ex, check):
    test = "import numpy as np\nimport pandas as pd\nassert f('out') is True\n" + check
    prob = dataclasses.replace(problem(AssertTest(test)), setup="import pandas")
    assert_not_passed(run(ex, prob, PATCHES_ITS_UNPICKLER))


SPIES_ON_PICKLES = code(
    """
    import pickle
    _seen = []
    _real = pickle.loads
    def _spy(data, *a, **k):
        value = _real(data, *a, **k)
        _seen.append(value)
        return value
    pickle.loads = _spy
    def f():
        return _seen[-1] if _seen else None
    """
)


def test_a_pickle_the_test_makes_never_reaches_the_program(ex):
    test = "import pickle\nexpected = pickle.loads(pickle.dumps({'secret': 42}))\nassert f() == expected"
    assert_not_passed(run(ex, problem(AssertTest(test)), SPIES_ON_PICKLES))
    roomy = dataclasses.replace(problem(AssertTest(test)), time_limit_s=5.0)
    honest = run(ex, roomy, "def f():\n    return {'secret': 42}\n")
    assert honest.verdict is Verdict.PASSED, honest


@pytest.mark.parametrize("key, text", [(True, "true"), (None, "null"), (False, "false")])
def test_json_keys_match_the_programs_true_false_and_none_keys(ex, key, text):
    """JSON call tests write dict keys as text: {"true": 1} is how a {True: 1} answer is recorded."""
    prob = problem(CallTest(args=[], expected={text: 1}))
    result = run(ex, prob, f"def f():\n    return {{{key!r}: 1}}\n")
    assert result.verdict is Verdict.PASSED, result
