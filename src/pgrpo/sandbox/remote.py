"""The trusted side of the channel: proxies for objects that live in the sandbox.

Test code runs here, in a process the candidate never touches, with this process's own builtins.
Calling the candidate sends plain data over the channel and rebuilds the reply from scratch
(`values.Decoder`), so what a test compares is always an object made here. Objects that cannot
travel by value come back as `Remote` handles: attribute access, calls, indexing, iteration,
`len` and `str` are forwarded (they produce values the candidate computed; calls, iteration and
`len` only where the object has them), but comparisons and truth tests are not: a handle equals
only itself, and asking whether it is true is an error.
"""

from __future__ import annotations

import base64
import builtins
import functools
import marshal
import os
import reprlib
import select
import time
import types
from collections.abc import Callable
from typing import Any

from pgrpo.sandbox import values, wire

MODULE_HANDLE = 0
# What one run may send the trusted side in all (16 frames of the largest size): values it decodes
# stay in this process while test code holds them, and a program answering every request of a long
# test with a full frame would otherwise fill the host's memory (output_exceeded past it).
MAX_RUN_BYTES = 256 * 1024 * 1024
VALUES_MB = 2048  # and the resident memory the values it decodes here may take (output_exceeded past it)


class CandidateRaised(Exception):
    """Mixin marking an exception that the candidate raised inside the sandbox."""


# Exceptions that steer control flow in the trusted process: `map`, `zip`, `for` and `next(it, d)`
# stop quietly at a StopIteration. The candidate's own never arrive as these (nor as any
# BaseException outside Exception): they become plain errors that only an `except` can catch.
_CONTROL_FLOW = (StopIteration, StopAsyncIteration)


class SandboxGone(BaseException):
    """The sandboxed process ended (or broke the protocol) while a request was pending."""


class RequestTimeout(BaseException):
    """The candidate did not answer before the test's deadline."""


class HarnessLimit(BaseException):
    """A test needs something the channel cannot carry (e.g. an object of a test-defined class)."""


class ProgramValueLimit(HarnessLimit):
    """What cannot travel exists because of the program: an exception it raised that the test passes
    back to it, or what a test's callable returned to a call the program made. Its doing, not the
    harness's."""


_PLAIN_ARGS = frozenset({str, int, float, bool, bytes, type(None)})
_BOUNDED_REPR = reprlib.Repr()
_BOUNDED_REPR.maxstring = _BOUNDED_REPR.maxother = 300


def exception_text(exc: BaseException, limit: int = 300) -> str:
    """What an exception from test code says, made without running any of the program's code.

    An assert's message is often the program's own value (`assert r == 5, r`): a handle's `str` is
    answered by the program, which could raise, stall or exit in it, so here a handle is named by its
    type (its repr, `<sandboxed R>`) and any value other than plain data by a size-bounded repr.
    Whatever still goes wrong in formatting leaves the message empty; a channel failure on the way is
    remembered by the session, whose verdict then stands."""
    try:
        if all(type(arg) in _PLAIN_ARGS for arg in exc.args):
            text = str(exc)  # the exception's own wording (KeyError quotes, OSError's errno)
        else:
            text = ", ".join(arg if type(arg) is str else _BOUNDED_REPR.repr(arg) for arg in exc.args)
    except (Exception, RequestTimeout, SandboxGone, HarnessLimit):
        return ""
    return text[:limit]


