"""The trusted side's handle on a fork server (`zygote`): start it, send runs, find and kill the
running program by pidfd, and the small descriptor and /proc helpers that go with it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from pgrpo.sandbox import wire
from pgrpo.sandbox.isolation import Layers


class SandboxFault(Exception):
    """Infrastructure failure: the fork server died or misbehaved. Never the candidate's doing."""


def child_command(module: str, *args: str) -> list[str]:
    """Start a module of ours in a lean interpreter: no site hooks, our sys.path passed explicitly."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [package_parent] + [p for p in sys.path if p and os.path.isdir(p)]
    boot = f"import sys; sys.path[:0] = {paths!r}; import {module} as m; m.main()"
    return [sys.executable, "-I", "-S", "-c", boot, *args]


# ----------------------------------------------------------------------------- the fork server


class ForkServer:
    """The trusted side's handle on one zygote process."""

    def __init__(self, disable: tuple[str, ...] = ()):
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        config = json.dumps({"disable": list(disable)})
        self.proc = subprocess.Popen(
            child_command("pgrpo.sandbox.zygote", str(theirs.fileno()), config),
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.sock = mine
        hello, fds = self._recv()
        self.layers = Layers.from_dict(hello["layers"])
        self.pid = _pid_of(fds[0])
        os.close(fds[0])
        self.workdir = f"/proc/{self.pid}/root{hello['workdir']}"
        cgroup = hello.get("cgroup")  # where each run is accounted, if anywhere
        self.cgroup_stats = CgroupStats(cgroup) if cgroup is not None else None
        self.run_child: tuple[int, int] | None = None  # the running program: (pid, pidfd)

    def _recv(self) -> tuple[dict, list[int]]:
        try:
            return wire.recv_msg(self.sock)
        except (EOFError, OSError, wire.WireError) as e:
            raise SandboxFault(f"fork server stopped answering: {e}") from None

    def start(self, job: dict, fds: dict[str, int]) -> None:
        """Send a run. The fork server answers once, when the run's processes are all gone.

        `job["program"]` (the program's text, bytes) travels in a memfd that only the forked child
        reads (and compiles): the fork server never holds a sample's text, which later runs would
        inherit."""
        self._forget_child()
        job = dict(job)
        program = _memfd("program", job.pop("program"))
        fds = {"program": program, **fds}
        job.update(op="run", fds=list(fds))
        try:
            wire.send_msg(self.sock, job, list(fds.values()))
        except OSError as e:
            raise SandboxFault(f"fork server unreachable: {e}") from None
        finally:
            os.close(program)

    def _forget_child(self) -> None:
        if self.run_child is not None:
            os.close(self.run_child[1])
        self.run_child = None

    def run_pid(self) -> int | None:
        """The running program's pid (in our namespace), found from the kernel, never from the
        program: the oldest child of the fork server. A pidfd is kept so a kill cannot hit a reused pid."""
        if self.run_child is None:
            children = _children_of(self.pid)
            if not children:
                return None
            pid = min(children, key=_start_time)
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                return None
            if pid not in _children_of(self.pid):  # it exited and the pid moved on before we opened it
                os.close(pidfd)
                return None
            self.run_child = (pid, pidfd)
        return self.run_child[0]

    def stats(self, pid: int | None) -> Any:
        """What a test reads its CPU seconds and peak MB from: the run's cgroups where the fork
        server has them (every thread and process of the run, memfd and shared memory included),
        else the program's own process in /proc."""
        if self.cgroup_stats is not None:
            return self.cgroup_stats  # opened once: the same files serve every run
        return ProcStats(pid)

    def kill(self) -> None:
        """Kill the running program now (a deadline passed); the fork server then reports and cleans up."""
        if self.run_pid() is not None:
            try:
                signal.pidfd_send_signal(self.run_child[1], signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait_exited(self) -> dict:
        try:
            message, fds = self._recv()
        finally:  # the pidfd is closed even when the fork server died
            self._forget_child()
        for fd in fds:
            os.close(fd)
        if message.get("event") != "exited":
            raise SandboxFault(f"unexpected reply from fork server: {message}")
        return message

    def close(self) -> None:
        self._forget_child()
        if self.cgroup_stats is not None:
            self.cgroup_stats.release()
        self.sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class CgroupStats:
    """CPU seconds and peak MB of a whole run, read from the cgroups the fork server made for it."""

    def __init__(self, paths: dict):
        self.fds: list[int] = []
        for name in ("cpu_ns", "peak_bytes"):
            self.fds.append(os.open(paths[name], os.O_RDONLY))

    def read(self) -> tuple[float | None, float | None]:
        try:
            cpu_ns, peak = (int(os.pread(fd, 64, 0)) for fd in self.fds)
        except (OSError, ValueError):
            return None, None
        return cpu_ns / 1e9, peak / (1024 * 1024)

    def close(self) -> None:
        """A test run is done with it; the fork server's handle keeps it for the next."""

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


class ProcStats:
    """CPU seconds and peak resident MB of a live process, read by the trusted side (where the run has
    no cgroups). CPU is the whole process's: every thread, ended ones included (the kernel's
    thread-group CPU clock, in ns), plus the children it has waited for (/proc/<pid>/stat, in clock
    ticks); children it never waits for are not counted per test."""

    def __init__(self, pid: int | None):
        self.fds: list[int | None] = [None, None]
        self.clock: int | None = None
        if pid is None:
            return
        for i, name in enumerate(("stat", "status")):
            try:
                self.fds[i] = os.open(f"/proc/{pid}/{name}", os.O_RDONLY)
            except OSError:
                pass
        self.clock = (~pid << 3) | 2  # clock_getcpuclockid(pid): CPUCLOCK_SCHED of the thread group

    def read(self) -> tuple[float | None, float | None]:
        cpu = peak = None
        stat, status = self.fds
        try:
            if stat is not None and self.clock is not None:
                # The stat descriptor pins the process: it reads only while that process exists.
                fields = os.pread(stat, 1024, 0).rsplit(b")", 1)[1].split()
                children = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime
                cpu = time.clock_gettime(self.clock) + children
            if status is not None:
                text = os.pread(status, 4096, 0)
                at = text.find(b"VmHWM:")
                if at >= 0:
                    peak = int(text[at + 6 : text.index(b"kB", at)]) / 1024
        except (OSError, ValueError, IndexError):
            pass
        return cpu, peak

    def close(self) -> None:
        for fd in self.fds:
            if fd is not None:
                os.close(fd)
        self.fds = [None, None]


def _children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _start_time(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 1 << 62


def _pid_of(pidfd: int) -> int | None:
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                pid = int(line.split()[1])
                return pid if pid > 0 else None
    return None


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    if data:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_fd(fd: int, limit: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, min(size, limit), 0)


def _tail(fd: int, limit: int = 2000) -> str:
    size = os.fstat(fd).st_size
    return os.pread(fd, min(size, limit), max(0, size - limit)).decode("utf-8", "replace")
