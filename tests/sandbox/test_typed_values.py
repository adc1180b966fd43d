"""Values whose type matters to a test: they travel by value as their (trusted) type, never as a
handle answering for itself and never flattened into a type with looser equality.

OrderedDict keeps its order-sensitive equality; Counter, defaultdict and deque arrive as themselves;
a program's subclass of a NumPy or pandas type arrives as the base type, rebuilt from its values, so
its own `equals`, `tolist` or `__eq__` never answers a test.
"""

from __future__ import annotations

import dataclasses

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


def with_libraries(prob: Problem) -> Problem:
    """numpy and pandas imported by setup, before any test's clock starts (a slow first import
    on a loaded machine would otherwise end as a timeout rather than the verdict under test)."""
    return dataclasses.replace(prob, setup="import numpy\nimport pandas")


WRONG_ORDER = code(
    """
    from collections import OrderedDict
    def f(*args):
        return OrderedDict([("b", 2), ("a", 1)])
    """
)


@pytest.mark.parametrize(
    "test",
    [
        "from collections import OrderedDict\nassert f(1) == OrderedDict([('a', 1), ('b', 2)])",
        "from collections import OrderedDict\nassert OrderedDict([('a', 1), ('b', 2)]) == f(1)",
        "from collections import OrderedDict\nassert [f(1)] == [OrderedDict(a=1, b=2)]",
    ],
)
def test_ordered_dict_in_the_wrong_order(ex, test):
    result = run(ex, problem(AssertTest(test)), WRONG_ORDER)
    assert_not_passed(result, Verdict.FAILED)


def test_ordered_dict_subclass_in_the_wrong_order(ex):
    program = code(
        """
        from collections import OrderedDict
        class Mine(OrderedDict):
            def __eq__(self, other):
                return True
        def f(*args):
            return Mine([("b", 2), ("a", 1)])
        """
    )
    test = "from collections import OrderedDict\nassert f(1) == OrderedDict([('a', 1), ('b', 2)])"
    result = run(ex, problem(AssertTest(test)), program)
    assert_not_passed(result, Verdict.FAILED)


LYING_FRAME = code(
    """
    import pandas as pd
    class Frame(pd.DataFrame):
        def equals(self, other):
            return True
        def __eq__(self, other):
            return True
    class Series(pd.Series):
        def equals(self, other):
            return True
    def f(*args):
        return Frame({"a": [0, 0]})
    def g(*args):
        return Series([0, 0])
    """
)


@pytest.mark.parametrize(
    "entry, test",
    [
        ("f", "import pandas as pd\nassert f(1).equals(pd.DataFrame({'a': [1, 2]}))"),
        ("g", "import pandas as pd\nassert g(1).equals(pd.Series([1, 2]))"),
    ],
    ids=["frame", "series"],
)
def test_pandas_subclass_answering_equals_for_itself(ex, entry, test):
    result = run(ex, with_libraries(problem(AssertTest(test), entry_point=entry)), LYING_FRAME)
    assert_not_passed(result, Verdict.FAILED)


@pytest.mark.parametrize(
    "test",
    [
        "import pandas as pd\npd.testing.assert_frame_equal(f(1), pd.DataFrame({'a': [1, 2]}))",
        "import pandas as pd\nassert (f(1) == pd.DataFrame({'a': [1, 2]})).all().all()",
    ],
    ids=["assert_frame_equal", "frame_eq"],
)
def test_control_pandas_subclass_compared_by_the_test(ex, test):
    """Control (held before too: as a handle it refused these comparisons)."""
    result = run(ex, with_libraries(problem(AssertTest(test))), LYING_FRAME)
    assert_not_passed(result, Verdict.FAILED)


LYING_ARRAY = code(
    """
    import numpy as np
    class Array(np.ndarray):
        def tolist(self):
            return [1, 2]
        def __eq__(self, other):
            return np.ones(2, dtype=bool)
        def all(self, *args, **kwargs):
            return True
    def f(*args):
        return np.zeros(2, dtype=np.int64).view(Array)
    """
)


def test_numpy_subclass_answering_tolist_for_itself(ex):
    result = run(ex, with_libraries(problem(AssertTest("assert f(1).tolist() == [1, 2]"))), LYING_ARRAY)
    assert_not_passed(result, Verdict.FAILED)


@pytest.mark.parametrize(
    "test",
    [
        AssertTest("import numpy as np\nassert (f(1) == np.array([1, 2])).all()"),
        AssertTest("import numpy as np\nassert np.array_equal(f(1), np.array([1, 2]))"),
        CallTest(args=[1], expected=[1, 2]),
    ],
    ids=["eq_all", "array_equal", "call_test"],
)
def test_control_numpy_subclass_compared_by_the_test(ex, test):
    """Control (held before too: as a handle it refused these comparisons)."""
    result = run(ex, with_libraries(problem(test)), LYING_ARRAY)
    assert_not_passed(result, Verdict.FAILED)


@pytest.mark.parametrize(
    "value, test",
    [
        ("OrderedDict(a=1)", "from collections import OrderedDict\nassert type(f(1)) is OrderedDict"),
        ("Counter('aab')", "assert f(1)['zzz'] == 0"),
        ("defaultdict(list)", "from collections import defaultdict\nassert isinstance(f(1), defaultdict)"),
        ("deque([1, 2], maxlen=3)", "from collections import deque\nassert f(1) == deque([1, 2])"),
    ],
    ids=[
        "ordered_dict_type",
        "counter_missing",
        "defaultdict_type",
        "deque_eq",
    ],
)
def test_collections_arrive_as_themselves(ex, value, test):
    """Too strict before: flattened to a dict, or a handle."""
    program = f"from collections import *\ndef f(*args):\n    return {value}\n"
    result = run(ex, problem(AssertTest(test)), program)
    assert result.passed, result


@pytest.mark.parametrize(
    "value, test",
    [
        ("Counter('aab')", "from collections import Counter\nassert f(1) == Counter(a=2, b=1)"),
        ("deque([1, 2], maxlen=3)", "assert f(1).maxlen == 3"),
    ],
    ids=["counter_eq", "deque_maxlen"],
)
def test_control_collections_that_worked_before(ex, value, test):
    program = f"from collections import *\ndef f(*args):\n    return {value}\n"
    result = run(ex, problem(AssertTest(test)), program)
    assert result.passed, result