class Session:
    """The request/reply conversation with one sandboxed module."""

    def __init__(self, fd: int, deadline: float, files: Any = None):
        self.fd = fd
        os.set_blocking(fd, False)  # every read and write on the candidate waits until `deadline` at most
        self.files = files  # SharedFiles: copied across around every request
        self.deadline = deadline
        self.next_id = 0
        self.received_bytes = 0  # the whole run's frames, against MAX_RUN_BYTES
        self.callbacks: list[Callable] = []
        self.exception_classes: dict[str, type] = {}
        self.remotes: dict[int, Remote] = {}
        self.encoder = values.Encoder(self._encode_other)
        # what the program's values may add to this process's memory, on top of what it holds now
        self.decoder = values.Decoder(self._decode_tag, values.resident_kb() + (VALUES_MB << 10))
        self.round_trip_s = 0.0  # the channel's own cost per request, measured on a trusted program
        self.overhead_s = 0.0  # channel time spent so far, hidden from the tests' clocks
        self.failure: BaseException | None = None  # a channel failure during the current test
        # The first thing the candidate sent that broke the protocol (its fault: runtime_error,
        # or output_exceeded for a frame over the size limit); the run is killed, not waited for.
        self.violation: BaseException | None = None

    # -- values crossing the channel
    def _encode_other(self, obj: Any) -> list:
        if isinstance(obj, Remote):
            if object.__getattribute__(obj, "_session") is not self:
                raise HarnessLimit("a handle from another run")
            return ["H", object.__getattribute__(obj, "_handle")]
        bundle = function_bundle(obj) if isinstance(obj, types.FunctionType) else None
        if bundle is not None:
            # A test's own helper (e.g. a recursive function whose calls the candidate counts)
            # travels as code with the helpers it calls; it is an input like any argument.
            return ["fn", obj.__name__, [_ship(name, value, self) for name, value in bundle.items()]]
        if isinstance(obj, types.BuiltinFunctionType) and getattr(builtins, obj.__name__, None) is obj:
            return ["bi", obj.__name__]
        if callable(obj):
            self.callbacks.append(obj)
            return ["cb", len(self.callbacks) - 1]
        if isinstance(obj, CandidateRaised):
            raise ProgramValueLimit(
                f"the program's {type(obj).__name__} exception cannot be passed into the sandbox"
            )
        raise HarnessLimit(f"a {type(obj).__name__} object cannot be passed into the sandbox")

    def _decode_tag(self, data: list) -> Any:
        tag = data[0]
        if tag == "h":  # ["h", handle, type name, callable, iterable, sized]
            flags = data[3:6]
            if (
                len(data) < 3
                or type(data[1]) is not int
                or type(data[2]) is not str
                or not all(type(flag) is bool for flag in flags)
            ):
                raise wire.WireError("malformed handle")
            handle = data[1]
            if handle not in self.remotes:
                # What the object can do, as the program's side reports it; a capability it does not
                # report at all is offered (its use asks the program, which may refuse).
                calls, iterates, sized = (*flags, True, True, True)[:3]
                cls = remote_class(calls, iterates, sized)
                self.remotes[handle] = cls(self, handle, data[2][:200])
            return self.remotes[handle]
        if tag == "exc" and len(data) == 3:
            return self.exception_class(data[1], data[2])
        raise wire.WireError(f"unknown tag {tag!r}")

    def exception_class(self, name: Any, bases: Any) -> type:
        """A local stand-in for the candidate's exception class, shared by every reference to it.
        `name` and `bases` come from the candidate: anything but a class name and a list of names
        is a protocol violation (WireError), never an error of ours."""
        if not (type(name) is str and name.isidentifier() and len(name) <= 200):
            raise wire.WireError("malformed exception class name")
        if type(bases) is not list or not all(type(b) is str for b in bases):
            raise wire.WireError("malformed exception bases")
        if name not in self.exception_classes:
            self.exception_classes[name] = _stand_in(name, bases)
        return self.exception_classes[name]

    # -- the conversation
    def _fail(self, exc: BaseException) -> BaseException:
        self.failure = exc
        return exc

    def _violated(self, what: str) -> BaseException:
        """The candidate broke the protocol: this run ends here, as the program's fault."""
        exc = SandboxGone(f"protocol violation: {what}")
        self.violation = self.violation or exc
        return self._fail(exc)

    def _recv(self) -> list:
        if self.failure is not None:  # once broken, stays broken for this test
            raise self.failure
        remaining = self.deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
            raise self._fail(RequestTimeout())
        try:
            payload = wire.recv_frame(self.fd, deadline=self.deadline)
            self.received_bytes += len(payload)
            if self.received_bytes > MAX_RUN_BYTES:
                raise wire.FrameTooLarge(f"the program sent over {MAX_RUN_BYTES >> 20} MB in one run")
            message = wire.loads(payload)
        except EOFError:
            raise self._fail(SandboxGone("the sandboxed program ended")) from None
        except wire.DeadlinePassed:  # a frame begun and never finished
            raise self._fail(RequestTimeout()) from None
        except wire.FrameTooLarge as e:  # the stream is mid-frame: nothing more can be read from it
            self.violation = self.violation or e
            raise self._fail(e) from None
        except wire.WireError as e:
            raise self._violated(str(e)) from None
        except OSError as e:
            raise self._fail(SandboxGone(f"channel error: {e}")) from None
        if not isinstance(message, list) or not message or not isinstance(message[0], str):
            raise self._violated("malformed message")
        return message

    def wait_ready(self) -> tuple[str, str] | dict[str, Any]:
        """The exported names' values when the module loaded; else (verdict, message)."""
        message = self._recv()
        if message[0] == "ready" and len(message) == 2 and isinstance(message[1], list):
            names = message[1][::2]
            if not all(type(n) is str for n in names):
                raise self._violated("malformed ready")
            return {n: self._decode(v) for n, v in zip(names, message[1][1::2])}
        if message[0] == "fatal" and len(message) == 3:
            return str(message[1]), str(message[2])
        raise self._violated("expected ready")

    def request(self, op: str, handle: int, *operands: Any) -> Any:
        self.next_id += 1
        rid = self.next_id
        if self.files is not None:
            self.files.to_program()
        sent = time.perf_counter()
        try:
            return self._exchange(op, rid, handle, operands)
        finally:
            self.overhead_s += min(time.perf_counter() - sent, self.round_trip_s)
            if self.files is not None:
                self.files.from_program()

    def _exchange(self, op: str, rid: int, handle: int, operands: tuple) -> Any:
        try:
            wire.send_frame(self.fd, wire.dumps([op, rid, handle, *operands]), self.deadline)
        except wire.DeadlinePassed:  # the candidate stopped reading its requests
            raise self._fail(RequestTimeout()) from None
        except OSError:
            raise self._fail(SandboxGone("the sandboxed program ended")) from None
        while True:
            message = self._recv()
            kind = message[0]
            if kind == "cb":
                self._serve_callback(message)
                continue
            if len(message) < 3 or message[1] != rid:
                raise self._violated("reply out of order")
            if kind == "ok" and len(message) == 4:
                return self._decode(message[2]), message[3]
            if kind == "err" and len(message) == 5 and type(message[4]) is str:
                try:
                    cls = self.exception_class(message[2], message[3])
                except wire.WireError as e:
                    raise self._violated(str(e)) from None
                raise cls(message[4])
            raise self._violated("malformed reply")

    def _decode(self, data: Any) -> Any:
        """A value from the candidate, rebuilt here within the deadline; data that does not decode
        is the candidate's protocol violation (our own bugs raise something else, and show)."""
        self.decoder.start(self.deadline)
        try:
            return self.decoder.decode(data)
        except wire.DeadlinePassed:
            raise self._fail(RequestTimeout()) from None
        except wire.FrameTooLarge as e:  # past the resident memory bound: the run ends here
            self.violation = self.violation or e
            raise self._fail(e) from None
        except wire.WireError as e:
            raise self._violated(str(e)) from None
        except RecursionError:  # a value nested within MAX_DEPTH, on a stack already deep in test code
            raise self._violated("value nested too deeply") from None

    def _serve_callback(self, message: list) -> None:
        if len(message) != 5:
            raise self._violated("malformed callback request")
        _, cid, cb_id, args, kwargs = message
        try:
            fn = self.callbacks[int(cb_id)]
            value = fn(*self._decode(args), **self._decode(kwargs))
            try:
                reply = ["cbok", cid, self.encoder.encode(value)]
            except HarnessLimit as e:
                # The program chose this call and its arguments (a test's class it was handed, built
                # into an instance); a correct program need not make it: the failure is the program's.
                what = exception_text(e)
                raise ProgramValueLimit(f"the program called a test's callable; its result: {what}") from None
        except (SandboxGone, RequestTimeout):
            raise
        except Exception as e:
            reply = ["cberr", cid, type(e).__name__, exception_text(e, 500)]
        try:
            wire.send_frame(self.fd, wire.dumps(reply), self.deadline)
        except wire.DeadlinePassed:
            raise self._fail(RequestTimeout()) from None
        except OSError:
            raise self._fail(SandboxGone("the sandboxed program ended")) from None

    def encode(self, value: Any) -> Any:
        return self.encoder.encode(value)

    def call(self, handle: int, args: tuple, kwargs: dict) -> Any:
        value, writeback = self.request("call", handle, self.encode(list(args)), self.encode(kwargs))
        if isinstance(writeback, list) and len(writeback) == len(args):
            for original, new in zip(args, writeback):
                if new is not None:
                    _update_in_place(original, self._decode(new))
        return value


