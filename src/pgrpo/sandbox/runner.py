"""The trusted runner: one per worker. Holds the tests, drives a fork server, decides verdicts.

For assert and call tests the candidate runs as a module in one confined process and the tests run
*here*, calling it through `remote.Session`; for stdio tests each test is one confined run of the
program and its stdout is compared here. Timing and memory figures come from the kernel, never
from the candidate: with the `cgroup` layer, from the run's cgroups (CPU of every thread and process
of the run; peak memory the run added: pages it allocated or copied, memfd, shared memory and files
it wrote, not the interpreter's pages it shares with the fork server); without it, from the kernel's
CPU clock of the program's process (all its threads) and /proc (the children it waited for, its peak
resident memory), and wait4.

What this protects against (each family has a test in tests/sandbox/test_<family>.py):
- early exits faking success (sys.exit, os._exit, atexit, excepthook, __del__, BaseException in a
  call): a verdict is decided here from values and the kernel's exit report, never from an exit code
  alone, and the program cannot report "passed";
- objects lying about equality or truth: values are rebuilt here from plain data; other objects are
  handles whose equality is identity, and `assert handle` is refused;
- values whose type a test relies on travel by value as that type, built here (`wire`): OrderedDict
  keeps its order-sensitive equality, Counter/defaultdict/deque/namedtuple arrive as themselves, a
  program's subclass of a builtin, NumPy or pandas type arrives as the base type (its own `equals`,
  `tolist` or `__eq__` never answers a test), built-in types such as `int` travel by name;
- the candidate's exceptions arrive as plain errors, never as StopIteration, StopAsyncIteration or a
  BaseException, so `all(map(f, ...))`, `zip(..., map(f, ...))` or `next(it, default)` cannot end
  early on them;
- numbers: call tests compare an integer expectation exactly (`==`), with a tolerance only where the
  expected value is a float (`compare.values_match`); assert tests use their own `==`;
- one sample changing the next one's test: call-test arguments are copied for each call and setup
  runs afresh for each sample, so every sample sees the problem as loaded;
- reading tests or expected values: they never enter the sandbox or the fork server's memory; the
  sandbox's root holds only the interpreter and libraries (no project files, no /proc);
- forging the result channel: only values travel on it; stdout and stray descriptors are ignored;
- malformed frames: whatever the candidate writes on the channel (unknown tags, names with NUL,
  invalid UTF-8, 5,000-digit ints, deep nesting, lengths past the limit) is a protocol violation that
  ends the run at once as runtime_error (output_exceeded for a frame over the limit), never as
  sandbox_error; errors of our own code still surface as sandbox_error;
- stalls on the channel: every read, write and decode ends at the test's deadline (a half-written
  frame, a program that stops reading), values costly to rebuild are refused (sets or dict keys
  with many equal hashes), and a program still running one time limit after the tests
  closed the channel is killed;
- tampering with the harness (builtins, unittest, signals, time): the harness is not in that process;
  a star import of the candidate module never binds a builtin's or a dunder name;
- the problem's setup: it runs under the same watchdog as the tests, before the program's files
  reach the tests' directory (a file the program planted cannot break it), and a setup that asked
  nothing of the program and failed is the problem's (sandbox_error), otherwise the program's;
- many files: at most `files.MAX_FILES` of the program's files (and `MAX_TOTAL_BYTES`) reach the
  tests' directory;
- resources: CPU, wall time, address space, processes, file size, output size, open files, and
  (cgroup layer) memory held outside the address space: memfd, shared memory, written files;
- escapes: no network interfaces, a read-only root with one writable directory, a uid of its own,
  an IPC namespace per run (no System V or POSIX IPC of the host or of earlier runs), no keyring
  calls, and every process a run started is killed before its result is reported;
- state between samples: each run starts from the same state: its work directory is emptied
  (however deep or locked) and reset (mode, owner, times, extended attributes), the program's text
  reaches only its own forked process (never the fork server that later runs inherit), and the
  files it leaves for the tests are mirrored with deletions and bounded on the host;
- crashes of any kind end as runtime_error, and the worker and the batch carry on;
- filling the trusted side's memory: 256 MB of frames per run and 2 GB of resident memory for the
  values decoded here (a few bytes of JSON can stand for hundreds of bytes of objects), past which
  the run is output_exceeded;
- unpickling files a program wrote (BigCodeBench tests load them with pickle, pandas or NumPy):
  they are unpickled in a fresh sandboxed process of a fork server of their own, where no program's
  code ever ran, and their value crosses as plain data (`unpickle.SandboxLoader`); the program
  can neither answer for them nor see a pickle the test made; the pure-Python unpickler (joblib)
  resolves plain data globals only;
- the compiler as a way in: the program's text is compiled in its sandboxed child under the run's
  limits, so text that crashes the compiler, or takes it to gigabytes or seconds, is the program's
  runtime_error, compile_error or timeout, never the trusted side's crash, memory or log;
- a program or test that needs a benchmark library this machine lacks (the `programs` extra) ends as
  sandbox_error naming the library, not as a wrong program;
- runs never write into the caller's working directory: tests run in a private directory here,
  programs in their own inside the sandbox.

What it does not protect against:
- kernel exploits (the only seccomp filter refuses the keyring calls) and side channels between
  concurrent runs;
- without the cgroup layer (not root, or no writable cgroup v1 cpuacct and memory hierarchies, as on
  a cgroup-v2-only machine), CPU spent in child processes a module-mode program does not wait for is
  not counted per test, and memfd or shared memory is bounded only by the file-size and open-files limits (and,
  for System V memory, by the end of the run's IPC namespace), not by the memory limit;
- a run's page-cache pages (files it reads for the first time) count in its cgroup's peak memory;
  POSIX message queues a run filled are freed a moment after it ends (System V objects at once), so
  for that moment they still count against the next run's memory limit on the same worker;
- the program sees its inputs, including test-defined helper functions passed to it (shipped as
  code when they are self-contained); a callable that cannot be shipped (a closure over test
  state, a C function such as `os.remove`) stays here, and the program calls it back with
  arguments of its choosing, run here with the runner's rights: a test that passes one trusts the
  program with it;
- a pickle a test loads arrives as values (or handles): what a pickle attaches to an object beyond
  its value does not; a joblib file holding NumPy arrays is refused; other loaders of code-bearing
  formats (`yaml.unsafe_load`, `dill` with its own classes) are not intercepted: a test that runs
  them on a program's file trusts the program;
- per-test CPU and time cover the calls a test makes, not the program's loading: work done at
  module level (a table filled at import) is counted in no test's figures; operations on handles (len, str, iteration, attributes, and
  method calls such as a program class's own `equals`) are answered by the program's own code, so
  a test that only inspects a program-defined object through them trusts the program; so is the
  truth of one where test code asks for it outside an assert (`not`, `bool()`, `if`, `while node:`
  needs it), though `all` and `any` refuse it;
- tests may use any name the program defines, as the reference harnesses (program and asserts in
  one file) allow: a name the test reads but never binds is asked of the program and is a value or
  a handle (its calls run in the sandbox). A test that meant such a name for something else (a bare
  `isclose` it never imported) gets the program's; module names (`math`, `np`) are always the real
  module, imported here;
- a subclass travels as its base type's values: what it adds (a masked array's mask, extra
  attributes of a DataFrame subclass) does not reach the test;
- timing assertions in tests are compensated for the channel's round trip, measured on a trusted
  program; the compensation is approximate (tens of microseconds) and never exceeds one round trip
  per call;
- programs that need /proc, /dev/shm or the network (multiprocessing, for one) fail;
- the problem's own setup and test code run here unconfined: problem files must be trusted;
- with layers unavailable (`pgrpo sandbox info`), their protections are absent: without the
  filesystem layer a program can read world-readable files, without the uid layer it can signal
  the worker (the job is retried once on a fresh worker, then reported as sandbox_error).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import pickle
import re
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

from pgrpo.sandbox import unpickle
from pgrpo.sandbox.child import EXIT_COMPILE_ERROR, EXIT_MEMORY_ERROR
from pgrpo.sandbox.compare import outputs_match
from pgrpo.sandbox.files import SharedFiles
from pgrpo.sandbox.forkserver import ForkServer, SandboxFault, _memfd, _read_fd, _tail
from pgrpo.sandbox.isolation import Layers, set_process_name
from pgrpo.sandbox.module_tests import STARTUP_GRACE_S, ModuleTests, _on_alarm
from pgrpo.sandbox.remote import Session
from pgrpo.sandbox.wire import FrameTooLarge
from pgrpo.types import AnswerTest, AssertTest, CallTest, ExecResult, Problem, StdioTest, TestResult, Verdict

OUTPUT_LIMIT_MB = 16
MAX_PROGRAM_BYTES = 4 * 1024 * 1024
# What benchmark programs and their tests import beyond the standard library: the `programs` extra
# of pyproject.toml (tests/test_sandbox_host.py keeps the two lists equal).
PROGRAM_LIBRARIES = frozenset({"numpy", "pandas", "pytest"})
_NO_MODULE = re.compile(r"No module named '([A-Za-z_][\w.]*)'")


def program_source(code: str) -> tuple[bytes | None, str]:
    """(the program's text for the sandbox, "") or (None, why it is refused before any process).

    The program is compiled in its sandboxed child, under the run's limits, never here: the compiler
    is attack surface too (a few hundred KB of nested comprehension clauses crash CPython 3.11's, a
    long match pattern takes it to gigabytes and seconds)."""
    if len(code) > MAX_PROGRAM_BYTES:
        return None, f"program longer than {MAX_PROGRAM_BYTES} bytes"
    return code.encode("utf-8", "surrogatepass"), ""


def _private_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix=f"pgrpo-tests-{os.getpid()}-")


# ----------------------------------------------------------------------------- verdicts


@functools.cache
def _installed(name: str) -> bool:
    """Whether `name` can be imported here; programs run on this same interpreter and libraries."""
    return importlib.util.find_spec(name) is not None


def missing_library(text: str, installed: Any = _installed) -> str | None:
    """The benchmark library that an error message or a traceback says is missing, when this machine
    really lacks it (a library outside PROGRAM_LIBRARIES is the program's own mistake)."""
    for name in _NO_MODULE.findall(text):
        top = name.split(".")[0]
        if top in PROGRAM_LIBRARIES and not installed(top):
            return top
    return None


def blame_missing_library(result: TestResult, stderr: str = "", installed: Any = _installed) -> TestResult:
    """A test that ended because a benchmark library is not installed judged nothing: sandbox_error
    (masked in rewards, counted) with a message that says what to install. A program could print the
    same words to be masked rather than failed, but only on a machine that lacks the library."""
    if result.verdict not in (Verdict.RUNTIME_ERROR, Verdict.FAILED, Verdict.SANDBOX_ERROR):
        return result
    library = missing_library(f"{result.message}\n{stderr}", installed)
    if library is None:
        return result
    message = (
        f"needs {library}, which is not installed where programs run: pip install 'pgrpo[programs]' "
        "(in a clone: pip install -e '.[programs]')"
    )
    return dataclasses.replace(result, verdict=Verdict.SANDBOX_ERROR, message=message)


def _signal_name(number: int) -> str:
    """SIGTERM for 15; real-time signals (34-64), which Python does not name, by number."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"{number}"


def _exit_verdict(report: dict, stdout_fd: int | None, output_limit: int) -> tuple[Verdict, str]:
    """How a confined run ended, from the kernel's account and our own deadline bookkeeping."""
    code, killed = report["exit_code"], report["killed"]
    if killed in ("deadline", "requested"):
        return Verdict.TIMEOUT, "time limit exceeded"
    if killed == "memory":  # the run's memory cgroup hit its limit (memfd, shared memory included)
        return Verdict.MEMORY_EXCEEDED, "memory limit exceeded"
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        return Verdict.TIMEOUT, "CPU time limit exceeded"
    if code == -signal.SIGXFSZ or (stdout_fd is not None and os.fstat(stdout_fd).st_size >= output_limit):
        return Verdict.OUTPUT_EXCEEDED, "output limit exceeded"
    if code == EXIT_MEMORY_ERROR:
        return Verdict.MEMORY_EXCEEDED, "memory limit exceeded"
    if code == EXIT_COMPILE_ERROR:  # its message is the run's stderr
        return Verdict.COMPILE_ERROR, "the program does not compile"
    if code < 0:
        return Verdict.RUNTIME_ERROR, f"killed by signal {_signal_name(-code)}"
    if code != 0:
        return Verdict.RUNTIME_ERROR, f"exit status {code}"
    return Verdict.PASSED, ""


class Runner:
    """Runs programs against problems' tests through one fork server."""

    def __init__(self, disable: tuple[str, ...] = ()):
        """Owns its process's working directory: test code runs in a private directory here."""
        self.disable = disable
        self.outputs = (_memfd("stdout"), _memfd("stderr"))
        self.tests_dir = _private_dir()
        os.chdir(self.tests_dir)
        self._start_server()

    def _start_server(self) -> None:
        self.loader = unpickle.SandboxLoader(self.disable)  # pickles tests load; started on first use
        self.server = ForkServer(self.disable)
        self.files = SharedFiles(self.tests_dir, self.server.workdir)
        self.round_trip_s = self._measure_round_trip()

    @property
    def layers(self) -> Layers:
        return self.server.layers

    def restart(self) -> None:
        self.loader.close(now=True)
        try:
            self.files.close()
            self.server.close()
        except OSError:  # the old fork server is already broken; a fresh one replaces it below
            self.server.proc.kill()
        self._start_server()

    def close(self) -> None:
        self.loader.close()
        self.files.close()
        self.server.close()
        import shutil

        shutil.rmtree(self.tests_dir, ignore_errors=True)

    def _measure_round_trip(self, runs: int = 7) -> float:
        """The channel's own cost of one call, as the tests see it: the first call into a freshly
        forked trusted program (median over a few runs, in seconds)."""
        times = []
        for _ in range(runs):
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            job = {
                "mode": "module",
                "program": b"def f():\n    return None\n",
                "filename": "<calibration>",
                "module_name": "calibration",
                "cpu_s": 10,
                "wall_s": 10,
                "memory_mb": 512,
                "exports": ["f"],
            }
            try:
                self.server.start(job, {"channel": theirs.fileno()})
                theirs.close()
                session = Session(mine.fileno(), time.monotonic() + 10)
                exports = session.wait_ready()
                if not isinstance(exports, dict) or "f" not in exports:
                    raise SandboxFault(f"the calibration program did not load: {exports}")
                f = exports["f"]
                t0 = time.perf_counter()
                f()
                times.append(time.perf_counter() - t0)
            finally:
                mine.close()
                theirs.close()
            self.server.wait_exited()
        return sorted(times)[len(times) // 2]

    def run(
        self, problem: Problem, code: str, time_limit_s: float | None = None, every_test: bool = False
    ) -> ExecResult:
        """`every_test`: after a test that ends the program's process (a timeout, an output over the
        limit, a crash), run the tests after it in a fresh process instead of marking them not run,
        so each test has its own verdict (pass rates); each such test costs a program load."""
        started = time.monotonic()
        limit = time_limit_s or problem.time_limit_s
        if not problem.tests:
            return ExecResult(Verdict.FAILED, [], 0.0, message="problem has no tests")
        if any(isinstance(t, AnswerTest) for t in problem.tests):
            raise ValueError(f"{problem.id}: answer tests are checked by pgrpo.answers, not executed")
        module_tests = [t for t in problem.tests if isinstance(t, (AssertTest, CallTest))]
        source, error = program_source(code)
        if source is None:
            tests = [TestResult(Verdict.COMPILE_ERROR, message=error) for _ in problem.tests]
            return ExecResult.from_tests(tests, wall_s=time.monotonic() - started)
        results: dict[int, TestResult] = {}
        stderr = ""
        start = 0
        while start < len(module_tests):
            chunk, err, resume_at = self._run_module(problem, source, module_tests[start:], limit)
            stderr = stderr or err
            if not every_test or resume_at is None:
                resume_at = len(chunk)
            for test, result in zip(module_tests[start:], chunk[:resume_at]):
                results[id(test)] = blame_missing_library(result)
            start += resume_at
        does_not_compile: TestResult | None = None
        for test in problem.tests:
            if isinstance(test, StdioTest):
                if does_not_compile is not None:  # the same text fails to compile the same way
                    results[id(test)] = does_not_compile
                    continue
                results[id(test)], err = self._run_stdio(problem, source, test, limit)
                stderr = stderr or err
                if results[id(test)].verdict is Verdict.COMPILE_ERROR:
                    does_not_compile = results[id(test)]
        ordered = [results[id(t)] for t in problem.tests]
        return ExecResult.from_tests(ordered, wall_s=time.monotonic() - started, stderr=stderr)

    def _output_files(self) -> tuple[int, int]:
        """This worker's stdout and stderr files, emptied for a new run (one pair, reused)."""
        for fd in self.outputs:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        return self.outputs

    # ------------------------------------------------------------------ stdio
    def _run_stdio(
        self, problem: Problem, source: bytes, test: StdioTest, limit: float
    ) -> tuple[TestResult, str]:
        output_limit = OUTPUT_LIMIT_MB * 1024 * 1024
        stdout, stderr = self._output_files()
        stdin = _memfd("stdin", test.stdin.encode())
        try:
            job = {
                "mode": "script",
                "program": source,
                "filename": "<__main__>",
                "cpu_s": limit,
                "wall_s": limit,
                "memory_mb": problem.memory_limit_mb,
                "output_mb": OUTPUT_LIMIT_MB,
            }
            t0 = time.monotonic()
            self.server.start(job, {"stdin": stdin, "stdout": stdout, "stderr": stderr})
            report = self.server.wait_exited()
            wall = time.monotonic() - t0
            verdict, message = _exit_verdict(report, stdout, output_limit)
            err = _tail(stderr)
            if verdict is Verdict.COMPILE_ERROR:
                message = err.strip() or message
            if verdict is Verdict.PASSED and not outputs_match(test.stdout, _read_fd(stdout, output_limit)):
                verdict, message = Verdict.FAILED, "wrong output"
            result = TestResult(verdict, wall, report["cpu_s"], report["maxrss_kb"] / 1024, message=message)
            return blame_missing_library(result, err), err
        finally:
            os.close(stdin)

    # ------------------------------------------------------------------ assert and call
    def _run_module(
        self, problem: Problem, source: bytes, tests: list, limit: float
    ) -> tuple[list[TestResult], str, int | None]:
        """The tests' results, the run's stderr, and where a fresh run could resume: the index after
        the test that ended this one early, or None (every test ran, or none can run anew)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stdout, stderr = self._output_files()
        job = {
            "mode": "module",
            "program": source,
            "filename": f"<{problem.candidate_module}>",
            "module_name": problem.candidate_module,
            "cpu_s": limit * (len(tests) + 1),
            "wall_s": limit * (len(tests) + 1) + STARTUP_GRACE_S,
            "memory_mb": problem.memory_limit_mb,
            "output_mb": OUTPUT_LIMIT_MB,
            "exports": [problem.entry_point] if problem.entry_point else [],
        }
        try:
            self.server.start(job, {"channel": theirs.fileno(), "stdout": stdout, "stderr": stderr})
            theirs.close()
            session = Session(mine.fileno(), time.monotonic() + limit + STARTUP_GRACE_S, self.files)
            session.round_trip_s = self.round_trip_s
            self.files.reset()
            module_tests = ModuleTests(self.server, session, problem, tests, limit)
            try:
                load = functools.partial(self.loader.load, limit=limit, memory_mb=problem.memory_limit_mb)
                with unpickle.loading_in(load):  # pickles the tests load: in a sandbox of their own
                    results = module_tests.run()
            finally:
                module_tests.close()
            if session.violation is not None:  # it broke the protocol: nothing more to wait for
                self.server.kill()
            mine.close()  # the program sees end of input and exits; the fork server reports how
            if not select.select([self.server.sock], [], [], limit)[0]:  # it lingers: one time limit at most
                self.server.kill()
            exited = self.server.wait_exited()
            if any(r is None for r in results):  # it ended before the tests did: ask the kernel how
                verdict, message = _exit_verdict(exited, stdout, OUTPUT_LIMIT_MB * 1024 * 1024)
                if verdict is Verdict.COMPILE_ERROR:
                    message = _tail(stderr).strip() or message
                if isinstance(session.violation, FrameTooLarge):
                    verdict, message = Verdict.OUTPUT_EXCEEDED, "value too large for the channel"
                elif session.violation is not None:
                    verdict, message = Verdict.RUNTIME_ERROR, str(session.violation)[:500]
                elif verdict is Verdict.PASSED:
                    verdict, message = Verdict.RUNTIME_ERROR, "the program exited during the tests"
                results = [r or TestResult(verdict, message=message) for r in results]
            stopped = module_tests.stopped_at
            resumable = stopped is not None and stopped + 1 < len(tests) and session.violation is None
            return results, _tail(stderr), stopped + 1 if resumable else None
        finally:
            mine.close()
            theirs.close()


# ----------------------------------------------------------------------------- worker process


def _send(stream: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def _recv(stream: Any) -> Any:
    header = stream.read(4)
    if len(header) < 4:
        raise EOFError
    return unpickle.trusted_loads(stream.read(struct.unpack(">I", header)[0]))  # the pool's: trusted


def _serve(runner: Runner, requests: Any, replies: Any) -> None:
    """Answer the pool's messages until it closes our input."""
    problems: dict[str, Problem] = {}
    current_batch = ""
    while True:
        try:
            message = _recv(requests)
        except EOFError:
            break
        if message[0] == "problem":  # (key, problem): the pool's key, "batch:index:id"
            key, problem = message[1], message[2]
            batch = key.split(":", 1)[0]
            if batch != current_batch:  # a new batch: the old one's problems are never asked for again
                problems, current_batch = {}, batch
            problems[key] = problem
            continue
        _, job_id, problem_id, code, limit, every_test = message
        try:
            result = runner.run(problems[problem_id], code, limit, every_test)
        except SandboxFault as e:
            runner.restart()
            result = ExecResult(Verdict.SANDBOX_ERROR, [], message=str(e))
        except BaseException as e:  # a bug of ours: reported and counted as such, and the worker carries on
            # (BaseException: the channel's own exceptions are BaseExceptions, so that test code cannot
            # catch them; one escaping here must not take the worker, and its queued jobs, down)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            import traceback

            runner.restart()
            message = (
                "internal error in the trusted runner: " + "".join(traceback.format_exception_only(e)).strip()
            )
            result = ExecResult(Verdict.SANDBOX_ERROR, [], message=message[:2000])
        _send(replies, ("result", job_id, result))


def main() -> None:
    """Worker process: reads (job id, problem, code, limit) from stdin, writes results to stdout.
    Arguments: the layers to disable (comma-separated), then optionally the CPU to run on."""
    disable = tuple(x for x in sys.argv[1].split(",") if x) if len(sys.argv) > 1 else ()
    if len(sys.argv) > 2:  # the CPU the pool gave this worker: the fork server and programs inherit it
        try:
            os.sched_setaffinity(0, {int(sys.argv[2])})
        except OSError:
            pass  # not allowed here (a CPU set changed meanwhile): the worker runs unpinned
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by trusted test code goes to stderr, not into the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    set_process_name("pgrpo-runner")
    signal.signal(signal.SIGALRM, _on_alarm)
    unpickle.install()  # test code loading a program's pickles runs none of its code
    runner = Runner(disable)
    try:
        _send(replies, ("hello", runner.layers.to_dict()))
        _serve(runner, requests, replies)
    except BrokenPipeError:
        pass  # the pool is gone (killed or interrupted): there is nobody to answer
    finally:
        runner.close()
