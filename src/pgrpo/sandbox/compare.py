"""Comparisons done on the trusted side: call results against JSON expectations, stdout against text.

Both sides of every comparison are objects built in the trusted process, so nothing here can be
fooled by a lying `__eq__`; the type checks below are about JSON's limits (no tuples, string keys).
The one exception is a handle to a program's object (a dict key that could not travel by value):
its `str` would be answered by the program, so a handle never takes part in a comparison.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

REL_TOL = 1e-6
ABS_TOL = 1e-9


def values_match(expected: Any, actual: Any) -> bool:
    """`expected` comes from JSON; `actual` from the candidate, rebuilt here as plain data.

    What a call test accepts (docs/formats.md says the same): an integer expectation wants a number
    equal to it under `==` (5 or 5.0 for 5, never 5.000004); only a *float* expectation has a
    tolerance (relative REL_TOL, absolute ABS_TOL), the one place it applies. JSON's `true` and `1`
    are different values: a bool expectation wants a bool, a number expectation never takes one.
    NumPy scalars count as the Python number or bool they hold (a program's `np.int64(3)` is 3).
    """
    if type(actual) not in _PLAIN and "numpy" in sys.modules:
        actual = _from_numpy(actual)
    if isinstance(expected, bool) or expected is None:
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, int):
        return type(actual) in (int, float) and actual == expected
    if isinstance(expected, float):
        if type(actual) not in (int, float):
            return False
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return math.isclose(actual, expected, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(expected, str):
        return type(actual) is str and actual == expected
    if isinstance(expected, list):  # JSON has no tuples: a tuple answer to a list expectation is fine
        return (
            type(actual) in (list, tuple)
            and len(actual) == len(expected)
            and all(values_match(e, a) for e, a in zip(expected, actual))
        )
    if isinstance(expected, dict):
        # OrderedDict, Counter and defaultdict answers arrive as themselves (built here by `wire`)
        if not isinstance(actual, dict) or len(actual) != len(expected):
            return False
        by_text = {}  # JSON object keys are always strings
        for k, v in actual.items():
            text = _key_text(k)
            if text is None:
                return False
            by_text[text] = v
        return all(k in by_text and values_match(v, by_text[k]) for k, v in expected.items())
    return False


_PLAIN = frozenset({int, float, str, bool, type(None), list, tuple, dict})
_KEY_SCALARS = frozenset({int, float, str, bool, type(None)})


def _key_text(key: Any) -> str | None:
    """A dict key as the JSON key it stands for, by exact type: None for anything else (a handle's
    `str` is the program's to answer)."""
    t = type(key)
    if t in _KEY_SCALARS:
        # as json.dumps writes a key: True -> "true", None -> "null", inf -> "Infinity"
        return key if t is str else json.dumps(key)
    if t is tuple and all(type(x) in _KEY_SCALARS for x in key):
        return str(key)
    np = sys.modules.get("numpy")
    if np is not None and issubclass(t, (np.integer, np.floating, np.bool_)):
        return _key_text(key.item())
    return None


def _from_numpy(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds, an array as nested lists; anything else
    unchanged. `value` was rebuilt here by `wire` (a genuine NumPy type): these are NumPy's own."""
    np = sys.modules["numpy"]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value.tolist()
    return value


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def outputs_match(expected: str, actual: bytes) -> bool:
    """Line by line, ignoring trailing whitespace and trailing blank lines. Undecodable bytes never match."""
    try:
        text = actual.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _lines(text) == _lines(expected)
