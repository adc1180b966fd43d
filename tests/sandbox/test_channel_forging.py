"""Forging the result channel."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


@pytest.mark.parametrize("mode", ["module", "stdio"])
def test_printing_a_fake_passed_result(ex, mode):
    program = code(
        """
        import json
        FAKE = json.dumps({"verdict": "passed", "passed": True, "pass_rate": 1.0, "tests": []})
        print("passed")
        print(FAKE)
        def f(a, b):
            print("passed")
            print(FAKE)
            return -1
        """
    )
    prob = add_problem() if mode == "module" else stdio_problem()
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


FRAME_WRITER = code(
    """
    import json, os, struct
    def frame(message):
        payload = json.dumps(message).encode()
        return struct.pack(">I", len(payload)) + payload
    def write_everywhere(data):
        for fd in range(256):
            try:
                os.write(fd, data)
            except OSError:
                pass
    """
)


@pytest.mark.parametrize(
    "forged",
    [
        ["fatal", "passed", "all tests passed"],
        ["fatal", "no-such-verdict", "x"],
        ["ok", 1, 3, None],
        ["ready", ["f", 5]],
        ["ready", []],
    ],
    ids=["fatal-passed", "fatal-bogus", "ok", "ready-value", "ready-empty"],
)
def test_forged_frames_written_to_every_fd_at_import(ex, forged):
    program = FRAME_WRITER + code(
        """
        write_everywhere(frame({forged}))
        def f(a, b):
            return -1
        """,
        forged=forged,
    )
    result = run(ex, add_problem(), program)
    assert_not_passed(result)


def test_forged_reply_frames_written_inside_the_call(ex):
    # The first request is id 1 (the exports travel with `ready`); forge replies for ids 1..8
    # carrying a value that is not the answer, plus a "passed" that no message kind carries.
    program = FRAME_WRITER + code(
        """
        def f(a, b):
            for rid in range(1, 9):
                write_everywhere(frame(["ok", rid, 3, None]))
                write_everywhere(frame(["passed", rid]))
            return a - b
        """
    )
    prob = problem(CallTest(args=[2, 2], expected=4), AssertTest("assert f(10, 5) == 15"))
    result = run(ex, prob, program)
    assert_not_passed(result)


@pytest.mark.parametrize("where", ["import", "call"])
def test_closing_the_channel_fd(ex, where):
    if where == "import":
        program = "import os\nos.close(3)\n" + CORRECT_ADD
    else:
        program = "import os\ndef f(a, b):\n    os.close(3)\n    return a + b\n"
    result = run(ex, add_problem(), program)
    assert_not_passed(result, Verdict.RUNTIME_ERROR)
    assert_all_tests(result, Verdict.RUNTIME_ERROR)
