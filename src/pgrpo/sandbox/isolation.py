"""Kernel-level isolation for sandboxed runs: namespaces, a read-only root, an unprivileged uid, limits.

Each layer is probed and used where the kernel and our privileges allow it; `Layers` records
which ones are active so that `pgrpo sandbox info` can say so instead of pretending.
Only the standard library and ctypes: this module is imported by the fork server.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import stat
import struct
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# The interpreter links libc; CDLL(None) finds it without ctypes.util (which imports subprocess).
_libc = ctypes.CDLL(None, use_errno=True)

# Every layer the executor knows, in the order `pgrpo sandbox info` prints them.
LAYER_NAMES = (
    "pid_namespace",
    "net_namespace",
    "ipc_namespace",
    "filesystem",
    "unprivileged_uid",
    "no_new_privs",
    "keyring_filter",
    "subreaper",
    "rlimits",
    "cgroup",
)
LAYER_HELP = {
    "pid_namespace": "each worker is init of its own PID namespace: after a run every process it left is killed",
    "net_namespace": "no network interfaces (not even loopback up)",
    "ipc_namespace": "each run has IPC of its own: no System V shared memory, semaphores or message queues, "
    "nor POSIX queues, of the host or of an earlier run",
    "filesystem": "chroot into a read-only view of the interpreter and system libraries; only the run's own "
    "temporary directory is writable; no /proc, no project files",
    "unprivileged_uid": "runs as a uid of its own, so it cannot signal or ptrace the worker, and process limits apply",
    "no_new_privs": "no privilege regain through setuid binaries",
    "keyring_filter": "a seccomp filter refuses the kernel keyring calls (add_key, request_key, keyctl), "
    "whose keys would outlive a run",
    "subreaper": "orphaned descendants are re-parented to the worker and killed after the run",
    "rlimits": "CPU time, address space, processes, file size, open files, no core dumps",
    "cgroup": "each run is accounted in cgroups of its worker: CPU of all its threads and processes, and "
    "memory with shared memory, memfd and written files, limited to the problem's memory limit",
}


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    # Called by the fork server after every run: no objects made on success (each page it
    # writes costs a fault after the next fork), the message only on failure.
    if _libc.unshare(flags) != 0:
        _check(-1, f"unshare({flags:#x})")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def set_process_name(name: str) -> None:
    """The name `ps` and `top` show (15 bytes at most)."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _libc.prctl(PR_SET_NAME, buf, 0, 0, 0)


class Layers:
    """Which isolation layers are active in a worker, and why the others are not.

    A plain class, not a dataclass: the fork server imports this module, and `dataclasses`
    would bring `inspect` and friends into every fork."""

    def __init__(
        self,
        active: dict[str, bool] | None = None,
        reasons: dict[str, str] | None = None,
        uid: int | None = None,
    ):
        self.active = active if active is not None else dict.fromkeys(LAYER_NAMES, False)
        self.reasons = reasons if reasons is not None else {}
        self.uid = uid

    def enable(self, name: str) -> None:
        self.active[name] = True
        self.reasons.pop(name, None)

    def disable(self, name: str, reason: str) -> None:
        self.active[name] = False
        self.reasons[name] = reason

    def to_dict(self) -> dict:
        return {"active": dict(self.active), "reasons": dict(self.reasons), "uid": self.uid}

    @classmethod
    def from_dict(cls, d: dict) -> Layers:
        return cls(active=dict(d["active"]), reasons=dict(d["reasons"]), uid=d.get("uid"))


# ----------------------------------------------------------------------------- the read-only root


SANDBOX_HOME = "/sandbox"


def _system_paths() -> list[str]:
    """Directories a Python program needs to run and import installed packages, and nothing else:
    not the current directory, not a script's directory, not the project's sources."""
    prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    venv = os.path.dirname(os.path.dirname(sys.executable))
    if os.path.isfile(os.path.join(venv, "pyvenv.cfg")):  # so `sys.executable` runs in the sandbox too
        prefixes.append(venv)
    paths = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", *prefixes]
    paths += [
        p
        for p in sys.path
        if p and os.path.isdir(p) and os.path.basename(p) in ("site-packages", "dist-packages")
    ]
    return paths


def _covered(path: str, done: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in done)


