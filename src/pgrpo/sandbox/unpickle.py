"""Unpickling in the trusted runner: pickles test code loads are unpickled in a sandbox, never here.

Test code (BigCodeBench) loads files the program wrote, which the runner mirrors into the test's
directory, with `pickle.load`, `pd.read_pickle` or `np.load(allow_pickle=True)`. A pickle names
globals and calls them, and NumPy's and pandas' reconstructors trust the state a pickle gives them
(an object array over raw bytes, block placements past an axis: a crash or a write out of bounds),
so no allowlist of globals makes loading one here safe. Nor may the program's own process load it:
its code could answer with any value, and a pickle the test made itself would show it the expected
value. `install()` makes the C unpickler (`pickle.load`, `loads`, `Unpickler`, which pandas and NumPy
call) hand the bytes to the runner's loader, which unpickles them in a fresh process forked from a
fork server of its own, confined like a program, where no program's code ever ran; the value comes
back as plain data (`values`) and is rebuilt here; a value that cannot travel by value is refused.
The pure-Python unpickler (`pickle._Unpickler`, which joblib and pandas' pickle_compat subclass)
resolves only plain data globals here: builtins containers and scalars, collections, datetime,
Decimal, Fraction; a NumPy array in a joblib file is refused.

Limits: loading works while a run's tests run (module-mode tests); a value loses what a pickle could
attach beyond its value (a DataFrame's extra attributes); an unpickler class that subclassed the C
Unpickler before `install()` keeps its own `load`.
"""

from __future__ import annotations

import _compat_pickle
import _pickle
import contextlib
import importlib
import os
import pickle
import time
from collections.abc import Iterator
from typing import Any

# The runner's own messages (from the pool, trusted) are read with the loader of before install().
trusted_loads = _pickle.loads
MAX_PICKLE_BYTES = 8 * 1024 * 1024  # what one test may load at once
MAX_VALUE_MB = 16  # the loaded value's plain data, as the sandbox writes it

_load_in_sandbox: Any = None  # the runner's loader (bytes -> value), while a run's tests run


@contextlib.contextmanager
def loading_in(load: Any) -> Iterator[None]:
    """While this run's tests run, pickles test code loads go to `load` (a fresh sandboxed process)."""
    global _load_in_sandbox
    _load_in_sandbox = load
    try:
        yield
    finally:
        _load_in_sandbox = None


def loads(
    data: Any,
    /,
    *,
    fix_imports: bool = True,
    encoding: str = "ASCII",
    errors: str = "strict",
    buffers: Any = (),
) -> Any:
    """A pickle's value, unpickled in a fresh sandboxed process (never the program's)."""
    if isinstance(data, str):
        raise TypeError("Can't load pickle from unicode string")
    data = bytes(data)
    if _load_in_sandbox is None:
        raise pickle.UnpicklingError(
            "pickles load only while a program's tests run, in its sandbox (not in the trusted runner)"
        )
    if len(data) > MAX_PICKLE_BYTES:
        raise pickle.UnpicklingError(f"a pickle over {MAX_PICKLE_BYTES >> 20} MB is not loaded in tests")
    return _load_in_sandbox(data)


def load(
    file: Any, *, fix_imports: bool = True, encoding: str = "ASCII", errors: str = "strict", buffers: Any = ()
) -> Any:
    return loads(file.read(MAX_PICKLE_BYTES + 1))


class Unpickler:
    """`pickle.Unpickler(file).load()`, through the sandbox as `load`."""

    def __init__(self, file: Any, **_: Any):
        self._file = file

    def load(self) -> Any:
        return load(self._file)


