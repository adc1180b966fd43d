"""Where commands write: checked before the work starts, written so that an interruption loses nothing.

`check_outputs` runs before any work: an output that is also an input (or another output), a file
output that is a directory (or the reverse), or a place that cannot be written is a `UsageError`
naming the flag and the path; a missing parent directory is created, as `mkdir -p` would. Writes go to
a temporary name beside the target and are renamed into place when complete (`atomic_file`,
`atomic_dir`): the final name never holds half a file, and an interrupted write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from pgrpo.options import UsageError


@dataclass(frozen=True)
class Output:
    """One output of a command: the flag that names it, its path, and whether it is a directory."""

    flag: str
    path: str | os.PathLike | None
    directory: bool = False


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _writable_dir(path: str, flag: str, shown: str) -> None:
    """Create `path` (with parents) if missing, and prove it takes a file."""
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{flag} {shown}: {path} exists and is not a directory") from None
    except OSError as e:
        raise UsageError(f"{flag} {shown}: cannot create directory {path} ({e.strerror})") from None
    if not os.path.isdir(path):
        raise UsageError(f"{flag} {shown}: {path} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".pgrpo-write-test-"):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {shown}: cannot write in {path} ({e.strerror})") from None


def check_outputs(outputs: list[Output], inputs: dict[str, object] | None = None) -> None:
    """Refuse outputs that would destroy an input or each other, or that cannot be written; create
    missing parent directories. `inputs` maps a flag to a path or a list of paths (dataset specs such
    as `mbpp:PATH` are compared by their path part)."""
    given = [o for o in outputs if o.path not in (None, "")]
    input_paths = []
    for flag, value in (inputs or {}).items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item:
                text = os.fspath(item)
                input_paths.append((flag, text.partition(":")[2] if _is_spec(text) else text))
    for i, out in enumerate(given):
        path = os.fspath(out.path)
        for flag, source in input_paths:
            if os.path.exists(source) and _same(path, source):
                raise UsageError(
                    f"{out.flag} {path} is also the input {flag} {source}: writing it would destroy the "
                    "input; choose another output path"
                )
        for other in given[:i]:
            if _same(path, os.fspath(other.path)):
                raise UsageError(
                    f"{out.flag} and {other.flag} are the same path {path}: give two different ones"
                )
        if out.directory:
            if os.path.exists(path) and not os.path.isdir(path):
                raise UsageError(f"{out.flag} {path}: exists and is a file, not a directory")
            _writable_dir(path, out.flag, path)
        else:
            if os.path.isdir(path):
                raise UsageError(f"{out.flag} {path}: is a directory; give a file path")
            _writable_dir(os.path.dirname(os.path.abspath(path)), out.flag, path)


def _is_spec(text: str) -> bool:
    """`mbpp:PATH`-style dataset specs (a name, a colon, a path), not `C:\\...` or a plain path."""
    name, sep, _ = text.partition(":")
    return bool(sep) and name.isidentifier() and not os.path.exists(text)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`, on any exception
    (Ctrl-C included) it is removed. The final name never holds a partial file."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[str]:
    """Like `atomic_file` for a directory: built under a temporary name, swapped in when complete
    (an existing directory of that name is replaced only then), removed on failure."""
    path = os.fspath(path).rstrip(os.sep) or os.sep
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
        if os.path.isdir(path):
            old = f"{path}.old-{os.getpid()}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a whole text file atomically."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


__all__ = ["Output", "atomic_dir", "atomic_file", "check_outputs", "write_text"]
