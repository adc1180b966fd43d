"""Reading and writing JSONL with errors that name the file and line."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from pgrpo.types import ProblemFormatError


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[str, Any]]:
    """Yield (`file:line`, parsed row) for every non-blank line; a malformed line raises with its place.
    A name ending in `.gz` is read through gzip."""
    path = os.fspath(path)
    try:
        f = gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")
    except OSError as e:
        raise ProblemFormatError(f"{path}: cannot open ({e.strerror})") from None
    with f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as e:
                    raise ProblemFormatError(
                        f"{where}: not valid JSON ({e.msg} at column {e.colno})"
                    ) from None
        except (EOFError, gzip.BadGzipFile) as e:
            raise ProblemFormatError(f"{path}: not a readable gzip file ({e})") from None


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write rows atomically enough for our use (write then rename); returns the number of rows."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n
