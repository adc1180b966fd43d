"""Reasoning traces templated from a reference solution, and their rule-based rewrites (no LLM).

`SyntheticTrace.from_problem` reads the reference with `ast` and writes a base trace: the task restated,
the inputs, each top-level step of the code in words with a reason, one test example with its expected
value, one edge case, then the code. `variants(dimension, rng)` gives an optimized and a degraded rewrite
along one quality dimension (see `pgrpo.rm.pairs.build_pairs_synthetic`). Deterministic for a given rng.

Limits: the wording is formulaic and the claims assume the reference passes its tests; the edge-case and
correctness sentences are chosen by simple rules over the syntax tree, not proved.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass
from typing import Any

from pgrpo.rm.ast_text import (
    _call_name,
    _call_names,
    _code,
    _defines_name,
    _is_docstring,
    _literal,
    _names,
    _params,
    _parse,
    _used,
)
from pgrpo.rm.trace_examples import Example, test_examples
from pgrpo.types import CallTest, Problem, StdioTest

SYNTHETIC_DIMENSIONS = ("factual_accuracy", "logical_rigor", "logical_coherence")
_TERMINAL = tuple(".!?)]}\"'`*")


@dataclass
class _Step:
    text: str  # what the code does, starting lower-case: "loop over `i` in `range(n)`"
    why: str  # the justification clause, which the rigor degradation drops


@dataclass
class SyntheticTrace:
    """A base reasoning trace in parts, so that rewrites can add, drop or reorder parts exactly."""

    task: str
    inputs: str
    steps: list[_Step]
    examples: list[Example]
    edges: list[str]  # at least two; the base trace uses the first
    correctness: str
    code: str

    @classmethod
    def from_problem(cls, problem: Problem) -> SyntheticTrace | None:
        module = _parse(problem.reference or "")
        if module is None:
            return None
        body = [n for n in module.body if not _is_docstring(n)]
        target = next((n for n in body if _defines_name(n, problem.entry_point)), None)
        helpers = [n for n in body if n is not target]
        if isinstance(target, ast.ClassDef):
            inner = [n for n in target.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            inputs = f"The class `{target.name}` is used through its methods {_names(n.name for n in inner)}."
        elif target is not None:
            inner = [n for n in target.body if not _is_docstring(n)]
            params = _params(target)
            takes = f"takes {_names(params)}" if params else "takes no arguments"
            inputs = f"The function `{target.name}` {takes} and returns the answer."
        else:
            helpers, inner = [], body
            stdio = any(isinstance(t, StdioTest) for t in problem.tests)
            inputs = (
                "The program reads its input from standard input and prints the answer."
                if stdio
                else "The code runs top to bottom as a script."
            )
        steps = [_describe(n, method=isinstance(target, ast.ClassDef)) for n in [*helpers, *inner]]
        if not steps:
            return None
        if len(steps) > 10:
            rest = _Step(
                f"carry out the remaining {len(steps) - 9} statements as the code below does",
                "since they finish the computation",
            )
            steps = [*steps[:9], rest]
        scope = target if target is not None else module
        params = _params(target) if target is not None else []
        code = "\n".join(line.rstrip() for line in (problem.reference or "").strip().splitlines())
        return cls(
            task=_task_sentence(problem),
            inputs=inputs,
            steps=steps,
            examples=test_examples(problem),
            edges=_edge_cases(scope, params, _numeric_params(scope, params, problem)),
            correctness=_correctness(scope),
            code=code,
        )

    def units(self, justify: bool = True, edge: bool = True) -> list[str]:
        """The prose paragraphs of the base trace (without the final code)."""
        n = len(self.steps)
        steps = []
        for i, step in enumerate(self.steps):
            lead = "To solve it," if n == 1 else "First," if i == 0 else "Finally," if i == n - 1 else "Then"
            steps.append(f"{lead} {step.text}, {step.why}." if justify else f"{lead} {step.text}.")
        example = [self.examples[0].sentence()] if self.examples else []
        return [self.task, self.inputs, *steps, *example, *(self.edges[:1] if edge else [])]

    def render(self, units: list[str]) -> str:
        return "\n\n".join([*units, f"```python\n{self.code}\n```"])

    def variants(self, dimension: str, rng: random.Random) -> tuple[str, str, dict]:
        """(optimized, degraded, facts about the degradation for the pair's meta).

        Both rewrites of a dimension are about equally long, and both longer than the base: a degraded
        rewrite replaces good content with bad content instead of deleting it, so length cannot tell the
        better side (optimized vs degraded is a near tie; original vs each rewrite points opposite ways)."""
        base = self.units()
        if dimension == "factual_accuracy":
            at, old, new = self._factual_error(base)
            degraded = [*base]
            degraded[at] = base[at].replace(old, new, 1)
            check = self._check()
            return (
                self.render([*base, check]),
                self.render([*degraded, check.replace(old, new, 1)]),  # the check repeats the error
                {"changed": {"unit": at, "from": old, "to": new}},
            )
        if dimension == "logical_rigor":
            optimized = [*base, self.correctness, *self.edges[1:]]
            return self.render(optimized), self.render(self._hand_waving(rng)), {}
        if dimension == "logical_coherence":
            numbered = self._numbered()
            order = list(range(len(numbered)))
            rng.shuffle(order)
            if order == sorted(order):
                order = order[1:] + order[:1]
            return self.render(numbered), self.render([numbered[i] for i in order]), {"order": order}
        raise ValueError(f"unknown dimension {dimension!r}; valid: {', '.join(SYNTHETIC_DIMENSIONS)}")

    def _check(self) -> str:
        claims = "; ".join(e.claim() for e in self.examples)
        if claims:
            return (
                f"Checking the claims against the tests: {claims}. These are exactly the values the code "
                "below returns, so every value stated above is right."
            )
        return (
            f"Checking the claims against the code: {self.inputs[0].lower()}{self.inputs[1:-1]}, "
            "and each step above names the expression the code below really uses."
        )

    def _hand_waving(self, rng: random.Random) -> list[str]:
        """The base trace with every reason replaced by an empty one, the edge case waved away, and the
        optimized trace's correctness argument and extra edge cases replaced by bare assurances."""
        steps = [_Step(s.text, rng.choice(_HOLLOW_WHY)) for s in self.steps]
        hollow = SyntheticTrace(**{**self.__dict__, "steps": steps, "edges": [_NO_EDGES]})
        assurances = [_ASSURANCE] + [rng.choice(_MORE_ASSURANCES) for _ in self.edges[1:]]
        return [*hollow.units(), *assurances]

    def _numbered(self) -> list[str]:
        steps = [f"Step 1: {self.steps[0].text[0].upper()}{self.steps[0].text[1:]}, {self.steps[0].why}."]
        steps += [
            f"Step {k}: Therefore, building on step {k - 1}, {s.text}, {s.why}."
            for k, s in enumerate(self.steps[1:], 2)
        ]
        example = [self.examples[0].sentence()] if self.examples else []
        link = f"Therefore, the code below carries out steps 1 to {len(self.steps)} in this order."
        return [self.task, self.inputs, *steps, *example, self.edges[0], link]

    def _factual_error(self, units: list[str]) -> tuple[int, str, str]:
        """(paragraph index, text, wrong text): the example's value, else a number in a step, else the
        function's name (or where the program reads its input)."""
        if self.examples and self.examples[0].wrong is not None:
            example = self.examples[0]
            return units.index(example.sentence()), f"`{example.expected}`", f"`{example.wrong}`"
        for i, unit in enumerate(units[2 : 2 + len(self.steps)], 2):
            for span in re.findall(r"`[^`]*`", unit):
                number = re.search(r"(?<![\w.])\d+(?![\w.])", span)
                if number:
                    wrong = span[: number.start()] + str(int(number.group()) + 1) + span[number.end() :]
                    return i, span, wrong
        name = re.search(r"`[^`]+`", units[1])
        if name:
            return 1, name.group(), name.group()[:-1] + "_v2`"
        if "standard input" in units[1]:
            return 1, "standard input", "a file named input.txt"
        return 1, "top to bottom", "bottom to top"


# Rigor degradations: justifications that justify nothing, in place of the real ones.
_HOLLOW_WHY = (
    "because that is simply how this kind of task is always done",
    "since that is obviously what is needed here, as anyone can see",
    "because it clearly works and there is nothing to explain",
    "as is standard, so no reason needs to be given for it",
)
_NO_EDGES = (
    "Edge cases: there is no need to think about unusual inputs, the same code surely handles them all."
)
_ASSURANCE = (
    "Why this is correct: it obviously is. The code looks right, so there is no need to argue it step by "
    "step or to check it against the examples; it will work on whatever input it gets."
)
_MORE_ASSURANCES = (
    "Other inputs: they will behave just like the example, so they need not be looked at separately.",
    "Larger or smaller inputs: nothing changes for them, so there is no point in checking them here.",
)


_WHY_CALL = {
    "sorted": "because `sorted` returns a new list in ascending order (of the key, when one is given)",
    "sort": "because `sort` orders the list in place",
    "sum": "because `sum` adds up all the items",
    "len": "because `len` gives the number of items",
    "max": "because `max` picks the largest item",
    "min": "because `min` picks the smallest item",
    "set": "because a set keeps each distinct value once",
    "Counter": "because a `Counter` counts how often each value occurs",
    "join": "because `join` glues the pieces into one string",
    "split": "because `split` breaks the string into parts",
    "append": "so that the result grows by one item",
    "zip": "because `zip` pairs the items up position by position",
    "enumerate": "because `enumerate` gives each item together with its index",
    "map": "because `map` applies the function to every item",
    "filter": "because `filter` keeps only the items that pass the test",
    "abs": "because `abs` gives the distance from zero",
    "search": "because the regular expression describes exactly the pattern the task asks about",
    "match": "because the regular expression describes exactly the pattern the task asks about",
    "findall": "because `findall` collects every match of the pattern",
    "sub": "because `sub` replaces every match of the pattern",
}


def _describe(node: ast.stmt, method: bool = False, depth: int = 0) -> _Step:
    """One step of the reference, in words: what it does and why."""
    why_call = next((_WHY_CALL[n] for n in _call_names(node) if n in _WHY_CALL), None)
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        text = f"set `{' = '.join(_code(t) for t in targets)}` to `{_code(node.value)}`"
        return _Step(text, why_call or "so that later steps can refer to it by name")
    if isinstance(node, ast.AugAssign):
        op = _code(ast.BinOp(ast.Name("x"), node.op, ast.Name("y")))[2:-2]
        text = f"update `{_code(node.target)}` with `{_code(node.target)} {op}= {_code(node.value)}`"
        return _Step(text, "to build the result up step by step")
    if isinstance(node, ast.For):
        text = f"loop over `{_code(node.target)}` in `{_code(node.iter)}`{_inside(node.body, depth)}"
        return _Step(text, "because every item has to be considered")
    if isinstance(node, ast.While):
        return _Step(
            f"repeat while `{_code(node.test)}`{_inside(node.body, depth)}",
            "because the number of rounds depends on the data",
        )
    if isinstance(node, ast.If):
        text = f"check whether `{_code(node.test)}`{_inside(node.body, depth, ', and if so ')}"
        if node.orelse and depth == 0:
            text += _inside(node.orelse, depth, ", otherwise ")
        return _Step(text, "because that case needs its own handling")
    if isinstance(node, ast.Break):
        return _Step("stop the loop", "because the work is done")
    if isinstance(node, ast.Continue):
        return _Step("go on with the next item", "because this one needs nothing more")
    if isinstance(node, ast.Return):
        value = _code(node.value) if node.value is not None else "None"
        return _Step(f"return `{value}`", "because that is the value the task asks for")
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        what = "the method" if method else "a helper"
        why = "because the tests call it" if method else "to keep the main logic short"
        return _Step(f"define {what} `{node.name}({', '.join(_params(node))})`", why)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return _Step(f"import `{', '.join(a.name for a in node.names)}`", "because the code below needs it")
    if isinstance(node, ast.ClassDef):
        return _Step(f"define the class `{node.name}`", "because the code below uses it")
    if isinstance(node, ast.Expr):
        return _Step(f"call `{_code(node.value)}`", why_call or "for its effect")
    if isinstance(node, ast.Try) and node.body:
        return _Step(
            f"try `{_code(node.body[0])}` and handle the errors it may raise",
            "so that a failing case does not crash the function",
        )
    return _Step(f"run `{_code(node)}`", "as the code below does")


def _inside(body: list[ast.stmt], depth: int, lead: str = ", and inside it ") -> str:
    """The first statement of a block in words (two levels deep at most), and whether it then stops."""
    if not body or depth >= 2:
        return ""
    text = lead + _describe(body[0], depth=depth + 1).text
    if len(body) > 1 and isinstance(body[-1], (ast.Break, ast.Continue, ast.Return)):
        text += " and then " + _describe(body[-1], depth=depth + 1).text
    return text


def _edge_cases(scope: ast.AST, params: list[str], numeric: set[str]) -> list[str]:
    """Edge-case sentences that follow from what the code does with its parameters; at least two.
    `numeric`: the parameters known to be numbers (from a test's arguments or a `range(p)` call)."""
    found: dict[tuple[str, str], str] = {}  # (kind, parameter) -> sentence; the first found wins

    def add(kind: str, p: str, sentence: str) -> None:
        found.setdefault((kind, p), sentence)

    def empty(p: str) -> str:
        return f"`{p}` equal to 0" if p in numeric else f"an empty `{p}`"

    nodes = list(ast.walk(scope))
    divisors = {p for n in nodes if _is_division(n) for p in _used(n.right, params)}
    for node in nodes:
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.UnaryOp)
            and isinstance(node.test.op, ast.Not)
        ):
            for p in _used(node.test, params):
                add(
                    "empty",
                    p,
                    f"Edge case: {empty(p)}. The check `if {_code(node.test)}` handles it "
                    "explicitly, before the general steps.",
                )
        if isinstance(node, ast.For):
            for p in _used(node.iter, params):
                add(
                    "empty",
                    p,
                    f"Edge case: {empty(p)}. The loop over `{_code(node.iter)}` then runs zero "
                    "times, so its body never touches an item that is not there.",
                )
        if _is_division(node):
            for p in _used(node.right, params):
                add(
                    "zero",
                    p,
                    f"Edge case: `{p}` equal to 0. The code computes `{_code(node)}`, so it "
                    "relies on the task never passing 0 there.",
                )
        if isinstance(node, ast.Call) and node.args and _call_name(node) in _TIES:
            for p in _used(node.args[0], params):
                add("ties", p, _TIES[_call_name(node)].format(p=p))
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            for side in (node.left, node.right):
                if isinstance(side, ast.Name) and side.id in numeric and side.id not in divisors:
                    add(
                        "sign",
                        side.id,
                        f"Edge case: `{side.id}` equal to 0 or negative. No step divides "
                        f"by `{side.id}`, so `{_code(node)}` is still defined and needs no special branch.",
                    )
    edges = list(found.values())
    if not any(isinstance(n, (ast.For, ast.While)) for n in nodes):
        edges.append(
            "Edge case: large values. The computation is a fixed number of operations, so its cost "
            "does not grow with the size of the input."
        )
    elif whiles := [n for n in nodes if isinstance(n, ast.While)]:
        edges.append(
            f"Edge case: inputs for which `{_code(whiles[0].test)}` is false from the start. The `while` "
            "loop then does not run at all, and the steps after it work on the values set before it."
        )
    else:
        edges.append(
            "Edge case: long inputs. Every loop walks a finite iterable, so the function always finishes."
        )
    edges.append(
        "Edge case: the smallest inputs the task allows. None of the steps above assumes more "
        "than the task guarantees, so they apply unchanged."
    )
    return edges


