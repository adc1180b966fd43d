"""Rewards: the strict format, the gating truth table (real executor runs), reward-model call counting,
masking of infrastructure failures, min-max grouping, the math reward, and hand-computed advantages."""

from __future__ import annotations

import math
import statistics
import threading

import pytest

from pgrpo.rewards import (
    VARIANTS,
    FormatSpec,
    RewardStats,
    RewardWeights,
    compose,
    format_reward,
    group_advantages,
    math_answer_reward,
    needs_thinking,
    outcome_reward,
    parse_completion,
    score_completions,
)
from pgrpo.rm.score import ScorerUnavailable
from pgrpo.types import AnswerTest, AssertTest, CallTest, ExecResult, Problem, Verdict
from pgrpo.types import TestResult as OneTest  # not collected by pytest

SANDBOX_ERROR_MARK = "# provoke: sandbox_error"
LOG3 = math.log(3.0)  # sigmoid(ln 3) = 0.75


def add_problem(pid: str = "demo/add") -> Problem:
    return Problem(
        id=pid,
        prompt="Write add(a, b) that returns the sum.",
        entry_point="add",
        tests=(AssertTest("assert add(1, 2) == 3"), CallTest(args=[2, 3], expected=5)),
    )


def answer(body: str, thinking: str = "Add the two numbers.") -> str:
    return f"<think>{thinking}</think>\n<answer>\n```python\ndef add(a, b):\n    {body}\n```\n</answer>"


PASS = answer("return a + b")
FAIL = answer("return a - b")
HALF = answer("return 3")  # passes add(1, 2) == 3, fails add(2, 3) == 5
ERROR = answer(f"return a + b  {SANDBOX_ERROR_MARK}")


class MarkedErrors:
    """The real executor, except that programs holding the mark come back as sandbox errors."""

    def __init__(self, real):
        self.real = real
        self.programs: list[str] = []

    def map(self, jobs):
        jobs = list(jobs)
        self.programs += [code for _, code in jobs]
        real = self.real.map([(p, code) for p, code in jobs if SANDBOX_ERROR_MARK not in code])
        for _, code in jobs:
            if SANDBOX_ERROR_MARK in code:
                yield ExecResult(Verdict.SANDBOX_ERROR, [], message="sandbox worker died 2 times on this job")
            else:
                yield next(real)


class FakeScorer:
    """A reward model double: a fixed raw score (or one per reasoning text); records every call."""

    def __init__(self, score=LOG3, down: bool = False):
        self.score_of = score if callable(score) else (lambda reasoning: score)
        self.down = down
        self.calls: list[tuple[list[str], list[str]]] = []

    def score(self, problems, reasonings):
        self.calls.append((list(problems), list(reasonings)))
        if self.down:
            raise ScorerUnavailable(
                "no reward-model server answering at http://127.0.0.1:9 (after 5 attempts)"
            )
        return [self.score_of(r) for r in reasonings]

    @property
    def texts(self) -> int:
        return sum(len(r) for _, r in self.calls)


@pytest.fixture
def runner(executor):
    return MarkedErrors(executor)


# ----------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    "text, well_formed",
    [
        (PASS, True),
        ("  <think>t</think><answer>```py\nx = 1\n```</answer>\n", True),
        ("<think>t</think><answer>Here it is:\n```\nx = 1\n```\nDone.</answer>", True),  # prose around
        ("<think>t</think><answer>def f():\n    return 1</answer>", True),  # bare code that parses
        ("<think>t</think><answer>    return a + b</answer>", True),  # a HumanEval body, dedented
        ("<think>t</think><answer>```python\ndef f(:\n```</answer>", True),  # syntax is the outcome's job
        ("<answer>```python\nx = 1\n```</answer>", False),  # no think block
        ("<think>t</think>", False),  # no answer block
        ("<think>t</think><think>u</think><answer>x = 1</answer>", False),  # two think blocks
        ("<think>t</think><answer>x = 1</answer><answer>y = 2</answer>", False),  # two answer blocks
        ("<answer>x = 1</answer><think>t</think>", False),  # wrong order
        ("Sure! <think>t</think><answer>x = 1</answer>", False),  # text before
        ("<think>t</think><answer>x = 1</answer> Hope this helps", False),  # text after
        ("<think>t</think>between<answer>x = 1</answer>", False),  # text between
        ("<think>  </think><answer>x = 1</answer>", False),  # empty thinking
        ("<think>t</think><answer>The sum of a and b.</answer>", False),  # prose, no code
        ("<think>t</think><answer>```cpp\nint x;\n```</answer>", False),  # not Python
        ("<think>t</think><answer>```python\nx = 1\n</answer>", False),  # unclosed fence
        ("<think>t</think><answer>```python\n\n```</answer>", False),  # empty fence
        ("<think>t<answer>x</answer></think><answer>x = 1</answer>", False),  # a tag inside thinking
    ],
)
def test_format_is_strict(text, well_formed):
    assert parse_completion(text).well_formed is well_formed
    assert format_reward(text) == (1.0 if well_formed else 0.0)


