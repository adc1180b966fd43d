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
