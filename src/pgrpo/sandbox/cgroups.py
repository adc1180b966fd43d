"""Run accounting in cgroups: what the kernel counts for a whole run, threads and child processes
included, and the memory limit that also covers memory outside the address space.

cgroup v1 `cpuacct` and `memory` hierarchies only (what this machine offers); where they are absent
or not writable the `cgroup` layer is off and the fork server measures as before (wait4, /proc).
Only the standard library: this module is imported by the fork server.
"""

from __future__ import annotations

import errno
import os

CGROUP_ROOT = "/sys/fs/cgroup"


def _cgroup_of(controller: str) -> str:
    """This process's cgroup in the v1 hierarchy that has `controller` ("" for the root)."""
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return path.rstrip("/")
    raise OSError(errno.ENOENT, f"no cgroup v1 hierarchy with {controller}")


def _open_high(path: str, flags: int) -> int:
    """Open above 9: the fork server places each run's descriptors at 0-3."""
    import fcntl

    fd = os.open(path, flags)
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    finally:
        os.close(fd)


class RunCgroup:
    """A cgroup v1 `cpuacct` and `memory` group for one worker's runs. Each run's first process
    joins both (its threads and children follow), so the kernel counts everything the run does:
    CPU of every thread and process, and memory that no address-space limit sees (memfd, shared
    memory, files written to the tmpfs). The fork server itself stays outside. Needs root."""

    def __init__(self, name: str):
        self.dirs: list[str] = []
        try:
            for controller in ("cpuacct", "memory"):
                path = f"{CGROUP_ROOT}/{controller}{_cgroup_of(controller)}/{name}"
                os.mkdir(path, 0o700)
                self.dirs.append(path)
        except OSError:
            self.remove()
            raise
        cpu, memory = self.dirs
        self.join_fds = [_open_high(f"{d}/cgroup.procs", os.O_WRONLY) for d in self.dirs]
        self.usage = _open_high(f"{cpu}/cpuacct.usage", os.O_RDONLY)
        self.peak = _open_high(f"{memory}/memory.max_usage_in_bytes", os.O_RDWR)
        self.limit = _open_high(f"{memory}/memory.limit_in_bytes", os.O_WRONLY)
        self.oom = _open_high(f"{memory}/memory.oom_control", os.O_RDONLY)
        self.limit_bytes = 0
        self.seen = (self.cpu_ns(), self.oom_kills())  # the counters stand still between runs
        self.paths = {"cpu_ns": f"{cpu}/cpuacct.usage", "peak_bytes": f"{memory}/memory.max_usage_in_bytes"}

    def prepare(self, limit_bytes: int) -> None:
        """Before a run: its memory limit, and the peak counter reset."""
        if limit_bytes != self.limit_bytes:
            try:
                os.write(self.limit, str(limit_bytes).encode())
                self.limit_bytes = limit_bytes
            except OSError:
                pass  # pages still charged from an earlier run: the address-space limit still holds
        os.write(self.peak, b"0")

    def join(self) -> None:
        """In the run's first process, before the program starts."""
        for fd in self.join_fds:
            os.write(fd, b"0")

    def account(self) -> tuple[float, int, bool]:
        """After a run (no process left in the groups): its CPU seconds, peak KB, and whether the
        memory limit killed one of its processes."""
        now = (self.cpu_ns(), self.oom_kills())
        cpu_s, killed = (now[0] - self.seen[0]) / 1e9, now[1] > self.seen[1]
        self.seen = now
        return cpu_s, self.peak_bytes() // 1024, killed

    def cpu_ns(self) -> int:
        return int(os.pread(self.usage, 64, 0))

    def peak_bytes(self) -> int:
        return int(os.pread(self.peak, 64, 0))

    def oom_kills(self) -> int:
        for line in os.pread(self.oom, 512, 0).decode().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def remove(self) -> None:
        """When no process is left in them; safe to call from any process that knows the paths."""
        for path in self.dirs:
            try:
                os.rmdir(path)
            except OSError:
                pass


def sweep_stale_cgroups(prefix: str = "pgrpo-") -> None:
    """Remove run cgroups of fork servers that died without removing them (named prefix + pid)."""
    for controller in ("cpuacct", "memory"):
        try:
            base = f"{CGROUP_ROOT}/{controller}{_cgroup_of(controller)}"
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            pid = name[len(prefix) :]
            if name.startswith(prefix) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                try:
                    os.rmdir(f"{base}/{name}")  # only if no process is left in it
                except OSError:
                    pass
