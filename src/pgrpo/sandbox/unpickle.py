"""Unpickling in the trusted runner: plain data only, never a program's code.

Test code (BigCodeBench) loads files the program wrote, which the runner mirrors into the test's
directory, with `pickle.load`, `pd.read_pickle`, `np.load(allow_pickle=True)` or joblib. A pickle
names globals and calls them, so such a file could run anything as the runner's user on the host.
`install()` makes every unpickler of this process resolve only the exact (module, name) pairs in
`ALLOWED`: builtins containers and scalars, collections, datetime, Decimal, Fraction, and the
classes and reconstructors that the installed NumPy and pandas write into pickles of their arrays,
scalars, dtypes, Series, DataFrames, indexes and timestamps (found by pickling them, see
tests/sandbox/test_data_holes.py). Never a whole module: numpy and pandas also hold functions that
load libraries or evaluate text. A refused global raises `pickle.UnpicklingError`, so the test
fails as a test error; a correct program writes plain data.

Limits: an unpickler class that subclassed the C `pickle.Unpickler` before `install()` and defines
its own `find_class` keeps it; an allowed class still runs its own constructor and `__setstate__`
on the pickle's (allowed) values, so the consistency of what it builds is NumPy's, pandas' and
pyarrow's to check (pyarrow arrays are validated here, since pyarrow does not check them).
"""

from __future__ import annotations

import _compat_pickle
import _pickle
import importlib
import io
import pickle
from typing import Any

# The runner's own messages (from the pool, trusted) are read with the loader of before install().
trusted_loads = _pickle.loads

_BUILTINS = "bool bytearray bytes complex dict float frozenset int list object range set slice str tuple"
_OFFSETS = (
    "BDay BMonthBegin BMonthEnd BQuarterBegin BQuarterEnd BYearBegin BYearEnd BusinessDay "
    "BusinessHour BusinessMonthBegin BusinessMonthEnd Day Easter Hour LastWeekOfMonth Micro Milli "
    "Minute MonthBegin MonthEnd Nano QuarterBegin QuarterEnd Second SemiMonthBegin SemiMonthEnd Week "
    "WeekOfMonth YearBegin YearEnd"
)
_PANDAS = (
    "DataFrame Series Index RangeIndex MultiIndex DatetimeIndex TimedeltaIndex PeriodIndex "
    "CategoricalIndex IntervalIndex Categorical CategoricalDtype DatetimeTZDtype PeriodDtype "
    "IntervalDtype StringDtype BooleanDtype Int8Dtype Int16Dtype Int32Dtype Int64Dtype UInt8Dtype "
    "UInt16Dtype UInt32Dtype UInt64Dtype Float32Dtype Float64Dtype NA Timestamp Timedelta Period "
    "Interval"
)
_PANDAS_ARRAYS = (
    "ArrowStringArray BooleanArray DatetimeArray FloatingArray IntegerArray IntervalArray "
    "NumpyExtensionArray PeriodArray StringArray TimedeltaArray"
)

