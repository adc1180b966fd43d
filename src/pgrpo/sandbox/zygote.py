"""The fork server: a warm, clean process that forks one confined child per run.

It never receives a test or an expected value, so nothing a child can read from its inherited
memory is a secret. Started once per worker (`python -I -S -c ...`, no site hooks, so forks stay
cheap), it enters its own PID, network, IPC and mount namespaces when it can, becomes init of the
PID namespace, prepares the read-only root, and then serves `run` requests on its control socket:

    run (+ fds: program, and channel, stdin, stdout, stderr, each optional) -> exited (exit status, rusage)

The program's code arrives in a memfd that only the child reads, after the fork: no sample's text
ever enters this process's memory, which every later child inherits. Each run has an IPC namespace
of its own (made here after the previous run, so its objects die with it); after each run the work
directory is emptied and reset (mode, owner, times, extended attributes), so every run starts from
the same state.

The runner finds the child among our children in /proc and kills it by pidfd when a deadline passes.

When it reports `exited`, every process the run started is gone.
"""

from __future__ import annotations

import _signal
import fcntl
import gc
import json
import os
import resource
import signal
import socket
import sys
import time

from pgrpo.sandbox import child, values, wire
from pgrpo.sandbox.cgroups import RunCgroup, sweep_stale_cgroups
from pgrpo.sandbox.isolation import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    Layers,
    block_keyrings,
    drop_privileges,
    empty_dir,
    kill_descendants_as_subreaper,
    kill_namespace_rest,
    prctl,
    remove_shared_memory,
    reset_dir,
    rlimits,
    set_process_name,
    setup_filesystem,
    umount_detach,
    unshare,
)

SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# The child resets SIGALRM through the C module with plain ints: `signal.signal` converts its answer
# to an enum member, Python code that touched (and so copied) ~50 shared pages in every child.
_SIGALRM, _SIG_DFL = int(signal.SIGALRM), int(signal.SIG_DFL)
# Modules programs import most, imported once here. Not `random` or `threading` (nor `tempfile`,
# which imports both): their at-fork hooks would cost every child ~170 page copies.
PRELOAD = (
    "math",
    "collections",
    "itertools",
    "functools",
    "re",
    "heapq",
    "bisect",
    "string",
    "typing",
    "json",
    "operator",
)