def test_parse_reads_thinking_and_code_even_when_the_format_is_wrong():
    parsed = parse_completion(PASS + "\nHope this helps")
    assert not parsed.well_formed
    assert parsed.thinking == "Add the two numbers."
    assert parsed.code == "def add(a, b):\n    return a + b\n"
    bare = parse_completion("def add(a, b):\n    return a + b\n")  # no tags at all: the whole text
    assert (bare.thinking, bare.answer, bare.well_formed) == (None, None, False)
    assert bare.code.startswith("def add")
    assert parse_completion("<think>t</think><answer>\n\n</answer>").code is None


def test_tags_are_configurable():
    spec = FormatSpec(think_tag="reasoning", answer_tag="solution")
    text = "<reasoning>r</reasoning><solution>```python\nx = 1\n```</solution>"
    parsed = parse_completion(text, spec)
    assert parsed.well_formed and parsed.thinking == "r" and parsed.code == "x = 1\n"
    assert not parse_completion(text).well_formed  # the default tags are absent
    assert not parse_completion(PASS, spec).well_formed
    with pytest.raises(ValueError, match="must differ"):
        FormatSpec(think_tag="x", answer_tag="x")
    with pytest.raises(ValueError, match="tag name"):
        FormatSpec(think_tag="<think>")


def test_math_answers_need_no_code():
    spec = FormatSpec(require_code=False)
    assert parse_completion("<think>1+1</think><answer>\\boxed{2}</answer>", spec).well_formed
    assert not parse_completion("<think>1+1</think><answer> </answer>", spec).well_formed


# ----------------------------------------------------------------------------- pure functions


def test_outcome_reward_from_the_typed_result():
    passed = ExecResult.from_tests([OneTest(Verdict.PASSED), OneTest(Verdict.PASSED)])
    half = ExecResult.from_tests([OneTest(Verdict.PASSED), OneTest(Verdict.FAILED)])
    broken = ExecResult(Verdict.SANDBOX_ERROR, [], message="worker died")
    assert (outcome_reward(passed), outcome_reward(half), outcome_reward(broken)) == (1.0, 0.0, None)
    assert outcome_reward(half, "pass_rate") == 0.5
    assert outcome_reward(broken, "pass_rate") is None
    with pytest.raises(ValueError, match="all, pass_rate"):
        outcome_reward(passed, "some")


@pytest.mark.parametrize(
    "variant, r_outcome, needed",
    [
        ("outcome", 1.0, False),
        ("outcome", 0.0, False),
        ("additive", 1.0, True),
        ("additive", 0.0, True),
        ("posterior", 1.0, True),
        ("posterior", 0.0, False),
        ("posterior", 0.5, True),  # pass_rate mode: any passing test opens the gate
        ("posterior", None, False),  # masked anyway: no reward-model call wasted
        ("additive", None, False),
    ],
)
def test_needs_thinking(variant, r_outcome, needed):
    assert needs_thinking(variant, r_outcome) is needed


