"""`pgrpo search`'s numbers without an LLM: static metrics and ω against hand-computed values, both beam
rankings, and the final selection."""

from __future__ import annotations

import pytest

from pgrpo.search import metrics
from pgrpo.search.tree import Node, beam, select
from pgrpo.types import ExecResult, Verdict
from pgrpo.types import TestResult as Measured  # (a name pytest would try to collect)

SIMPLE = "def f(x):\n    if x > 0 and x < 10:\n        return 1\n    return 0\n"

# ----------------------------------------------------------------------------- static metrics


def test_static_metrics_of_a_small_function_by_hand():
    # Module FunctionDef arguments arg | If BoolOp And | Compare Name Load Gt Constant (x2, Lt) |
    # Return Constant | Return Constant = 4 + 3 + 2*5 + 2 + 2 = 21 nodes.
    # Cyclomatic: 1 + if + one extra `and` operand = 3. Cognitive: if (+1) + one `and` sequence (+1) = 2.
    assert metrics.static_metrics(SIMPLE) == {"ast_nodes": 21, "cyclomatic": 3, "cognitive": 2, "lines": 4}


SUM_OF_PRIMES = """
def sum_of_primes(limit):
    total = 0
    for i in range(2, limit + 1):      # +1
        for j in range(2, i):          # +2 (nested once)
            if i % j == 0:             # +3 (nested twice)
                break
        else:                          # +1
            total += i
    return total
"""
GET_WORDS = """
def get_words(number):
    match number:                      # +1
        case 1:
            return "one"
        case 2:
            return "a couple"
        case _:
            return "lots"
"""
SIGN = """
def sign(x):
    if x > 0:       # +1
        return 1
    elif x < 0:     # +1
        return -1
    else:           # +1
        return 0
"""
FACT = "def fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)\n"  # ternary +1, recursion +1
NESTED = """
def outer(xs):
    def keep(x):
        return x > 0 or x < -5          # `or` +1
    return [x for x in xs if keep(x)]   # comprehension for +1, its if +1
"""


@pytest.mark.parametrize(
    "code, cognitive, cyclomatic",
    [
        (SUM_OF_PRIMES, 7, 4),  # Sonar's sumOfPrimes example scores 7 (for-else plays `continue OUTER`)
        (GET_WORDS, 1, 4),  # Sonar's getWords: a switch is 1 for cognitive, 4 for McCabe
        (SIGN, 3, 3),
        (FACT, 2, 2),
        (NESTED, 3, 4),
    ],
)
def test_complexities_of_known_examples(code, cognitive, cyclomatic):
    parts = metrics.static_metrics(code)
    assert parts["cognitive"] == cognitive
    assert parts["cyclomatic"] == cyclomatic


def test_code_lines_skip_blanks_and_comments_and_count_docstrings():
    code = '# header\n\ndef f():\n    """Doc\n    more."""\n    # note\n    return 1  # trailing\n\n'
    assert metrics.code_lines(code) == 4
    assert metrics.static_metrics("def f(:\n") is None


# ----------------------------------------------------------------------------- ω


def _run(*tests: Measured) -> ExecResult:
    return ExecResult.from_tests(list(tests))


def _ok(cpu=None, wall=0.5, instructions=None):
    return Measured(Verdict.PASSED, wall_s=wall, cpu_s=cpu, instructions=instructions, peak_mb=12.0)


def test_omega_by_hand_with_time_only():
    result = _run(_ok(0.001), _ok(0.002), _ok(0.003), Measured(Verdict.FAILED, wall_s=9.0))
    got = metrics.omega(SIMPLE, result)
    static = (1 / 1.21 + 1 / 4 + 1 / 1.2 + 1 / (1 + 4 / 50)) / 4  # 0.708926...
    dynamic = 1 / (1 + 2e6 / 1e7)  # mean CPU time 2 ms = 2e6 ns; no other term measured
    assert got.static == pytest.approx(static)
    assert got.dynamic == pytest.approx(dynamic)
    assert got.value == pytest.approx(0.75 * (1 + 0.5 * static + 0.5 * dynamic))
    assert got.value == pytest.approx(1.3283468, abs=1e-6)
    assert got.dynamic_terms == ["ns"] and got.time_source == "cpu"
    assert "instructions" not in got.dynamic_parts  # not measured: left out, not estimated


def test_omega_uses_instructions_where_measured_and_wall_time_where_cpu_is_missing():
    result = _run(_ok(0.001, instructions=100_000), _ok(0.003, instructions=300_000))
    got = metrics.omega(SIMPLE, result)
    assert got.dynamic_terms == ["ns", "instructions"]
    assert got.dynamic == pytest.approx((1 / 1.2 + 1 / 3) / 2)

    wall = metrics.omega(SIMPLE, _run(_ok(0.001, wall=0.01), _ok(None, wall=0.03)))
    assert wall.time_source == "wall"
    assert wall.dynamic == pytest.approx(1 / (1 + 2e7 / 1e7))


