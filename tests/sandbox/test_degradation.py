"""Honest degradation: with layers unavailable, verdicts still hold and the gaps are reported."""

from __future__ import annotations

from attack_kit import *  # noqa: F403 - the shared kit: constants, problems, run(), fixtures


@pytest.fixture(scope="module")
def degraded():
    with Executor(workers=1, disable=DEGRADED) as executor:
        yield executor


def test_degraded_layers_are_reported_and_verdicts_still_hold(degraded):
    layers = degraded.layers
    for name in DEGRADED:
        assert layers.active[name] is False, layers
        assert layers.reasons.get(name), f"no reason given for {name}: {layers}"
    assert layers.active["subreaper"] and layers.active["rlimits"], layers
    assert layers.uid is None, layers
    assert run(degraded, add_problem(), CORRECT_ADD).verdict is Verdict.PASSED
    assert run(degraded, stdio_problem(), CORRECT_STDIO).verdict is Verdict.PASSED
    assert_not_passed(run(degraded, add_problem(), WRONG_ADD), Verdict.FAILED)
    assert_not_passed(run(degraded, stdio_problem(), "print(0)\n"), Verdict.FAILED)


def test_degraded_double_forked_daemon_is_gone_after_the_result(degraded, tmp_path):
    # Without the filesystem and uid layers the daemon could write on the host: it does so 1 s
    # after it starts, unless the subreaper killed it when the run ended.
    late = tmp_path / ("late-" + uuid.uuid4().hex)
    daemon = f"import time\ntime.sleep(1)\nopen({str(late)!r}, 'w').write('alive')\n"
    try:
        result = run(degraded, daemon_problem(late.name), code(DAEMON, daemon=daemon, marker=late.name))
        assert_daemon_result(result)
        assert processes_with_marker(late.name) == [], "the daemon survived the run"
        time.sleep(1.5)
        assert not late.exists(), "the daemon survived the run and wrote on the host"
    finally:
        for pid in processes_with_marker(late.name):
            os.kill(pid, signal.SIGKILL)