@pytest.mark.parametrize(
    "variant, f, o, t, total",
    [
        ("outcome", 1, 1, 0.75, 2.0),
        ("outcome", 1, 0, None, 1.0),
        ("additive", 1, 0, 0.75, 1.75),  # the hack: wrong code still collects the thinking reward
        ("additive", 1, 0, None, None),
        ("posterior", 1, 1, 0.75, 2.75),
        ("posterior", 0, 1, 0.75, 1.75),
        ("posterior", 1, 0, 0.75, 1.0),  # gate closed: the thinking score is ignored
        ("posterior", 1, 0, None, 1.0),  # ... and not needed
        ("posterior", 1, 1, None, None),  # gate open, scorer down: masked, not 0
        ("posterior", 1, 0.5, 0.5, 1.75),  # pass_rate: 1 + 0.5 + 0.5 * 0.5
        ("posterior", 1, None, 0.75, None),
        ("outcome", 1, None, None, None),
    ],
)
def test_compose(variant, f, o, t, total):
    assert compose(variant, f, o, t) == total


def test_compose_weights_and_unknown_variant():
    w = RewardWeights(format=0.5, outcome=2.0, thinking=3.0)
    assert compose("posterior", 1.0, 1.0, 0.75, w) == pytest.approx(0.5 + 2.0 + 3.0 * 0.75)
    assert compose("additive", 1.0, 0.0, 0.75, w) == pytest.approx(0.5 + 3.0 * 0.75)
    with pytest.raises(ValueError, match="outcome, additive, posterior"):
        compose("gated", 1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="finite"):
        RewardWeights(thinking=float("nan"))


# ----------------------------------------------------------------------------- the truth table

BAD = "\nHope this helps!"  # text after the answer: format 0, thinking and code still readable

# (format ok, outcome, scorer up) -> expected total per variant; R_thinking = sigmoid(ln 3) = 0.75
TRUTH_TABLE = [
    # format, outcome, scorer, {variant: total}
    (True, "pass", True, {"outcome": 2.0, "additive": 2.75, "posterior": 2.75}),
    (True, "pass", False, {"outcome": 2.0, "additive": None, "posterior": None}),
    (True, "fail", True, {"outcome": 1.0, "additive": 1.75, "posterior": 1.0}),
    (True, "fail", False, {"outcome": 1.0, "additive": None, "posterior": 1.0}),
    (True, "sandbox_error", True, {"outcome": None, "additive": None, "posterior": None}),
    (True, "sandbox_error", False, {"outcome": None, "additive": None, "posterior": None}),
    (False, "pass", True, {"outcome": 1.0, "additive": 1.75, "posterior": 1.75}),
    (False, "pass", False, {"outcome": 1.0, "additive": None, "posterior": None}),
    (False, "fail", True, {"outcome": 0.0, "additive": 0.75, "posterior": 0.0}),
    (False, "fail", False, {"outcome": 0.0, "additive": None, "posterior": 0.0}),
    (False, "sandbox_error", True, {"outcome": None, "additive": None, "posterior": None}),
    (False, "sandbox_error", False, {"outcome": None, "additive": None, "posterior": None}),
]
COMPLETIONS = {"pass": PASS, "fail": FAIL, "sandbox_error": ERROR}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("scorer_up", [True, False])
def test_gating_truth_table(runner, variant, scorer_up):
    rows = [row for row in TRUTH_TABLE if row[2] is scorer_up]
    texts = [COMPLETIONS[outcome] + ("" if fmt else BAD) for fmt, outcome, _, _ in rows]
    scorer = FakeScorer(down=not scorer_up)
    stats = RewardStats()
    results = score_completions(
        [add_problem()] * len(rows), texts, executor=runner, scorer=scorer, variant=variant, stats=stats
    )
    assert len(runner.programs) == len(rows)  # every completion ran once, in one batch
    for (fmt, outcome, _, totals), r in zip(rows, results):
        where = (
            f"{variant}, format {'ok' if fmt else 'bad'}, {outcome}, scorer {'up' if scorer_up else 'down'}"
        )
        expected = totals[variant]
        assert r.total == (None if expected is None else pytest.approx(expected)), where
        assert r.format == (1.0 if fmt else 0.0), where
        assert r.passed is (outcome == "pass"), where
        assert r.verdict == {"pass": "passed", "fail": "failed", "sandbox_error": "sandbox_error"}[outcome]
        known = outcome != "sandbox_error"
        gate_open = (variant == "additive" and known) or (variant == "posterior" and outcome == "pass")
        assert r.thinking_called is (gate_open and scorer_up), where
        assert r.thinking == (pytest.approx(0.75) if gate_open and scorer_up else None), where
        if outcome == "sandbox_error":
            assert (r.outcome, r.failure) == (None, "sandbox_error"), where
        elif expected is None:
            assert r.failure == "scorer_unavailable", where
        else:
            assert r.failure is None, where
    # one reward-model request at most, carrying exactly the gated reasoning
    gated = sum(
        1 for fmt, outcome, _, _ in rows if needs_thinking(variant, {"pass": 1.0, "fail": 0.0}.get(outcome))
    )
    assert len(scorer.calls) == (1 if gated else 0)
    assert (stats.scorer_calls, stats.scorer_requests) == (gated, len(scorer.calls))
    assert stats.sandbox_errors == 2 and stats.completions == 6
    assert stats.scorer_failures == (0 if scorer_up else gated)
    assert stats.masked == sum(r.total is None for r in results)


