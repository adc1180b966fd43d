"""Prompts for evaluation, per problem kind and style:

- `instruct`: the task as one user message (the wording in `pgrpo/prompts/eval_*.txt`);
- `completion`: the raw prompt, for base models continuing a HumanEval-style prompt;
- `pgrpo`: exactly the prompt `pgrpo train` shows (`pgrpo.prompting.training_prompt`): the training system
  prompt and the problem, for a model trained to answer `<think>…</think><answer>…</answer>`.

For a model without a chat template (`chat=False`), message prompts go out in their plain-text form.
"""

from __future__ import annotations

import functools
from importlib import resources

from pgrpo.prompting import SYSTEM_PROMPT, is_code_prompt, plain_text, requirements, training_prompt
from pgrpo.types import AnswerTest, Problem

STYLES = ("instruct", "completion", "pgrpo")
MAX_TOKENS = {"pgrpo": 4096}  # the paper's policy writes up to 4K tokens of reasoning and code
DEFAULT_MAX_TOKENS = 512
# Where a completion-style continuation of a function should stop (the evalplus/Codex convention).
COMPLETION_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ", '\n"""')


@functools.cache
def template(name: str) -> str:
    return resources.files("pgrpo.prompts").joinpath(name).read_text(encoding="utf-8")


def max_tokens_for(style: str) -> int:
    """The default budget of new tokens for a prompt style."""
    return MAX_TOKENS.get(style, DEFAULT_MAX_TOKENS)


def build_prompt(
    problem: Problem, style: str, *, chat: bool = True, system_prompt: str = SYSTEM_PROMPT
) -> str | list[dict]:
    """Chat messages, or a text to continue: `completion` always, the others when `chat` is False.
    `system_prompt` is the `pgrpo` style's (the trained run's, when it recorded one)."""
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; choose one of {', '.join(STYLES)}")
    if style == "pgrpo":
        return training_prompt(problem, chat, system_prompt)
    if any(isinstance(t, AnswerTest) for t in problem.tests):
        text = template("eval_math.txt").format(task=problem.prompt.strip())
        return [{"role": "user", "content": text}] if style == "instruct" and chat else text + "\n"
    if style == "completion":
        return problem.prompt
    task = f"```python\n{problem.prompt.rstrip()}\n```" if is_code_prompt(problem) else problem.prompt.strip()
    text = template("eval_code.txt").format(task=task, requirements=requirements(problem))
    messages = [{"role": "user", "content": text.replace("\n\n\n", "\n\n")}]
    return messages if chat else plain_text(messages)


def stop_strings(problem: Problem, style: str) -> tuple[str, ...]:
    return COMPLETION_STOPS if style == "completion" and is_code_prompt(problem) else ()
