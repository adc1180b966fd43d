"""Data that crosses from the program to the trusted side outside a call's return value, or in a
form the channel once could not carry back: each hole a program could use for a pass or for a
sandbox_error (masked in rewards) instead of the verdict its code earned.

- pd.NA (the missing value of nullable dtypes) travels by value both ways, so a nullable Series
  returned by a program reaches the test, and one passed back into the program is not a harness
  limitation.
- Files the program wrote, which the runner mirrors into the test's directory: a test that
  unpickles one (pickle.load, pd.read_pickle, np.load(allow_pickle=True)) must run none of the
  program's code as the trusted runner; plain data still loads (`pgrpo.sandbox.unpickle`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import subprocess
import sys

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

from pgrpo.sandbox import unpickle


def with_pandas(prob: Problem) -> Problem:
    """pandas imported by setup, before any test's clock starts (a slow first import on a loaded
    machine would otherwise end as a timeout rather than the verdict under test), and a time limit with
    room for pandas' own first calls on a loaded machine (a 1 s limit timed out once under the suite)."""
    return dataclasses.replace(prob, setup="import pandas", time_limit_s=5.0)


# ----------------------------------------------------------------------------- pd.NA

NULLABLE = code(
    """
    import pandas as pd
    def f(x):
        if x is None:
            return pd.Series([1, None], dtype="Int64")
        return -1
    """
)


@pytest.mark.parametrize(
    "test",
    [
        "import pandas as pd\nassert f(None).equals(pd.Series([1, None], dtype='Int64'))",
        "import pandas as pd\npd.testing.assert_series_equal(f(None), pd.Series([1, None], dtype='Int64'))",
        "assert f(None).isna().tolist() == [False, True]",
        "import pandas as pd\nassert f(None).iloc[1] is pd.NA",
        "import pandas as pd\nassert f(None).to_frame().equals(pd.Series([1, None], dtype='Int64').to_frame())",
    ],
)
def test_a_nullable_series_reaches_the_test(ex, test):
    result = run(ex, with_pandas(problem(AssertTest(test))), NULLABLE)
    assert result.passed, result


def test_nullable_frames_and_indexes_reach_the_test(ex):
    program = code(
        """
        import pandas as pd
        def f(x):
            return pd.DataFrame({"a": pd.array([1, None], dtype="Int64"),
                                 "b": pd.array([True, None], dtype="boolean")},
                                index=pd.Index([3, None], dtype="Int64"))
        """
    )
    test = code(
        """
        import pandas as pd
        expected = pd.DataFrame({"a": pd.array([1, None], dtype="Int64"),
                                 "b": pd.array([True, None], dtype="boolean")},
                                index=pd.Index([3, None], dtype="Int64"))
        pd.testing.assert_frame_equal(f(0), expected)
        """
    )
    result = run(ex, with_pandas(problem(AssertTest(test))), program)
    assert result.passed, result


def test_pd_na_passed_into_the_program_is_pd_na(ex):
    program = "import pandas as pd\ndef f(x):\n    return x is pd.NA\n"
    result = run(
        ex, with_pandas(problem(AssertTest("import pandas as pd\nassert f(pd.NA) is True"))), program
    )
    assert result.passed, result


def test_a_nullable_series_passed_back_into_the_program(ex):
    """A value the program returned, handed back to it (`r = f(1); assert f(r) == 5`): it must
    travel back by value, not end as a harness limitation."""
    program = code(
        """
        import pandas as pd
        def f(x):
            if isinstance(x, int):
                return pd.Series([1, None], dtype="Int64")
            return 5 if x.isna().tolist() == [False, True] else -1
        """
    )
    result = run(ex, with_pandas(problem(AssertTest("r = f(1)\nassert f(r) == 5"))), program)
    assert result.passed, result


# The forged form: the program rewrites its side's encoder so that a plain Series arrives as a
# nullable one, then has the test send it back (directly, or as a callback's argument).
FORGE = code(
    """
    import pandas as pd
    import sys
    def _patch():
        frame = sys._getframe()
        while frame is not None:
            me = frame.f_locals.get("self")
            if me is not None and hasattr(me, "encoder"):
                type(me.encoder)._encode_series = lambda self, s, depth: [None, "Int64", [1, None]]
                return
            frame = frame.f_back
    """
)


def test_a_forged_nullable_series_passed_back_is_not_a_harness_failure(ex):
    program = FORGE + code(
        """
        def f(x):
            _patch()
            if x == 1:
                return pd.Series([1, 2])
            return -1
        """
    )
    result = run(ex, with_pandas(problem(AssertTest("r = f(1)\nassert f(r) == 5"))), program)
    assert_not_passed(result)


