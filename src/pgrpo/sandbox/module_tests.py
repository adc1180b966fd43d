"""Assert and call tests of one module-mode run, executed in the trusted process against the
sandboxed program through `remote.Session`, with a watchdog on the test code itself."""

from __future__ import annotations

import ast
import builtins
import copy
import functools
import importlib
import os
import signal
import sys
import time
import types
from typing import Any

from pgrpo.sandbox import wire
from pgrpo.sandbox.compare import values_match
from pgrpo.sandbox.forkserver import ForkServer, ProcStats
from pgrpo.sandbox.perf import open_instruction_counter, perf_available, read_counter
from pgrpo.sandbox.remote import (
    CandidateClock,
    CandidateRaised,
    HarnessLimit,
    ProgramValueLimit,
    Remote,
    RequestTimeout,
    SandboxGone,
    Session,
    exception_text,
    remote_module,
    strict_truth,
)
from pgrpo.types import AssertTest, CallTest, Problem, TestResult, Verdict

STARTUP_GRACE_S = 2.0

TRUSTED_GRACE_S = 1.0


class TrustedTimeout(BaseException):
    """The test code ran past its deadline in the trusted process."""


def _on_alarm(signum: int, frame: object) -> None:
    raise TrustedTimeout()


class ModuleTests:
    """Drives the tests of one module-mode run. A `None` result means the program died first."""

    def __init__(self, server: ForkServer, session: Session, problem: Problem, tests: list, limit: float):
        self.server, self.session, self.problem = server, session, problem
        self.tests, self.limit = tests, limit
        self.stats = ProcStats(None)
        self.counter: int | None = None
        # Setup reads names that only the program defines (entry point too), or imports its module.
        self.asked_program = False
        self.in_setup = False  # the setup code itself is running (not the fetching of the tests' names)
        self.stopped_at: int | None = None  # the test that ended the run early (its process is gone)

    def run(self) -> list[TestResult | None]:
        try:
            failure = self.session.wait_ready()  # (verdict, message), or the exported values
        except RequestTimeout:
            self.server.kill()
            return [TestResult(Verdict.TIMEOUT, message="time limit exceeded while loading")] * len(
                self.tests
            )
        except (SandboxGone, wire.FrameTooLarge):
            return [None] * len(self.tests)
        if isinstance(failure, tuple):
            # The program can only report its own failure to load: anything else it claims is a lie.
            verdict = Verdict.MEMORY_EXCEEDED if failure[0] == "memory_exceeded" else Verdict.RUNTIME_ERROR
            return [TestResult(verdict, message=failure[1][:2000])] * len(self.tests)
        self.exports = failure
        # The program's pid (three reads of /proc) only where something reads it: the instruction
        # counter, or /proc figures without the cgroup layer. `kill` finds it for itself.
        needs_pid = self.server.cgroup_stats is None or perf_available()
        pid = self.server.run_pid() if needs_pid else None
        self.stats = self.server.stats(pid)  # the whole run where the fork server accounts it
        self.counter = open_instruction_counter(pid) if pid is not None and perf_available() else None
        if self.problem.entry_point and self.problem.entry_point not in self.exports:
            message = f"the program does not define {self.problem.entry_point!r}"
            return [TestResult(Verdict.RUNTIME_ERROR, message=message)] * len(self.tests)
        try:
            # The watchdog of `_one` around setup too: a value from the program (a count of
            # 10**12) could keep setup busy here. It is off before any handler below runs. Setup
            # may be the first to import numpy or pandas in this process: the start-up grace too.
            signal.setitimer(signal.ITIMER_REAL, self.limit + STARTUP_GRACE_S + TRUSTED_GRACE_S)
            try:
                namespace = self._namespace()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except TrustedTimeout:
            self.server.kill()  # the channel may be mid-request
            # Setup that never asks the program takes as long as it takes on its own: the problem's.
            # Fetching the tests' names from the program before it is the program's time.
            if self.in_setup and not self.asked_program:
                verdict, message = Verdict.SANDBOX_ERROR, "time limit exceeded by the problem's setup"
            else:
                verdict, message = (
                    Verdict.TIMEOUT,
                    "time limit exceeded before the tests, on the program's values",
                )
            return [TestResult(verdict, message=message)] * len(self.tests)
        except RequestTimeout:
            self.server.kill()
            return [TestResult(Verdict.TIMEOUT, message="time limit exceeded")] * len(self.tests)
        except (SandboxGone, wire.FrameTooLarge):
            return [None] * len(self.tests)
        except CandidateRaised as e:  # setup called the program (its classes), which raised
            message = (
                f"the program raised during the problem's setup: {type(e).__name__}: {exception_text(e)}"
            )
            return [TestResult(Verdict.RUNTIME_ERROR, message=message[:500])] * len(self.tests)
        except BaseException as e:
            # Setup that reads names of the program's (MBPP's `Node(1)`) fails on a program that
            # defines them wrongly or not at all: the program's fault, or it could buy a masked
            # reward. Setup that needs nothing of the program failed on its own: the problem's.
            verdict = Verdict.RUNTIME_ERROR if self.asked_program else Verdict.SANDBOX_ERROR
            where = (
                "the problem's setup failed on the program"
                if self.asked_program
                else "the problem's setup code failed"
            )
            message = f"{where}: {type(e).__name__}: {exception_text(e)}"[:500]
            return [TestResult(verdict, message=message)] * len(self.tests)
        results: list[TestResult | None] = []
        for i, test in enumerate(self.tests):
            result = self._one(test, namespace)
            results.append(result)
            if result is None or result.verdict in (Verdict.TIMEOUT, Verdict.OUTPUT_EXCEEDED):
                self.stopped_at = i
                if result is not None:
                    self.server.kill()
                fill = (
                    None
                    if result is None
                    else TestResult(result.verdict, message="not run: " + result.message)
                )
                results += [fill] * (len(self.tests) - i - 1)
                break
        return results

    def close(self) -> None:
        self.stats.close()
        if self.counter is not None:
            os.close(self.counter)

    def _namespace(self) -> dict:
        session, module_name = self.session, self.problem.candidate_module
        clock = CandidateClock(session)
        real_import = builtins.__import__

        def sandbox_aware_import(name, globals=None, locals=None, fromlist=(), level=0):
            if level == 0 and name == module_name:
                self.asked_program = True  # setup's `from code import f, helper` reads the program's names
                return self._star_import(name) if "*" in (fromlist or ()) else remote_module(session, name)
            if level == 0 and name == "time":
                return clock
            return real_import(name, globals, locals, fromlist, level)

        trusted_builtins = dict(vars(builtins))
        trusted_builtins["__import__"] = sandbox_aware_import
        trusted_builtins.update(all=_strict_all, any=_strict_any)
        namespace: dict[str, Any] = {
            "__builtins__": trusted_builtins,
            "__name__": "__test__",
            TRUTH_NAME: strict_truth,
        }
        if self.problem.entry_point:
            namespace[self.problem.entry_point] = self.exports[self.problem.entry_point]
        snippets = (self.problem.setup, *(t.code for t in self.tests if isinstance(t, AssertTest)))
        setup_reads = free_names((self.problem.setup,)) - trusted_builtins.keys()
        self.asked_program = any(_module_named(name) is None for name in setup_reads)
        # The program's files wait on its side while the tests' names are fetched: setup that never
        # asks the program runs in a directory the program has not touched, so its failure is the
        # problem's (a planted `work` cannot make setup's `os.mkdir('work')` fail, masked). Setup that
        # asks it sees its files from then on, as where the program's module runs at setup's import,
        # and its failure is the program's (`asked_program`). The tests see them after their first
        # request, whose watchdog bounds the copying (thousands of files can take seconds).
        files = session.files
        if files is not None:
            files.hold_program_files()
        try:
            for name in sorted(free_names(snippets) - namespace.keys() - trusted_builtins.keys()):
                module = _module_named(name)
                if module is not None:
                    _import_into(namespace, name, module)  # the real module, whatever the program calls so
                else:
                    self._program_name(namespace, name, session)
        finally:
            if files is not None:
                files.release_program_files()
        if self.problem.setup:
            self.in_setup = True
            exec(compile_test(self.problem.setup, "<setup>"), namespace)
            self.in_setup = False
        if self.problem.entry_point:  # setup may have imported it from the module again
            namespace[self.problem.entry_point] = self.exports[self.problem.entry_point]
        return namespace

    def _program_name(self, namespace: dict, name: str, session: Session) -> None:
        """Tests may use any name the program defines (MBPP's `Pair(5, 24)`, a setup that builds a
        program's `Node`s), as the reference harnesses do by running program and tests in one file.
        Here such a name is what the channel makes of it: a value, or a handle whose calls run in the
        sandbox. Names of standard and benchmark modules (`math`, `np`) never come from the program:
        the module is imported here (`_namespace`), and a program's module object is never used."""
        try:
            value = remote_module(session, self.problem.candidate_module)._req("getattr", name)
        except CandidateRaised:  # the program does not define it either: a NameError, as before
            return
        if not _is_module_handle(value):
            namespace[name] = value

    def _star_import(self, name: str) -> types.ModuleType:
        """What `from <candidate module> import *` binds: the program's public names (its `__all__`,
        else the names its module lists that do not start with `_`), as `_program_name` gives them,
        and as it does, never a module of the program's, a name of a standard or benchmark module, a
        builtin's name (its `sorted` would judge its own answer) or a dunder name (the harness's own,
        like the assert check). Only those names are fetched: private globals stay in the sandbox."""
        program = remote_module(self.session, name)
        try:
            names = program._req("getattr", "__all__")
        except CandidateRaised:  # no `__all__`
            names = None
        if not (isinstance(names, (list, tuple)) and all(type(n) is str for n in names)):
            listed = program._req("getattr", "__dir__")()
            if not isinstance(listed, list):
                raise ImportError(f"the program's module {name!r} did not list its names")
            names = [n for n in listed if type(n) is str and not n.startswith("_")]
        module = types.ModuleType(name)
        for n in names:
            if _module_named(n) is None and n not in _BUILTIN_NAMES and not n.startswith("__"):
                value = program._req("getattr", n)  # a missing name raises, as `import *` does
                if not _is_module_handle(value):
                    setattr(module, n, value)
        return module

    def _one(self, test: AssertTest | CallTest, namespace: dict) -> TestResult | None:
        cpu0, _ = self.stats.read()
        instructions0 = read_counter(self.counter) if self.counter is not None else None
        self.session.deadline = time.monotonic() + self.limit
        self.session.failure = None
        t0 = time.monotonic()
        verdict, message = Verdict.PASSED, ""
        # A watchdog for the test code itself: a value from the program could keep it busy here.
        # It is off again before any handler below runs, so none of them can be cut short by it.
        try:
            signal.setitimer(signal.ITIMER_REAL, self.limit + TRUSTED_GRACE_S)
            try:
                if isinstance(test, CallTest):
                    fn = namespace[self.problem.entry_point]
                    # A fresh copy of the arguments: what the program does to them must not reach the
                    # Problem, which the next sample on this worker is tested with.
                    actual = fn(*_fresh(test.args), **_fresh(test.kwargs))
                    if not values_match(test.expected, actual):
                        verdict = Verdict.FAILED
                        message = f"expected {test.expected!r:.200}, got {actual!r:.200}"
                else:
                    exec(compile_test(test.code, "<test>"), namespace)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except RequestTimeout:
            verdict, message = Verdict.TIMEOUT, "time limit exceeded"
        except SandboxGone:
            return None
        except wire.FrameTooLarge:
            verdict, message = Verdict.OUTPUT_EXCEEDED, "returned value too large"
        except ProgramValueLimit as e:
            verdict, message = Verdict.RUNTIME_ERROR, f"harness limitation: {exception_text(e)}"
        except HarnessLimit as e:
            verdict, message = Verdict.SANDBOX_ERROR, f"harness limitation: {exception_text(e)}"
        except CandidateRaised as e:
            name, text = type(e).__name__, exception_text(e, 500)
            verdict = Verdict.MEMORY_EXCEEDED if isinstance(e, MemoryError) else Verdict.RUNTIME_ERROR
            message = (text if text.startswith(name) else f"{name}: {text}")[:500]
        except AssertionError as e:
            text = exception_text(e)
            verdict, message = Verdict.FAILED, f"assertion failed{': ' + text if text else ''}"
        except TrustedTimeout:
            verdict, message = Verdict.TIMEOUT, "time limit exceeded by the test code on the program's values"
        except BaseException as e:  # test code's own failures, pytest's `fail()` (a BaseException) too
            verdict, message = Verdict.FAILED, f"{type(e).__name__}: {exception_text(e)}"[:500]
        # Test code may have caught what the channel raised (`except Exception`, or worse): the
        # session remembers, and the channel's verdict stands.
        if isinstance(self.session.failure, SandboxGone):
            return None
        if isinstance(self.session.failure, RequestTimeout):
            verdict, message = Verdict.TIMEOUT, "time limit exceeded"
        if isinstance(self.session.failure, wire.FrameTooLarge):
            verdict, message = Verdict.OUTPUT_EXCEEDED, "returned value too large"
        wall = time.monotonic() - t0
        cpu1, peak = self.stats.read()
        cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        instructions = read_counter(self.counter) - instructions0 if instructions0 is not None else None
        return TestResult(verdict, wall, cpu, peak, instructions, message=message)


