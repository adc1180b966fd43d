"""IPC: System V shared memory and message queues and POSIX message queues, of the host and of earlier runs."""

from __future__ import annotations

import ctypes

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

IPC_CREAT, IPC_RMID = 0o1000, 0
libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture(scope="module")
def one_worker():
    """Consecutive runs on one worker, where state left by one run would meet the next."""
    with Executor(workers=1) as executor:
        yield executor


def new_key() -> int:
    return int.from_bytes(os.urandom(3), "big") + 0x5000000


def host_has(kind: str, key_or_name: int | str) -> bool:
    if kind == "shm":
        return libc.shmget(key_or_name, 0, 0) >= 0
    if kind == "msg":
        return libc.msgget(key_or_name, 0) >= 0
    fd = libc.mq_open(key_or_name.encode(), os.O_RDONLY)
    if fd >= 0:
        libc.mq_close(fd)
    return fd >= 0


def host_remove(kind: str, key_or_name: int | str) -> None:
    if kind == "shm":
        ident = libc.shmget(key_or_name, 0, 0)
        if ident >= 0:
            libc.shmctl(ident, IPC_RMID, None)
    elif kind == "msg":
        ident = libc.msgget(key_or_name, 0)
        if ident >= 0:
            libc.msgctl(ident, IPC_RMID, None)
    else:
        libc.mq_unlink(key_or_name.encode())


IPC = code(
    """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    def f(action, kind, key):
        flags = (0o1000 | 0o666) if action == "make" else 0
        if kind == "shm":
            ident = libc.shmget(key, 1 << 20 if action == "make" else 0, flags)
        elif kind == "msg":
            ident = libc.msgget(key, flags)
        else:
            ident = libc.mq_open(key.encode(), (os.O_CREAT | os.O_RDWR) if action == "make" else os.O_RDONLY, 0o666, None)
        return "found" if ident >= 0 else "absent"
    """
)
KINDS = {"shm": new_key, "msg": new_key, "mq": lambda: "/pgrpo-attack-" + uuid.uuid4().hex[:12]}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_hosts_ipc_objects_are_out_of_reach(ex, kind):
    key = KINDS[kind]()
    flags = IPC_CREAT | 0o666
    made = {
        "shm": lambda: libc.shmget(key, 4096, flags),
        "msg": lambda: libc.msgget(key, flags),
        "mq": lambda: libc.mq_open(key.encode(), os.O_CREAT | os.O_RDWR, 0o666, None),
    }[kind]()
    assert made >= 0, f"could not make the host's {kind} object: {os.strerror(ctypes.get_errno())}"
    try:
        prob = problem(CallTest(args=["find", kind, key], expected="found"))
        assert_not_passed(run(ex, prob, IPC), Verdict.FAILED)
    finally:
        if kind == "mq":
            libc.mq_close(made)
        host_remove(kind, key)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_ipc_objects_a_run_makes_reach_neither_the_host_nor_the_next_run(one_worker, kind):
    key = KINDS[kind]()
    try:
        made = run(one_worker, problem(CallTest(args=["make", kind, key], expected="found")), IPC)
        assert made.verdict is Verdict.PASSED, f"the run could not make its own {kind} object: {made}"
        assert not host_has(kind, key), f"the run's {kind} object is on the host"
        later = run(one_worker, problem(CallTest(args=["find", kind, key], expected="found")), IPC)
        assert_not_passed(later, Verdict.FAILED)
    finally:
        host_remove(kind, key)
