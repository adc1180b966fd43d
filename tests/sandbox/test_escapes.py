"""Escapes: network, host files, symlinks, daemons, killing the parent."""

from __future__ import annotations

import socket
from pathlib import Path

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

CONNECT = code(
    """
    import socket
    def f(proto, host, port, message):
        try:
            if proto == "tcp":
                with socket.create_connection((host, port), timeout=0.5) as s:
                    s.sendall(message.encode())
            else:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(message.encode(), (host, port))
            return "connected"
        except OSError as e:
            return "blocked: " + type(e).__name__
    """
)


def test_network_to_the_internet(ex):
    prob = problem(CallTest(args=["tcp", "1.1.1.1", 53, "x"], expected="connected"))
    result = run(ex, prob, CONNECT)
    assert_not_passed(result, Verdict.FAILED)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_network_to_a_server_on_host_loopback(ex, proto):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as server:
        server.bind(("127.0.0.1", 0))
        if proto == "tcp":
            server.listen(8)
        server.setblocking(False)
        port = server.getsockname()[1]
        message = "escape-" + uuid.uuid4().hex
        prob = problem(CallTest(args=[proto, "127.0.0.1", port, message], expected="connected"))
        result = run(ex, prob, CONNECT)
        received = None
        try:
            if proto == "tcp":
                conn, _ = server.accept()
                received = conn.recv(100)
                conn.close()
            else:
                received = server.recv(100)
        except BlockingIOError:
            pass
    assert received is None, f"the host server received {received!r}"
    assert_not_passed(result, Verdict.FAILED)


WRITE_FILE = code(
    """
    import os
    def f(path, content):
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write(content)
            return "written"
        except OSError as e:
            return "blocked: " + type(e).__name__
    """
)


@pytest.mark.parametrize("where", ["tmp_path", "slash-tmp"])
def test_write_a_file_on_the_host(ex, tmp_path, where):
    name = "pgrpo-escape-" + uuid.uuid4().hex
    target = tmp_path / name if where == "tmp_path" else Path("/tmp") / name
    try:
        prob = problem(CallTest(args=[str(target), name], expected="written"))
        result = run(ex, prob, WRITE_FILE)
        assert not target.exists(), f"the program wrote {target} on the host"
        assert_not_passed(result, Verdict.FAILED)
    finally:
        if target.exists():
            target.unlink()


def test_delete_a_file_on_the_host(ex, tmp_path):
    victim = tmp_path / ("victim-" + uuid.uuid4().hex)
    victim.write_text("ORIGINAL")
    program = code(
        """
        import os, shutil
        def f(path):
            done = []
            for attempt in (os.remove, lambda p: open(p, "w").close(), shutil.rmtree,
                            lambda p: shutil.rmtree(os.path.dirname(p))):
                try:
                    attempt(path)
                    done.append("ok")
                except OSError as e:
                    done.append(type(e).__name__)
            return "deleted" if "ok" in done else "blocked: " + ",".join(done)
        """
    )
    result = run(ex, problem(CallTest(args=[str(victim)], expected="deleted")), program)
    assert victim.exists() and victim.read_text() == "ORIGINAL"
    assert_not_passed(result, Verdict.FAILED)


def test_symlink_in_the_shared_work_dir_redirects_a_tests_write(ex, tmp_path):
    # Test code runs as root in the trusted process, in the directory it shares with the program.
    # A program that plants a symlink where the test is about to write a file must not make the
    # trusted side write on the host.
    victim = tmp_path / ("victim-" + uuid.uuid4().hex)
    victim.write_text("ORIGINAL")
    absent = tmp_path / ("absent-" + uuid.uuid4().hex)
    prob = problem(
        AssertTest(
            "with open('data.txt', 'w') as fh:\n    fh.write('hello')\n"
            "with open('new.txt', 'w') as fh:\n    fh.write('hello')\n"
            "assert f('data.txt') == 5"
        )
    )
    program = code(
        """
        import os
        os.symlink({victim}, "data.txt")
        os.symlink({absent}, "new.txt")
        def f(path):
            with open(path) as fh:
                return len(fh.read())
        """,
        victim=str(victim),
        absent=str(absent),
    )
    try:
        result = run(ex, prob, program)
        assert victim.read_text() == "ORIGINAL", "the trusted side overwrote a host file"
        assert not absent.exists(), "the trusted side created a host file"
        assert_not_passed(result)
    finally:
        if absent.exists():
            absent.unlink()


def test_double_forked_daemon_is_gone_after_the_result(ex):
    tag = "pgrpo-daemon-" + uuid.uuid4().hex
    daemon = "import time\nfor _ in range(50):\n    time.sleep(0.1)\n"
    try:
        result = run(ex, daemon_problem(tag), code(DAEMON, daemon=daemon, marker=tag))
        assert_daemon_result(result)
        assert processes_with_marker(tag) == [], "the daemon survived the run"
        assert processes_with_uid(sandbox_uids(ex)) == [], "a sandbox process survived the run"
    finally:
        for pid in processes_with_marker(tag):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    "kill", ["os.kill(os.getppid(), 9)", "os.kill(1, 9)", "os.kill(-1, 9)", "os.killpg(0, 9)"]
)
def test_killing_the_parent(ex, kill):
    program = code(
        f"""
        import os
        def f(a, b):
            try:
                {kill}
            except OSError:
                pass
            return a - b
        """
    )
    result = run(ex, add_problem(), program)
    assert_not_passed(result)
    assert_healthy(ex)
