"""State between runs on one worker: kernel keyrings, the work directory's metadata, memory inherited
from the fork server, and trees that break the clean-up. Every run must start from the same state."""

from __future__ import annotations

import base64
import dataclasses

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


@pytest.fixture(scope="module")
def one_worker():
    """Consecutive runs on one worker, where state left by one run would meet the next."""
    with Executor(workers=1) as executor:
        yield executor


def plant_then_look(executor: Executor, plant: str, look: str, clean: object) -> ExecResult:
    """Run `plant` (f() plants state and returns "planted"), then `look` on the same worker, whose
    f() describes what it finds; the second run passes only if it finds `clean`."""
    planted = run(executor, problem(CallTest(args=[], expected="planted")), plant)
    assert planted.verdict is Verdict.PASSED, f"the first run could not plant its state: {planted}"
    return run(executor, problem(CallTest(args=[], expected=clean)), look)


KEYCTL_SEARCH, USER_KEYRING = 10, -4
PLANT_KEY = code(
    """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    def f():
        serial = libc.syscall(248, b"user", {name}, b"secret", 6, {keyring})  # add_key
        return "planted" if serial > 0 else "no keys here"
    """
)
LOOK_FOR_KEY = code(
    """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    def f():
        serial = libc.syscall(250, {search}, {keyring}, b"user", {name}, 0)  # keyctl(KEYCTL_SEARCH)
        return "found" if serial > 0 else "clean"
    """
)


def test_a_key_in_the_user_keyring_does_not_reach_the_next_run(one_worker):
    name = ("pgrpo-" + uuid.uuid4().hex).encode()
    plant = code(PLANT_KEY, name=name, keyring=USER_KEYRING)
    look = code(LOOK_FOR_KEY, name=name, keyring=USER_KEYRING, search=KEYCTL_SEARCH)
    planted = run(one_worker, problem(CallTest(args=[], expected="planted")), plant)
    later = run(one_worker, problem(CallTest(args=[], expected="clean")), look)
    # Either keys cannot be made at all, or the next run does not find them.
    assert planted.verdict is not Verdict.PASSED or later.verdict is Verdict.PASSED, (planted, later)
    assert later.verdict is Verdict.PASSED, f"the second run found the first run's key: {later}"


PLANT_IN_WORKDIR = code(
    """
    import os
    def f():
        os.setxattr(".", "user.pgrpo", b"left by an earlier run")
        os.utime(".", (12345, 12345))
        with open("note", "w") as fh:
            fh.write("hello")
        os.chmod("note", 0)
        os.chmod(".", 0)
        return "planted"
    """
)
LOOK_AT_WORKDIR = code(
    """
    import os, stat
    def f():
        st = os.stat(".")
        try:
            with open("fresh", "w") as fh:
                fh.write("x")
            writable = True
        except OSError:
            writable = False
        return [os.listxattr("."), oct(stat.S_IMODE(st.st_mode)), int(st.st_mtime) == 12345, writable]
    """
)


def test_the_work_directory_starts_each_run_as_new(one_worker):
    later = plant_then_look(one_worker, PLANT_IN_WORKDIR, LOOK_AT_WORKDIR, [[], "0o700", False, True])
    assert later.verdict is Verdict.PASSED, f"the first run's marks on the work directory stayed: {later}"
    assert_healthy(one_worker)


DEEP_TREE = code(
    """
    import os
    def f():
        top = os.getcwd()
        for _ in range({depth}):
            os.mkdir("d")
            os.chdir("d")
            with open("f", "w") as fh:
                fh.write("x")
        for i in range({depth}):  # on the way back up, some levels locked: the clean-up must not care
            os.chdir("..")
            if i % 100 == 0:
                os.chmod("d", 0)
        os.chmod(".", 0o500)
        return "planted" if os.getcwd() == top else "lost"
    """
)


@pytest.mark.parametrize("depth", [1200, 5000])
def test_a_very_deep_tree_does_not_break_the_clean_up(ex, depth):
    prob = dataclasses.replace(
        problem(CallTest(args=[], expected="planted")), time_limit_s=5.0
    )  # a loaded machine
    result = run(ex, prob, code(DEEP_TREE, depth=depth))
    assert result.verdict is Verdict.PASSED, result
    look = code("import os\ndef f():\n    return sorted(os.listdir('.'))\n")
    assert run(ex, problem(CallTest(args=[], expected=[])), look).verdict is Verdict.PASSED
    assert_healthy(ex)


# The program text of one run, found in memory the next run inherited from the fork server, raw or
# as the base64 it travelled in. The second program builds these forms at run time (its own text
# holds them reversed) and scans the memory around its heap with process_vm_readv, skipping its own
# copies.
REMEMBERED = ("pgrpo-earlier-sample-" + uuid.uuid4().hex).encode()
FORMS = [REMEMBERED] + [base64.b64encode(b"\0" * k + REMEMBERED)[4 if k else 0 : -4] for k in range(3)]
FIRST_SAMPLE = code(
    """
    MARKER = {marker}
    PADDING = {padding}
    def f():
        return "planted" if MARKER and PADDING else "?"
    """,
    marker=REMEMBERED.decode(),
    padding="x" * 6000,
)
SCAN_MEMORY = code(
    """
    import ctypes, os, sys

    class IOVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    def f():
        libc = ctypes.CDLL(None, use_errno=True)
        needles = [bytes(reversed(form)) for form in {reversed_forms}]
        own = {id(n) + sys.getsizeof(n) - len(n) - 1 for n in needles}
        chunk = 1 << 16
        buf = ctypes.create_string_buffer(chunk)
        own.update(range(ctypes.addressof(buf), ctypes.addressof(buf) + chunk))
        local = IOVec(ctypes.addressof(buf), chunk)
        anchors = {id(object()), id(needles), id(f), id(b"z" * 3000), id(sys)}
        seen = set()
        for anchor in anchors:
            start = (anchor - (256 << 20)) & ~(chunk - 1)
            for base in range(max(start, chunk), anchor + (256 << 20), chunk):
                if base in seen:
                    continue
                seen.add(base)
                remote = IOVec(base, chunk)
                got = libc.process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
                if got <= 0:
                    continue
                data = buf.raw[:got]
                for needle in needles:
                    at = data.find(needle)
                    while at >= 0:
                        if base + at not in own:
                            return "found"
                        at = data.find(needle, at + 1)
        return "clean"
    """,
    reversed_forms=[form[::-1] for form in FORMS],
)


def test_the_next_run_does_not_inherit_an_earlier_programs_text(one_worker):
    for _ in range(2):
        later = plant_then_look(one_worker, FIRST_SAMPLE, SCAN_MEMORY, "clean")
        assert later.verdict is Verdict.PASSED, (
            f"an earlier sample's text was in the next run's memory: {later}"
        )
