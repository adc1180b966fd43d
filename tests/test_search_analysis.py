"""What ORPS's critic and expansion prompts show (issue 12, point 4), and ω's dynamic part on a program
that works in a thread or a child process (point 6). Scripted LLMs; the executor is the real one."""

from __future__ import annotations

import re

import pytest

from pgrpo.search import metrics, prompts
from pgrpo.search.config import SearchConfig
from pgrpo.search.engine import Backends, MethodResult, drive
from pgrpo.search.methods import critique, orps
from pgrpo.search.tasks import search_view
from pgrpo.search.tree import Node
from pgrpo.types import AssertTest, ExecResult, Problem, Verdict
from pgrpo.types import TestResult as Measured  # (a name pytest would try to collect)


class Recorder:
    """A scripted LLM (the `Generator` protocol): answers by a rule, keeps every prompt's text."""

    def __init__(self, rule):
        self.rule, self.seen = rule, []

    def generate(self, prompts_, params):
        out = []
        for prompt in prompts_:
            text = "\n".join(m["content"] for m in prompt)
            self.seen.append(text)
            out.append([self.rule(text, len(self.seen)) for _ in range(params.n)])
        return out


def _task(tests=("assert add(1, 2) == 3", "assert add(0, 0) == 0")):
    problem = Problem(
        id="toy", prompt="Write add(a, b).", entry_point="add", tests=tuple(AssertTest(t) for t in tests)
    )
    return search_view(problem, problem.tests, oracle=False)


def _cfg(**kw):
    return SearchConfig(dataset="x", out="x", model="m", **kw)


def _node(i, parent, code, *tests, reasoning="", rho=None, critique="", stderr=""):
    node = Node(i, parent, i, f"hint {i}", reasoning, code)
    node.record_run(ExecResult.from_tests(list(tests), stderr=stderr))
    node.rho, node.critique = rho, critique
    return node


def _critic_prompt_of(node, tree):
    """The critic's prompt for `node`, through `critique` and the driver as a search asks it."""
    gen = Recorder(lambda text, k: "Fine.\nScore: 3")

    def method(task, cfg, ledger):
        yield from critique(task, [node], cfg, ledger, tree)
        return MethodResult([node], None, "done")

    drive([_task()], method, _cfg(), Backends(gen, gen), None, None)
    (prompt,) = gen.seen
    return prompt


def test_the_critic_sees_each_test_the_measures_the_static_metrics_omega_and_the_path():
    root = _node(
        0,
        None,
        "def add(a, b):\n    return 0  # ROOT_CODE\n",
        Measured(Verdict.FAILED, wall_s=0.002, message="assertion failed"),
        Measured(Verdict.PASSED, wall_s=0.001, cpu_s=0.0005),
        reasoning="ROOT_REASONING: return zero",
        rho=1,
        critique="ROOT_CRITIQUE: it ignores its arguments",
    )
    parent = _node(
        1,
        0,
        "def add(a, b):\n    return a - b  # PARENT_CODE\n",
        Measured(Verdict.FAILED, wall_s=0.002, message="assertion failed"),
        Measured(Verdict.PASSED, wall_s=0.001, cpu_s=0.0004),
        reasoning="PARENT_REASONING: subtract",
        rho=2,
    )
    child = _node(
        2,
        1,
        "def add(a, b):\n    if a > 0 and b > 0:\n        return a + b\n    return a - b\n",
        Measured(Verdict.PASSED, wall_s=0.0031, cpu_s=0.003, peak_mb=12.5, instructions=123_456),
        Measured(
            Verdict.RUNTIME_ERROR, wall_s=0.0002, cpu_s=0.0001, peak_mb=12.0, message="ZeroDivisionError"
        ),
        stderr="Traceback: boom",
    )
    prompt = _critic_prompt_of(child, [root, parent, child])

    # per-test outcomes, with the failing test's error and text
    assert "test 1: passed" in prompt
    assert "test 2: runtime_error (ZeroDivisionError)" in prompt
    assert "assert add(0, 0) == 0" in prompt
    assert "Traceback: boom" in prompt  # the program's error output
    # the dynamic measures of each test
    assert "wall 3.100 ms, CPU 3.000 ms, peak memory 12.5 MB, 123,456 instructions" in prompt
    assert "CPU 0.100 ms" in prompt
    # static metrics and ω with its parts
    parts = child.omega.static_parts
    assert f"{parts['ast_nodes']} AST nodes, cyclomatic complexity {parts['cyclomatic']}" in prompt
    assert f"cognitive complexity {parts['cognitive']}, {parts['lines']} lines of code" in prompt
    w = child.omega
    assert f"ω = {w.value:.3f} = pass rate 0.50 × (1 + 0.5 × static {w.static:.3f}" in prompt
    assert f"dynamic {w.dynamic:.3f}" in prompt and "time 3.000 ms (CPU)" in prompt
    # the ancestors with their verdicts, newest first
    path = prompt.split("newest first:")[1]
    assert path.index("PARENT_CODE") < path.index("ROOT_CODE")
    assert "PARENT_REASONING" in path and "ROOT_REASONING" in path and "ROOT_CRITIQUE" in path
    assert "failed, passed 1 of 2 tests" in path
    assert "critic 2/5" in path and "critic 1/5" in path