def build_root(root: str, run_uid: int | None) -> str:
    """Populate `root` (already a private tmpfs) with read-only binds; return the in-root work dir."""
    bound: list[str] = []
    for path in sorted({os.path.realpath(p) for p in _system_paths()} | set(_system_paths()), key=len):
        if not os.path.lexists(path) or _covered(path, bound):
            continue
        target = root + path
        if os.path.islink(path):
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            if not os.path.lexists(target):
                os.symlink(os.readlink(path), target)
            continue
        os.makedirs(target, mode=0o755, exist_ok=True)
        mount(path, target, None, MS_BIND | MS_REC)
        mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        bound.append(path)
    os.makedirs(root + "/dev", mode=0o755, exist_ok=True)
    for dev in ("null", "zero", "full", "random", "urandom"):
        target = f"{root}/dev/{dev}"
        if os.path.exists(f"/dev/{dev}") and stat.S_ISCHR(os.stat(f"/dev/{dev}").st_mode):
            open(target, "w").close()
            mount(f"/dev/{dev}", target, None, MS_BIND)
    work = root + SANDBOX_HOME
    os.makedirs(work, mode=0o700, exist_ok=True)
    if run_uid is not None:
        os.chown(work, run_uid, run_uid)
    os.chmod(root, 0o755)
    return SANDBOX_HOME


def umount_detach(target: str) -> None:
    _check(_libc.umount2(target.encode(), 2), f"umount {target}")


def setup_filesystem(root: str, run_uid: int | None) -> str:
    """In a fresh mount namespace: make mounts private, put a tmpfs on `root` and populate it."""
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=755")
    return build_root(root, run_uid)


# ----------------------------------------------------------------------------- the keyring filter

# (audit arch, add_key, request_key, keyctl) for the machines we know.
_KEYRING_SYSCALLS = {"x86_64": (0xC000003E, 248, 249, 250), "aarch64": (0xC00000B7, 217, 218, 219)}


