"""The llamacpp backend's worker processes: each loads the model once and decodes its share of a call's
prompts with its own `Decoder` (one thread each by default: two 1-thread processes hold up on a busy
2-core machine where one 2-thread process collapses). Started as `python -c`, talking over a pipe."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pgrpo.llm.llamacpp import Decoder
from pgrpo.options import UsageError


def worker_main(fd: int) -> None:
    """A worker process: load the model, then decode each ("generate", call, params, per_seq, jobs) it is
    sent, answering ("done", call, key, text) per job and ("finished", call) per call."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends us
    conn = Connection(fd)
    try:
        path, options = conn.recv()
        decoder = Decoder(Path(path), **options)
        conn.send(("ready",))
        while (message := conn.recv()) is not None:
            _, call, params, per_seq, jobs = message
            for key, text in decoder.run(jobs, params, per_seq):
                conn.send(("done", call, key, text))
            conn.send(("finished", call))
    except (EOFError, BrokenPipeError):
        return  # the parent is gone
    except BaseException as e:  # noqa: BLE001 - the parent raises it again, with this traceback
        conn.send(("error", type(e).__name__, str(e), traceback.format_exc()))


class Worker:
    """One worker process, started as `python -c` (not multiprocessing's spawn, which would run the
    caller's main script again in each worker), talking over a socket pair."""

    def __init__(self, path: Path, options: dict, wid: int) -> None:
        import pgrpo

        ours, theirs = multiprocessing.Pipe()
        source = str(Path(pgrpo.__file__).resolve().parent.parent)  # so the worker imports this pgrpo
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])),
        }
        code = "import sys; from pgrpo.llm.llamacpp_workers import worker_main; worker_main(int(sys.argv[1]))"
        self.name = f"llamacpp worker {wid}"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        self.conn = ours
        self.conn.send((str(path), options))
        self.ready = False


class Pool:
    """`workers` processes, each with a Decoder; the jobs of a call are dealt out round-robin."""

    def __init__(self, path: Path, workers: int, options: dict) -> None:
        self.workers = [Worker(path, options, wid) for wid in range(workers)]
        self.calls = 0

    def _messages(self) -> Iterator[tuple[Worker, tuple]]:
        from multiprocessing.connection import wait

        by_conn = {w.conn: w for w in self.workers}
        while True:
            for conn in wait(list(by_conn), timeout=1.0):
                worker = by_conn[conn]
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    code = worker.process.wait()
                    raise RuntimeError(f"{worker.name} ended (exit code {code})") from None
                if message[0] == "error":
                    _, kind, text, trace = message
                    if kind == "UsageError":
                        raise UsageError(text)
                    raise RuntimeError(f"{worker.name} failed: {kind}: {text}\n{trace}")
                yield worker, message

    def run(
        self, jobs: list[tuple[Any, list[int], int | None]], params: dict, per_seq: int
    ) -> Iterator[tuple[Any, str]]:
        messages = self._messages()
        while not all(w.ready for w in self.workers):
            worker, _ = next(messages)  # ("ready",): load errors surface here
            worker.ready = True
        self.calls += 1
        call = self.calls
        for wid, worker in enumerate(self.workers):
            worker.conn.send(("generate", call, params, per_seq, jobs[wid :: len(self.workers)]))
        finished = 0
        for _, message in messages:
            if message[0] == "done" and message[1] == call:
                yield message[2], message[3]
            elif message[0] == "finished" and message[1] == call:
                finished += 1
                if finished == len(self.workers):
                    return

    def close(self, wait: bool = True) -> None:
        """Ask the workers to exit (`wait`: between calls) or end them now (in the middle of a call)."""
        for worker in self.workers:
            if wait:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
            worker.conn.close()  # a worker that reads or writes it next exits
            try:
                worker.process.wait(timeout=5 if wait else 0.1)
            except subprocess.TimeoutExpired:
                worker.process.terminate()
                worker.process.wait(timeout=5)
