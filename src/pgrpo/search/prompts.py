"""Search prompts: the wording lives in `pgrpo/prompts/search_*.txt`; this module fills it in.

Every prompt is built from a `SearchTask`, so it can only ever show the tests search may use.

ORPS's critic and expansion prompts carry the execution analysis the paper gives its critic
(`execution_analysis`): each visible test's outcome (verdict; for a failure the error and the test),
the measures the executor took per test (wall time, CPU of all threads and processes, peak memory,
instructions where perf counters exist), the static metrics, and ω with its parts. They also carry
the path of earlier attempts that led to the node (`path_summary`): newest first (the parent, then
its parent, ...), each with its verdict, ω, ρ and the start of its reasoning, code and critique,
within `MAX_PATH_CHARS` characters; the oldest attempts are the ones left out, and counted.
"""

from __future__ import annotations

import functools
import re

from pgrpo.eval.prompts import is_code_prompt, requirements, template
from pgrpo.prompting import program_for
from pgrpo.search.metrics import runtime_s
from pgrpo.search.tasks import SearchTask
from pgrpo.types import ExecResult, Sample, StdioTest, Test, TestResult

MAX_SHOWN_FAILURES = 3
MAX_REASONING_CHARS = 2000
MAX_SHOWN_TESTS = 20  # per-test lines of an execution analysis; the rest are counted
MAX_MESSAGE_CHARS = 200  # a test's error or observed output
MAX_TEST_CHARS = 300  # a failing test's text
MAX_STDERR_CHARS = 300
MAX_PATH_CHARS = 3000  # earlier attempts on the path, all together: about 750 tokens at ~4 characters each
MAX_SUMMARY_CHARS = 300  # the reasoning, code and critique of one earlier attempt, each
LEFT_OUT_NOTE = "({} older attempts left out for length)"
SCORE_RE = re.compile(r"score\W{0,4}(\d+)", re.I)
FENCE_RE = re.compile(r"```[ \t]*(?:python3?|py)?[^\n]*\n.*?(?:```|$)", re.S | re.I)


@functools.cache
def strategies() -> tuple[str, ...]:
    lines = template("search_strategies.txt").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def hints_for(round_: int, count: int) -> list[str]:
    """`count` distinct hints, the window shifting each round so that later rounds try other ones."""
    hints = strategies()
    start = (round_ - 1) * count
    return [hints[(start + i) % len(hints)] for i in range(count)]


def _fill(name: str, **fields: str) -> str:
    text = template(name).format(**fields)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _test_text(test: Test) -> str:
    if isinstance(test, StdioTest):
        return f"input:\n{test.stdin}\nexpected output:\n{test.stdout}"
    if test.type == "call":
        return f"{test.args!r} -> {test.expected!r}"
    return test.code


def _task_fields(task: SearchTask, show_tests: int) -> dict[str, str]:
    problem = task.problem
    statement = (
        f"```python\n{problem.prompt.rstrip()}\n```" if is_code_prompt(problem) else problem.prompt.strip()
    )
    examples = ""
    if show_tests and problem.tests:
        shown = "\n".join(_test_text(t).strip() for t in problem.tests[:show_tests])
        examples = f"The program will be checked with tests like these:\n```python\n{shown}\n```\n"
    return {"task": statement, "requirements": requirements(problem), "examples": examples}


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def solve_prompt(task: SearchTask, show_tests: int, hint: str | None = None) -> list[dict]:
    hint_line = f"Strategy to follow: {hint}" if hint else ""
    return chat(_fill("search_solve.txt", hint=hint_line, **_task_fields(task, show_tests)))


def expand_prompt(task: SearchTask, show_tests: int, parent, hint: str, tree=()) -> list[dict]:
    """ORPS: a child of `parent` (a `tree.Node` with its run and critique) following `hint`; `tree`
    (the nodes so far) gives the path of attempts that led to the parent."""
    critique = parent.critique.strip() if parent.rho is not None else "(no review available)"
    return chat(
        _fill(
            "search_expand.txt",
            reasoning=parent.reasoning[:MAX_REASONING_CHARS].strip() or "(none given)",
            code=parent.code.strip(),
            report=execution_analysis(task, parent),
            critique=critique,
            path=path_summary(ancestors(parent, tree)),
            hint=f"Strategy to follow: {hint}",
            **_task_fields(task, show_tests),
        )
    )


