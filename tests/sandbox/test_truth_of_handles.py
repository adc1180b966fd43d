"""A program's object calling itself true where a test's `all`/`any` expected real answers.

`assert handle` is refused already; `all(...)` and `any(...)` take the truth of each item inside a
builtin, where no assert sees it. Test code gets versions that refuse a sandboxed object's truth.
Not covered (runner.py's docstring says so): truth asked by `not`, `bool()` or an `if` in test code,
which `while node:` over a program's linked list needs.
"""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

TRUTHY = code(
    """
    class Yes:
        def __bool__(self):
            return True
        def __eq__(self, other):
            return True
    def f(*args):
        return Yes()
    """
)


@pytest.mark.parametrize(
    "test",
    [
        "assert all(f(x) for x in [1, 2, 3])",
        "assert all([f(1), f(2)])",
        "assert all(map(f, [1, 2]))",
        "assert any([f(1)])",
        "ok = all(f(x) for x in [1, 2])\nassert ok",
    ],
    ids=["all_generator", "all_list", "all_map", "any_list", "all_assigned"],
)
def test_truthy_object_in_all_and_any(ex, test):
    result = run(ex, problem(AssertTest(test)), TRUTHY)
    assert_not_passed(result, Verdict.FAILED)


def test_control_all_and_any_on_values_and_traversals_on_handles(ex):
    """Control: real values keep Python's semantics; `while node:` over the program's objects works."""
    program = code(
        """
        class Node:
            def __init__(self, value, next=None):
                self.value, self.next = value, next
        def f(n):
            head = None
            for v in range(n, 0, -1):
                head = Node(v, head)
            return head
        """
    )
    test = code(
        """
        def values(node):
            out = []
            while node:
                out.append(node.value)
                node = node.next
            return out
        assert values(f(3)) == [1, 2, 3]
        assert all(v > 0 for v in values(f(3))) and not any([0, None, ""]) and all([])
        assert any(map(bool, [0, 2]))
        """
    )
    result = run(ex, problem(AssertTest(test)), program)
    assert result.passed, result