def test_a_forged_nullable_series_through_a_callback_is_not_a_harness_failure(ex):
    program = FORGE + code(
        """
        def f(g):
            _patch()
            try:
                g(pd.Series([1, 2]))
            except Exception:
                pass
            return -1
        """
    )
    result = run(ex, with_pandas(problem(AssertTest("k = 2\nassert f(lambda x: x * k) == 5"))), program)
    assert_not_passed(result)


# ----------------------------------------------------------------------------- unpickling a program's files


@pytest.mark.parametrize(
    "module, name",
    [
        ("os", "system"),
        ("posix", "system"),
        ("subprocess", "Popen"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "bytearray"),  # bytearray(10**9): a gigabyte from a 31-byte pickle
        ("builtins", "range"),  # list(range(10**9)) likewise
        ("importlib", "import_module"),
        ("numpy", "ndarray"),  # NumPy and pandas trust a pickle's state: they load in the sandbox only
        ("numpy._core.multiarray", "_reconstruct"),
        ("pandas", "DataFrame"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("__builtin__", "eval"),  # a Python 2 name, mapped as pickle maps it
    ],
)
def test_the_pure_python_unpickler_resolves_plain_data_only(module, name):
    data = b"c" + module.encode() + b"\n" + name.encode() + b"\n(S'echo hi'\ntR."
    unpickler = pickle._Unpickler(io.BytesIO(data))
    unpickler.find_class = unpickle.find_class  # as install() sets it for every pure-Python unpickler
    with pytest.raises(pickle.UnpicklingError, match=r"may not make the trusted side run") as caught:
        unpickler.load()
    assert name in str(caught.value)


def test_the_pure_python_unpickler_still_loads_plain_data():
    import collections
    import datetime
    import decimal

    obj = [
        {"a": (1, 2.5, "x", None, True)},
        {1},
        frozenset([2]),
        collections.OrderedDict(b=1),
        collections.Counter("aab"),
        collections.deque([1], 3),
        datetime.datetime(2020, 1, 1),
        decimal.Decimal("1.5"),
        b"bytes",
    ]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        unpickler = pickle._Unpickler(io.BytesIO(pickle.dumps(obj, protocol)))
        unpickler.find_class = unpickle.find_class
        assert unpickler.load() == obj, protocol


# install() patches this interpreter's pickle module, so it is tried in an interpreter of its own.
AFTER_INSTALL = code(
    """
    import json, pickle, sys, warnings
    import numpy as np, pandas as pd
    from pgrpo.sandbox import unpickle
    from pgrpo.types import Problem
    warnings.simplefilter("ignore")
    unpickle.install()
    unpickle.install()  # a second call changes nothing
    marker, evil = sys.argv[1:3]
    loaders = {
        "pickle.load": lambda p: pickle.load(open(p, "rb")),
        "pickle.loads": lambda p: pickle.loads(open(p, "rb").read()),
        "pickle.Unpickler": lambda p: pickle.Unpickler(open(p, "rb")).load(),
        "pickle._load": lambda p: pickle._load(open(p, "rb")),
        "pickle._Unpickler": lambda p: pickle._Unpickler(open(p, "rb")).load(),
        "_pickle.loads": lambda p: __import__("_pickle").loads(open(p, "rb").read()),
        "pd.read_pickle": pd.read_pickle,
        "pickle_compat": lambda p: __import__("pandas.compat.pickle_compat").compat.pickle_compat.loads(
            open(p, "rb").read()
        ),
        "np.load": lambda p: np.load(p, allow_pickle=True),
    }
    try:
        import joblib
        loaders["joblib.load"] = joblib.load
    except ImportError:
        pass
    out = {}
    for name, load in loaders.items():
        try:
            load(evil)
            out[name] = "loaded"
        except Exception as e:  # np.load raises its own error from ours
            causes = " ".join(str(c) for c in (e, e.__cause__, e.__context__))
            refused = "may not make the trusted side run" in causes or "in its sandbox" in causes
            out[name] = "refused" if refused else repr(e)
    # the runner's own messages still load
    problem = Problem(id="p", prompt="", tests=())
    out["trusted_loads"] = unpickle.trusted_loads(pickle.dumps(problem)) == problem
    print(json.dumps(out))
    """
)


def evil_pickle(path, marker: str) -> None:
    class Evil:
        def __reduce__(self):
            return (exec, (f"open({marker!r}, 'w').write('ran')",))

    path.write_bytes(pickle.dumps(Evil()))


def test_outside_a_run_no_unpickler_of_the_runner_runs_a_pickles_code(tmp_path):
    marker, evil = tmp_path / "ran", tmp_path / "evil.pkl"
    evil_pickle(evil, str(marker))
    proc = subprocess.run(
        [sys.executable, "-c", AFTER_INSTALL, str(marker), str(evil)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    outcomes = json.loads(proc.stdout)
    assert outcomes.pop("trusted_loads") is True
    assert outcomes == {name: "refused" for name in outcomes}
    assert not marker.exists()


# The runner (the trusted side, root on the host) loads what the program wrote when a test asks.
WRITES_A_PICKLE = code(
    """
    import pickle
    class Payload:
        def __reduce__(self):
            return (exec, ("open(" + repr({marker}) + ", 'w').write('ran on the trusted side')",))
    def task_func(path, data):
        with open(path, "wb") as fh:
            pickle.dump(Payload(), fh)
        return True
    """
)
LOADS = {
    "pickle.load": "import pickle\nwith open('out.pkl', 'rb') as fh:\n    assert pickle.load(fh) == {'a': 1}",
    "pd.read_pickle": "import pandas as pd\nassert pd.read_pickle('out.pkl') == {'a': 1}",
    "np.load": "import numpy as np\nassert np.load('out.pkl', allow_pickle=True) == {'a': 1}",
}


@pytest.mark.parametrize("loader", sorted(LOADS))
def test_a_pickle_the_program_wrote_runs_nothing_on_the_trusted_side(ex, tmp_path, loader):
    marker = str(tmp_path / "ran")
    test = "assert task_func('out.pkl', {'a': 1}) is True\n" + LOADS[loader]
    result = run(
        ex,
        with_pandas(problem(AssertTest(test), entry_point="task_func")),
        code(WRITES_A_PICKLE, marker=marker),
    )
    assert_not_passed(result)
    assert result.verdict is not Verdict.SANDBOX_ERROR, result
    assert not os.path.exists(marker), "the program's pickle ran its code in the trusted runner"


# Pickles that NumPy's and pandas' reconstructors trust (second red team): loaded in the trusted runner
# they crashed it (masked sandbox_error), filled its memory, or overrode a DataFrame's `equals`.
FORGED = {
    "object array over raw bytes": "(np.ndarray, ((1,), 'O', b'A' * 8))",
    "gigabyte from a tiny pickle": "(bytearray, (10**9,))",
    "list of a huge range": "(list, (range(4 * 10**7),))",
    "DataFrame whose equals is list": (
        "(pd.DataFrame, (), {**pd.DataFrame({'a': [0]}).__getstate__(), 'equals': list})"
    ),
}


@pytest.mark.parametrize("reduce", FORGED.values(), ids=FORGED.keys())
def test_a_forged_pickle_fails_in_the_sandbox_not_the_runner(ex, reduce):
    program = code(
        """
        import pickle
        import numpy as np
        import pandas as pd
        class Forged:
            def __reduce__(self):
                return REDUCE
        def task_func(path):
            with open(path, "wb") as fh:
                pickle.dump(Forged(), fh, protocol=3)
            return True
        """
    ).replace("REDUCE", reduce)
    test = code(
        """
        import pandas as pd
        assert task_func("out.pkl") is True
        x = pd.read_pickle("out.pkl")
        assert x.equals(pd.DataFrame({"a": [1, 2]}))
        """
    )
    result = run(ex, with_pandas(problem(AssertTest(test), entry_point="task_func")), program)
    assert_not_passed(result)
    assert result.verdict is not Verdict.SANDBOX_ERROR, result
    assert ex.infrastructure_failures == 0


def test_control_plain_pickles_the_program_wrote_load_in_the_test(ex):
    program = code(
        """
        import pickle
        import numpy as np
        import pandas as pd
        def task_func(path):
            with open(path + ".pkl", "wb") as fh:
                pickle.dump({"a": [1, 2], "b": {"c": (3.5, None)}}, fh)
            pd.DataFrame({"x": [1, 2], "y": ["p", "q"]}).to_pickle(path + ".df")
            np.save(path + ".npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
            return True
        """
    )
    test = code(
        """
        import pickle
        import numpy as np
        import pandas as pd
        assert task_func("out") is True
        with open("out.pkl", "rb") as fh:
            assert pickle.load(fh) == {"a": [1, 2], "b": {"c": (3.5, None)}}
        assert pd.read_pickle("out.df").equals(pd.DataFrame({"x": [1, 2], "y": ["p", "q"]}))
        assert np.load("out.npy", allow_pickle=True).tolist() == [1, "a", None]
        """
    )
    result = run(ex, with_pandas(problem(AssertTest(test), entry_point="task_func")), program)
    assert result.passed, result
