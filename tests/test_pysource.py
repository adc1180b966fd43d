"""Text from a model or a dataset that CPython's parser cannot read is None, never an exception:
valid Python nested deeper than the parser goes raises MemoryError or RecursionError, not SyntaxError."""

from __future__ import annotations

import pytest

from pgrpo.pysource import parse
from pgrpo.rewards import format_reward

TOO_DEEP = {
    "not-chain (MemoryError)": "x = " + "not " * 10_000 + "0",
    "attribute chain (RecursionError)": "x = a" + ".b" * 10_000,
    "lambda chain": "x = " + "lambda: " * 10_000 + "0",
}
UNREADABLE = {**TOO_DEEP, "syntax error": "def f(:\n", "NUL byte": "x = 1\0"}


@pytest.mark.parametrize("source", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_unreadable_text_is_none(source):
    assert parse(source) is None


def test_readable_text_is_a_tree_and_its_warnings_stay_quiet(recwarn):
    assert parse("def f(x):\n    return '\\w' + x\n") is not None  # an invalid escape: a SyntaxWarning
    assert not recwarn.list


@pytest.mark.parametrize("source", TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_a_completion_whose_answer_is_too_deep_is_badly_formed_not_a_crash(source):
    # an answer with no fence is read as code when it parses: this one cannot be read
    assert format_reward(f"<think>plan</think><answer>{source}</answer>") == 0.0
