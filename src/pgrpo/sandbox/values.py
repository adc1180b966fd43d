"""Values on the channel: tagged JSON that each side rebuilds with its own constructors.

Builtins, numpy and pandas values travel *by value* and are rebuilt from scratch on the receiving
side, so an object from the sandbox can never bring its own `__eq__` into the trusted process.
Anything else travels as a handle (an id into the sending side's table); the trusted side wraps
handles in `Remote` proxies that refuse comparisons.

Per type, where equality or behaviour depends on more than contents: OrderedDict, Counter,
defaultdict (factory: a built-in type by name, else a handle), deque and namedtuples are rebuilt as
themselves; subclasses of builtins, NumPy and pandas types (a program's DataFrame subclass too) as
their base type, from their values (pd.NA and pd.NaT as themselves, so nullable Series round-trip);
a few built-in types (`int`, `str`, ...) travel by name.
Decoding is bounded: depth, namedtuple classes and their fields, hash collisions and the deadline
(checked every DEADLINE_CHECK_EVERY decoded items, where a field name, a pandas entry and a pandas
constructor count too).
"""

from __future__ import annotations

import base64
import collections
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from pgrpo.sandbox.wire import DeadlinePassed, FrameTooLarge, WireError

MAX_RANGE_BY_VALUE = 1_000_000  # larger ranges stay in the sandbox: iterating them is paced by requests
MAX_NAMEDTUPLE_TYPES = 64  # distinct namedtuple classes one decoder will build
MAX_NAMEDTUPLE_FIELDS = 1_000  # a class of 600,000 fields took seconds to build, in one call
MAX_DEPTH = 200
# Equal hashes among the keys of a set or dict: n of them cost n² comparisons to insert (a few
# thousand forged ints held the trusted side for seconds). One decoded value may spend this many,
# counted as (keys - distinct hashes)² per set or dict: a set of 64 such keys, or thousands of sets
# holding one pair like -1 and -2.
MAX_HASH_COLLISION_COST = 64 * 64
DEADLINE_CHECK_EVERY = 20_000  # decoded items between two looks at the clock
PANDAS_BUILD_COST = 100  # one Series or Index built (~80 µs), counted as this many decoded items

