"""Files that tests and the program hand each other, without sharing a directory.

Test code (trusted, unconfined) works in a private directory; the program works in its own
directory inside the sandbox. Around every call the top-level regular files are copied across:
test -> program before the call, program -> test after it, and a file deleted on one side is
deleted on the other. Nothing is ever opened by following a link, a FIFO is never read, and the
trusted side never resolves a path the program chose, so a planted symlink cannot redirect a
test's write to a host file. The tests' directory holds at most MAX_TOTAL_BYTES in at most
MAX_FILES files at once: a program's files beyond that are not copied, so no run can fill the host's
disk or its inodes, and a sync reads at most MAX_FILES entries of the program's directory, so a
program that made 200,000 files does not make every request slow.
"""

from __future__ import annotations

import os
import stat

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 128 * 1024 * 1024
MAX_FILES = 10_000
_OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
_OPEN_WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW


def _regular_files(dir_fd: int, most: int | None = None) -> tuple[dict[str, tuple[int, int]], bool]:
    """name -> (size, mtime_ns) of the top-level regular files, links not followed, from the first
    `most` entries of the directory (all if None); and whether that was all of them."""
    out = {}
    with os.scandir(dir_fd) as entries:
        for seen, entry in enumerate(entries):
            if most is not None and seen == most:
                return out, False
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[entry.name] = (st.st_size, st.st_mtime_ns)
    return out, True


def _state(name: str, dir_fd: int) -> tuple[int, int] | None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _copy(name: str, src_dir: int, dst_dir: int, room: int) -> tuple[int, int] | None:
    """Copy one regular file of at most `room` bytes; the destination's (size, mtime_ns)
    afterwards, or None if skipped."""
    try:
        src = os.open(name, _OPEN_READ, dir_fd=src_dir)
    except OSError:
        return None
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode) or st.st_size > min(MAX_FILE_BYTES, room):
            return None
        try:
            dst = os.open(name, _OPEN_WRITE, 0o644, dir_fd=dst_dir)
        except OSError:  # e.g. the other side planted a link under that name: skip it
            return None
        try:
            copied = 0
            while copied < room and (chunk := os.read(src, min(1 << 20, room - copied))):
                os.write(dst, chunk)  # `room` holds even if the file grows while we copy
                copied += len(chunk)
            done = os.fstat(dst)
            return done.st_size, done.st_mtime_ns
        finally:
            os.close(dst)
    finally:
        os.close(src)


class SharedFiles:
    """The two directories of one worker, and the state of each file as last synchronised."""

    def __init__(self, tests_dir: str, program_dir: str):
        self.tests = os.open(tests_dir, os.O_RDONLY | os.O_DIRECTORY)
        self.program = os.open(program_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        self.known_tests: dict[str, tuple[int, int]] = {}
        self.known_program: dict[str, tuple[int, int]] = {}
        self.holding = False  # `from_program` waits: see `hold_program_files`

    def hold_program_files(self) -> None:
        """Until `release_program_files`, the program's files stay on its side (module mode holds
        them while the problem's setup runs, so a file the program planted cannot break it)."""
        self.holding = True

    def release_program_files(self) -> None:
        self.holding = False  # copied at the next `from_program`

    def _sync(self, src: int, dst: int, known_src: dict, known_dst: dict) -> None:
        current, complete = _regular_files(src, MAX_FILES)
        # A name past the entries read is gone only if it is gone.
        gone = [n for n in known_src if n not in current and (complete or _state(n, src) is None)]
        for name in gone:
            del known_src[name]  # deleted on its side: our copy goes too, unless changed since
            if name in known_dst and _state(name, dst) == known_dst.pop(name):
                _unlink(name, dst)
        changed = [name for name, state in current.items() if known_src.get(name) != state]
        if not changed:
            return
        held, _ = _regular_files(self.tests)
        used = sum(size for size, _ in held.values())
        for name in changed:
            room = MAX_TOTAL_BYTES - used + held.get(name, (0, 0))[0] if dst == self.tests else MAX_FILE_BYTES
            full = dst == self.tests and name not in held and len(held) >= MAX_FILES
            copied = None if full else _copy(name, src, dst, room)
            known_src[name] = current[name]
            if copied is not None:
                known_dst[name] = copied  # our own copy is not news for the other direction
                if dst == self.tests:
                    used += copied[0] - held.get(name, (0, 0))[0]
                    held[name] = copied
            elif name in known_dst and _state(name, dst) == known_dst.pop(name):
                _unlink(name, dst)  # not copied: an older copy would mislead

    def to_program(self) -> None:
        self._sync(self.tests, self.program, self.known_tests, self.known_program)

    def from_program(self) -> None:
        if not self.holding:
            self._sync(self.program, self.tests, self.known_program, self.known_tests)

    def reset(self) -> None:
        """Empty the tests' directory for the next run (the fork server empties the program's)."""
        for name in os.listdir(self.tests):
            try:
                os.unlink(name, dir_fd=self.tests)
            except IsADirectoryError:
                import shutil

                shutil.rmtree(f"/proc/self/fd/{self.tests}/{name}", ignore_errors=True)
            except OSError:
                pass
        self.known_tests.clear()
        self.known_program.clear()
        self.holding = False

    def close(self) -> None:
        os.close(self.tests)
        os.close(self.program)
