"""The narrow channel between the trusted test side and the sandboxed candidate: frames and messages.

Frames are a 4-byte big-endian length followed by a JSON payload (values inside it are encoded by
`pgrpo.sandbox.values`). The trusted side reads and writes with deadlines, so a peer that stalls
mid-frame cannot hold it; the control socket to the fork server carries descriptors with its messages.
"""

from __future__ import annotations

import json
import os
import struct
import time
from typing import Any

MAX_FRAME = 16 * 1024 * 1024


class WireError(Exception):
    """A frame or value that does not follow the protocol (from the sandbox: the candidate's fault)."""


class FrameTooLarge(BaseException):
    """A frame over the size limit: the value is too large to travel (output_exceeded). Not an
    Exception, so that test code's `except Exception` cannot swallow it and read on mid-frame."""


class DeadlinePassed(WireError):
    """The other side did not finish sending (or we did not finish decoding) before the deadline."""


# ----------------------------------------------------------------------------- framing


def send_frame(fd: int, payload: bytes, deadline: float | None = None) -> None:
    """With a deadline the fd is non-blocking (the trusted side): a peer that stops reading
    cannot hold us past it."""
    data = struct.pack(">I", len(payload)) + payload
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            _wait(fd, deadline, write=True)
            continue
        view = view[n:]


def _wait(fd: int, deadline: float | None, write: bool = False) -> None:
    import select  # only the trusted side waits with a deadline

    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        raise DeadlinePassed("deadline passed during a frame")
    ready = select.select([], [fd], [], remaining) if write else select.select([fd], [], [], remaining)
    if not any(ready):
        raise DeadlinePassed("deadline passed during a frame")


def _read_exact(fd: int, n: int, deadline: float | None = None) -> bytes:
    chunks, remaining = [], n
    while remaining:
        try:
            chunk = os.read(fd, min(remaining, 1 << 20))
        except BlockingIOError:
            _wait(fd, deadline)
            continue
        if not chunk:
            raise EOFError("channel closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_frame(fd: int, max_size: int = MAX_FRAME, deadline: float | None = None) -> bytes:
    """One frame. A partial frame (a header, then silence) waits only until `deadline` on a
    non-blocking fd; on a blocking one (the sandbox's side) it waits for the rest."""
    (size,) = struct.unpack(">I", _read_exact(fd, 4, deadline))
    if size > max_size:
        raise FrameTooLarge(f"frame of {size} bytes exceeds {max_size}")
    return _read_exact(fd, size, deadline)


def _not_serialisable(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON")


# json's C encoder and scanner, bound once: a fresh child calling json.dumps/json.loads would walk
# (and copy the pages of) several Python-level layers on every message.
_c_encode = json.encoder.c_make_encoder(
    None, _not_serialisable, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
)
_c_scan = json.scanner.c_make_scanner(json.JSONDecoder())


def dumps(message: Any) -> bytes:
    return "".join(_c_encode(message, 0)).encode()


def loads(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
        value, end = _c_scan(text, 0)
    except StopIteration:
        raise WireError("unreadable frame: no JSON value") from None
    except (ValueError, RecursionError) as e:
        raise WireError(f"unreadable frame: {e}") from None
    if end != len(text):
        raise WireError("unreadable frame: trailing data")
    return value


# ----------------------------------------------------------------------------- control messages


def send_msg(sock: Any, message: Any, fds: list[int] | tuple[int, ...] = ()) -> None:
    """A JSON frame on a Unix stream socket, with file descriptors attached to its first bytes."""
    import socket

    payload = dumps(message)
    data = struct.pack(">I", len(payload)) + payload
    sent = socket.send_fds(sock, [data], list(fds)) if fds else 0
    if sent < len(data):
        sock.sendall(data[sent:])


def recv_msg(sock: Any, max_fds: int = 8) -> tuple[Any, list[int]]:
    import socket

    header, fds = b"", []
    while len(header) < 4:
        chunk, got, _, _ = socket.recv_fds(sock, 4 - len(header), max_fds)
        fds += got
        if not chunk:
            for fd in fds:
                os.close(fd)
            raise EOFError("control socket closed")
        header += chunk
    (size,) = struct.unpack(">I", header)
    body = bytearray(size)
    view, got_bytes = memoryview(body), 0
    while got_bytes < size:
        n = sock.recv_into(view[got_bytes:])
        if not n:
            raise EOFError("control socket closed")
        got_bytes += n
    return loads(bytes(body)), fds