ALLOWED: frozenset[tuple[str, str]] = frozenset(
    [("builtins", name) for name in _BUILTINS.split()]
    + [("collections", name) for name in ("OrderedDict", "defaultdict", "Counter", "deque")]
    + [("datetime", name) for name in ("date", "datetime", "time", "timedelta", "timezone")]
    + [
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
        ("copyreg", "_reconstructor"),  # protocols 0 and 1: objects of the allowed classes
        ("_codecs", "encode"),  # protocols 0-2: bytes as latin-1 text (see _latin1)
        ("builtins", "getattr"),  # only for ZoneInfo._unpickle (see _getattr)
        ("zoneinfo", "ZoneInfo"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),  # protocol 5's out-of-band-capable arrays
        ("numpy.core.multiarray", "_reconstruct"),  # the same, as NumPy 1 wrote them
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
    ]
    + [("pandas", name) for name in _PANDAS.split()]
    + [("pandas.arrays", name) for name in _PANDAS_ARRAYS.split()]
    + [("pandas._libs.tslibs.offsets", name) for name in _OFFSETS.split()]
    + [
        ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas._libs.tslibs.nattype", "_nat_unpickle"),
        ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
        ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"),
        ("pandas.core.indexes.interval", "_new_IntervalIndex"),
        ("pandas.core.indexes.period", "_new_PeriodIndex"),
        ("pandas.core.indexes.timedeltas", "_new_TimedeltaIndex"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("pandas.core.internals.managers", "SingleBlockManager"),
        ("pyarrow.lib", "type_for_alias"),  # pandas' default string dtype is backed by pyarrow
        ("pyarrow.lib", "py_buffer"),
        ("pyarrow.lib", "_restore_array"),  # validated (see _restore_array)
    ]
)


def _getattr(obj: Any, name: str) -> Any:
    import zoneinfo

    if obj is zoneinfo.ZoneInfo and name == "_unpickle":  # how a ZoneInfo pickles itself
        return zoneinfo.ZoneInfo._unpickle
    raise pickle.UnpicklingError(
        f"a program's file may not make the trusted side look up attribute {name!r} of {obj!r:.100}"
    )


def _latin1(text: Any, encoding: str = "utf-8") -> bytes:
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(
            "a program's file may not make the trusted side run codecs other than latin-1"
        )
    return text.encode("latin1")


def _restore_array(data: Any) -> Any:
    """pyarrow rebuilds an array from the pickle's buffers and offsets without checking them."""
    from pyarrow import lib

    array = lib._restore_array(data)
    try:
        array.validate(full=True)
    except lib.ArrowException as e:
        raise pickle.UnpicklingError(f"a program's file holds an inconsistent arrow array: {e}") from None
    return array


_REPLACED = {
    ("builtins", "getattr"): _getattr,
    ("_codecs", "encode"): _latin1,
    ("pyarrow.lib", "_restore_array"): _restore_array,
}


def find_class(module: str, name: str) -> Any:
    """The global a pickle names, when it is in ALLOWED; Python 2 names are mapped as pickle does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    if (module, name) not in ALLOWED:
        raise pickle.UnpicklingError(
            f"refused to load {module}.{name}: a program's file may not make the trusted side run "
            f"{module}.{name} (only plain data, NumPy and pandas values can be unpickled here)"
        )
    if (module, name) in _REPLACED:
        return _REPLACED[(module, name)]
    return getattr(importlib.import_module(module), name)


class Unpickler(_pickle.Unpickler):
    """The C unpickler, resolving globals through `find_class` above."""

    def find_class(self, module: str, name: str) -> Any:
        return find_class(module, name)


def load(
    file: Any, *, fix_imports: bool = True, encoding: str = "ASCII", errors: str = "strict", buffers: Any = ()
) -> Any:
    return Unpickler(file, fix_imports=fix_imports, encoding=encoding, errors=errors, buffers=buffers).load()


def loads(
    data: Any,
    /,
    *,
    fix_imports: bool = True,
    encoding: str = "ASCII",
    errors: str = "strict",
    buffers: Any = (),
) -> Any:
    if isinstance(data, str):
        raise TypeError("Can't load pickle from unicode string")
    return load(io.BytesIO(data), fix_imports=fix_imports, encoding=encoding, errors=errors, buffers=buffers)


def _python_find_class(self: Any, module: str, name: str) -> Any:
    return find_class(module, name)


def install() -> None:
    """Every unpickler of this process from now on: pickle's and _pickle's load, loads and
    Unpickler, and the pure-Python `pickle._Unpickler` that pandas' pickle_compat and joblib
    subclass. Safe to call more than once."""
    for module in (pickle, _pickle):
        module.load, module.loads, module.Unpickler = load, loads, Unpickler
    pickle._Unpickler.find_class = _python_find_class
