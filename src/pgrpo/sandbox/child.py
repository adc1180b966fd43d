"""What runs inside the sandbox, after confinement: the candidate program and a small request server.

Module mode: the candidate is executed as a module, then this server answers requests from the
trusted side (get an attribute, call, iterate, ...) with values encoded by `wire`. The server never
sees a test or an expected value, and it never reports a verdict: only values, which the trusted
side compares with its own objects. Script mode: the candidate runs as `__main__` on its stdin.
Everything here is untrusted once the candidate has run: the candidate may patch any of it.
"""

from __future__ import annotations

import builtins
import sys
import types
from typing import Any

from pgrpo.sandbox import values, wire

CHANNEL_FD = 3
EXIT_RUNTIME_ERROR = 1
EXIT_COMPILE_ERROR = 3  # the message is on stderr (a program exiting 3 only calls itself uncompilable)
EXIT_MEMORY_ERROR = 4


def error_text(exc: BaseException, limit: int = 4000) -> str:
    import traceback  # only on the error path: the fork server stays small

    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[-limit:]


def _builtin_bases(cls: type) -> list[str]:
    return [c.__name__ for c in cls.__mro__ if getattr(builtins, c.__name__, None) is c]


def run_script(compiled: Any) -> int:
    """Run the candidate as a program; the exit code says how it ended (the trusted side checks stdout).

    sys.stdin/stdout/stderr are the fork server's own objects over fds 0-2, which now point at
    this run's files; the fork server never read or wrote them, so no stale buffer is inherited.
    """
    status = 0
    try:
        exec(compiled, {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except MemoryError:
        status = EXIT_MEMORY_ERROR
    except BaseException:
        import traceback

        traceback.print_exc()
        status = EXIT_RUNTIME_ERROR
    try:
        sys.stdout.flush()
    except BaseException:
        pass  # the candidate closed its own stdout: whatever it wrote before stays in the output file
    return status


class Server:
    """Answers the trusted side's requests about the candidate module's objects."""

    def __init__(self, fd: int):
        self.fd = fd
        self.objects: list[Any] = []
        self.handles: dict[int, int] = {}  # id(object) -> handle: one object, one handle
        self.encoder = values.Encoder(self._handle_of)
        self.decoder = values.Decoder(self._resolve_tag)
        self.next_callback = 0

    # -- values
    def _handle_of(self, obj: Any) -> list:
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return ["exc", obj.__name__, _builtin_bases(obj)]
        handle = self.handles.get(id(obj))
        if handle is None:
            handle = self.handles[id(obj)] = len(self.objects)
            self.objects.append(obj)  # kept alive for the whole run, so ids are never reused
        kind = type(obj)  # what the trusted side's handle may offer: calls, iteration, len()
        return [
            "h",
            handle,
            kind.__name__,
            callable(obj),
            hasattr(kind, "__iter__"),
            hasattr(kind, "__len__"),
        ]

    def _resolve_tag(self, data: list) -> Any:
        if data[0] == "H":
            return self.objects[int(data[1])]
        if data[0] == "cb":
            return self._callback(int(data[1]))
        if data[0] == "bi":
            return getattr(builtins, str(data[1]))
        if data[0] == "fn":
            return self._rebuild_functions(str(data[1]), data[2])
        raise wire.WireError(f"unknown tag {data[0]!r}")

    def _rebuild_functions(self, name: str, bundle: list) -> Any:
        """Test-defined functions sent as code, in one shared scope so they can call each other."""
        import base64
        import importlib
        import marshal

        scope: dict[str, Any] = {"__builtins__": builtins, "__name__": "__test__"}
        for entry in bundle:
            if entry[1] == "module":
                scope[entry[0]] = importlib.import_module(str(entry[2]))
            else:
                code = marshal.loads(base64.b64decode(entry[2]))
                scope[entry[0]] = types.FunctionType(
                    code, scope, str(entry[0]), tuple(self.decoder.decode(entry[3]))
                )
        return scope[name]

    def _callback(self, cb_id: int) -> Any:
        def call_trusted(*args: Any, **kwargs: Any) -> Any:
            self.next_callback += 1
            cid = self.next_callback
            self._send(["cb", cid, cb_id, self.encoder.encode(list(args)), self.encoder.encode(kwargs)])
            reply = wire.loads(wire.recv_frame(self.fd))
            if reply[0] == "cbok":
                return self.decoder.decode(reply[2])
            raise RuntimeError(f"trusted callback raised {reply[2]}: {reply[3]}")

        return call_trusted

    def _send(self, message: list) -> None:
        wire.send_frame(self.fd, wire.dumps(message))

    # -- requests
    def serve(self, module: types.ModuleType, exports: list[str]) -> None:
        self.handles[id(module)] = 0
        self.objects.append(module)
        ready: list = []
        for name in exports:  # what the tests will use first, sent with the ready message
            if name in module.__dict__:
                value = module.__dict__[name]
                # A type as the entry point (`f = list`) is a handle, not a built-in type by name:
                # the calls, and the time they take, happen here and are measured as the program's.
                encoded = self._handle_of(value) if isinstance(value, type) else self.encoder.encode(value)
                ready += [name, encoded]
        self._send(["ready", ready])
        while True:
            try:
                request = wire.loads(wire.recv_frame(self.fd))
            except EOFError:
                return
            rid = request[1]
            try:
                value, writeback = self._dispatch(request)
                self._send(["ok", rid, self.encoder.encode(value), writeback])
            except BaseException as e:  # the candidate's exception, reported as a value
                self._send(["err", rid, type(e).__name__, _builtin_bases(type(e)), error_text(e, 2000)])

    def _dispatch(self, request: list) -> tuple[Any, list | None]:
        op, target = request[0], self.objects[int(request[2])]
        if op == "getattr":
            return getattr(target, request[3]), None
        if op == "setattr":
            setattr(target, request[3], self.decoder.decode(request[4]))
            return None, None
        if op == "call":
            args, kwargs = self.decoder.decode(request[3]), self.decoder.decode(request[4])
            result = target(*args, **kwargs)
            # Arguments the candidate may have mutated in place travel back so the test sees them.
            writeback = [
                self.encoder.encode(a) if isinstance(a, (list, dict, set, bytearray)) else None for a in args
            ]
            return result, writeback
        if op == "getitem":
            return target[self.decoder.decode(request[3])], None
        if op == "setitem":
            target[self.decoder.decode(request[3])] = self.decoder.decode(request[4])
            return None, None
        if op == "len":
            return len(target), None
        if op == "bool":
            return bool(target), None
        if op == "str":
            return str(target), None
        if op == "iter":
            return iter(target), None
        if op == "next":
            items, done = [], False
            for _ in range(int(request[3])):
                try:
                    items.append(next(target))
                except StopIteration:
                    done = True
                    break
            return [items, done], None
        raise wire.WireError(f"unknown request {op!r}")


def run_module(compiled: Any, module_name: str, fd: int, exports: list[str]) -> int:
    """Execute the candidate as module `module_name`, then serve requests until the channel closes."""
    server = Server(fd)
    module = types.ModuleType(module_name)
    module.__dict__["__builtins__"] = builtins
    sys.modules[module_name] = module
    try:
        exec(compiled, module.__dict__)
    except MemoryError as e:
        server._send(["fatal", "memory_exceeded", error_text(e)])
        return 0
    except BaseException as e:
        server._send(["fatal", "runtime_error", error_text(e)])
        return 0
    server.serve(module, exports)
    return 0


def compile_program(source: bytes, filename: str) -> Any:
    """The program's code object; a program that does not compile raises CompileFailed."""
    try:
        return compile(source.decode("utf-8", "surrogatepass"), filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError, UnicodeDecodeError) as e:
        raise CompileFailed(error_text(e, 2000)) from None


class CompileFailed(Exception):
    """The program's text does not compile (its message says why)."""


def unpickle_to_stdout(data: bytes) -> int:
    """A pickle a test loads, unpickled here, in a fresh process that ran no program's code (whatever
    the pickle runs is confined); its value goes to stdout as a frame of plain data, which the trusted
    side rebuilds. A value that cannot travel by value is refused (exit 1, the reason on stderr)."""
    import os
    import pickle

    def refuse(obj: Any) -> list:
        raise TypeError(f"a {type(obj).__name__} object cannot leave the sandbox by value")

    try:
        frame = wire.dumps(values.Encoder(refuse).encode(pickle.loads(data)))
    except BaseException as e:
        os.write(2, error_text(e).encode("utf-8", "replace"))
        return EXIT_RUNTIME_ERROR
    view = memoryview(frame)
    while view:
        view = view[os.write(1, view) :]
    return 0


def main(job: dict, source: bytes) -> int:
    """Compile the program (here, under the run's limits: the compiler is attack surface) and run it.
    A program that does not compile exits EXIT_COMPILE_ERROR with the compiler's message on stderr."""
    import os

    if job["mode"] == "unpickle":
        return unpickle_to_stdout(source)
    try:
        compiled = compile_program(source, job["filename"])
    except CompileFailed as e:
        os.write(2, str(e).encode("utf-8", "replace"))
        return EXIT_COMPILE_ERROR
    if job["mode"] == "script":
        return run_script(compiled)
    return run_module(compiled, job["module_name"], CHANNEL_FD, job.get("exports", []))
