"""Control-flow exceptions from the candidate: they must arrive as plain errors, never as control flow.

A test written as `all(map(f, ...))`, a `for` over `zip(..., map(f, ...))` or `next(map(f, ...), d)`
stops quietly at a StopIteration raised inside `map`: if the candidate's StopIteration crossed the
channel as itself, a program that raises it would pass every such test.
"""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

SHAPES = {
    "all_map": "assert all(map(lambda x: f(x, x) == 2 * x, [1, 2, 3]))",
    "for_zip_map": "for want, got in zip([2, 4], map(lambda x: f(x, x), [1, 2])):\n    assert want == got",
    "next_default": "assert next(map(lambda x: f(x, x), [1]), 2) == 2",
    "list_map": "assert list(map(lambda x: f(x, x), [1, 2])) in ([], [2, 4])",
    "sum_map": "assert sum(map(lambda x: f(x, x), [1, 2])) in (0, 6)",
    "dict_zip": "assert dict(zip('ab', map(lambda x: f(x, x), [1, 2]))) in ({}, {'a': 2, 'b': 4})",
}
RAISES = ["StopIteration", "class Stop(StopIteration):\n    pass\nStop"]
ASYNC_FOR = code(
    """
    import asyncio
    class Numbers:
        def __init__(self):
            self.i = 0
        def __aiter__(self):
            return self
        async def __anext__(self):
            self.i += 1
            if self.i > 2:
                raise StopAsyncIteration
            return f(self.i, self.i)
    async def collect():
        return [x async for x in Numbers()]
    assert asyncio.run(collect()) in ([], [2, 4])
    """
)


def raiser(exc: str) -> str:
    *defs, name = exc.split("\n")
    return "\n".join(defs) + f"\ndef f(a, b):\n    raise {name}\n"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("exc", RAISES, ids=["stop", "stop_subclass"])
def test_candidate_stop_iteration_is_not_control_flow(ex, shape, exc):
    result = run(ex, problem(AssertTest(SHAPES[shape])), raiser(exc))
    assert_not_passed(result, Verdict.RUNTIME_ERROR)


def test_candidate_stop_async_iteration_does_not_end_an_async_for(ex):
    result = run(ex, problem(AssertTest(ASYNC_FOR)), raiser("StopAsyncIteration"))
    assert_not_passed(result, Verdict.RUNTIME_ERROR)


def test_control_candidate_iterator_still_ends_where_it_says(ex):
    """Control: iteration the candidate drives itself still ends at its own StopIteration."""
    program = code(
        """
        class It:
            def __iter__(self):
                return self
            def __next__(self):
                raise StopIteration
        def f(a, b):
            return It()
        """
    )
    prob = problem(AssertTest("assert next(map(lambda x: f(x, x), [1]), 2) == 2"))
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.FAILED)


@pytest.mark.parametrize("exc", ["GeneratorExit", "KeyboardInterrupt", "SystemExit(0)"])
def test_control_candidate_base_exceptions_are_plain_errors(ex, exc):
    """Control: these were plain errors before this family's fix too; kept as its regression check."""
    result = run(ex, problem(AssertTest(SHAPES["all_map"]), AssertTest(SHAPES["for_zip_map"])), raiser(exc))
    assert_not_passed(result, Verdict.RUNTIME_ERROR)


def test_control_tests_can_still_catch_the_candidates_exception(ex):
    """Control: a plain error is still an `Exception`: a test that expects the program to raise sees it."""
    prob = problem(
        AssertTest("try:\n    f(1, 2)\nexcept Exception:\n    pass\nelse:\n    raise AssertionError")
    )
    result = run(ex, prob, raiser("StopIteration"))
    assert result.passed, result