class Zygote:
    def __init__(
        self,
        sock: socket.socket,
        layers: Layers,
        workdir: str,
        proc: int,
        stderr: int,
        cgroup: RunCgroup | None,
    ):
        self.sock = sock
        self.layers = layers
        self.workdir = workdir  # where runs start and leave files (we may be chrooted already)
        self.work_fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        self.proc = proc  # a descriptor on /proc, opened before any chroot
        self.stderr = stderr  # our own stderr, kept above 3 while runs borrow 0-3
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.cgroup = cgroup  # accounts each run's CPU and memory, when the machine lets us
        self.ipc_fresh = True  # our IPC namespace is new (main() made it): no run has used it yet
        self.child: int | None = None
        self.deadline_hit = False
        signal.signal(signal.SIGALRM, self._on_alarm)

    # ------------------------------------------------------------------ one run
    def run(self, job: dict, fds: list[int]) -> None:
        passed = dict(zip(job["fds"], fds))  # which of program/channel/stdin/stdout/stderr were sent
        # Everything the child needs is computed now: after the fork, every page it writes costs a copy.
        sources = [passed.get(name, self.devnull) for name in ("stdin", "stdout", "stderr", "channel")]
        limits = rlimits(int(job["cpu_s"]) + 1, int(job["memory_mb"]), int(job.get("output_mb", 16)))
        for target, fd in enumerate(sources):  # the child inherits them in place
            os.dup2(fd, target)
        if self.cgroup is not None:
            self.cgroup.prepare(int(job["memory_mb"]) * 1024 * 1024)
        else:  # every process of the run is reaped here (we are its subreaper or init)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_before = children.ru_utime + children.ru_stime
        pid = os.fork()
        if pid == 0:
            self._become_child(job, passed["program"], limits)  # never returns
        self.ipc_fresh = False
        for target in range(4):
            os.dup2(self.stderr if target == 2 else self.devnull, target)
        # Until the child exits, do nothing but wait: every page this process writes while the
        # child lives costs a copy. The runner kills the child itself (by pidfd) when a test's
        # deadline passes; the alarm here is the backstop for the whole run.
        started = time.monotonic()
        self.child, self.deadline_hit = pid, False
        signal.setitimer(signal.ITIMER_REAL, float(job["wall_s"]))
        _, status, usage = os.wait4(pid, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.child = None
        for fd in fds:
            os.close(fd)
        wall_s = time.monotonic() - started
        leftovers = self._clean_up()
        if self.cgroup is not None:
            cpu_s, maxrss_kb, out_of_memory = self.cgroup.account()
        else:
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_s, maxrss_kb = children.ru_utime + children.ru_stime - cpu_before, usage.ru_maxrss
            out_of_memory = False
        wire.send_msg(
            self.sock,
            {
                "event": "exited",
                "exit_code": os.waitstatus_to_exitcode(status),
                "killed": "deadline" if self.deadline_hit else ("memory" if out_of_memory else None),
                "cpu_s": cpu_s,  # every thread and process of the run
                "maxrss_kb": maxrss_kb,
                "wall_s": wall_s,
                "leftovers": leftovers,
            },
        )
        self._fresh_ipc_namespace()

    def _fresh_ipc_namespace(self) -> None:
        """Leave the IPC namespace the last run used (it dies with everything the run made in it)
        for a new one that the next run inherits. Done here, after the report, because creating
        one mostly waits on the kernel: in the child it would delay every run by ~0.1-0.3 ms."""
        if self.layers.active["ipc_namespace"]:
            remove_shared_memory()
            try:
                unshare(CLONE_NEWIPC)
                self.ipc_fresh = True
            except OSError:
                pass  # the child makes its own instead

    def _on_alarm(self, signum: int, frame: object) -> None:
        if self.child is not None:
            self.deadline_hit = True
            os.kill(self.child, signal.SIGKILL)

    def _clean_up(self) -> int:
        leftovers = 0
        if self.layers.active["pid_namespace"]:
            kill_namespace_rest()
        else:
            leftovers = kill_descendants_as_subreaper(os.getpid(), self.proc)
        empty_dir(self.work_fd)
        reset_dir(self.work_fd, self.layers.uid)
        return leftovers

    def _become_child(self, job: dict, program_fd: int, limits: list) -> None:
        """Confine ourselves and run the program. The fork server already chrooted, changed
        directory, left its session and placed our descriptors at 0-3; every Python-level step
        here costs page copies, so only what must differ from the fork server happens here."""
        status = 70
        try:
            if not self.layers.active["pid_namespace"]:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            # The program's text reaches us, not the fork server, whose memory every later run
            # inherits; it is compiled below, once the limits hold (the compiler is attack surface).
            source = _read_all(program_fd)
            if self.cgroup is not None:
                self.cgroup.join()  # before the program can start a thread or a process
            os.closerange(4, 1 << 16)  # the control socket above all: the program must not reach it
            if self.layers.active["ipc_namespace"] and not self.ipc_fresh:
                unshare(CLONE_NEWIPC)  # what this run creates dies with it, unseen by the next
            for kind, value in limits:
                resource.setrlimit(kind, value)
            if self.layers.uid is not None:
                drop_privileges(self.layers.uid)
            _signal.signal(_SIGALRM, _SIG_DFL)  # ours was the fork server's deadline
            # Other signals stay as the interpreter set them: SIGXFSZ ignored, so writes past the
            # output limit fail (the runner sees the full output file), SIGINT ignored (the runner's).
            status = child.main(job, source)
        except BaseException:
            status = 70
        finally:
            os._exit(status if isinstance(status, int) and 0 <= status < 256 else 1)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------- start-up


def private_dir(prefix: str) -> str:
    """A new directory only root can enter (tempfile.mkdtemp without importing tempfile)."""
    base = os.environ.get("TMPDIR", "/tmp")
    while True:
        path = os.path.join(base, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue


def sweep_stale_dirs() -> None:
    """Remove directories left by workers that were killed before they could clean up."""
    base = os.environ.get("TMPDIR", "/tmp")
    for name in os.listdir(base):
        parts = name.split("-")
        if (
            len(parts) == 4
            and parts[0] == "pgrpo"
            and parts[1] in ("root", "work", "tests")
            and parts[2].isdigit()
        ):
            if not os.path.exists(f"/proc/{parts[2]}"):
                try:
                    os.rmdir(os.path.join(base, name))  # only if empty and not mounted
                except OSError:
                    pass


def _enter_namespaces(layers: Layers, disabled: set[str]) -> None:
    for name, flag in (
        ("pid_namespace", CLONE_NEWPID),
        ("net_namespace", CLONE_NEWNET),
        ("ipc_namespace", CLONE_NEWIPC),
        ("filesystem", CLONE_NEWNS),
    ):
        if name in disabled:
            layers.disable(name, "disabled by configuration")
            continue
        try:
            unshare(flag)
            layers.enable(name)
        except OSError as e:
            layers.disable(name, f"unshare failed: {e.strerror or e}")


def _preload(extra: list[str]) -> None:
    """Import once, fork many. numpy is opt-in: it doubles the cost of every fork."""
    for name in (*PRELOAD, *extra):
        try:
            __import__(name)
        except ImportError:
            pass


def _rehearse(times: int = 16) -> None:
    """Serve a trusted program here a few times, before any fork, as a child serves the candidate.

    The interpreter rewrites a function's bytecode in place during its first calls (3.11's
    warm-up and specialisation); left to the children, every child would copy the pages of the
    code objects it runs. The program is ours and its objects are dropped: no state is kept but
    warmed code."""
    source = b"def f(x):\n    return x\n"
    encoder = values.Encoder(lambda obj: ["h", 0])
    call = wire.dumps(["call", 1, 1, encoder.encode([1]), encoder.encode({})])
    for _ in range(times):
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        program = os.memfd_create("rehearsal", os.MFD_CLOEXEC)
        try:
            os.write(program, source)
            wire.send_frame(mine.fileno(), call)
            mine.shutdown(socket.SHUT_WR)
            compiled = child.compile_program(_read_all(program), "<rehearsal>")
            child.run_module(compiled, "rehearsal", theirs.fileno(), ["f"])
        finally:
            sys.modules.pop("rehearsal", None)
            os.close(program)
            mine.close()
            theirs.close()


def _outer(inner: int, root: str | None, parent: int, cgroup: RunCgroup | None) -> None:
    """Wait for the inner fork server, then remove the root's mount point from the host's /tmp.
    When our parent (the worker) is killed we get SIGTERM, not SIGKILL, so that this still happens."""
    pidfd = os.pidfd_open(inner)  # never a reused pid, and no error once it has been reaped

    def stop_inner(*_: object) -> None:
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass  # it is gone already: the clean-up below must still run

    signal.signal(signal.SIGTERM, stop_inner)
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the worker died before we asked to be told
        stop_inner()
    _, status = os.waitpid(inner, 0)
    if cgroup is not None:
        cgroup.remove()
    if root:
        try:
            umount_detach(root)
        except OSError:
            pass  # the inner server could not mount it
        try:
            os.rmdir(root)
        except OSError:
            pass
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _serve(zygote: Zygote, sock: socket.socket) -> None:
    """Run what the runner sends until it closes the socket."""
    while True:
        try:
            job, fds = wire.recv_msg(sock)
        except (EOFError, OSError):
            break
        if job.get("op") == "run":
            zygote.run(job, fds)
        else:
            for fd in fds:
                os.close(fd)


def main() -> None:
    ctl_fd, config = int(sys.argv[1]), json.loads(sys.argv[2])
    parent = os.getppid()
    os.dup2(os.open(os.devnull, os.O_RDWR), 0)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    disabled = set(config.get("disable", ()))
    layers = Layers()
    privileged = os.geteuid() == 0
    if not privileged:
        for name in ("pid_namespace", "net_namespace", "ipc_namespace", "filesystem", "unprivileged_uid"):
            layers.disable(name, "needs root")
    else:
        _enter_namespaces(layers, disabled)
    sweep_stale_dirs()
    cgroup = None
    if not privileged:
        layers.disable("cgroup", "needs root")
    elif "cgroup" in disabled:
        layers.disable("cgroup", "disabled by configuration")
    else:
        sweep_stale_cgroups()
        try:
            cgroup = RunCgroup(f"pgrpo-{os.getpid()}")
            layers.enable("cgroup")
        except OSError as e:
            layers.disable(
                "cgroup", f"no writable cgroup v1 cpuacct and memory hierarchies: {e.strerror or e}"
            )
    root = private_dir(f"pgrpo-root-{os.getpid()}-") if layers.active["filesystem"] else None
    # A uid of our own per worker: process limits count only this worker's runs.
    run_uid = 200_000 + os.getpid() % 100_000
    if layers.active["pid_namespace"]:
        inner = os.fork()
        if inner:  # the outer process only waits; the inner one is init of the new namespace
            os.close(ctl_fd)
            _outer(inner, root, parent, cgroup)  # never returns
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if privileged and "unprivileged_uid" not in disabled:
        layers.uid = run_uid
        layers.enable("unprivileged_uid")
    elif privileged:
        layers.disable("unprivileged_uid", "disabled by configuration")
    workdir = None
    if root is not None:
        try:
            workdir = setup_filesystem(root, layers.uid)
        except OSError as e:
            layers.disable("filesystem", f"could not build the read-only root: {e}")
            root = None
    if workdir is None:
        workdir = private_dir(f"pgrpo-work-{os.getpid()}-")
        if layers.uid is not None:
            os.chown(workdir, layers.uid, layers.uid)
    try:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        layers.enable("subreaper")
    except OSError as e:
        layers.disable("subreaper", str(e))
    if "no_new_privs" in disabled:
        layers.disable("no_new_privs", "disabled by configuration")
    else:
        prctl(PR_SET_NO_NEW_PRIVS, 1)  # inherited by every child
        layers.enable("no_new_privs")
    if "keyring_filter" in disabled:
        layers.disable("keyring_filter", "disabled by configuration")
    else:
        try:
            block_keyrings()  # inherited by every child
            layers.enable("keyring_filter")
        except OSError as e:
            layers.disable("keyring_filter", f"seccomp failed: {e.strerror or e}")
    layers.enable("rlimits")
    os.environ.clear()  # the runs' environment, set once: programs see nothing of ours
    os.environ.update(SANDBOX_ENV, HOME=workdir, TMPDIR=workdir)
    _preload(list(config.get("preload", ())))
    _rehearse()
    # Objects that exist now are shared with every child; keep the collector from touching
    # (and so copying) their pages after each fork.
    gc.collect()
    gc.freeze()
    # Keep our own descriptors above 3: runs borrow 0-3, placed before each fork.
    ctl = fcntl.fcntl(ctl_fd, fcntl.F_DUPFD, 10)
    os.close(ctl_fd)
    stderr = fcntl.fcntl(2, fcntl.F_DUPFD, 10)
    proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    sock = socket.socket(fileno=ctl)
    os.setsid()  # runs inherit our session, away from the terminal's signals
    if root is not None:
        os.chroot(root)  # runs inherit it; the runner reaches our files through /proc/<pid>/root
    os.chdir(workdir)
    zygote = Zygote(sock, layers, workdir, proc, stderr, cgroup)
    set_process_name("pgrpo-zygote")
    hello = {
        "event": "hello",
        "layers": layers.to_dict(),
        "workdir": workdir,
        "cgroup": cgroup.paths if cgroup is not None else None,
    }
    try:
        wire.send_msg(sock, hello, [os.pidfd_open(os.getpid())])
        _serve(zygote, sock)
    except ConnectionError:
        pass  # the runner is gone (stopped at once, or interrupted while starting): nobody to answer
    if root is None:  # a host directory of ours (in the read-only root it vanishes with the mount)
        try:
            os.rmdir(workdir)
        except OSError:
            pass
    os._exit(0)


if __name__ == "__main__":
    main()