def _bpf(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def block_keyrings() -> None:
    """Install a seccomp filter that answers ENOSYS to the keyring system calls, and to system calls
    of any other ABI (x32, i386) that could reach them under other numbers. Kernel keys belong to
    a uid, not to a process, so a key added by one run would be there for the next: refusing the
    calls is simpler and surer than clearing every keyring (user, session, persistent) after each
    run. Needs no_new_privs (or root); inherited by every child."""
    arch = _KEYRING_SYSCALLS.get(os.uname().machine)
    if arch is None:
        raise OSError(errno.ENOSYS, f"no keyring filter for {os.uname().machine}")
    audit_arch, add_key, request_key, keyctl = arch
    ld_w_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, refuse = 0x7FFF0000, 0x00050000 | errno.ENOSYS
    program = b"".join(
        (
            _bpf(ld_w_abs, 4),  # seccomp_data.arch
            _bpf(jeq, audit_arch, 0, 6),
            _bpf(ld_w_abs, 0),  # seccomp_data.nr
            _bpf(jge, 0x40000000, 4, 0),  # the x32 ABI's numbers
            _bpf(jeq, add_key, 3, 0),
            _bpf(jeq, request_key, 2, 0),
            _bpf(jeq, keyctl, 1, 0),
            _bpf(ret, allow),
            _bpf(ret, refuse),
        )
    )
    filters = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HxxxxxxP", len(program) // 8, ctypes.addressof(filters))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0), "seccomp")


# ----------------------------------------------------------------------------- IPC

IPC_RMID, MSG_STAT, MSG_INFO, SHM_STAT, SHM_INFO = 0, 11, 12, 13, 14
# Made once: the fork server removes leftovers after every run (only it, single-threaded, uses them).
_IPC_INFO = ctypes.create_string_buffer(512)
_IPC_CALLS = ((_libc.shmctl, SHM_STAT, SHM_INFO), (_libc.msgctl, MSG_STAT, MSG_INFO))


def remove_shared_memory() -> None:
    """Remove every System V shared memory segment and message queue of our IPC namespace now (no
    process of the run is left to hold one). A namespace we leave is freed later, by a kernel
    worker: until then what it holds would still count in the memory cgroup the next run starts in.
    (POSIX message queues are not listed here: they wait for that worker.)"""
    info = _IPC_INFO
    for ctl, stat_op, info_op in _IPC_CALLS:
        top = ctl(0, info_op, info)  # the highest index in use
        for index in range(top + 1):
            ident = ctl(index, stat_op, info)
            if ident >= 0:
                ctl(ident, IPC_RMID, None)


# ----------------------------------------------------------------------------- the work directory

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def _open_dir(name: str, dir_fd: int) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:  # `chmod 0` by its owner; root never gets here
        os.chmod(name, 0o700, dir_fd=dir_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _remove_files(dir_fd: int) -> str | None:
    """Unlink everything in the directory but subdirectories; return one subdirectory's name."""
    subdir = None
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdir = subdir or entry.name
                continue
            try:
                os.unlink(entry.name, dir_fd=dir_fd)
            except PermissionError:  # a read-only directory of the program's own uid
                os.fchmod(dir_fd, 0o700)
                os.unlink(entry.name, dir_fd=dir_fd)
    return subdir


def empty_dir(dir_fd: int) -> None:
    """Remove everything in a directory, however deep (no recursion, two descriptors at most,
    no path ever longer than one name) and whatever the modes the program left on it."""
    fd = os.dup(dir_fd)
    below: list[str] = []  # the names on the way down from `dir_fd` to `fd`
    try:
        while True:
            subdir = _remove_files(fd)
            if subdir is not None:
                child = _open_dir(subdir, fd)
                os.close(fd)
                fd = child
                below.append(subdir)
            elif below:
                parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = parent
                os.rmdir(below.pop(), dir_fd=fd)
            else:
                return
    finally:
        os.close(fd)


def reset_dir(dir_fd: int, uid: int | None, mode: int = 0o700) -> None:
    """Give a (now empty) directory back the state it had when created: mode, owner, times,
    no extended attributes. A run can change all of them on its own work directory."""
    for name in os.listxattr(dir_fd):
        try:
            os.removexattr(dir_fd, name)
        except OSError:
            pass  # e.g. a security label we may not remove, and the program could not set either
    if uid is not None:
        os.fchown(dir_fd, uid, uid)
    os.fchmod(dir_fd, mode)
    os.utime(dir_fd, ns=(0, 0))


# ----------------------------------------------------------------------------- per-run confinement


def rlimits(cpu_s: int, memory_mb: int, file_size_mb: int, processes: int = 32, open_files: int = 64) -> list:
    """(resource, (soft, hard)) pairs for one run. CPU: SIGXCPU at the limit, SIGKILL a second later."""
    mb = 1024 * 1024
    return [
        (resource.RLIMIT_CPU, (cpu_s, cpu_s + 1)),
        (resource.RLIMIT_AS, (memory_mb * mb, memory_mb * mb)),
        (resource.RLIMIT_FSIZE, (file_size_mb * mb, file_size_mb * mb)),
        (resource.RLIMIT_NOFILE, (open_files, open_files)),
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_NPROC, (processes, processes)),
    ]


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def kill_namespace_rest() -> None:
    """As init of a PID namespace: kill every other process in it and reap them all."""
    try:
        os.kill(-1, 9)
    except ProcessLookupError:
        pass
    reap_all()


def reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == 0:
            return


def kill_descendants_as_subreaper(own_pid: int, proc: int) -> int:
    """Without a PID namespace: kill the children re-parented to us until none are left.
    `proc` is a descriptor on /proc (we may be chrooted where /proc does not exist)."""
    killed = 0
    for _ in range(1000):
        children = _children(own_pid, proc)
        if not children:
            return killed
        for child in children:
            try:
                os.kill(child, 9)
                killed += 1
            except ProcessLookupError:
                pass
        for child in children:
            try:
                os.waitpid(child, 0)
            except ChildProcessError:
                pass
    raise RuntimeError("could not reap all leftover processes")


def _children(pid: int, proc: int) -> list[int]:
    out: list[int] = []
    try:
        task_dir = os.open(f"{pid}/task", os.O_RDONLY | os.O_DIRECTORY, dir_fd=proc)
    except OSError:
        return out
    try:
        tasks = os.listdir(task_dir)
    finally:
        os.close(task_dir)
    for tid in tasks:
        try:
            fd = os.open(f"{pid}/task/{tid}/children", os.O_RDONLY, dir_fd=proc)
        except OSError:
            continue
        try:
            out += [int(x) for x in os.read(fd, 1 << 16).split()]
        finally:
            os.close(fd)
    return out


def is_enosys(e: OSError) -> bool:
    return e.errno in (errno.EPERM, errno.EINVAL, errno.ENOSYS, errno.EACCES)