def test_posterior_calls_the_reward_model_only_for_passing_samples(runner):
    group = [PASS, FAIL, answer("return b + a", thinking="Commutative."), answer("return 0")]
    problems = [add_problem()] * len(group)
    posterior = FakeScorer()
    stats = RewardStats()
    results = score_completions(problems, group, executor=runner, scorer=posterior, stats=stats)
    assert posterior.calls == [
        (["Write add(a, b) that returns the sum."] * 2, ["Add the two numbers.", "Commutative."])
    ]
    assert [r.thinking_called for r in results] == [True, False, True, False]
    assert (stats.thinking_gated, stats.scorer_calls, stats.passed) == (2, 2, 2)

    additive = FakeScorer()
    score_completions(problems, group, executor=runner, scorer=additive, variant="additive")
    assert additive.texts == 4

    none_pass = FakeScorer()
    score_completions(problems[:2], [FAIL, FAIL], executor=runner, scorer=none_pass)
    assert none_pass.calls == []  # a group with no passing sample costs no reward-model call

    results = score_completions(problems, group, executor=runner, variant="outcome")  # no scorer needed
    assert [r.total for r in results] == [2.0, 1.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="needs a reward-model scorer"):
        score_completions(problems, group, executor=runner, variant="posterior")


def test_pass_rate_mode_opens_the_gate_in_proportion(runner):
    scorer = FakeScorer()
    results = score_completions(
        [add_problem()] * 2, [HALF, FAIL], executor=runner, scorer=scorer, outcome_mode="pass_rate"
    )
    assert results[0].outcome == 0.5 and results[0].total == pytest.approx(1 + 0.5 + 0.5 * 0.75)
    assert results[1].outcome == 0.0 and results[1].total == 1.0
    assert scorer.texts == 1


def test_no_code_is_outcome_zero_without_running(runner):
    texts = ["", "<think>I cannot solve this.</think><answer>\n</answer>"]
    stats = RewardStats()
    results = score_completions([add_problem()] * 2, texts, executor=runner, variant="outcome", stats=stats)
    assert runner.programs == []
    assert [(r.verdict, r.outcome, r.total, r.failure) for r in results] == [("no_code", 0.0, 0.0, None)] * 2
    assert stats.no_code == 2 and stats.executed == 0


def test_humaneval_style_completion_continues_the_prompt(runner):
    problem = Problem(
        id="he/add",
        prompt='def add(a, b):\n    """Return a + b."""\n',
        entry_point="add",
        tests=(AssertTest("def check(candidate):\n    assert candidate(1, 2) == 3\n\ncheck(add)"),),
    )
    text = "<think>Just add.</think><answer>```python\n    return a + b\n```</answer>"
    [r] = score_completions([problem], [text], executor=runner, variant="outcome")
    assert (r.format, r.verdict, r.total) == (1.0, "passed", 2.0)
    assert runner.programs == [problem.prompt + "    return a + b\n"]


