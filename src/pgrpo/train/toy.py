"""A toy domain for the embedded demo: one-line integer functions, with tests, reference reasoning, and
OD-style preference pairs over that reasoning.

Each problem asks for a function of `x` built from a chain of one to three arithmetic operations with
small constants ("multiply by 3 and then add 4"). The reference completion is in the P-GRPO answer format:
a short `<think>` that restates the operations and works one example, then the code in `<answer>`.

The held-out split is the harder one on purpose (so that a warm-started policy leaves room for RL): every
held-out problem is a chain of `HELD_OUT_LENGTHS` operations, and no training problem contains any of its
adjacent operation pairs (the step "x * 3, then + 4" is never seen, though "* 3" and "+ 4" are).

The pairs follow the OD method by rule (labelled synthetic, like `pgrpo rm pairs --synthetic`), on traces
short enough for a tiny model: factual — the worked example states a wrong value; rigor — the example
check is replaced by an unsupported assurance; coherence — the sentences come in a scrambled order.
Each optimized rewrite adds a second checked example.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pgrpo.types import CallTest, Problem

# (name, words for the instruction with {k}, python with {k})
OPERATIONS = (
    ("add", "add {k}", "x + {k}"),
    ("sub", "subtract {k}", "x - {k}"),
    ("mul", "multiply by {k}", "x * {k}"),
    ("mod", "take the remainder modulo {k}", "x % {k}"),
    ("div", "divide by {k} rounding down", "x // {k}"),
)
CONSTANTS = tuple(range(2, 10))
NAMES = ("f", "g", "h", "calc", "step", "apply", "transform", "compute", "value", "result")
EXAMPLE_INPUTS = (5, 8, 11, 12, 17, 23)
TEST_INPUTS = (0, 1, 6, 13, 29, -4, 100)


@dataclass(frozen=True)
class ToyOp:
    name: str
    words: str
    code: str

    def apply(self, expr: str) -> str:
        """Python for this operation applied to `expr` (parenthesised when it is compound)."""
        inner = expr if expr == "x" else f"({expr})"
        return self.code.replace("x", inner, 1)


def _ops(seed: int) -> list[tuple[ToyOp, ...]]:
    """One-, two- and three-operation programs over OPERATIONS × CONSTANTS (all single operations, a
    sample of the chains; consecutive operations differ in kind), shuffled with `seed`."""
    single = [
        ToyOp(name, words.format(k=k), code.format(k=k))
        for name, words, code in OPERATIONS
        for k in CONSTANTS
    ]
    rng = random.Random(seed)
    programs = [(op,) for op in single]
    programs += [(a, b) for a in single for b in single if a.name != b.name and rng.random() < 0.1]
    programs += [
        (a, b, c)
        for a in single
        for b in single
        if a.name != b.name and rng.random() < 0.1
        for c in [rng.choice([op for op in single if op.name != b.name])]
    ]
    rng.shuffle(programs)
    return programs


def _evaluate(ops: tuple[ToyOp, ...], x: int) -> int:
    value = x
    for op in ops:
        value = eval(op.code.replace("x", str(value) if value >= 0 else f"({value})"))  # noqa: S307 - our own constants
    return value


def _expression(ops: tuple[ToyOp, ...]) -> str:
    expr = "x"
    for op in ops:
        expr = op.apply(expr)
    return expr


def _problem(ops: tuple[ToyOp, ...], index: int, rng: random.Random) -> Problem:
    name = rng.choice(NAMES)
    steps = " and then ".join(op.words for op in ops)
    prompt = f"Write a function `{name}(x)` that takes an integer x, {steps}, and returns the result."
    body = _expression(ops)
    reference = f"def {name}(x):\n    return {body}\n"
    tests = tuple(CallTest(args=[x], expected=_evaluate(ops, x)) for x in TEST_INPUTS)
    example = rng.choice(EXAMPLE_INPUTS)
    second = rng.choice([x for x in EXAMPLE_INPUTS if x != example])
    return Problem(
        id=f"toy/{index}",
        prompt=prompt,
        tests=tests,
        entry_point=name,
        reference=reference,
        metadata={
            "toy": {
                "ops": [op.name for op in ops],
                "steps": [op.words for op in ops],
                "expression": body,
                "examples": [[example, _evaluate(ops, example)], [second, _evaluate(ops, second)]],
            }
        },
    )


HELD_OUT_LENGTHS = (2, 3)  # held-out chains are this long; training has chains of every length


def _bigrams(ops: tuple[ToyOp, ...]) -> set[tuple[str, str]]:
    return {(a.code, b.code) for a, b in zip(ops, ops[1:])}


def toy_problems(train: int = 160, test: int = 40, seed: int = 0) -> tuple[list[Problem], list[Problem]]:
    """(training problems, held-out problems). Held-out problems are chains of 2–3 operations; no training
    problem contains an adjacent pair of operations that a held-out problem has (see the module doc)."""
    programs = _ops(seed)
    test_programs = [p for p in programs if len(p) in HELD_OUT_LENGTHS][:test]
    held_out_steps = set().union(*(_bigrams(p) for p in test_programs))
    train_programs = [p for p in programs if p not in test_programs and not _bigrams(p) & held_out_steps][
        :train
    ]
    if len(train_programs) < train or len(test_programs) < test:
        raise ValueError(
            f"the toy domain has {len(train_programs)} training and {len(test_programs)} held-out "
            f"programs for seed {seed}; asked for {train} and {test}"
        )
    rng = random.Random(seed)
    problems = [_problem(ops, i, rng) for i, ops in enumerate(test_programs + train_programs)]
    return problems[test:], problems[:test]


def _sentences(problem: Problem) -> dict[str, str]:
    toy = problem.metadata["toy"]
    (x1, y1), (x2, y2) = toy["examples"]
    return {
        "task": f"I must {' and then '.join(toy['steps'])}.",
        "example": f"For x = {x1} that gives {y1}.",
        "second": f"Check: for x = {x2} it gives {y2}.",
        "plan": f"So it returns {toy['expression']}.",
    }


def reference_thinking(problem: Problem) -> str:
    s = _sentences(problem)
    return " ".join([s["task"], s["example"], s["plan"]])


def answer_block(problem: Problem, code: str | None = None) -> str:
    code = problem.reference if code is None else code
    return f"<answer>\n```python\n{code.strip()}\n```\n</answer>"


def reference_completion(problem: Problem) -> str:
    """The completion the warm start imitates: `<think>…</think>` then the code in `<answer>`."""
    return f"<think>{reference_thinking(problem)}</think>\n{answer_block(problem)}"


def toy_rewrites(problem: Problem, dimension: str, rng: random.Random) -> tuple[str, str, str]:
    """(original, optimized, degraded) thinking texts for one dimension, all about the same length."""
    s = _sentences(problem)
    toy = problem.metadata["toy"]
    (x1, y1), _ = toy["examples"]
    original = " ".join([s["task"], s["example"], s["plan"]])
    optimized = " ".join([s["task"], s["example"], s["second"], s["plan"]])
    if dimension == "factual_accuracy":
        wrong = y1 + rng.choice([-2, -1, 1, 2])
        degraded = " ".join([s["task"], f"For x = {x1} that gives {wrong}.", s["second"], s["plan"]])
    elif dimension == "logical_rigor":
        assurance = "Check: no need, it surely works."
        degraded = " ".join([s["task"], "No example is needed here.", assurance, s["plan"]])
    elif dimension == "logical_coherence":
        parts = [s["task"], s["example"], s["second"], s["plan"]]
        order = [3, 1, 0, 2] if rng.random() < 0.5 else [2, 3, 1, 0]
        degraded = " ".join(parts[i] for i in order)
    else:
        raise ValueError(f"unknown dimension {dimension!r}")
    return original, optimized, degraded


def toy_pairs(problems: list[Problem], seed: int = 0) -> list:
    """OD preference pairs (three kinds per dimension) over the toy problems' thinking, as `Pair`s, made
    by the same `od_pair` as every other OD builder (so the reward model reads what it will score)."""
    from pgrpo.rm.pairs import DIMENSIONS, OD_KINDS, od_pair

    pairs = []
    meta = {"synthetic": True, "domain": "toy"}
    for problem in problems:
        for dim in DIMENSIONS:
            original, optimized, degraded = toy_rewrites(
                problem, dim, random.Random(f"{seed}:{problem.id}:{dim}")
            )
            texts = {"original": original, "optimized": optimized, "degraded": degraded}
            for kind, (good, bad) in OD_KINDS.items():
                pairs.append(od_pair(problem, dim, kind, texts[good], texts[bad], meta))
    return pairs
