"""Stalls: every wait on the candidate (reading a frame, decoding a value, sending a request) ends at
the problem's deadline, so a program cannot hold a worker for longer than a few time limits."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

MAX_S = 4 * LIMIT_S  # load grace (2 s) + one time limit, plus slack; the run's wall limit is 13 s


def many_tests_problem() -> Problem:
    """Ten tests: the run's own wall limit (limit × (tests + 1) + grace) is far above MAX_S."""
    return problem(*[CallTest(args=[i, 1], expected=i + 1) for i in range(10)])


def timed(ex, prob: Problem, program: str) -> tuple[ExecResult, float]:
    t0 = time.monotonic()
    result = run(ex, prob, program)
    return result, time.monotonic() - t0


def test_partial_frame_header_at_import(ex):
    program = "import os, time\nos.write(3, b'\\x00\\x00')\ntime.sleep(60)\n"
    result, wall = timed(ex, many_tests_problem(), program)
    assert wall < MAX_S, (wall, result)
    assert_not_passed(result, Verdict.TIMEOUT)


def test_hash_colliding_set_in_the_ready_frame(ex):
    # 60,000 ints equal modulo 2**61 - 1 share one hash: building their set costs n² comparisons.
    program = code(
        """
        import os, struct, time
        ints = ",".join(str(k * (2**61 - 1)) for k in range(1, 60000))
        payload = ('["ready", ["f", ["s", ' + ints + ']]]').encode()
        os.write(3, struct.pack(">I", len(payload)) + payload)
        time.sleep(60)
        """
    )
    result, wall = timed(ex, many_tests_problem(), program)
    assert wall < MAX_S, (wall, result)
    assert_not_passed(result)


def test_hash_colliding_dict_keys_returned(ex):
    program = code(
        """
        import os, struct, time
        ints = ",0,".join(str(k * (2**61 - 1)) for k in range(1, 60000))
        def f(a, b):
            payload = ('["ok", 1, ["d", ' + ints + ',0], null]').encode()
            os.write(3, struct.pack(">I", len(payload)) + payload)
            time.sleep(60)
        """
    )
    result, wall = timed(ex, many_tests_problem(), program)
    assert wall < MAX_S, (wall, result)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)


def test_program_that_lingers_after_the_channel_closes(ex):
    # After the last test the channel closes and the program should exit; this one waits instead.
    program = code(
        """
        import sys, time
        wire = sys.modules["pgrpo.sandbox.wire"]
        original = wire.recv_frame
        def recv_frame(*args, **kwargs):
            try:
                return original(*args, **kwargs)
            except EOFError:
                time.sleep(60)
        wire.recv_frame = recv_frame
        def f(a, b):
            return a - b
        """
    )
    result, wall = timed(ex, many_tests_problem(), program)
    assert wall < MAX_S, (wall, result)
    assert_not_passed(result, Verdict.FAILED)


# The channel's own waits, without a sandbox: a socket pair stands for the program's end.


def test_a_half_written_frame_ends_at_the_deadline():
    import socket

    from pgrpo.sandbox import wire

    mine, theirs = socket.socketpair()
    with mine, theirs:
        mine.setblocking(False)
        theirs.sendall(b"\x00\x00\x00\x10{")  # a header for 16 bytes, then one
        t0 = time.monotonic()
        with pytest.raises(wire.DeadlinePassed):
            wire.recv_frame(mine.fileno(), deadline=t0 + 0.2)
        assert time.monotonic() - t0 < 1.0


def test_a_peer_that_stops_reading_ends_a_send_at_the_deadline():
    import socket

    from pgrpo.sandbox import wire

    mine, theirs = socket.socketpair()
    with mine, theirs:
        mine.setblocking(False)
        t0 = time.monotonic()
        with pytest.raises(wire.DeadlinePassed):
            wire.send_frame(mine.fileno(), b"x" * 8_000_000, deadline=t0 + 0.2)
        assert time.monotonic() - t0 < 1.0


def test_decoding_a_large_value_stops_at_the_deadline():
    from pgrpo.sandbox import values, wire

    decoder = values.Decoder()
    decoder.start(time.monotonic() - 1)  # already past
    with pytest.raises(wire.DeadlinePassed):
        decoder.decode(["l", *[["t", i] for i in range(100_000)]])


def test_sets_of_equal_hashes_are_refused_and_ordinary_pairs_are_not():
    from pgrpo.sandbox import values, wire

    colliding = ["s", *[k * (2**61 - 1) for k in range(1, 200)]]
    with pytest.raises(wire.WireError, match="equal hashes"):
        values.Decoder().decode(colliding)
    # -1 and -2 share a hash in CPython: thousands of sets holding that pair are ordinary data.
    ordinary = ["l", *[["s", -1, -2, *range(i, i + 8)] for i in range(0, 30_000, 10)]]
    assert len(values.Decoder().decode(ordinary)) == 3000
