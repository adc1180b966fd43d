"""The executor's public face: a pool of workers that runs (problem, program) pairs in parallel.

Each worker is a trusted runner process with its own fork server (see `runner` and `zygote`).
Results come back in input order. A worker that dies is an infrastructure fault: its jobs are
retried once on a fresh worker and, if that fails too, reported as `sandbox_error` (counted,
never silently turned into a failure).
"""

from __future__ import annotations

import os
import pickle
import selectors
import struct
import subprocess
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pgrpo.sandbox.isolation import Layers
from pgrpo.types import ExecResult, Problem, Verdict

MAX_IN_FLIGHT = 2  # per worker: one running, one queued behind it
MAX_ATTEMPTS = 2


class _Worker:
    def __init__(self, disable: tuple[str, ...], cpu: int | None = None):
        from pgrpo.sandbox.forkserver import child_command

        pin = () if cpu is None else (str(cpu),)
        self.proc = subprocess.Popen(
            child_command("pgrpo.sandbox.runner", ",".join(disable), *pin),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            # Its own process group: Ctrl-C (SIGINT to the terminal's foreground group) reaches only
            # the parent, which then stops its workers (`close`); a worker starting up has not yet
            # set SIGINT aside, and would print a KeyboardInterrupt traceback of its own.
            process_group=0,
        )
        self.known_problems: set[str] = set()
        self.in_flight: dict[int, int] = {}  # job index -> attempt, in the order sent
        self.deadline = float("inf")  # by when the oldest job in flight must have come back
        self.buffer = b""
        self.layers: Layers | None = None

    def send(self, message: tuple) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.write(struct.pack(">I", len(data)) + data)

    def read_available(self) -> list[tuple] | None:
        """Messages completed by the bytes now readable; None when the worker is gone."""
        chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
        if not chunk:
            return None
        self.buffer += chunk
        messages = []
        while len(self.buffer) >= 4:
            (size,) = struct.unpack(">I", self.buffer[:4])
            if len(self.buffer) < 4 + size:
                break
            messages.append(pickle.loads(self.buffer[4 : 4 + size]))
            self.buffer = self.buffer[4 + size :]
        return messages

    def close(self, now: bool = False) -> None:
        """Stop the worker: when it has read all it was sent, or `now` (what it runs is abandoned)."""
        if now:
            self.proc.kill()  # its fork server and the running program die with it (parent-death signals)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _remove_tests_dirs(self.proc.pid)


def _remove_tests_dirs(pid: int) -> None:
    """A worker that was killed could not remove its tests' directory (see `runner.Runner`)."""
    import glob
    import shutil
    import tempfile

    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"pgrpo-tests-{pid}-*")):
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class _Batch:
    jobs: list[tuple[Problem, str]]
    time_limit_s: float | None
    serial: int = 0  # distinguishes batches: workers remember problems by (batch, object), not by id
    pending: deque = field(default_factory=deque)
    results: dict[int, ExecResult] = field(default_factory=dict)
    keys: dict[int, str] = field(default_factory=dict)

    def key_of(self, problem: Problem) -> str:
        """Two problems may share an id (HumanEval and HumanEval+): workers know them by this key.
        The batch holds every problem object, so `id()` is stable while the key is in use."""
        key = self.keys.get(id(problem))
        if key is None:
            key = self.keys[id(problem)] = f"{self.serial}:{len(self.keys)}:{problem.id}"
        return key


def _budget(problem: Problem, time_limit_s: float | None) -> float:
    """Everything one run may take, generously: every test at its limit, plus start-up."""
    limit = time_limit_s or problem.time_limit_s
    return (len(problem.tests) + 2) * (limit + 2.0) + 10.0


