"""Reading the tests or the expected values from inside the sandbox."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures

MARKER_SCAN = code(
    """
    import gc, inspect, re, sys, types
    PATTERN = re.compile("EXPECTED" + "-[0-9a-f]{32}")

    def scan(value, depth=0, seen=None):
        seen = set() if seen is None else seen
        if id(value) in seen:
            return None
        seen.add(id(value))
        if isinstance(value, (str, bytes)):
            text = value if isinstance(value, str) else value.decode("latin-1")
            match = PATTERN.search(text)
            return match.group() if match else None
        if depth > 4:
            return None
        if isinstance(value, dict):
            items = list(value.keys()) + list(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)
        elif isinstance(value, types.CodeType):
            items = list(value.co_consts)
        elif isinstance(value, types.FrameType):
            items = [value.f_locals, value.f_globals, value.f_code]
        else:
            items = [getattr(value, "__dict__", None)]
        for item in items:
            found = scan(item, depth + 1, seen)
            if found:
                return found
        return None
    """
)


def marker() -> str:
    return "EXPECTED-" + uuid.uuid4().hex


def marker_problem(value: str) -> Problem:
    """The marker lives only in the expected field and in the test code."""
    return problem(CallTest(args=[], expected=value), AssertTest(f"assert f() == {value!r}"))


def test_open_the_problems_file_on_the_host(ex, tmp_path):
    value = marker()
    prob = marker_problem(value)
    problems_file = tmp_path / "problems.jsonl"
    problems_file.write_text(json.dumps(prob.to_dict()) + "\n")
    program = code(
        """
        import re
        def f():
            try:
                with open({path}) as fh:
                    text = fh.read()
            except OSError as e:
                return "unreadable: " + type(e).__name__
            match = re.search("EXPECTED" + "-[0-9a-f]{32}", text)
            return match.group() if match else "no marker"
        """,
        path=str(problems_file),
    )
    result = run(ex, prob, program)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)
    assert value not in result.stderr


FRAME_WALK = MARKER_SCAN + code(
    """
    def f(*ignored):
        i = 1
        while True:
            try:
                frame = sys._getframe(i)
            except ValueError:
                return "not found"
            found = scan(frame)
            if found:
                return found
            i += 1
    """
)
INSPECT_STACK = MARKER_SCAN + code(
    """
    def f(*ignored):
        for info in inspect.stack():
            found = scan(info.frame) or scan(info.code_context or [])
            if found:
                return found
            try:
                found = scan(inspect.getsource(info.frame))
            except (OSError, TypeError):
                found = None
            if found:
                return found
        return "not found"
    """
)
GC_SCAN = MARKER_SCAN + code(
    """
    def f(*ignored):
        for obj in gc.get_objects():
            found = scan(obj, depth=3)
            if found:
                return found
        for module in list(sys.modules.values()):
            found = scan(getattr(module, "__dict__", {}), depth=2)
            if found:
                return found
        return "not found"
    """
)
SCANNERS = {"frames": FRAME_WALK, "inspect": INSPECT_STACK, "gc": GC_SCAN}


@pytest.mark.parametrize("scanner", SCANNERS)
def test_control_scanners_find_a_marker_within_reach(ex, scanner):
    # The scanners do work: a marker passed as an argument (ignored by f) is found in memory.
    value = marker()
    result = run(ex, problem(CallTest(args=[value], expected=value)), SCANNERS[scanner])
    assert result.verdict is Verdict.PASSED, result


def test_walk_caller_frames(ex):
    result = run(ex, marker_problem(marker()), FRAME_WALK)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


def test_inspect_stack_and_caller_source(ex):
    result = run(ex, marker_problem(marker()), INSPECT_STACK)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)


def test_gc_scan_for_the_expected_value(ex):
    result = run(ex, marker_problem(marker()), GC_SCAN)
    assert_not_passed(result, Verdict.FAILED)
    assert_all_tests(result, Verdict.FAILED)