class SandboxLoader:
    """Unpickles in fresh processes forked from a fork server of its own (started on first use),
    confined like programs, where no program's code ever runs; values come back as plain data."""

    def __init__(self, disable: tuple[str, ...] = ()):
        self.disable = disable
        self.server: Any = None

    def load(self, data: bytes, limit: float, memory_mb: int) -> Any:
        from pgrpo.sandbox import values, wire
        from pgrpo.sandbox.forkserver import ForkServer, SandboxFault, _memfd, _read_fd, _tail
        from pgrpo.sandbox.remote import VALUES_MB

        if self.server is None:
            self.server = ForkServer(self.disable)
        stdout, stderr = _memfd("unpickled"), _memfd("unpickle-errors")
        job = {
            "mode": "unpickle",
            "program": data,
            "filename": "<pickle>",
            "cpu_s": limit,
            "wall_s": limit,
            "memory_mb": memory_mb,
            "output_mb": MAX_VALUE_MB,
        }
        try:
            try:
                self.server.start(job, {"stdout": stdout, "stderr": stderr})
                report = self.server.wait_exited()
            except SandboxFault as e:
                self.close(now=True)
                raise pickle.UnpicklingError(f"the sandbox that loads pickles failed: {e}") from None
            except BaseException:  # the test's watchdog, mid-load: a fresh fork server next time
                self.close(now=True)
                raise
            if report["exit_code"] != 0 or report["killed"]:
                why = _tail(stderr).strip() or f"exit status {report['exit_code']}, {report['killed'] or ''}"
                raise pickle.UnpicklingError(f"the pickle did not load in the sandbox: {why}"[:500])
            decoder = values.Decoder(resident_limit_kb=values.resident_kb() + (VALUES_MB << 10))
            decoder.start(time.monotonic() + limit)
            try:
                return decoder.decode(wire.loads(_read_fd(stdout, MAX_VALUE_MB << 20)))
            except (wire.WireError, wire.FrameTooLarge, RecursionError) as e:
                raise pickle.UnpicklingError(f"the pickle's value could not be rebuilt here: {e}") from None
        finally:
            os.close(stdout)
            os.close(stderr)

    def close(self, now: bool = False) -> None:
        """`now`: mid-load (the test's watchdog fired): killed, not waited for."""
        if self.server is not None:
            if now:
                self.server.proc.kill()
            try:
                self.server.close()
            except OSError:
                self.server.proc.kill()
            self.server = None


_PLAIN: frozenset[tuple[str, str]] = frozenset(
    [("builtins", n) for n in "bool complex dict float frozenset int list set str tuple".split()]
    + [("collections", n) for n in ("OrderedDict", "defaultdict", "Counter", "deque")]
    + [("datetime", n) for n in ("date", "datetime", "time", "timedelta", "timezone")]
    + [
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),
    ]
)


def _latin1(text: Any, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as protocols 0-2 use it for bytes, and nothing else."""
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("a program's file may not make the trusted side run codecs but latin-1")
    return text.encode("latin1")


def find_class(module: str, name: str) -> Any:
    """The pure-Python unpickler's globals: plain data only (Python 2 names mapped as pickle does)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    if (module, name) not in _PLAIN:
        raise pickle.UnpicklingError(
            f"refused to load {module}.{name}: a program's file may not make the trusted side run "
            f"{module}.{name} (this unpickler loads plain data only; pickle.load loads the rest in "
            "the program's sandbox)"
        )
    if (module, name) == ("_codecs", "encode"):
        return _latin1
    return getattr(importlib.import_module(module), name)


def _python_find_class(self: Any, module: str, name: str) -> Any:
    return find_class(module, name)


def install() -> None:
    """Every unpickler of this process from now on: pickle's and _pickle's load, loads and
    Unpickler through the sandbox, the pure-Python `pickle._Unpickler` (and its subclasses) with
    plain globals only. Safe to call more than once."""
    for module in (pickle, _pickle):
        module.load, module.loads, module.Unpickler = load, loads, Unpickler
    pickle._Unpickler.find_class = _python_find_class


__all__ = [
    "MAX_PICKLE_BYTES",
    "SandboxLoader",
    "find_class",
    "install",
    "load",
    "loading_in",
    "loads",
    "trusted_loads",
]
