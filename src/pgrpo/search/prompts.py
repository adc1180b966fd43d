"""Search prompts: the wording lives in `pgrpo/prompts/search_*.txt`; this module fills it in.

Every prompt is built from a `SearchTask`, so it can only ever show the tests search may use.
"""

from __future__ import annotations

import functools
import re

from pgrpo.eval.prompts import is_code_prompt, requirements, template
from pgrpo.prompting import program_for
from pgrpo.search.metrics import runtime_s
from pgrpo.search.tasks import SearchTask
from pgrpo.types import ExecResult, Sample, StdioTest, Test

MAX_SHOWN_FAILURES = 3
MAX_REASONING_CHARS = 2000
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


def expand_prompt(task: SearchTask, show_tests: int, parent, hint: str) -> list[dict]:
    """ORPS: a child of `parent` (a `tree.Node` with its run and critique) following `hint`."""
    critique = parent.critique.strip() if parent.rho is not None else "(no review available)"
    return chat(
        _fill(
            "search_expand.txt",
            reasoning=parent.reasoning[:MAX_REASONING_CHARS].strip() or "(none given)",
            code=parent.code.strip(),
            report=execution_report(task, parent.result),
            critique=critique,
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


def critic_prompt(task: SearchTask, reasoning: str, code: str, result: ExecResult) -> list[dict]:
    return chat(
        _fill(
            "search_critic.txt",
            task=_task_fields(task, 0)["task"],
            reasoning=reasoning[:MAX_REASONING_CHARS].strip() or "(none given)",
            code=code.strip(),
            report=execution_report(task, result),
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