def _stand_in(name: str, bases: list[str]) -> type:
    """The class of the candidate's exception here: its first built-in base (in the candidate's
    order) that an exception made from one message can have, plus CandidateRaised. Bases that need
    more than a message are passed over (UnicodeDecodeError arrives as a UnicodeError, ExceptionGroup
    as a plain exception): building one here would fail, and that failure would be ours."""
    for base_name in bases:
        base = getattr(builtins, base_name, None)
        if not isinstance(base, type) or not issubclass(base, Exception) or issubclass(base, _CONTROL_FLOW):
            continue
        if base is Exception:
            break
        # CandidateRaised is itself an Exception: adding it after a more specific built-in base
        # keeps `except ValueError` working; for anything else it is the only base.
        cls = type(name, (base, CandidateRaised), {})
        try:
            cls("message")
        except TypeError:
            continue
        return cls
    return type(name, (CandidateRaised,), {})


def _ship(name: str, value: Any, session: Session) -> list:
    if isinstance(value, types.ModuleType):
        return [name, "module", value.__name__]
    code = base64.b64encode(marshal.dumps(value.__code__)).decode()
    return [name, "function", code, session.encode(list(value.__defaults__ or ()))]


def function_bundle(fn: types.FunctionType) -> dict[str, Any] | None:
    """The test-defined functions and modules `fn` needs, by name, if that is all it needs.

    None when it closes over variables or reads the test's other globals (data that may include
    expected values): such a function stays here and is called back through the channel.
    """
    bundle: dict[str, Any] = {}
    todo = [fn]
    while todo:
        f = todo.pop()
        if f.__closure__:
            return None
        bundle[f.__name__] = f
        names: set[str] = set()
        stack = [f.__code__]
        while stack:
            code = stack.pop()
            names.update(code.co_names)
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        for name in names - bundle.keys():
            if name not in f.__globals__:
                continue
            value = f.__globals__[name]
            if isinstance(value, types.FunctionType):
                todo.append(value)
            elif isinstance(value, types.ModuleType):
                bundle[name] = value
            else:
                return None
    return bundle