class Executor:
    """Runs programs against problems' tests in isolated processes.

    >>> with Executor(workers=2) as ex:
    ...     results = list(ex.map([(problem, code), ...]))
    """

    def __init__(
        self,
        workers: int = 2,
        time_limit_s: float | None = None,
        disable: Iterable[str] = (),
        every_test: bool = False,
    ):
        """`every_test`: give every test its own verdict, for pass rates. By default a test that ends
        the program's process (timeout, output over the limit, crash) leaves the tests after it
        "not run" with its verdict, which decides "all tests pass" as well; with it, they run in a
        fresh process, at the cost of a program load (and up to a time limit) per such test."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.time_limit_s = time_limit_s
        self.every_test = every_test
        self.disable = tuple(disable)
        # With at least one worker per CPU, each worker (its runner, fork server and programs) stays
        # on one CPU: a sample hands over between three processes, and on a busy machine a hand-over
        # that changes CPU waits longer. Fewer workers than CPUs stay free to move.
        cpus = sorted(os.sched_getaffinity(0))
        self.cpus = cpus if workers >= len(cpus) else []
        self.selector = selectors.DefaultSelector()
        self.workers: list[_Worker] = []
        try:
            for slot in range(workers):
                self.workers.append(self._start_worker(slot))
            for worker in self.workers:
                self._await_hello(worker)
        except BaseException:  # Ctrl-C included: no worker outlives a pool that never started
            for worker in self.workers:
                worker.close(now=True)
            self.selector.close()
            raise
        self.infrastructure_failures = 0
        self.batches = 0

    # ------------------------------------------------------------------ lifecycle
    def _start_worker(self, slot: int) -> _Worker:
        worker = _Worker(self.disable, self.cpus[slot % len(self.cpus)] if self.cpus else None)
        self.selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
        return worker

    def _await_hello(self, worker: _Worker) -> None:
        while worker.layers is None:
            messages = worker.read_available()
            if messages is None:
                raise RuntimeError("sandbox worker failed to start; run `pgrpo sandbox info` for details")
            for message in messages:
                if message[0] == "hello":
                    worker.layers = Layers.from_dict(message[1])

    @property
    def layers(self) -> Layers:
        return self.workers[0].layers

    def close(self) -> None:
        """Stop the workers. One with runs in flight is killed at once: nobody will read its results
        (the caller stopped reading, or was interrupted), and a run may take its whole time limit."""
        for worker in self.workers:
            self.selector.unregister(worker.proc.stdout)
            worker.close(now=bool(worker.in_flight))
        self.workers = []
        self.selector.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ running
    def run(self, problem: Problem, code: str) -> ExecResult:
        return next(self.map([(problem, code)]))

    def map(self, jobs: Iterable[tuple[Problem, str]], progress: object = None) -> Iterator[ExecResult]:
        """Yield one result per (problem, program), in input order. `progress` gets `.update(1)` calls."""
        self.batches += 1
        batch = _Batch(jobs=list(jobs), time_limit_s=self.time_limit_s, serial=self.batches)
        for problem, _ in batch.jobs:
            if any(t.type == "answer" for t in problem.tests):
                raise ValueError(f"{problem.id}: answer tests are checked by pgrpo.answers, not executed")
        batch.pending.extend((i, 1) for i in range(len(batch.jobs)))
        next_to_yield = 0
        self._fill(batch)
        while next_to_yield < len(batch.jobs):
            while next_to_yield in batch.results:
                yield batch.results.pop(next_to_yield)
                next_to_yield += 1
                if progress is not None:
                    progress.update(1)
            if next_to_yield >= len(batch.jobs):
                break
            timeout = max(0.0, min(w.deadline for w in self.workers) - time.monotonic())
            for key, _ in self.selector.select(min(timeout, 60.0)):
                self._collect(key.data, batch)
            self._enforce_deadlines(batch)
            self._fill(batch)

    def _fill(self, batch: _Batch) -> None:
        for worker in sorted(self.workers, key=lambda w: len(w.in_flight)):
            while batch.pending and len(worker.in_flight) < MAX_IN_FLIGHT:
                index, attempt = batch.pending.popleft()
                problem, code = batch.jobs[index]
                key = batch.key_of(problem)
                try:
                    if key not in worker.known_problems:
                        worker.send(("problem", key, problem))
                        worker.known_problems.add(key)
                    worker.send(
                        ("run", (batch.serial, index), key, code, batch.time_limit_s, self.every_test)
                    )
                except (BrokenPipeError, OSError):
                    batch.pending.appendleft((index, attempt))
                    break
                if not worker.in_flight:
                    worker.deadline = time.monotonic() + _budget(problem, batch.time_limit_s)
                worker.in_flight[index] = attempt

    def _enforce_deadlines(self, batch: _Batch) -> None:
        """The backstop: a worker stuck past a run's whole budget is stopped and replaced. The
        run it was on gets `timeout` (the runner's own deadlines failed to fire, which only a
        program's value keeping trusted code busy can cause); the jobs queued behind it are retried."""
        now = time.monotonic()
        for worker in list(self.workers):
            if worker.in_flight and now > worker.deadline:
                stuck = next(iter(worker.in_flight))
                worker.in_flight.pop(stuck)
                batch.results[stuck] = ExecResult(
                    Verdict.TIMEOUT,
                    [],
                    message="the run outlasted its whole time budget; its worker was stopped",
                )
                worker.proc.kill()
                self._replace(worker, batch)

    def _collect(self, worker: _Worker, batch: _Batch) -> None:
        messages = worker.read_available()
        if messages is None:
            self._replace(worker, batch)
            return
        for message in messages:
            if message[0] == "result":
                _, (serial, index), result = message
                if serial != batch.serial:  # from a batch the caller stopped reading: dropped
                    continue
                worker.in_flight.pop(index, None)
                if worker.in_flight:  # the next job starts now
                    next_index = next(iter(worker.in_flight))
                    worker.deadline = time.monotonic() + _budget(
                        batch.jobs[next_index][0], batch.time_limit_s
                    )
                else:
                    worker.deadline = float("inf")
                if result.verdict is Verdict.SANDBOX_ERROR:
                    self.infrastructure_failures += 1
                batch.results[index] = result

    def _replace(self, worker: _Worker, batch: _Batch) -> None:
        """A worker died: an infrastructure fault. Retry its jobs once on a fresh worker."""
        self.selector.unregister(worker.proc.stdout)
        worker.close()
        for index, attempt in worker.in_flight.items():
            if attempt < MAX_ATTEMPTS:
                batch.pending.appendleft((index, attempt + 1))
            else:
                self.infrastructure_failures += 1
                batch.results[index] = ExecResult(
                    Verdict.SANDBOX_ERROR, [], message=f"sandbox worker died {attempt} times on this job"
                )
        slot = self.workers.index(worker)
        fresh = self._start_worker(slot)
        self._await_hello(fresh)
        self.workers[slot] = fresh
