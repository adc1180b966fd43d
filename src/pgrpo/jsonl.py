"""Reading and writing JSONL with errors that name the file and line."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from pgrpo.types import ProblemFormatError


def _directory_message(path: str) -> str:
    """A directory given where a JSONL file is read: say so, and name a file in it to give instead."""
    inside = sorted(name for name in os.listdir(path) if name.endswith((".jsonl", ".jsonl.gz")))
    example = "test.jsonl" if "test.jsonl" in inside else (inside[0] if inside else "FILE.jsonl")
    held = f" (it holds {', '.join(inside)})" if inside else " (it holds no .jsonl file)"
    return f"{path}: a directory, not a JSONL file{held}; name the file, e.g. {os.path.join(path, example)}"


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[str, Any]]:
    """Yield (`file:line`, parsed row) for every non-blank line; a malformed line raises with its place
    (not JSON, not UTF-8, nested too deeply, a number past Python's int-string limit). A name ending
    in `.gz` is read through gzip."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ProblemFormatError(_directory_message(path))
    try:
        f = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    except OSError as e:
        raise ProblemFormatError(f"{path}: cannot open ({e.strerror})") from None
    with f:
        try:
            for lineno, raw in enumerate(f, 1):
                where = f"{path}:{lineno}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ProblemFormatError(
                        f"{where}: not valid UTF-8 (byte {e.start + 1} of the line)"
                    ) from None
                if not line.strip():
                    continue
                yield where, _parse_line(line, where)
        except (EOFError, gzip.BadGzipFile) as e:
            raise ProblemFormatError(f"{path}: not a readable gzip file ({e})") from None


def _parse_line(line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise ProblemFormatError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise ProblemFormatError(f"{where}: JSON nested too deeply") from None
    except ValueError as e:  # e.g. an integer longer than Python's int-string limit (4300 digits)
        raise ProblemFormatError(f"{where}: unreadable JSON value ({e})") from None


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write rows atomically (a temporary name, renamed when complete; removed if interrupted);
    returns the number of rows."""
    from pgrpo.outputs import atomic_file

    n = 0
    with atomic_file(path) as tmp, open_rows(tmp) as f:
        for row in rows:
            f.write(dumps_row(row))
            n += 1
    return n


def open_rows(path: str) -> Any:
    """A text file for JSONL rows that no text can stop: a lone surrogate (from program output or an
    input row's escapes) is written as its JSON escape `\\udxxx`, so the file stays UTF-8 and JSON."""
    return open(path, "w", encoding="utf-8", errors="backslashreplace")


def dumps_row(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"