_TIES = {
    "sorted": "Edge case: repeated values in `{p}`. `sorted` is stable, so equal items keep their relative "
    "order and ties cannot make the result ambiguous.",
    "set": "Edge case: duplicates in `{p}`. The set keeps each value once, so repeats are not counted twice.",
    "min": "Edge case: several equal smallest values in `{p}`. `min` returns the first of them, so ties "
    "still give one well-defined answer.",
    "max": "Edge case: several equal largest values in `{p}`. `max` returns the first of them, so ties "
    "still give one well-defined answer.",
}


def _is_division(node: ast.AST) -> bool:
    return isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod))


def _numeric_params(scope: ast.AST, params: list[str], problem: Problem) -> set[str]:
    """Parameters that a test passes a number to, or that the code passes straight to `range`."""
    numeric = {
        a.id
        for n in ast.walk(scope)
        if _call_name(n) == "range"
        for a in n.args
        if isinstance(a, ast.Name) and a.id in params
    }
    for test in problem.tests:
        args: list[Any] = list(test.args) if isinstance(test, CallTest) else []
        module = _parse(getattr(test, "code", ""))
        calls = [n for n in ast.walk(module) if _call_name(n) == problem.entry_point] if module else []
        if calls and all(_literal(a) for a in calls[0].args):
            args = [ast.literal_eval(a) for a in calls[0].args]
        numeric |= {
            p for p, v in zip(params, args) if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    return numeric


def _correctness(scope: ast.AST) -> str:
    nodes = list(ast.walk(scope))
    whiles = [n for n in nodes if isinstance(n, ast.While)]
    if whiles:
        return (
            f"Why this is correct: the loop stops as soon as `{_code(whiles[0].test)}` is false, and each "
            "pass changes the values it tests; each step keeps the partial result consistent with the "
            "task, so when the loop ends the result is complete."
        )
    if any(isinstance(n, ast.For) for n in nodes):
        return (
            "Why this is correct: each loop walks a finite iterable, so it ends; after each item the "
            "partial result agrees with the task for the items seen so far, so after the last item it "
            "is the complete answer."
        )
    return (
        "Why this is correct: the result is computed directly from the inputs by the expressions above, "
        "with no intermediate state that could drift, and it is exactly the quantity the task defines."
    )


def _task_sentence(problem: Problem) -> str:
    text = problem.prompt
    if problem.entry_point and f"def {problem.entry_point}(" in text:  # a code prompt: use its docstring
        module = _parse(text)
        target = module and next((n for n in module.body if _defines_name(n, problem.entry_point)), None)
        text = (target and ast.get_docstring(target)) or text
    text = " ".join(text.split())
    if len(text) > 600:
        cut = text.rfind(". ", 0, 600)
        text = text[: cut + 1] if cut > 0 else text[:600] + "..."
    return f"The task: {text}" + ("" if text.endswith(_TERMINAL) else ".")
