"""The outcome score ω of ORPS (DESIGN.md §1 item 4): static code metrics plus execution profiles.

    ω = pass_rate · (1 + 0.5·static + 0.5·dynamic)
    static  = mean(1/(1+ast_nodes/100), 1/(1+cyclomatic), 1/(1+cognitive/10), 1/(1+lines/50))
    dynamic = mean(1/(1+ns/1e7), 1/(1+instructions/1e5), 1/(1+branch_misses/1e3), 1/(1+page_faults/100))

Each dynamic measure is averaged over the passing tests, then mapped through its term. A measure the
executor did not take (instructions without perf counters; branch misses and page faults, which it never
counts) is left out of the mean, and `Omega.dynamic_terms` says which terms were used: no number is
made up. Time is CPU time where every passing test has it, else wall time (`time_source`). That CPU
time (`TestResult.cpu_s`) counts every thread and child process of the program, so work moved off the
main thread does not look fast: with the executor's cgroup layer it is the run's `cpuacct` usage (all
threads and processes); without it, the process's thread-group CPU clock plus the children it waited
for (`sandbox.forkserver.ProcStats`). Instructions (where perf counters exist) follow the program's main
thread and the threads and processes it starts once loaded, not a thread it started while loading.
Peak memory is recorded but is not a term: the formula's memory term is page faults, a different
quantity.

Complexities are measured over the whole program (all functions and top-level code together), by the
small AST walkers below: McCabe's cyclomatic number and SonarSource's cognitive complexity.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass, field

from pgrpo.pysource import parse
from pgrpo.types import ExecResult, TestResult

# term = 1 / (1 + measure / scale). `ns` comes from CPU or wall time; the others are read from
# `TestResult` attributes of the same name where the executor records them (today: `instructions`,
# where perf counters exist; branch misses and page faults are not counted).
DYNAMIC_SCALES = {"ns": 1e7, "instructions": 1e5, "branch_misses": 1e3, "page_faults": 100.0}
STATIC_SCALES = {"ast_nodes": 100.0, "cyclomatic": 1.0, "cognitive": 10.0, "lines": 50.0}


def _parse(code: str) -> ast.Module | None:
    return parse(code)


# ----------------------------------------------------------------------------- static metrics


def ast_nodes(tree: ast.AST) -> int:
    """Every node of the syntax tree, the module itself included."""
    return sum(1 for _ in ast.walk(tree))


_BRANCHES = (ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.match_case)


def cyclomatic(tree: ast.AST) -> int:
    """McCabe: 1 + decision points. A decision is a branch (`if`/`elif`, conditional expression, loop,
    `except` clause, `case`), an extra operand of `and`/`or`, and each `for` and `if` of a comprehension."""
    decisions = 0
    for node in ast.walk(tree):
        if isinstance(node, _BRANCHES):
            decisions += 1
        elif isinstance(node, ast.BoolOp):
            decisions += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            decisions += 1 + len(node.ifs)
    return 1 + decisions


def cognitive(tree: ast.AST) -> int:
    """SonarSource's cognitive complexity (G. Ann Campbell, 2017), for Python.

    +1 for each `if`, `elif`, `else`, conditional expression, loop, `except`, `match`, comprehension
    clause, sequence of `and`/`or`, and direct recursive call; `if`, conditional expression, loop,
    `except` and `match` also pay +1 per level of nesting. Nesting grows inside those and inside
    nested functions and lambdas; `elif`/`else` pay no nesting.
    """
    return _Cognitive().total(tree)


class _Cognitive:
    def total(self, tree: ast.AST) -> int:
        self.score = 0
        self._body(getattr(tree, "body", [tree]), nesting=0, function=None)
        return self.score

    def _body(self, nodes: list, nesting: int, function: str | None) -> None:
        for node in nodes:
            self._visit(node, nesting, function)

    def _visit(self, node: ast.AST, nesting: int, function: str | None) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = nesting + 1 if function is not None else nesting  # a nested function nests
            self._expressions(node.decorator_list + [node.args], nesting, function)
            self._body(node.body, inner, node.name)
        elif isinstance(node, ast.ClassDef):
            self._body(node.body, nesting, None)
        elif isinstance(node, ast.If):
            self.score += 1 + nesting
            self._if(node, nesting, function)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            self.score += 1 + nesting
            self._expressions(
                [node.iter if not isinstance(node, ast.While) else node.test], nesting, function
            )
            self._body(node.body, nesting + 1, function)
            if node.orelse:
                self.score += 1
                self._body(node.orelse, nesting + 1, function)
        elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            self._body(node.body, nesting, function)
            for handler in node.handlers:
                self.score += 1 + nesting
                self._body(handler.body, nesting + 1, function)
            self._body(node.orelse, nesting, function)
            self._body(node.finalbody, nesting, function)
        elif isinstance(node, ast.Match):
            self.score += 1 + nesting
            self._expressions([node.subject], nesting, function)
            for case in node.cases:
                self._body(case.body, nesting + 1, function)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            self._expressions([item.context_expr for item in node.items], nesting, function)
            self._body(node.body, nesting, function)
        else:
            self._expressions([node], nesting, function)

    def _if(self, node: ast.If, nesting: int, function: str | None) -> None:
        self._expressions([node.test], nesting, function)
        self._body(node.body, nesting + 1, function)
        orelse = node.orelse
        if len(orelse) == 1 and isinstance(orelse[0], ast.If):  # elif: +1, no nesting penalty
            self.score += 1
            self._if(orelse[0], nesting, function)
        elif orelse:
            self.score += 1
            self._body(orelse, nesting + 1, function)

    def _expressions(self, roots: list, nesting: int, function: str | None) -> None:
        """Simple statements and expressions: boolean sequences, conditional expressions, lambdas,
        comprehensions, recursion (compound statements never occur below these roots)."""
        stack = [(root, nesting) for root in roots]
        while stack:
            node, level = stack.pop()
            children_level = level
            if isinstance(node, ast.BoolOp):
                self.score += 1
            elif isinstance(node, ast.IfExp):
                self.score += 1 + level
                children_level = level + 1
            elif isinstance(node, ast.Lambda):
                children_level = level + 1
            elif isinstance(node, ast.comprehension):
                self.score += 1 + len(node.ifs)
            elif (
                isinstance(node, ast.Call)
                and function is not None
                and isinstance(node.func, ast.Name)
                and node.func.id == function
            ):
                self.score += 1
            stack.extend((child, children_level) for child in ast.iter_child_nodes(node))


def code_lines(code: str) -> int:
    """Lines holding code: not blank, not only a comment (a docstring's lines count)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return sum(1 for line in code.splitlines() if line.strip() and not line.strip().startswith("#"))
    skip = {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    }
    lines: set[int] = set()
    for tok in tokens:
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines)


