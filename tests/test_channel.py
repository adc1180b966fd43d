"""The value channel and the trusted comparisons: what crosses is rebuilt from plain data."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import json

import numpy as np
import pandas as pd
import pytest

from pgrpo.prompting import extract_code, program_for
from pgrpo.sandbox import values, wire
from pgrpo.sandbox.compare import outputs_match, values_match
from pgrpo.types import AssertTest, Problem, Sample

Point = collections.namedtuple("Point", "x y")


def round_trip(value):
    encoder = values.Encoder(lambda obj: ["h", 0, type(obj).__name__, False])
    return values.Decoder().decode(json.loads(wire.dumps(encoder.encode(value))))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -7,
        2**200,
        1.5,
        float("inf"),
        "text",
        b"\x00\xff",
        bytearray(b"ab"),
        [1, [2, (3,)]],
        (1, "a"),
        {"k": [1], 2: None, (1, 2): "t"},
        {1, 2},
        frozenset({"a"}),
        3 + 4j,
        range(1, 10, 2),
        decimal.Decimal("1.10"),
        fractions.Fraction(3, 7),
        datetime.date(2024, 1, 2),
        datetime.timedelta(days=2),
    ],
)
def test_plain_values_round_trip_exactly(value):
    back = round_trip(value)
    assert back == value and type(back) is type(value)


def test_namedtuple_numpy_and_pandas_round_trip():
    assert round_trip(Point(1, 2)).y == 2
    arr = np.arange(6, dtype=np.int32).reshape(2, 3)
    back = round_trip(arr)
    assert back.dtype == arr.dtype and (back == arr).all()
    assert round_trip(np.float64(2.5)) == 2.5
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=[10, 20])
    assert round_trip(df).equals(df)
    assert round_trip(df["a"]).equals(df["a"])


def test_subclasses_cross_as_their_base_value():
    class Liar(int):
        def __eq__(self, other):
            return True

    back = round_trip([Liar(3)])
    assert type(back[0]) is int and back[0] != 4


def test_unknown_objects_become_handles_and_malformed_data_is_rejected():
    encoder = values.Encoder(lambda obj: ["h", 7, type(obj).__name__, False])
    assert encoder.encode([object()]) == ["l", ["h", 7, "object", False]]
    with pytest.raises(wire.WireError):  # a decoder that knows no handles refuses them
        values.Decoder().decode(["h", 0, "object", False])
    for bad in ({"a": 1}, ["zz", 1], ["nd", "O", [1], "AA=="], ["d", 1], ["b", 5], []):
        with pytest.raises(wire.WireError):
            values.Decoder().decode(bad)
    with pytest.raises(wire.WireError):
        wire.loads(b"[" * 100000)


@pytest.mark.parametrize(
    "expected, actual, ok",
    [
        (3, 3, True),
        (3, 3.0000000001, False),  # an integer expectation is exact (issue 11)
        (3, 3.0, True),
        (3, True, False),
        (True, 1, False),
        (None, None, True),
        (0.1 + 0.2, 0.3, True),
        (1.0, 1.1, False),
        ([1, 2], (1, 2), True),
        ([1, 2], [1, 2, 3], False),
        ({"1": 2}, {1: 2}, True),
        ("a", "a ", False),
        (float("nan"), float("nan"), True),
    ],
)
def test_values_match(expected, actual, ok):
    assert values_match(expected, actual) is ok


@pytest.mark.parametrize(
    "expected, actual, ok",
    [
        ("3\n", b"3\n", True),
        ("3\n", b"3", True),
        ("3\n", b"3   \n\n", True),
        ("1\n2\n", b"1\n", False),
        ("1\n", b"1\n2\n", False),
        ("1\n", b"", False),
        ("", b"", True),
        ("\xff", b"\xff\xfe", False),
    ],
)
def test_outputs_match(expected, actual, ok):
    assert outputs_match(expected, actual) is ok


def test_extract_code_prefers_answer_then_last_fence():
    assert extract_code("<think>x</think><answer>```python\nA = 1\n```</answer>").strip() == "A = 1"
    assert extract_code("```python\nA = 1\n```\ntext\n```\nB = 2\n```").strip() == "B = 2"
    assert extract_code("```js\nno\n```") == "```js\nno\n```"
    assert extract_code("plain = 3") == "plain = 3"


def test_program_for_continues_a_code_prompt():
    problem = Problem(
        id="p", prompt='def f(x):\n    """doc"""\n', entry_point="f", tests=(AssertTest("assert f(1)"),)
    )
    assert program_for(problem, Sample(id="p", completion="    return x\n")).endswith("    return x\n")
    assert (
        program_for(problem, Sample(id="p", completion="def f(x):\n    return 1\n"))
        == "def f(x):\n    return 1\n"
    )
    assert program_for(problem, Sample(id="p", solution="S")) == "S"


def test_decoding_stops_at_the_resident_memory_bound():
    """A few bytes of JSON can stand for hundreds of bytes of objects (["dq", null] is a deque): the
    trusted side's decoder stops at its resident memory bound instead of filling the host."""
    from pgrpo.sandbox.wire import FrameTooLarge

    deques = ["l", *[["dq", None]] * 300_000]  # ~3 MB of JSON, ~190 MB of deques
    with pytest.raises(FrameTooLarge, match="resident"):
        values.Decoder(resident_limit_kb=values.resident_kb() + 50 * 1024).decode(deques)
    assert len(values.Decoder().decode(["l", *[["dq", None]] * 1000])) == 1000  # no bound: as before