def _update_in_place(original: Any, new: Any) -> None:
    if type(original) is list and type(new) is list:
        original[:] = new
    elif type(original) is dict and type(new) is dict:
        original.clear()
        original.update(new)
    elif type(original) is set and type(new) is set:
        original.clear()
        original.update(new)
    elif type(original) is bytearray and type(new) is bytearray:
        original[:] = new


class Remote:
    """A handle to an object in the sandbox. Equality is identity; asserting its truth is refused;
    arithmetic is not offered (the program's `__sub__` could answer a tolerance check for it).
    Calls, iteration and `len` are offered only where the object has them (`remote_class`), so
    `callable(handle)` and `isinstance(handle, Iterable)` tell the truth about it."""

    __slots__ = ("_session", "_handle", "_type_name")

    def __init__(self, session: Session, handle: int, type_name: str):
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_type_name", type_name)

    def _req(self, op: str, *operands: Any) -> Any:
        session = object.__getattribute__(self, "_session")
        value, _ = session.request(op, object.__getattribute__(self, "_handle"), *operands)
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._req("getattr", name)

    def __setattr__(self, name: str, value: Any) -> None:
        session = object.__getattribute__(self, "_session")
        self._req("setattr", name, session.encode(value))

    def __getitem__(self, key: Any) -> Any:
        return self._req("getitem", object.__getattribute__(self, "_session").encode(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        session = object.__getattribute__(self, "_session")
        self._req("setitem", session.encode(key), session.encode(value))

    def __str__(self) -> str:
        text = self._req("str")
        return text if type(text) is str else "<unprintable>"

    def __repr__(self) -> str:
        return f"<sandboxed {object.__getattribute__(self, '_type_name')}>"

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        # Forwarded for `if node:` / `while node:`; `assert handle` is refused by `strict_truth`.
        value = self._req("bool")
        if type(value) is not bool:
            raise TypeError("bool() of a sandboxed object did not give a bool")
        return value


class _Calls:
    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        session = object.__getattribute__(self, "_session")
        return session.call(object.__getattribute__(self, "_handle"), args, kwargs)


class _Iterates:
    __slots__ = ()

    def __iter__(self):
        iterator = self._req("iter")
        if not isinstance(iterator, Remote):
            yield from iterator
            return
        while True:
            items, done = iterator._req("next", 256)
            yield from items
            if done:
                return


class _Sized:
    __slots__ = ()

    def __len__(self) -> int:
        n = self._req("len")
        if type(n) is not int:
            raise TypeError("len() of a sandboxed object did not give an int")
        return n


@functools.cache
def remote_class(calls: bool, iterates: bool, sized: bool) -> type[Remote]:
    """The handle class for an object that can be called, iterated, measured, as the flags say."""
    mixins = tuple(m for m, has in ((_Calls, calls), (_Iterates, iterates), (_Sized, sized)) if has)
    return type("Remote", (*mixins, Remote), {"__slots__": ()}) if mixins else Remote


class CandidateClock(types.ModuleType):
    """The `time` module as test code sees it: clocks run minus the channel's own round trips,
    so timing assertions measure the candidate, not the sandbox. The round-trip cost is measured
    on a trusted program; a slow or sleeping candidate still shows all of its time."""

    def __init__(self, session: Session):
        super().__init__("time")
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def _hidden(self) -> float:
        return self._session.overhead_s

    def time(self) -> float:
        return time.time() - self._hidden()

    def perf_counter(self) -> float:
        return time.perf_counter() - self._hidden()

    def monotonic(self) -> float:
        return time.monotonic() - self._hidden()

    def time_ns(self) -> int:
        return time.time_ns() - int(self._hidden() * 1e9)

    def perf_counter_ns(self) -> int:
        return time.perf_counter_ns() - int(self._hidden() * 1e9)

    def monotonic_ns(self) -> int:
        return time.monotonic_ns() - int(self._hidden() * 1e9)


def strict_truth(value: Any) -> Any:
    """What an `assert` in test code checks: a sandboxed object's own idea of its truth is not asked."""
    if isinstance(value, Remote):
        raise AssertionError(
            f"asserted the truth of a sandboxed {object.__getattribute__(value, '_type_name')}, "
            "which is not trusted; the test expected a value"
        )
    return value


def remote_module(session: Session, name: str) -> Any:
    """What `import <candidate module>` gives test code: a handle to the sandboxed module."""
    return Remote(session, MODULE_HANDLE, f"module {name}")