def reflect_prompt(task: SearchTask, show_tests: int, code: str, result: ExecResult) -> list[dict]:
    return chat(
        _fill(
            "search_reflect.txt",
            code=code.strip(),
            report=execution_report(task, result),
            **_task_fields(task, show_tests),
        )
    )


def critic_prompt(task: SearchTask, node, tree=()) -> list[dict]:
    """The review of `node` (a run `tree.Node`): its execution analysis and the path that led to it."""
    return chat(
        _fill(
            "search_critic.txt",
            task=_task_fields(task, 0)["task"],
            reasoning=node.reasoning[:MAX_REASONING_CHARS].strip() or "(none given)",
            code=node.code.strip(),
            report=execution_analysis(task, node),
            path=path_summary(ancestors(node, tree)),
        )
    )


def critic_retry(conversation: list[dict], reply: str) -> list[dict]:
    return [
        *conversation,
        {"role": "assistant", "content": reply},
        *chat(template("search_critic_retry.txt").strip()),
    ]


def parse_score(reply: str) -> int | None:
    """The last `Score: N` in a critique, if N is 1..5; anything else is no score (never a guess)."""
    matches = SCORE_RE.findall(reply)
    if not matches:
        return None
    score = int(matches[-1])
    return score if 1 <= score <= 5 else None


def split_answer(task: SearchTask, text: str) -> tuple[str, str]:
    """(reasoning, program) of a reply: the program as evaluation would run it; the reasoning is the
    text before the last code block (none when there is no code block). With the task's answer format
    (pgrpo style) both are read as the training reward reads them: the `<think>` text, and the code
    `pgrpo.rewards` would run (empty when there is none)."""
    if task.answer_format is not None:
        from pgrpo.rewards import parse_completion
        from pgrpo.rewards.batch import _program as reward_program

        thinking = parse_completion(text, task.answer_format).thinking
        return thinking or "", reward_program(task.problem, text, task.answer_format) or ""
    code = program_for(task.problem, Sample(id=task.id, completion=text))
    fences = list(FENCE_RE.finditer(text))
    reasoning = text[: fences[-1].start()] if fences else ""
    return reasoning.strip(), code