# Built-in types that travel by name (a test passing `int` to a program's `isinstance`, a
# defaultdict's factory); the receiving side uses its own.
_TYPES: dict[str, type] = {
    t.__name__: t for t in (bool, bytearray, bytes, complex, dict, float, frozenset, int, list, object)
}
_TYPES.update({t.__name__: t for t in (range, set, str, tuple)})
_TYPE_NAMES = {t: name for name, t in _TYPES.items()}
_FUNCTION = type(lambda: None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise WireError("expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as e:
        raise WireError(f"bad base64: {e}") from None


class Encoder:
    """Turns a value into tagged JSON; `on_other(obj) -> tag list` handles what is not plain data."""

    def __init__(self, on_other: Callable[[Any], list]):
        self.on_other = on_other

    def encode(self, obj: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise WireError("value nested too deeply")
        # bool before int, and exact-type checks first: subclasses are rebuilt as their base value.
        if obj is None or obj is True or obj is False:
            return obj
        t = type(obj)
        if t is str:
            return obj
        if t is int or t is float:
            return obj
        if t is _FUNCTION:  # a function is never a value (and the common export): no checks below apply
            return self.on_other(obj)
        if isinstance(obj, bool):
            return bool(obj)
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj)
        if isinstance(obj, str):
            return str(obj)
        d = depth + 1
        if isinstance(obj, list):
            return ["l", *[self.encode(x, d) for x in list.__iter__(obj)]]
        if isinstance(obj, tuple):
            fields = getattr(type(obj), "_fields", None)
            if isinstance(fields, tuple) and all(type(f) is str for f in fields):  # a namedtuple
                return [
                    "nt",
                    type(obj).__name__,
                    list(fields),
                    *[self.encode(x, d) for x in tuple.__iter__(obj)],
                ]
            return ["t", *[self.encode(x, d) for x in tuple.__iter__(obj)]]
        if isinstance(obj, dict):
            return self._encode_dict(obj, d)
        if isinstance(obj, (set, frozenset)):
            return ["fs" if isinstance(obj, frozenset) else "s", *[self.encode(x, d) for x in obj]]
        if isinstance(obj, (bytes, bytearray)):
            return ["ba" if isinstance(obj, bytearray) else "b", _b64(bytes(obj))]
        if isinstance(obj, complex):
            return ["c", float(obj.real), float(obj.imag)]
        if isinstance(obj, range) and len(obj) <= MAX_RANGE_BY_VALUE:
            return ["r", obj.start, obj.stop, obj.step]
        if t is type and obj in _TYPE_NAMES:
            return ["ty", _TYPE_NAMES[obj]]
        if isinstance(obj, collections.deque):
            return ["dq", obj.maxlen, *[self.encode(x, d) for x in collections.deque.__iter__(obj)]]
        # Modules a value's class comes from are already imported; importing them here would
        # make the fork server bigger for every program that never uses them.
        decimal, fractions, dt = (sys.modules.get(m) for m in ("decimal", "fractions", "datetime"))
        if decimal is not None and isinstance(obj, decimal.Decimal):
            return ["dec", str(obj)]
        if fractions is not None and isinstance(obj, fractions.Fraction):
            return ["frac", int(obj.numerator), int(obj.denominator)]
        if dt is not None and isinstance(obj, (dt.datetime, dt.date, dt.time, dt.timedelta)):
            return self._encode_datetime(obj, dt)
        # By isinstance, not by the class's module: a program's subclass of DataFrame or ndarray is
        # rebuilt as the base type by value, so its own `equals` or `__eq__` never reaches a test.
        if "numpy" in sys.modules:
            encoded = self._encode_numpy(obj, d)
            if encoded is not None:
                return encoded
        if "pandas" in sys.modules:
            encoded = self._encode_pandas(obj, d)
            if encoded is not None:
                return encoded
        return self.on_other(obj)

    def _encode_dict(self, obj: dict, depth: int) -> list:
        """Plain dicts and the collections whose behaviour in a test depends on their type:
        OrderedDict (order-sensitive equality), Counter (`most_common`, missing keys count 0) and
        defaultdict (its factory: a built-in type by name, anything else a handle)."""
        items: list = []
        for k, v in dict.items(obj):
            items.append(self.encode(k, depth))
            items.append(self.encode(v, depth))
        if type(obj) is dict:
            return ["d", *items]
        if isinstance(obj, collections.Counter):
            return ["ctr", *items]
        if isinstance(obj, collections.OrderedDict):
            return ["od", *items]
        if isinstance(obj, collections.defaultdict):
            return ["dd", self.encode(obj.default_factory, depth), *items]
        return ["d", *items]

    def _encode_datetime(self, obj: Any, _dt: Any) -> list:
        if isinstance(obj, _dt.timedelta):
            return ["td", obj.days, obj.seconds, obj.microseconds]
        if obj.__class__.__module__.startswith("pandas"):  # pd.Timestamp is a datetime subclass
            return ["pd.ts", obj.isoformat()]
        kind = "dt" if isinstance(obj, _dt.datetime) else "date" if isinstance(obj, _dt.date) else "time"
        return [kind, obj.isoformat()]

    def _encode_numpy(self, obj: Any, depth: int) -> list | None:
        np = sys.modules["numpy"]
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind in "biufcSU" and not obj.dtype.fields:
                arr = np.ascontiguousarray(obj)
                return ["nd", arr.dtype.str, list(arr.shape), _b64(arr.tobytes())]
            if obj.dtype.kind == "O":
                return ["ndo", list(obj.shape), [self.encode(x, depth) for x in obj.ravel().tolist()]]
            return None
        if isinstance(obj, np.generic) and obj.dtype.kind in "biufcSU":
            return ["np", obj.dtype.str, _b64(obj.tobytes())]
        return None

    def _encode_pandas(self, obj: Any, depth: int) -> list | None:
        pd = sys.modules["pandas"]
        if isinstance(obj, pd.DataFrame):
            columns = [self._encode_series(obj.iloc[:, i], depth) for i in range(obj.shape[1])]
            return [
                "pd.df",
                self.encode(list(obj.columns), depth),
                self._encode_index(obj.index, depth),
                columns,
            ]
        if isinstance(obj, pd.Series):
            return ["pd.s", self._encode_series(obj, depth), self._encode_index(obj.index, depth)]
        if isinstance(obj, pd.Index):
            return ["pd.i", self._encode_index(obj, depth)]
        if obj is pd.NaT:
            return ["pd.nat"]
        if obj is pd.NA:  # the missing value of nullable dtypes ("Int64", "boolean", "string")
            return ["pd.na"]
        if isinstance(obj, pd.Timestamp):
            return ["pd.ts", obj.isoformat()]
        return None

    def _encode_series(self, s: Any, depth: int) -> list:
        return [self.encode(s.name, depth), str(s.dtype), [self.encode(x, depth) for x in s.tolist()]]

    def _encode_index(self, index: Any, depth: int) -> list:
        return [
            self.encode(index.name, depth),
            str(index.dtype),
            [self.encode(x, depth) for x in index.tolist()],
        ]


def resident_kb() -> int:
    """This process's resident memory, in KB."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") >> 10)


class Decoder:
    """Rebuilds values from tagged JSON using only constructors of the receiving side."""

    def __init__(self, on_tag: Callable[[list], Any] | None = None, resident_limit_kb: int | None = None):
        """`resident_limit_kb`: the trusted side's bound on this process's resident memory while it
        decodes (a few bytes of JSON can stand for hundreds of bytes of objects: ["dq",null] is a deque)."""
        self.on_tag = on_tag  # handles/callbacks: tags this codec does not know itself
        # Built here for this decoder only: a module-wide cache would keep a run's classes for good.
        self.namedtuple_classes: dict[tuple, type] = {}
        self.deadline: float | None = None  # decoding a value from the sandbox stops here
        self.resident_limit_kb = resident_limit_kb
        self.collisions = 0
        self._until_check = DEADLINE_CHECK_EVERY

    def start(self, deadline: float | None) -> None:
        """Before decoding one value from the other side: its deadline and its own budgets."""
        self.deadline, self.collisions = deadline, 0

    def _spend(self, items: int) -> None:
        """Count work that is not a tagged container of its own (field names, pandas entries)."""
        self._until_check -= items
        if self._until_check < 0:
            self._check_deadline()

    def _check_deadline(self) -> None:
        """Every DEADLINE_CHECK_EVERY decoded items: the deadline, and the resident memory bound."""
        self._until_check = DEADLINE_CHECK_EVERY
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlinePassed("deadline passed while decoding a value")
        if self.resident_limit_kb is not None and resident_kb() > self.resident_limit_kb:
            raise FrameTooLarge(
                f"the value would take the trusted side past {self.resident_limit_kb >> 10} MB resident"
            )

    def _distinct(self, keys: list) -> list:
        """Keys about to fill a set or a dict, refused when too many share a hash (MAX_HASH_COLLISION_COST)."""
        if len(keys) > 8:
            self.collisions += (len(keys) - len(set(map(hash, keys)))) ** 2
            if self.collisions > MAX_HASH_COLLISION_COST:
                raise WireError("too many values with equal hashes in sets or dict keys")
        return keys

    def decode(self, data: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise WireError("value nested too deeply")
        if data is None or isinstance(data, (bool, int, float, str)):
            return data
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            raise WireError(f"malformed value of type {type(data).__name__}")
        self._until_check -= len(data)  # a container and its items, counted once at its start
        if self._until_check < 0:
            self._check_deadline()
        tag, rest, d = data[0], data[1:], depth + 1
        try:
            if tag == "l":
                return [self.decode(x, d) for x in rest]
            if tag == "t":
                return tuple(self.decode(x, d) for x in rest)
            if tag == "nt":
                return self._namedtuple(str(rest[0]), rest[1])(*[self.decode(x, d) for x in rest[2:]])
            if tag in ("d", "od", "ctr"):
                return self._decode_dict(tag, rest, d)
            if tag == "dd":
                factory = self.decode(rest[0], d)
                if factory is not None and not callable(factory):
                    raise WireError("defaultdict factory is not callable")
                return collections.defaultdict(factory, self._decode_dict("d", rest[1:], d))
            if tag == "ty":
                if rest[0] not in _TYPES:
                    raise WireError("unknown built-in type")
                return _TYPES[rest[0]]
            if tag == "dq":
                maxlen = rest[0]
                if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
                    raise WireError("malformed deque")
                return collections.deque([self.decode(x, d) for x in rest[1:]], maxlen)
            if tag == "s":
                return set(self._distinct([self.decode(x, d) for x in rest]))
            if tag == "fs":
                return frozenset(self._distinct([self.decode(x, d) for x in rest]))
            if tag == "b":
                return _unb64(rest[0])
            if tag == "ba":
                return bytearray(_unb64(rest[0]))
            if tag == "c":
                return complex(float(rest[0]), float(rest[1]))
            if tag == "r":
                r = range(int(rest[0]), int(rest[1]), int(rest[2]))
                if len(r) > MAX_RANGE_BY_VALUE:
                    raise WireError("range too long to travel by value")
                return r
            if tag in ("dec", "frac", "td", "dt", "date", "time"):
                return _decode_stdlib(tag, rest)
            if tag in ("nd", "ndo", "np"):
                return self._decode_numpy(tag, rest, d)
            if tag.startswith("pd."):
                return self._decode_pandas(tag, rest, d)
        except WireError:
            raise
        except (TypeError, ValueError, IndexError, KeyError, OverflowError, ArithmeticError) as e:
            raise WireError(f"malformed '{tag}' value: {e}") from None
        except Exception as e:
            # numpy's and pandas' constructors raise their own kinds on data they refuse (pandas'
            # InvalidIndexError, an ImportError for a dtype backed by a missing library): the
            # value did not decode. Anything else raised here is a bug of ours and stays visible.
            if tag in ("nd", "ndo", "np") or tag.startswith("pd."):
                raise WireError(f"malformed '{tag}' value: {type(e).__name__}: {e}") from None
            raise
        if self.on_tag is not None:
            return self.on_tag(data)
        raise WireError(f"unknown tag {tag!r}")

    def _namedtuple(self, name: str, fields: Any) -> type:
        if not isinstance(fields, list) or len(fields) > MAX_NAMEDTUPLE_FIELDS:
            raise WireError("malformed namedtuple, or more fields than MAX_NAMEDTUPLE_FIELDS")
        self._spend(len(fields))
        key = (name, tuple(str(f) for f in fields))
        cls = self.namedtuple_classes.get(key)
        if cls is None:
            if len(self.namedtuple_classes) >= MAX_NAMEDTUPLE_TYPES:
                raise WireError("too many distinct namedtuple types")
            cls = self.namedtuple_classes[key] = _namedtuple(*key)
        return cls

    def _decode_dict(self, tag: str, rest: list, depth: int) -> dict:
        if len(rest) % 2:
            raise WireError("odd dict payload")
        decode = self.decode
        pairs = [(decode(rest[i], depth), decode(rest[i + 1], depth)) for i in range(0, len(rest), 2)]
        self._distinct([k for k, _ in pairs])
        if tag == "d":
            return dict(pairs)
        cls = collections.OrderedDict if tag == "od" else collections.Counter
        out = cls()
        for k, v in pairs:
            out[k] = v
        return out

    def _decode_numpy(self, tag: str, rest: list, depth: int) -> Any:
        import numpy as np

        if tag == "np":
            dtype = np.dtype(str(rest[0]))
            if dtype.kind not in "biufcSU":
                raise WireError("unsupported numpy scalar dtype")
            return np.frombuffer(_unb64(rest[1]), dtype=dtype)[0]
        if tag == "ndo":
            shape = tuple(int(x) for x in rest[0])
            self._spend(len(rest[1]))
            items = [self.decode(x, depth) for x in rest[1]]
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            return arr.reshape(shape)
        dtype = np.dtype(str(rest[0]))
        if dtype.kind not in "biufcSU" or dtype.fields:
            raise WireError("unsupported numpy dtype")
        shape = tuple(int(x) for x in rest[1])
        return np.frombuffer(_unb64(rest[2]), dtype=dtype).reshape(shape).copy()

    def _decode_pandas(self, tag: str, rest: list, depth: int) -> Any:
        import pandas as pd

        if tag == "pd.nat":
            return pd.NaT
        if tag == "pd.na":
            return pd.NA
        if tag == "pd.ts":
            return pd.Timestamp(str(rest[0]))
        if tag == "pd.i":
            return self._index(rest[0], depth)
        if tag == "pd.s":
            return self._series(rest[0], self._index(rest[1], depth), depth)
        if tag == "pd.df":
            columns = self.decode(rest[0], depth)
            index = self._index(rest[1], depth)
            series = [self._series(c, index, depth) for c in rest[2]]
            if not isinstance(columns, list) or len(columns) != len(series):
                raise WireError("malformed DataFrame")
            frame = pd.concat(series, axis=1) if series else pd.DataFrame(index=index)
            frame.columns = pd.Index(columns)
            return frame
        raise WireError(f"unknown tag {tag!r}")

    def _series(self, data: list, index: Any, depth: int) -> Any:
        import pandas as pd

        self._spend(len(data[2]) + PANDAS_BUILD_COST)
        name, dtype, values = (
            self.decode(data[0], depth),
            str(data[1]),
            [self.decode(x, depth) for x in data[2]],
        )
        return pd.Series(values, index=index, name=name, dtype=_safe_dtype(dtype))

    def _index(self, data: list, depth: int) -> Any:
        import pandas as pd

        self._spend(len(data[2]) + PANDAS_BUILD_COST)
        name, dtype, values = (
            self.decode(data[0], depth),
            str(data[1]),
            [self.decode(x, depth) for x in data[2]],
        )
        return pd.Index(values, name=name, dtype=_safe_dtype(dtype))


def _decode_stdlib(tag: str, rest: list) -> Any:
    """Decimal, Fraction and datetime values, importing their modules only when one arrives."""
    if tag == "dec":
        import decimal

        return decimal.Decimal(str(rest[0]))
    if tag == "frac":
        import fractions

        return fractions.Fraction(int(rest[0]), int(rest[1]))
    import datetime

    if tag == "td":
        return datetime.timedelta(days=int(rest[0]), seconds=int(rest[1]), microseconds=int(rest[2]))
    cls = {"dt": datetime.datetime, "date": datetime.date, "time": datetime.time}[tag]
    return cls.fromisoformat(str(rest[0]))


def _namedtuple(name: str, fields: tuple[str, ...]) -> type:
    """A namedtuple class made here from the name and field names alone."""
    if not name.isidentifier() or not all(f.isidentifier() and not f.startswith("_") for f in fields):
        raise WireError("malformed namedtuple")
    return collections.namedtuple(name, fields)


def _safe_dtype(name: str) -> str | None:
    """Only dtype names pandas understands without importing or evaluating anything else."""
    allowed_prefixes = (
        "int",
        "uint",
        "float",
        "bool",
        "object",
        "datetime64",
        "timedelta64",
        "complex",
        "string",
        "category",
        "Int",
        "UInt",
        "Float",
        "boolean",
    )
    if (
        name.startswith(allowed_prefixes)
        and name.replace("[", "")
        .replace("]", "")
        .replace(",", "")
        .replace(" ", "")
        .replace("_", "")
        .isalnum()
    ):
        return None if name.startswith("category") else name
    return None
