"""Malformed frames: whatever bytes the candidate writes on the channel decode to a verdict against
the program (runtime_error, or output_exceeded for a frame over the size limit), never to an
error of the trusted runner (sandbox_error, which rewards mask), and the run ends at once."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

CHANNEL = code(
    """
    import json, os, struct
    def raw_frame(payload):
        return struct.pack(">I", len(payload)) + payload
    def frame(message):
        return raw_frame(json.dumps(message).encode())
    """
)
FAST_S = 0.5 * LIMIT_S * 4  # well under the run's wall limit: the trusted side did not wait for it

AT_IMPORT = {  # written instead of the `ready` message
    "exception-name-with-nul": 'frame(["ready", ["f", ["exc", "Bad\\u0000Name", ["Exception"]]]])',
    "exception-bases-not-a-list": 'frame(["ready", ["f", ["exc", "E", 5]]])',
    "handle-without-id": 'frame(["ready", ["f", ["h"]]])',
    "handle-id-not-an-int": 'frame(["ready", ["f", ["h", "x", "function", True]]])',
    "unknown-tag": 'frame(["ready", ["f", ["zz", 1]]])',
    "invalid-utf8": 'raw_frame(b\'["ready", ["f", "\\xff"]]\')',
    "huge-int": 'raw_frame(b\'["ready", ["f", \' + b"9" * 5000 + b"]]")',
    "deeply-nested": 'raw_frame(b\'["ready", ["f", \' + b"[" * 100000 + b"]" * 100000 + b"]]")',
}
IN_CALL = {  # written instead of the reply to the first request
    "exception-name-with-nul": 'frame(["err", 1, "A\\u0000B", [], "x"])',
    "exception-bases-not-a-list": 'frame(["err", 1, "E", 3, "x"])',
    "short-callback": 'frame(["cb", 1])',
    "unknown-tag": 'frame(["ok", 1, ["zz"], None])',
    "handle-id-a-float": 'frame(["ok", 1, ["h", 1.5, "x", True], None])',
    "namedtuple-duplicate-fields": 'frame(["ok", 1, ["nt", "P", ["x", "x"], 1, 2], None])',
    "dict-unhashable-key": 'frame(["ok", 1, ["d", ["l", 1], 2], None])',
}


@pytest.mark.parametrize("forged", AT_IMPORT.values(), ids=AT_IMPORT.keys())
def test_malformed_ready_frame(ex, forged):
    program = CHANNEL + f"os.write(3, {forged})\nimport time\ntime.sleep(30)\n"
    t0 = time.monotonic()
    result = run(ex, add_problem(), program)
    assert time.monotonic() - t0 < FAST_S, result
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert "protocol violation" in result.message, result


@pytest.mark.parametrize("forged", IN_CALL.values(), ids=IN_CALL.keys())
def test_malformed_reply_frame(ex, forged):
    program = CHANNEL + f"def f(a, b):\n    os.write(3, {forged})\n    import time\n    time.sleep(30)\n"
    t0 = time.monotonic()
    result = run(ex, call_problem(), program)
    assert time.monotonic() - t0 < FAST_S, result
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert_all_tests(result, Verdict.RUNTIME_ERROR)


def test_oversized_frame_header_at_import(ex):
    program = CHANNEL + 'os.write(3, struct.pack(">I", 2**31))\nimport time\ntime.sleep(30)\n'
    t0 = time.monotonic()
    result = run(ex, add_problem(), program)
    assert time.monotonic() - t0 < FAST_S, result
    assert_not_passed(result, Verdict.OUTPUT_EXCEEDED)


def test_oversized_frame_cannot_be_caught_by_test_code(ex):
    # The test swallows every Exception around the call; the channel's verdict stands anyway.
    program = CHANNEL + 'def f(a, b):\n    os.write(3, struct.pack(">I", 2**31))\n    return a - b\n'
    for handler in ("except Exception", "except"):
        test = AssertTest(f"try:\n    f(1, 2)\n{handler}:\n    pass\nassert True")
        result = run(ex, problem(test), program)
        assert_not_passed(result, Verdict.OUTPUT_EXCEEDED)