def test_omega_is_zero_when_nothing_passes():
    got = metrics.omega(SIMPLE, _run(Measured(Verdict.FAILED), Measured(Verdict.TIMEOUT)))
    assert got.value == 0.0 and got.dynamic is None and got.dynamic_terms == []


# ----------------------------------------------------------------------------- rankings and selection


def _node(i, rho, omega, pass_rate=0.5, runtime=1.0):
    node = Node(i, None, 1, None, "", "")
    node.rho = rho
    node.omega = metrics.Omega(value=omega, pass_rate=pass_rate)
    passed = round(pass_rate * 4)
    node.result = _run(
        *[_ok(runtime / 4) for _ in range(passed)], *[Measured(Verdict.FAILED) for _ in range(4 - passed)]
    )
    return node


def test_both_beam_rankings():
    a, b, c, d = _node(0, 5, 0.2), _node(1, 3, 1.5), _node(2, 4, 1.3), _node(3, None, 1.4)
    # weighted q on [0, 1] scales, 0.5·(ρ-1)/4 + 0.5·ω/2: a 0.5 + 0.05 = 0.55, b 0.25 + 0.375 = 0.625,
    # c 0.375 + 0.325 = 0.7; d has no ρ (critic failed): below every scored node
    assert [n.id for n in beam([a, b, c, d], "weighted", 4)] == [2, 1, 0, 3]
    assert [n.id for n in beam([a, b, c, d], "critic-then-omega", 4)] == [0, 2, 1, 3]
    assert [n.id for n in beam([a, b, c, d], "weighted", 2)] == [2, 1]
    tie1, tie2 = _node(0, 4, 1.0), _node(1, 4, 1.0)
    assert [n.id for n in beam([tie1, tie2], "critic-then-omega", 1)] == [0]  # generation order


def test_final_selection_pass_rate_then_runtime_then_omega():
    slow_full = _node(0, 1, 0.1, pass_rate=1.0, runtime=2.0)
    fast_full = _node(1, 1, 0.1, pass_rate=1.0, runtime=1.0)
    best_omega_half = _node(2, 5, 1.5, pass_rate=0.5, runtime=0.1)
    assert select([slow_full, fast_full, best_omega_half]) is fast_full
    assert fast_full.selected and not slow_full.selected
    same = [_node(0, 1, 0.3, 1.0, 1.0), _node(1, 1, 0.9, 1.0, 1.0)]
    assert select(same).id == 1


def test_weighted_ranking_puts_rho_and_omega_on_the_same_scale():
    """On raw scales (ρ 1..5, ω 0..2) a ρ step of 1 outweighs any ω gap; normalised, it does not."""
    loud, good = _node(0, 5, 0.0), _node(1, 3, 0.9)
    # normalised: loud 0.5, good 0.25 + 0.225 = 0.475; ω 1.2 tips it: 0.25 + 0.3 = 0.55
    assert beam([loud, good], "weighted", 1) == [loud]
    good.omega = metrics.Omega(value=1.2, pass_rate=0.5)
    assert beam([loud, good], "weighted", 1) == [good]  # raw: 2.5 against 2.1, ρ would decide
    assert beam([loud, good], "critic-then-omega", 1) == [loud]


def _ran(i, *tests, code="def f():\n    return 1\n"):
    node = Node(i, None, 1, None, "", code)
    node.record_run(_run(*tests))
    return node


def test_final_selection_never_prefers_code_that_did_not_run():
    """Nothing passes: a syntax error (0 s over its tests) must not beat a program that ran."""
    syntax = _ran(0, Measured(Verdict.COMPILE_ERROR), Measured(Verdict.COMPILE_ERROR), code="def f(:\n")
    empty = _ran(1, Measured(Verdict.RUNTIME_ERROR, wall_s=0.0), code="")
    ran_wrong = _ran(2, Measured(Verdict.FAILED, wall_s=0.4, cpu_s=0.3), Measured(Verdict.FAILED, wall_s=0.4))
    assert select([syntax, empty, ran_wrong]) is ran_wrong
    assert not syntax.ran and not empty.ran and ran_wrong.ran
    assert ran_wrong.runtime is None  # nothing passed: runtime unknown


def test_final_selection_times_passing_tests_only():
    # same pass rate; `slow_fail` fails its other test at once, `fast_fail` times out on it: the time of
    # a failing test says nothing, only the passing test's time counts
    fast_pass = _ran(0, _ok(0.001), Measured(Verdict.TIMEOUT, wall_s=5.0, cpu_s=5.0))
    slow_pass = _ran(1, _ok(0.2), Measured(Verdict.FAILED, wall_s=0.0, cpu_s=0.0))
    assert fast_pass.runtime == pytest.approx(0.001) and slow_pass.runtime == pytest.approx(0.2)
    assert select([slow_pass, fast_pass]) is fast_pass