TRUTH_NAME = "__pgrpo_strict_truth__"
_SCALARS = frozenset({int, float, str, bool, type(None)})
_MODULE_ALIASES = {"np": "numpy", "pd": "pandas"}  # the usual import names of the benchmark libraries
_BUILTIN_NAMES = frozenset(vars(builtins))


# `all` and `any` as test code sees them: the truth of a sandboxed object is not asked there
# (`assert all(f(x) for x in xs)` with an `f` returning an object that calls itself true), as
# `strict_truth` refuses it in an assert. `if node:` / `while node:` still ask the program.
def _strict_all(iterable: Any) -> bool:
    for item in iterable:
        if not strict_truth(item):
            return False
    return True


def _strict_any(iterable: Any) -> bool:
    for item in iterable:
        if strict_truth(item):
            return True
    return False


def _is_module_handle(value: Any) -> bool:
    return isinstance(value, Remote) and object.__getattribute__(value, "_type_name") == "module"


def _module_named(name: str) -> str | None:
    """The standard or benchmark module a test means by `name` (`np` is numpy), if any."""
    module = _MODULE_ALIASES.get(name, name)
    return module if module in sys.stdlib_module_names or module in _MODULE_ALIASES.values() else None


class _Missing:
    """Stands for a module that cannot be imported here: any use raises the import's own error, so the
    test fails with "No module named ..." (which the runner reports as a missing library, a sandbox_error
    naming it, when it is one of the benchmark libraries) instead of a NameError blamed on the program."""

    def __init__(self, error: ImportError) -> None:
        self._error = error

    def __getattr__(self, attribute: str) -> Any:
        raise ModuleNotFoundError(str(self._error), name=self._error.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ModuleNotFoundError(str(self._error), name=self._error.name)


def _import_into(namespace: dict, name: str, module: str) -> None:
    """A module a test uses without importing it (its program did, in the reference harnesses)."""
    try:
        namespace[name] = importlib.import_module(module)
    except ImportError as e:
        namespace[name] = _Missing(e)


def _fresh(values: list | dict) -> list | dict:
    """`values` itself when it holds only scalars (the common case costs no copy), else a deep copy."""
    items = values.values() if isinstance(values, dict) else values
    if all(type(v) in _SCALARS for v in items):
        return values
    return copy.deepcopy(values)


@functools.lru_cache(maxsize=1024)
def free_names(snippets: tuple[str, ...]) -> frozenset[str]:
    """Names the snippets read but never bind anywhere (a broad notion of binding: any assignment,
    definition, parameter or import in any scope). Snippets that do not parse are skipped here; the
    test that runs them reports why."""
    read: set[str] = set()
    bound: set[str] = set()
    for snippet in snippets:
        try:
            tree = ast.parse(snippet)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.alias):
                bound.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.add(node.name)
    return frozenset(read - bound)


class _StrictAsserts(ast.NodeTransformer):
    """`assert x`, `assert a and b`, `assert not x`: the truth of each operand is checked by
    `strict_truth`, so a sandboxed object cannot satisfy an assert by calling itself true."""

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        node.test = self._wrap(node.test)
        return node

    def _wrap(self, expr: ast.expr) -> ast.expr:
        if isinstance(expr, ast.BoolOp):
            expr.values = [self._wrap(v) for v in expr.values]
            return expr
        if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not):
            expr.operand = self._wrap(expr.operand)
            return expr
        return ast.copy_location(ast.Call(ast.Name(TRUTH_NAME, ast.Load()), [expr], []), expr)


@functools.lru_cache(maxsize=4096)
def compile_test(code: str, filename: str) -> Any:
    tree = _StrictAsserts().visit(ast.parse(code, filename))
    return compile(ast.fix_missing_locations(tree), filename, "exec", dont_inherit=True)