def test_gated_sample_without_thinking_text_gets_zero_without_a_call(runner):
    no_think = "```python\ndef add(a, b):\n    return a + b\n```"
    scorer = FakeScorer()
    [r] = score_completions([add_problem()], [no_think], executor=runner, scorer=scorer)
    assert (r.format, r.outcome, r.thinking, r.total, r.thinking_called) == (0.0, 1.0, 0.0, 1.0, False)
    assert scorer.calls == []


def test_non_finite_scores_are_masked(runner):
    scorer = FakeScorer(score=lambda reasoning: float("nan") if reasoning == "bad" else 0.0)
    stats = RewardStats()
    results = score_completions(
        [add_problem()] * 2,
        [answer("return a + b", "bad"), PASS],
        executor=runner,
        scorer=scorer,
        stats=stats,
    )
    assert (results[0].total, results[0].failure) == (None, "scorer_nonfinite")
    assert results[1].total == pytest.approx(2.5)
    assert (stats.scorer_failures, stats.masked, stats.by_failure) == (1, 1, {"scorer_nonfinite": 1})


def test_minmax_maps_within_each_problems_group(runner):
    a, b = add_problem("a"), add_problem("b")
    raw = {"a1": 1.0, "a2": 3.0, "b1": 10.0, "b2": 20.0, "b3": 30.0, "c1": -5.0}
    texts = [answer("return a + b", name) for name in raw]
    problems = [a, a, b, b, b, add_problem("c")]
    results = score_completions(
        problems, texts, executor=runner, scorer=FakeScorer(score=raw.get), unit="minmax"
    )
    assert [r.thinking for r in results] == [0.0, 1.0, 0.0, 0.5, 1.0, 0.5]  # a lone sample: 0.5
    sigmoid = score_completions(problems, texts, executor=runner, scorer=FakeScorer(score=raw.get))
    assert sigmoid[1].thinking == pytest.approx(1 / (1 + math.exp(-3.0)))


# ----------------------------------------------------------------------------- math


def test_math_answer_reward():
    assert math_answer_reward("<think>1/2</think><answer>\\boxed{\\frac{1}{2}}</answer>", "0.5") == 1.0
    assert math_answer_reward("<answer>0.25</answer>", "1/2") == 0.0
    assert math_answer_reward("The answer is \\boxed{1,234}.", "1234") == 1.0
    assert math_answer_reward("<sol>3</sol>", "3", FormatSpec(answer_tag="sol")) == 1.0
    results = []
    thread = threading.Thread(target=lambda: results.append(math_answer_reward("\\boxed{2}", "2")))
    thread.start()
    thread.join()
    assert results == [1.0]  # off the main thread: no SIGALRM time limit, but a real check


def test_math_problems_are_checked_not_executed(runner, monkeypatch):
    problem = Problem(id="m/1", prompt="What is 1 + 1?", tests=(AnswerTest("2"),))
    texts = [
        "<think>One plus one.</think><answer>\\boxed{2}</answer>",
        "<think>Hm.</think><answer>3</answer>",
    ]
    scorer = FakeScorer()
    stats = RewardStats()
    results = score_completions([problem] * 2, texts, executor=runner, scorer=scorer, stats=stats)
    assert [(r.format, r.outcome, r.verdict) for r in results] == [(1.0, 1.0, "passed"), (1.0, 0.0, "failed")]
    assert results[0].total == pytest.approx(2.75) and results[1].total == 1.0
    assert runner.programs == [] and stats.math_checked == 2 and scorer.texts == 1

    import pgrpo.rewards.math as math_rewards
    from pgrpo.answers import AnswerCheckError

    def times_out(*args, **kwargs):
        raise AnswerCheckError("math-verify took over 5s")

    monkeypatch.setattr(math_rewards, "check_answer", times_out)
    [r] = score_completions([problem], texts[:1], executor=runner, scorer=scorer, stats=stats)
    assert (r.outcome, r.total, r.failure) == (None, None, "answer_check_error")
    assert stats.answer_check_errors == 1


# ----------------------------------------------------------------------------- advantages