def static_metrics(code: str) -> dict[str, int] | None:
    """ast_nodes, cyclomatic, cognitive, lines; None when the code does not parse."""
    tree = _parse(code)
    if tree is None:
        return None
    return {
        "ast_nodes": ast_nodes(tree),
        "cyclomatic": cyclomatic(tree),
        "cognitive": cognitive(tree),
        "lines": code_lines(code),
    }


# ----------------------------------------------------------------------------- ω


@dataclass
class Omega:
    """ω and everything it was made of, for the search tree's JSONL."""

    value: float
    pass_rate: float
    static: float | None = None
    dynamic: float | None = None
    static_parts: dict[str, int] = field(default_factory=dict)
    dynamic_parts: dict[str, float] = field(default_factory=dict)  # the raw means over passing tests
    dynamic_terms: list[str] = field(default_factory=list)  # the terms that entered the mean
    time_source: str | None = None  # "cpu" or "wall"
    peak_mb: float | None = None  # recorded, not a term (see the module docstring)

    def to_dict(self) -> dict:
        return {
            "value": round(self.value, 6),
            "pass_rate": round(self.pass_rate, 6),
            "static": None if self.static is None else round(self.static, 6),
            "dynamic": None if self.dynamic is None else round(self.dynamic, 6),
            "static_parts": self.static_parts,
            "dynamic_parts": {k: round(v, 3) for k, v in self.dynamic_parts.items()},
            "dynamic_terms": self.dynamic_terms,
            "time_source": self.time_source,
            "peak_mb": None if self.peak_mb is None else round(self.peak_mb, 2),
        }


def static_score(parts: dict[str, int]) -> float:
    return sum(1 / (1 + parts[name] / scale) for name, scale in STATIC_SCALES.items()) / len(STATIC_SCALES)


def dynamic_parts(tests: list[TestResult]) -> tuple[dict[str, float], str | None]:
    """The mean of each available measure over `tests` (the passing ones), and the time source."""
    if not tests:
        return {}, None
    parts: dict[str, float] = {}
    if all(t.cpu_s is not None for t in tests):
        parts["ns"], source = sum(t.cpu_s for t in tests) * 1e9 / len(tests), "cpu"
    else:
        parts["ns"], source = sum(t.wall_s for t in tests) * 1e9 / len(tests), "wall"
    for name in list(DYNAMIC_SCALES)[1:]:
        values = [getattr(t, name, None) for t in tests]
        if all(v is not None for v in values):
            parts[name] = sum(values) / len(values)
    return parts, source


def dynamic_score(parts: dict[str, float]) -> float | None:
    terms = [1 / (1 + parts[name] / scale) for name, scale in DYNAMIC_SCALES.items() if name in parts]
    return sum(terms) / len(terms) if terms else None


def omega(code: str, result: ExecResult) -> Omega:
    """ω of a program from its visible-test run. A program that passes nothing scores 0; one that does
    not parse has no static part (and passes nothing)."""
    rate = result.pass_rate
    static_parts = static_metrics(code) or {}
    static = static_score(static_parts) if static_parts else None
    passing = [t for t in result.tests if t.passed]
    parts, source = dynamic_parts(passing)
    dynamic = dynamic_score(parts)
    peaks = [t.peak_mb for t in passing if t.peak_mb is not None]
    value = rate * (1 + 0.5 * (static or 0.0) + 0.5 * (dynamic or 0.0))
    return Omega(
        value=value,
        pass_rate=rate,
        static=static,
        dynamic=dynamic,
        static_parts=static_parts,
        dynamic_parts=parts,
        dynamic_terms=[name for name in DYNAMIC_SCALES if name in parts],
        time_source=source,
        peak_mb=max(peaks) if peaks else None,
    )


def runtime_s(result: ExecResult) -> float:
    """Total time over all tests of a run: CPU where every test has it, else wall (for ranking runs)."""
    if result.tests and all(t.cpu_s is not None for t in result.tests):
        return sum(t.cpu_s for t in result.tests)
    return sum(t.wall_s for t in result.tests)