def test_a_root_has_no_path_and_a_long_path_stays_within_its_budget():
    task = _task()
    ok = Measured(Verdict.PASSED, wall_s=0.001, cpu_s=0.001)
    long_text = "x = 1  # padding\n" * 200
    chain = [
        _node(i, i - 1 if i else None, long_text + f"# CODE_{i}\n", ok, reasoning=f"R_{i} " + "why " * 500)
        for i in range(40)
    ]
    for node in chain:
        node.critique = "too long " * 300
    assert "first attempt" in prompts.critic_prompt(task, chain[0], chain)[0]["content"]

    summary = prompts.path_summary(prompts.ancestors(chain[-1], chain))
    assert len(summary) <= prompts.MAX_PATH_CHARS
    assert summary.startswith("Round 38 attempt")  # the parent first
    assert re.search(r"\((\d+) older attempts left out for length\)", summary)
    shown = int(re.search(r"\((\d+) older", summary).group(1))
    assert summary.count("Round ") + shown == 39

    prompt = prompts.critic_prompt(task, chain[-1], chain)[0]["content"]
    alone = prompts.critic_prompt(task, chain[-1], [chain[-1]])[0]["content"]
    assert len(prompt) - len(alone) <= prompts.MAX_PATH_CHARS


WRONG = "I will subtract.\n```python\ndef add(a, b):\n    return a - b  # ATTEMPT_{k}\n```\n"


def test_expansion_sees_the_path_not_only_the_parent(executor):
    def rule(text, k):
        return "It subtracts.\nScore: 2" if "You review solutions" in text else WRONG.format(k=k)

    gen = Recorder(rule)
    cfg = _cfg(children=1, beam=1, rounds=2, budget_calls=100)
    ((result, _),) = drive([_task()], orps, cfg, Backends(gen, gen), executor, None).values()
    last = result.nodes[-1]
    grandparent = prompts.ancestors(last, result.nodes)[1]
    marker = re.search(r"ATTEMPT_\d+", grandparent.code).group(0)
    asks = [p for p in gen.seen if "earlier attempt" in p and "You review" not in p]
    path = asks[-1].split("The attempts it was built from, newest first:")[1]
    assert marker in path and "passed 1 of 2 tests" in path and "critic 2/5" in path
    assert "Per test:" in asks[-1] and "AST nodes" in asks[-1]  # the parent's analysis too


# ----------------------------------------------------------------------------- point 6: CPU off the main thread

WORK = "def work(n):\n    s = 0\n    for i in range(n):\n        s += i * i\n    return s\n\n"
MAIN_THREAD = WORK + "def f(n):\n    return work(n)\n"
IN_A_THREAD = WORK + (
    "import threading\n\n"
    "def f(n):\n"
    "    out = []\n"
    "    t = threading.Thread(target=lambda: out.append(work(n)))\n"
    "    t.start()\n"
    "    t.join()\n"
    "    return out[0]\n"
)
IN_A_CHILD = WORK + (
    "import os\n\n"
    "def f(n):\n"
    "    r, w = os.pipe()\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        os.write(w, str(work(n)).encode())\n"
    "        os._exit(0)\n"
    "    os.close(w)\n"
    "    os.waitpid(pid, 0)\n"
    "    return int(os.read(r, 100))\n"
)
IN_A_WORKER_STARTED_AT_IMPORT = WORK + (
    "import queue, threading\n\n"
    "asks, answers = queue.Queue(), queue.Queue()\n"
    "threading.Thread(target=lambda: [answers.put(work(asks.get())) for _ in iter(int, 1)], daemon=True).start()\n\n"
    "def f(n):\n"
    "    asks.put(n)\n"
    "    return answers.get()\n"
)
N = 1_500_000


@pytest.mark.parametrize(
    "elsewhere",
    [IN_A_THREAD, IN_A_WORKER_STARTED_AT_IMPORT, IN_A_CHILD],
    ids=["thread", "worker-thread-from-import", "child-process"],
)
@pytest.mark.parametrize("disable", [(), ("cgroup",)], ids=["cgroup-layer", "no-cgroup-layer"])
def test_work_off_the_main_thread_does_not_look_faster(disable, elsewhere):
    from pgrpo.sandbox import Executor

    problem = Problem(
        id="burn",
        prompt="",
        entry_point="f",
        tests=(AssertTest(f"assert f({N}) == {sum(i * i for i in range(N))}"),),
        time_limit_s=10,
    )
    with Executor(workers=1, disable=disable) as ex:
        list(ex.map([(problem, MAIN_THREAD)]))  # a warm-up: a worker's first run is slower
        main, other = (list(ex.map([(problem, code)]))[0] for code in (MAIN_THREAD, elsewhere))
    assert main.passed and other.passed
    main_omega, other_omega = metrics.omega(MAIN_THREAD, main), metrics.omega(elsewhere, other)
    # the time ω reads counts most of the work wherever it ran, so moving it does not buy a better score
    assert other_omega.time_source == "cpu"
    # (bounds loose enough for a loaded machine; the main thread alone reads ~0.5% of the work)
    assert other_omega.dynamic_parts["ns"] >= 0.5 * main_omega.dynamic_parts["ns"]
    assert other_omega.dynamic <= 2 * main_omega.dynamic