def test_group_advantages_hand_computed():
    # Every sample passes and is well formed: plain GRPO sees no difference, the group teaches nothing.
    assert group_advantages([2.0, 2.0, 2.0, 2.0], 4) == [0.0, 0.0, 0.0, 0.0]
    # P-GRPO on the same group, R_thinking = .9 .5 .3 .1: rewards 2.9 2.5 2.3 2.1, mean 2.45,
    # deviations .45 .05 -.15 -.35, unbiased variance .35 / 3, std 0.341565; A = dev / (std + 1e-4).
    std = math.sqrt(0.35 / 3)
    expected = [d / (std + 1e-4) for d in (0.45, 0.05, -0.15, -0.35)]
    assert group_advantages([2.9, 2.5, 2.3, 2.1], 4) == pytest.approx(expected)
    assert expected[0] == pytest.approx(1.317079, abs=1e-6)
    # A mixed group (pass+format, format, nothing, format): outcome-only 2 1 0 1, mean 1, std sqrt(2/3).
    assert group_advantages([2, 1, 0, 1], 4) == pytest.approx([1.224595, 0, -1.224595, 0], abs=1e-6)
    # ... and with the gated thinking term (the passer's R_t = .5): 2.5 1 0 1, mean 1.125,
    # deviations 1.375 -.125 -1.125 -.125, variance 3.1875 / 3 = 1.0625.
    std = math.sqrt(1.0625)
    assert group_advantages([2.5, 1, 0, 1], 4) == pytest.approx(
        [1.375 / (std + 1e-4), -0.125 / (std + 1e-4), -1.125 / (std + 1e-4), -0.125 / (std + 1e-4)]
    )
    assert std == pytest.approx(statistics.stdev([2.5, 1, 0, 1]))  # Bessel-corrected, as TRL's nanstd
    assert group_advantages([2.5, 1, 0, 1], 4, scale=False) == [1.375, -0.125, -1.125, -0.125]
    # Two groups are normalised separately: (1, 0) has mean .5 and std sqrt(.5); (5, 5) is flat.
    assert group_advantages([1, 0, 5, 5], 2) == pytest.approx([0.707007, -0.707007, 0, 0], abs=1e-6)


def test_group_advantages_mask_infrastructure_failures():
    # A masked sample takes no part in its group's mean and std, and gets advantage 0:
    # scored 1 0 0, mean 1/3, std sqrt(1/3).
    std = math.sqrt(1 / 3)
    assert group_advantages([1.0, 0.0, None, 0.0], 4) == pytest.approx(
        [(2 / 3) / (std + 1e-4), (-1 / 3) / (std + 1e-4), 0.0, (-1 / 3) / (std + 1e-4)]
    )
    assert group_advantages([1.0, 0.0, float("nan"), 0.0], 4) == group_advantages([1.0, 0.0, None, 0.0], 4)
    # One scored sample: TRL's nanstd is NaN, so the whole group gets 0 (unscaled: r - mean = 0 too).
    assert group_advantages([None, 1.0, None, None], 4) == [0.0] * 4
    assert group_advantages([None, 1.0, None, None], 4, scale=False) == [0.0] * 4
    assert group_advantages([None] * 4, 4) == [0.0] * 4
    assert group_advantages([3.0], 1) == [0.0]
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages([1.0, 2.0], 3)


def test_advantages_of_scored_groups_end_to_end(runner):
    """From completions to advantages: the all-pass group is flat under `outcome`, not under `posterior`."""
    thinking = {"a": 2.0, "b": 0.0, "c": -2.0}
    texts = [answer("return a + b", t) for t in thinking]
    problems = [add_problem()] * 3
    scorer = FakeScorer(score=thinking.get)
    outcome = [r.total for r in score_completions(problems, texts, executor=runner, variant="outcome")]
    posterior = [r.total for r in score_completions(problems, texts, executor=runner, scorer=scorer)]
    assert group_advantages(outcome, 3) == [0.0, 0.0, 0.0]
    a = group_advantages(posterior, 3)
    assert a[0] > 0 > a[2] and a[1] == pytest.approx(0.0, abs=1e-9)