def execution_report(task: SearchTask, result: ExecResult | None) -> str:
    """A short account of a run on the search task's tests, for the model to read."""
    if result is None:
        return "(not run)"
    tests = result.tests
    if not tests:
        return f"No tests ran: {result.verdict.value}. {result.message[:300]}".strip()
    passed = sum(t.passed for t in tests)
    lines = [f"Passed {passed} of {len(tests)} tests."]
    if result.verdict.value == "compile_error":
        lines.append(f"The program does not compile: {result.message[:300]}")
        return "\n".join(lines)
    failures = [(i, t) for i, t in enumerate(tests) if not t.passed]
    for i, t in failures[:MAX_SHOWN_FAILURES]:
        why = f": {t.message[:200]}" if t.message else ""
        shown = _test_text(task.problem.tests[i]).strip()[:300] if i < len(task.problem.tests) else ""
        lines.append(
            f"- test {i + 1} {t.verdict.value}{why}" + (f"\n```python\n{shown}\n```" if shown else "")
        )
    if len(failures) > MAX_SHOWN_FAILURES:
        lines.append(f"- and {len(failures) - MAX_SHOWN_FAILURES} more failing tests")
    if passed:
        lines.append(f"Total time over the tests: {runtime_s(result) * 1000:.2f} ms.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- ORPS execution analysis


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def _measures(t: TestResult) -> str:
    parts = [f"wall {_ms(t.wall_s)}"]
    if t.cpu_s is not None:
        parts.append(f"CPU {_ms(t.cpu_s)}")
    if t.peak_mb is not None:
        parts.append(f"peak memory {t.peak_mb:.1f} MB")
    if t.instructions is not None:
        parts.append(f"{t.instructions:,} instructions")
    return ", ".join(parts)


def _test_lines(task: SearchTask, result: ExecResult) -> list[str]:
    lines, failures_shown = [], 0
    for i, t in enumerate(result.tests[:MAX_SHOWN_TESTS]):
        why = f" ({t.message[:MAX_MESSAGE_CHARS]})" if t.message and not t.passed else ""
        lines.append(f"- test {i + 1}: {t.verdict.value}{why}; {_measures(t)}")
        if not t.passed and failures_shown < MAX_SHOWN_FAILURES and i < len(task.problem.tests):
            failures_shown += 1
            shown = _test_text(task.problem.tests[i]).strip()[:MAX_TEST_CHARS]
            lines.append(f"```python\n{shown}\n```")
    if len(result.tests) > MAX_SHOWN_TESTS:
        rest = result.tests[MAX_SHOWN_TESTS:]
        lines.append(f"- and {len(rest)} more tests, {sum(t.passed for t in rest)} of them passed")
    return lines


def _omega_lines(node) -> list[str]:
    w = node.omega
    if w is None:
        return []
    parts = w.static_parts
    static = (
        f"Static metrics: {parts['ast_nodes']} AST nodes, cyclomatic complexity {parts['cyclomatic']}, "
        f"cognitive complexity {parts['cognitive']}, {parts['lines']} lines of code."
        if parts
        else "Static metrics: none (the code does not parse)."
    )
    score = f"Outcome score ω = {w.value:.3f} = pass rate {w.pass_rate:.2f} × (1 + 0.5 × static "
    score += "n/a" if w.static is None else f"{w.static:.3f}"
    score += " + 0.5 × dynamic " + ("n/a" if w.dynamic is None else f"{w.dynamic:.3f}") + "), of at most 2."
    lines = [static, score]
    if w.dynamic_parts:
        means = []
        for name, value in w.dynamic_parts.items():
            if name == "ns":
                means.append(f"time {_ms(value / 1e9)} ({'CPU' if w.time_source == 'cpu' else 'wall'})")
            else:
                means.append(f"{name.replace('_', ' ')} {value:,.0f}")
        lines.append("Dynamic part from the means over passing tests: " + ", ".join(means) + ".")
    return lines


def execution_analysis(task: SearchTask, node) -> str:
    """What ORPS's critic reads about a node's run: each visible test's outcome and measures, the
    static metrics and ω with its parts. Bounded: `MAX_SHOWN_TESTS` tests, `MAX_SHOWN_FAILURES`
    failing tests' text, each message and the stderr tail cut short."""
    result = node.result
    if result is None:
        return "(not run)"
    lines = []
    if not result.tests:
        lines.append(f"No tests ran: {result.verdict.value}. {result.message[:300]}".strip())
    elif result.verdict.value == "compile_error":
        lines.append(f"The program does not compile: {result.message[:300]}")
    else:
        passed = sum(t.passed for t in result.tests)
        lines.append(f"Passed {passed} of {len(result.tests)} tests. Per test:")
        lines += _test_lines(task, result)
    if result.stderr.strip():
        lines.append(f"Its error output ends with:\n```\n{result.stderr.strip()[-MAX_STDERR_CHARS:]}\n```")
    return "\n".join(lines + _omega_lines(node))


def ancestors(node, tree) -> list:
    """The nodes that led to `node`, its parent first."""
    by_id = {n.id: n for n in tree}
    path, parent = [], node.parent
    while parent is not None and parent in by_id:
        path.append(by_id[parent])
        parent = by_id[parent].parent
    return path


def _cut(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + " […]"


def _attempt(node) -> str:
    r = node.result
    verdict = (
        "not run"
        if r is None
        else f"{r.verdict.value}, passed {sum(t.passed for t in r.tests)} of {len(r.tests)} tests"
    )
    rho = f"critic {node.rho}/5" if node.rho is not None else "no critic score"
    omega = f"ω {node.omega.value:.3f}" if node.omega else "no ω"
    lines = [f"Round {node.round} attempt ({verdict}; {omega}; {rho})."]
    if node.hint:
        lines.append(f"Strategy: {_cut(node.hint, 150)}")
    lines.append(f"Reasoning: {_cut(node.reasoning) or '(none given)'}")
    lines.append(f"Code:\n```python\n{_cut(node.code)}\n```")
    if node.critique.strip():
        lines.append(f"Critique: {_cut(node.critique)}")
    return "\n".join(lines)


def path_summary(path: list, budget: int = MAX_PATH_CHARS) -> str:
    """Earlier attempts on the path, newest first, while they fit in `budget` characters; the oldest
    are left out first (and counted), since the newest attempt is the one being built on."""
    if not path:
        return "(none: this is a first attempt)"
    shown, used = [], len(LEFT_OUT_NOTE) + 10  # room for the note on what was left out
    for node in path:
        text = _attempt(node)
        if used + len(text) + 2 > budget:
            break
        shown.append(text)
        used += len(text) + 2
    if len(shown) < len(path):
        shown.append(LEFT_OUT_NOTE.format(len(path) - len(shown)))
    return "\n\n".join(shown)
