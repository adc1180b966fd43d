"""Legitimate programs the executor used to fail, and the safety of what made them pass.

Tests in MBPP-style sets may use any name the program defines (they ran program and asserts in one
file): here those names are what the channel makes of them (values, or handles whose calls run in
the sandbox), so no program code runs in the trusted process and its objects still cannot answer
comparisons for themselves.
"""

from __future__ import annotations

import dataclasses

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

PAIRS = code(
    """
    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b
    def f(pairs, n):
        return sum(1 for p in pairs[:n] if p.a < p.b)
    """
)
TREE = code(
    """
    class Node:
        def __init__(self, data):
            self.data, self.left, self.right = data, None, None
    def f(node):
        return 0 if node is None else 1 + max(f(node.left), f(node.right))
    """
)
TREE_SETUP = "root = Node(1)\nroot.left = Node(2)\nroot.left.left = Node(3)\nroot.right = Node(4)"


@pytest.mark.parametrize(
    "program, test",
    [
        (
            "from collections import Counter\ndef f(s):\n    return Counter(s)\n",
            "assert f('abb').most_common(1) == [('b', 2)]",
        ),
        (
            "from collections import defaultdict\ndef f(s):\n    return defaultdict(int, {s: 1})\n",
            "assert f('a')['b'] == 0",
        ),
        (
            "def f(t, kind):\n    return [x for x in t if not isinstance(x, kind)]\n",
            "assert f((1, 'a', 2.5), int) == ['a', 2.5]",
        ),
        (
            "def f(t, kind):\n    return [x for x in t if not isinstance(x, kind)]\n",
            "assert f((1, 'a', 2.5), str) == [1, 2.5]",
        ),
        ("def f(kind):\n    return kind('7') + kind('1')\n", "assert f(int) == 8 and f(str) == '71'"),
        (PAIRS, "assert f([Pair(1, 2), Pair(5, 3), Pair(0, 9)], 3) == 2"),
    ],
    ids=[
        "counter_most_common",
        "defaultdict_missing_key",
        "type_int",
        "type_str",
        "type_called",
        "program_class",
    ],
)
def test_legitimate_assert_tests(ex, program, test):
    result = run(ex, problem(AssertTest(test)), program)
    assert result.passed, result


def test_setup_builds_objects_of_a_program_class(ex):
    prob = problem(AssertTest("assert f(root) == 3"), AssertTest("assert f(root.right) == 1"))
    prob = dataclasses.replace(prob, setup=TREE_SETUP)
    result = run(ex, prob, TREE)
    assert result.passed, result


@pytest.mark.parametrize(
    "value, expected",
    [("np.int64(7)", 7), ("np.bool_(True)", True), ("np.float64(0.5)", 0.5), ("np.array([1, 2])", [1, 2])],
    ids=["int64", "bool_", "float64", "array"],
)
def test_numpy_results_in_call_tests(ex, value, expected):
    program = f"import numpy as np\ndef f(x):\n    return {value}\n"
    result = run(ex, problem(CallTest(args=[1], expected=expected)), program)
    assert result.passed, result


def test_a_program_class_raising_in_setup_is_the_programs_error(ex):
    """Setup now calls the program: what it raises there is a runtime error, not a sandbox error
    (which rewards mask instead of scoring 0)."""
    program = "class Node:\n    def __init__(self, data):\n        raise ValueError('no')\ndef f(node):\n    return 3\n"
    prob = dataclasses.replace(problem(AssertTest("assert f(root) == 3")), setup=TREE_SETUP)
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)


def test_program_class_instances_stay_handles(ex):
    """A program-defined class's objects cannot answer comparisons or truth for themselves."""
    program = code(
        """
        class Pair:
            def __init__(self, a, b):
                self.a = a
            def __eq__(self, other):
                return True
            def __bool__(self):
                return True
        def f(x):
            return x
        """
    )
    tests = [
        AssertTest("assert Pair(1, 2) == Pair(3, 4)"),
        AssertTest("assert f(Pair(1, 2)) == 5"),
        AssertTest("assert Pair(1, 2)"),
        AssertTest("assert [Pair(1, 2)] == [7]"),
    ]
    result = run(ex, problem(*tests), program)
    assert_not_passed(result, Verdict.FAILED)


def test_program_names_do_not_replace_the_tests_own(ex):
    """Only names the test neither binds nor finds in builtins come from the program: a program
    redefining `all`, `sorted` or a module the test uses changes nothing here."""
    program = code(
        """
        class FakeMath:
            def isclose(self, *args, **kwargs):
                return True
        math = FakeMath()
        np = FakeMath()
        def all(*args):
            return True
        def sorted(*args):
            return [1, 2, 3]
        def f(x):
            return x
        """
    )
    tests = [
        AssertTest("assert all([f(1) == 2])"),
        AssertTest("assert sorted([f(3), f(1)]) == [1, 2, 3]"),
        AssertTest("assert math.isclose(f(1), 2.0)"),
        AssertTest("assert np.isclose(f(1), 2.0)"),
        AssertTest("import math\nassert math.isclose(f(1), 2.0)"),
    ]
    result = run(ex, problem(*tests), program)
    assert_not_passed(result, Verdict.FAILED)


def test_a_module_the_program_imported_is_imported_here(ex):
    """MBPP tests use `math` when the program imported it; the test gets the real module."""
    program = "import math\ndef f(x):\n    return math.sqrt(x)\n"
    result = run(ex, problem(AssertTest("assert math.isclose(f(2), 1.4142135623730951)")), program)
    assert result.passed, result


@pytest.mark.parametrize(
    "program",
    [
        "def f(node):\n    return 3\n",
        "Node = 5\ndef f(node):\n    return 3\n",
        "Node = None\ndef f(node):\n    return 3\n",
    ],
    ids=["undefined", "not_callable", "none"],
)
def test_a_program_breaking_setup_does_not_buy_a_sandbox_error(ex, program):
    """Setup that reads the program's names failed because of the program: a runtime error, not a
    sandbox error (masked in rewards, which would be worth more than a 0)."""
    prob = dataclasses.replace(problem(AssertTest("assert f(root) == 3")), setup=TREE_SETUP)
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)


def test_control_setup_failing_on_its_own_is_still_the_problems_fault(ex):
    prob = dataclasses.replace(problem(AssertTest("assert f(1, 2) == 3")), setup="import math\nx = 1 / 0")
    result = ex.run(prob, CORRECT_ADD)
    assert result.verdict is Verdict.SANDBOX_ERROR, result


def test_a_module_a_test_names_but_this_machine_lacks_is_reported_not_blamed_on_the_program():
    """`np` in a test with numpy missing: the test's error names the module (so the runner can report a
    missing library), never a NameError that reads as the program's mistake."""
    from pgrpo.sandbox.module_tests import _import_into
    from pgrpo.sandbox.runner import missing_library

    namespace: dict = {}
    _import_into(namespace, "pd", "pandas_not_here")
    with pytest.raises(ModuleNotFoundError, match="No module named 'pandas_not_here'") as raised:
        namespace["pd"].DataFrame()
    assert missing_library("No module named 'pandas'", installed=lambda name: False) is not None
    assert "pandas_not_here" in str(raised.value)
