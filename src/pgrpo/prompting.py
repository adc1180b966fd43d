"""Turning model output into a program: the `<think>`/`<answer>` format and code extraction."""

from __future__ import annotations

import ast
import re

from pgrpo.types import Problem, Sample

ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)
FENCE_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|$)", re.S)


def extract_code(text: str) -> str:
    """The code in a completion: inside `<answer>` if present, then the last fenced block, else the text."""
    answers = ANSWER_RE.findall(text)
    if answers:
        text = answers[-1]
    blocks = [
        body for lang, body in FENCE_RE.findall(text) if lang.lower() in ("", "python", "py", "python3")
    ]
    return blocks[-1] if blocks else text


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name
        for node in tree.body
    )


def program_for(problem: Problem, sample: Sample) -> str:
    """The full program a sample stands for (DESIGN.md §3, samples format), below the problem's
    `metadata["program_prefix"]` when it has one (LiveCodeBench's imports for LeetCode-style answers)."""
    prefix = problem.metadata.get("program_prefix", "")
    if sample.solution is not None:
        return prefix + sample.solution
    code = extract_code(sample.completion or "")
    if (
        problem.entry_point
        and not _defines(code, problem.entry_point)
        and _defines(problem.prompt, problem.entry_point)
    ):
        return prefix + problem.prompt + code  # HumanEval-style: the completion continues the prompt
    return prefix + code
