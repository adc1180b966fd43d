"""Data that crosses from the program to the trusted side outside a call's return value, or in a
form the channel once could not carry back: each hole a program could use for a pass or for a
sandbox_error (masked in rewards) instead of the verdict its code earned.

- pd.NA (the missing value of nullable dtypes) travels by value both ways, so a nullable Series
  returned by a program reaches the test, and one passed back into the program is not a harness
  limitation.
"""

from __future__ import annotations

import dataclasses

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


def with_pandas(prob: Problem) -> Problem:
    """pandas imported by setup, before any test's clock starts (a slow first import on a loaded
    machine would otherwise end as a timeout rather than the verdict under test)."""
    return dataclasses.replace(prob, setup="import pandas")


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
