"""Test examples stated in a sentence (`f(1, 2)` should return `3`), each with a plausible wrong value
for the factual degradation of a synthetic trace."""

from __future__ import annotations

import ast
import builtins
import functools
import re
from dataclasses import dataclass
from typing import Any

from pgrpo.rm.ast_text import (
    _call_name,
    _calls,
    _code,
    _literal,
    _literal_text,
    _parse,
)
from pgrpo.types import CallTest, Problem, StdioTest


@dataclass
class Example:
    call: str  # `f(1, 2)`, or the stdin of a stdio test
    expected: str
    wrong: str | None  # a plausible wrong value, for the factual degradation
    stdio: bool = False

    def sentence(self, value: str | None = None) -> str:
        value = self.expected if value is None else value
        if self.stdio:
            return f"For example, on the input `{self.call}` the program prints `{value}`."
        return f"For example, `{self.call}` should return `{value}`."

    def claim(self) -> str:
        verb = "on the input `{}` the program must print" if self.stdio else "`{}` must return"
        return f"{verb.format(self.call)} `{self.expected}`"


def test_examples(problem: Problem) -> list[Example]:
    """Up to two test examples whose call and expected value can be stated in a sentence."""
    found = []
    for test in problem.tests:
        example = _example(test, problem.entry_point)
        if example and len(example.call) <= 150 and len(example.expected) <= 150:
            found.append(example)
        if len(found) == 2:
            break
    return found


def _example(test: Any, entry_point: str | None) -> Example | None:
    if isinstance(test, CallTest) and entry_point:
        args = [_literal_text(a) for a in test.args] + [
            f"{k}={_literal_text(v)}" for k, v in test.kwargs.items()
        ]
        if None in args or _literal_text(test.expected) is None:
            return None
        expected = ast.parse(_literal_text(test.expected), mode="eval").body
        return Example(f"{entry_point}({', '.join(args)})", _code(expected, 10**6), _wrong_text(expected))
    if isinstance(test, StdioTest):
        stdin, stdout = " ".join(test.stdin.split()), " ".join(test.stdout.split())
        if not stdin or not stdout or "`" in stdin + stdout:
            return None
        number = re.search(r"-?\d+", stdout)
        wrong = (
            stdout[: number.start()] + str(int(number.group()) + 1) + stdout[number.end() :]
            if number
            else (stdout + "0")
        )
        return Example(stdin, stdout, wrong, stdio=True)
    module = _parse(getattr(test, "code", ""))
    if not entry_point or module is None or not isinstance(module.body[-1], ast.Assert):
        return None
    claim = _inline_literals(module.body[:-1], module.body[-1].test)
    if claim is None or {n.id for n in ast.walk(claim) if isinstance(n, ast.Name)} - {entry_point, *_CHECKS}:
        return None  # the claim needs objects built by other statements: not sayable in one sentence
    calls_it = functools.partial(_calls, entry_point)
    if isinstance(claim, ast.Compare) and len(claim.ops) == 1 and isinstance(claim.ops[0], ast.Eq):
        sides = [claim.left, claim.comparators[0]]
        call = next((s for s in sides if calls_it(s)), None)
        other = sides[1] if call is sides[0] else sides[0]
        if call is not None and _literal(other):
            return Example(_code(call, 10**6), _code(other, 10**6), _wrong_text(other))
    if isinstance(claim, ast.Call) and _call_name(claim) in ("isclose", "allclose") and len(claim.args) >= 2:
        call, other = claim.args[:2]
        if calls_it(call) and _literal(other):
            return Example(_code(call, 10**6), _code(other, 10**6), _wrong_text(other))
    if isinstance(claim, ast.Call) and _call_name(claim) == entry_point:
        return Example(_code(claim, 10**6), "True", "False")
    if (
        isinstance(claim, ast.UnaryOp)
        and isinstance(claim.op, ast.Not)
        and _call_name(claim.operand) == entry_point
    ):
        return Example(_code(claim.operand, 10**6), "False", "True")
    return None


_CHECKS = frozenset(dir(builtins)) | {"isclose", "allclose", "math", "np", "numpy"}


def _inline_literals(setup: list[ast.stmt], claim: ast.expr) -> ast.expr | None:
    """The claim with names that `setup` binds to literals (`xs = [1, 2]`) replaced by those literals;
    None if `setup` does anything else."""
    values: dict[str, ast.expr] = {}
    for stmt in setup:
        if not (
            isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
        ):
            return None
        if not _literal(stmt.value):
            return None
        values[stmt.targets[0].id] = stmt.value

    class Inline(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.expr:
            return values.get(node.id, node)

    return Inline().visit(claim) if values else claim


def _wrong_text(node: ast.expr) -> str | None:
    """The source of a plausible wrong value for a literal: a number off by one, a changed last letter."""
    try:
        wrong = _wrong(ast.literal_eval(node))
        text = ast.unparse(ast.parse(repr(wrong), mode="eval").body)
    except (ValueError, SyntaxError, TypeError):
        return None
    return text if text != _code(node, 10**6) else None


def _wrong(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float, complex)):
        return value + 1
    if isinstance(value, str):
        return value[:-1] + ("b" if value.endswith("a") else "a") if value else "a"
    if isinstance(value, bytes):
        return value + b"x"
    if value is None:
        return 0
    if isinstance(value, (list, tuple)):
        return type(value)([_wrong(value[0]), *value[1:]] if value else [0])
    if isinstance(value, dict):
        key = next(iter(value), None)
        return {**value, key: _wrong(value[key])} if value else {0: 0}
    if isinstance(value, (set, frozenset)):
        if not value:
            return type(value)({0})
        first = min(value, key=repr)
        return type(value)((set(value) - {first}) | {_wrong(first)})
    raise TypeError(type(value).__name__)
