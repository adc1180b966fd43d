"""Preference pairs: the JSONL format, the synthetic OD mode (deterministic, with real degradations), the
quality filters on hand-made texts, and the LLM mode end to end with a scripted stand-in for the LLM."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from conftest import SHARED_DATA, needs_shared_data
from pgrpo.problems import load_problems
from pgrpo.rm import Pair
from pgrpo.rm.pairs import (
    DIMENSION_DESCRIPTIONS,
    DIMENSIONS,
    KINDS,
    OD_KINDS,
    FilterCounts,
    PairFormatError,
    PairsConfig,
    Rewrites,
    approach_overlap,
    build_pairs_llm,
    build_pairs_synthetic,
    is_refusal,
    is_truncated,
    pairs_from_rewrites,
    read_pairs,
    template,
    write_pairs,
)
from pgrpo.rm.synthetic import _HOLLOW_WHY as HOLLOW_WHY
from pgrpo.types import AssertTest, CallTest, Problem, StdioTest

ADD = Problem(
    id="t/add",
    prompt="Write add(a, b) that returns the sum of a and b.",
    tests=(CallTest(args=[1, 2], expected=3), CallTest(args=[-1, 1], expected=0)),
    entry_point="add",
    reference="def add(a, b):\n    return a + b\n",
)
EVENS = Problem(
    id="t/evens",
    prompt="Write count_evens(xs) that counts the even numbers in the list xs.",
    tests=(AssertTest("assert count_evens([1, 2, 4]) == 2"), AssertTest("assert count_evens([]) == 0")),
    entry_point="count_evens",
    reference=(
        "def count_evens(xs):\n    total = 0\n    for x in xs:\n        if x % 2 == 0:\n"
        "            total += 1\n    return total\n"
    ),
)
DOUBLE = Problem(
    id="t/double",
    prompt="Read an integer n and print 2 * n.",
    tests=(StdioTest(stdin="4\n", stdout="8\n"),),
    reference="n = int(input())\nprint(n * 2)\n",
)
TINY = [ADD, EVENS, DOUBLE]


def _split(text: str) -> list[str]:
    """The prose paragraphs of a synthetic pair side (the reasoning: its code is in the pair's meta)."""
    assert "```" not in text
    return text.split("\n\n")


def _by_id(pairs: list[Pair]) -> dict[str, Pair]:
    return {p.id: p for p in pairs}


def _check_synthetic(problems: list[Problem], pairs: list[Pair]) -> None:
    """The shape every synthetic run must have, and degradations that really degrade."""
    ids = [p.id for p in pairs]
    assert len(ids) == len(set(ids)) == len(problems) * len(DIMENSIONS) * len(OD_KINDS)
    by_id = _by_id(pairs)
    for problem in problems:
        kinds = Counter((p.dimension, p.kind) for p in pairs if p.meta["problem_id"] == problem.id)
        assert kinds == Counter({(d, k): 1 for d in DIMENSIONS for k in OD_KINDS})
        for dim in DIMENSIONS:
            trio = {k: by_id[f"{problem.id}/{dim}/{k}"] for k in OD_KINDS}
            base, degraded = trio["original>degraded"].chosen, trio["original>degraded"].rejected
            optimized = trio["optimized>original"].chosen
            assert (
                trio["optimized>original"].rejected == base and trio["optimized>degraded"].chosen == optimized
            )
            assert trio["optimized>degraded"].rejected == degraded
            assert all(
                p.meta["synthetic"] is True and p.problem == problem.prompt.strip() for p in trio.values()
            )
            assert len({base, optimized, degraded}) == 3
            base_units, deg_units, opt_units = _split(base), _split(degraded), _split(optimized)
            codes = {p.meta[f"{side}_code"] for p in trio.values() for side in ("chosen", "rejected")}
            reference = "\n".join(line.rstrip() for line in problem.reference.strip().splitlines())
            assert {c.strip() for c in codes} == {reference}  # the approach (the code) never changes
            if dim == "factual_accuracy":
                change = trio["original>degraded"].meta["changed"]
                assert change["from"] != change["to"] and len(deg_units) == len(base_units) + 1
                # one claim changed, and the added check repeats the same wrong value
                assert [i for i, (a, b) in enumerate(zip(base_units, deg_units)) if a != b] == [
                    change["unit"]
                ]
                assert (
                    base_units[change["unit"]].replace(change["from"], change["to"], 1)
                    == deg_units[change["unit"]]
                )
                assert opt_units[:-1] == base_units and opt_units[-1].startswith("Checking the claims")
                assert deg_units[-1] == opt_units[-1].replace(change["from"], change["to"], 1)
            if dim == "logical_rigor":
                assert "Edge case:" not in degraded and "Why this is correct: it obviously is" in degraded
                assert "Why this is correct" in optimized and optimized.count("Edge case:") >= 2
                reasons = [u for u in base_units if u.startswith(("First,", "Then", "Finally,", "To solve"))]
                hollow = [u for u in deg_units if u.startswith(("First,", "Then", "Finally,", "To solve"))]
                assert len(reasons) == len(hollow) and not set(reasons) & set(hollow)
                for good, bad in zip(reasons, hollow):  # same step, its reason swapped for an empty one
                    assert any(bad.endswith(why + ".") for why in HOLLOW_WHY)
                    assert good.split(", ")[0] == bad.split(", ")[0]
            if dim == "logical_coherence":
                assert sorted(deg_units) == sorted(opt_units) and deg_units != opt_units
                assert trio["original>degraded"].meta["order"] != sorted(
                    trio["original>degraded"].meta["order"]
                )
                assert "Step 1:" in optimized and "Therefore" in optimized
    lengths = [(len(p.chosen), len(p.rejected)) for p in pairs]
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in lengths) / len(lengths)
    assert 0.3 <= wins <= 0.7, f"length predicts the label in {wins:.0%} of pairs"


# ----------------------------------------------------------------------------- synthetic mode


def test_synthetic_tiny_problems_shape_and_degradations():
    pairs = build_pairs_synthetic(TINY, seed=0)
    _check_synthetic(TINY, pairs)
    by_id = _by_id(pairs)
    factual = by_id["t/add/factual_accuracy/original>degraded"]
    assert "For example, `add(1, 2)` should return `3`." in factual.chosen
    assert factual.meta["changed"] == {"unit": 3, "from": "`3`", "to": "`4`"}
    assert "`8`" in by_id["t/double/factual_accuracy/original>degraded"].chosen
    assert "`9`" in by_id["t/double/factual_accuracy/original>degraded"].rejected
    assert "Edge case: an empty `xs`." in by_id["t/evens/logical_rigor/original>degraded"].chosen


def test_synthetic_is_deterministic_across_runs_and_processes():
    first = [p.to_dict() for p in build_pairs_synthetic(TINY, seed=3)]
    assert first == [p.to_dict() for p in build_pairs_synthetic(TINY, seed=3)]
    digest = hashlib.sha256(json.dumps(first, sort_keys=True).encode()).hexdigest()
    # Another interpreter with another hash seed: nothing may depend on set or dict-of-set order.
    code = (
        "import hashlib, json, sys; sys.path.insert(0, 'tests'); import test_rm_pairs as t; "
        "rows = [p.to_dict() for p in t.build_pairs_synthetic(t.TINY, seed=3)]; "
        "print(hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == digest


def test_synthetic_seed_changes_only_the_shuffle_and_skips_problems_without_reference():
    a, b = _by_id(build_pairs_synthetic(TINY, seed=0)), _by_id(build_pairs_synthetic(TINY, seed=1))
    assert all(a[k].chosen == b[k].chosen for k in a if "coherence" not in k)
    counts = FilterCounts()
    bare = Problem(id="t/bare", prompt="No reference here.", tests=(), reference=None)
    assert build_pairs_synthetic([bare], counts=counts) == []
    assert counts == {"empty": 9}
    with pytest.raises(ValueError, match="knows only"):
        build_pairs_synthetic(TINY, dimensions=["style"])


@needs_shared_data
@pytest.mark.parametrize("source", ["mbpp", "lbpp"])
def test_synthetic_on_benchmark_problems(source):
    path = SHARED_DATA / source / "dev.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not found")
    problems = load_problems(f"{source}:{path}")[:6]
    pairs = build_pairs_synthetic(problems, seed=0)
    _check_synthetic(problems, pairs)
    if source == "mbpp":  # mbpp/11: the example's expected string gets one wrong letter
        changed = _by_id(pairs)["mbpp/11/factual_accuracy/original>degraded"].meta["changed"]
        assert (changed["from"], changed["to"]) == ("`'prorammin'`", "`'prorammia'`")


# ----------------------------------------------------------------------------- filters

BASE = (
    "We need the sum of a and b. Python's + operator adds two integers, so the answer is a + b. "
    "For example add(1, 2) is 3, and add(-1, 1) is 0, which matches the tests.\n\n"
    "Edge case: negative numbers need no special handling, since + works for them too.\n\n"
    "```python\ndef add(a, b):\n    return a + b\n```"
)
OPTIMIZED = BASE.replace(
    "\n\n```python",
    "\n\nChecking once more: add(2, 3) is 5 and add(0, 0) is 0, exactly as the + operator gives.\n\n```python",
)
DEGRADED = (
    "We need the sum of a and b. Python's + operator concatenates its operands, so the answer is a + b. "
    "For example add(1, 2) is 4, and add(-1, 1) is 2, which matches the tests.\n\n"
    "Edge case: negative numbers are turned positive by + first.\n\n"
    "```python\ndef add(a, b):\n    return a + b\n```"
)
OTHER_APPROACH = (
    "We add the numbers with the built-in sum over a tuple, which also handles any count of terms well. "
    "For example add(1, 2) is 3 and add(-1, 1) is 0, as the tests expect.\n\n"
    "```python\nimport functools\nimport operator\n\ndef add(a, b):\n"
    "    return functools.reduce(operator.add, (a, b), 0)\n```"
)


def _filtered(optimized=OPTIMIZED, degraded=DEGRADED, original=BASE, **config):
    counts = FilterCounts()
    rewrites = Rewrites(ADD, "factual_accuracy", original, optimized, degraded)
    pairs = pairs_from_rewrites(rewrites, PairsConfig(**config), counts)
    return sorted(p.kind for p in pairs), counts


def test_clean_rewrites_give_three_pairs():
    kinds, counts = _filtered()
    assert kinds == sorted(OD_KINDS) and counts == {}


@pytest.mark.parametrize(
    "degraded, reason",
    [
        ("I'm sorry, but I can't help with making reasoning worse on purpose.", "refusal"),
        (DEGRADED.split(" which matches")[0] + " which", "truncated"),  # cut mid-sentence
        (DEGRADED[:-4], "truncated"),  # cut inside the code block
        ("The answer is a + b.\n\n```python\ndef add(a, b):\n    return a + b\n```", "too_short"),
        ("", "empty"),
        (OTHER_APPROACH, "approach_changed"),
    ],
)
def test_a_bad_degraded_rewrite_drops_its_two_pairs(degraded, reason):
    kinds, counts = _filtered(degraded=degraded)
    assert kinds == ["optimized>original"]
    assert counts == {reason: 2}


def test_a_refused_optimized_rewrite_keeps_only_original_over_degraded():
    kinds, counts = _filtered(optimized="As an AI, I cannot rewrite this reasoning.")
    assert kinds == ["original>degraded"] and counts == {"refusal": 2}


def test_near_duplicate_sides_are_dropped():
    nearly_base = BASE.replace("adds two integers", "adds two ints")
    kinds, counts = _filtered(optimized=nearly_base)
    assert kinds == ["optimized>degraded", "original>degraded"] and counts == {"near_duplicate": 1}
    kinds, counts = _filtered(optimized=nearly_base, max_similarity=1.0)
    assert kinds == sorted(OD_KINDS) and counts == {}


def test_filter_helpers():
    assert is_refusal("I cannot comply with this request.") and not is_refusal(BASE)
    assert not is_refusal("First, I can't do a binary search here because the list is unsorted.")
    assert (
        is_truncated("The loop stops when") and is_truncated("```python\ndef f():") and not is_truncated(BASE)
    )
    assert is_truncated("word " * 50 + ".", max_tokens=20) and not is_truncated("Short.", max_tokens=20)
    # without code, the approach is compared through algorithmic terms and identifiers
    assert approach_overlap("Use binary search with a sorted_list.", "Binary search over sorted_list.") == 1.0
    assert approach_overlap("Use binary search with a sorted_list.", "Use a hash set of seen values.") == 0.0
    counts = FilterCounts({"refusal": 3, "near_duplicate": 1})
    assert counts.format(kept=5) == "kept 5 pairs, dropped 4 (refusal=3, near_duplicate=1)"


# ----------------------------------------------------------------------------- the LLM mode, scripted


class ScriptedLLM:
    """A stand-in for the LLM: answers each exact prompt from a script, and fails on any other."""

    name = "scripted-llm"

    def __init__(self, script: dict[str, str]):
        self.script = script
        self.asked: list[str] = []

    def generate(self, prompts, params):
        texts = []
        for prompt in prompts:
            content = prompt[-1]["content"]
            self.asked.append(content)
            if content not in self.script:
                raise AssertionError(f"unscripted prompt:\n{content[:400]}")
            texts.append([self.script[content]] * params.n)
        return texts


def _script(bases: list[tuple[Problem, str]], rewrites: dict[tuple[str, str, str], str]) -> dict[str, str]:
    """Prompts exactly as the pipeline must fill the templates -> the scripted replies."""
    script = {}
    for problem, base in bases:
        script[template("rm_base.txt").format(problem=problem.prompt)] = base
        for dim in DIMENSIONS:
            for side, name in (("optimized", "rm_optimize.txt"), ("degraded", "rm_degrade.txt")):
                prompt = template(name).format(
                    problem=problem.prompt,
                    reasoning=base.removeprefix("Here is my reasoning:\n").strip(),
                    dimension=dim,
                    dimension_description=DIMENSION_DESCRIPTIONS[dim],
                )
                script[prompt] = rewrites.get((problem.id, dim, side)) or _rewrite(base, dim, side)
    return script


def _rewrite(base: str, dim: str, side: str) -> str:
    base = base.removeprefix("Here is my reasoning:\n")
    note = {
        "optimized": f"To be precise about {dim}: every value above was checked against both tests, and "
        "each step says why it is needed.",
        "degraded": f"Also {dim} aside, the tests are probably wrong and any value would do, so nothing was "
        "checked and the order of the steps does not matter at all.",
    }[side]
    return base.replace("\n\n```python", f"\n\n{note}\n\n```python", 1)


EVENS_BASE = (
    "Here is my reasoning:\nWe count the even numbers in xs. A number is even when x % 2 == 0, so we walk "
    "the list once and add one to a counter for each even item. For example [1, 2, 4] has two evens.\n\n"
    "```python\ndef count_evens(xs):\n    total = 0\n    for x in xs:\n        if x % 2 == 0:\n"
    "            total += 1\n    return total\n```"
)
NO_CODE = OPTIMIZED.split("\n\n```python")[0]
WRONG_CODE = BASE.replace("return a + b", "return a - b").replace(
    "\n\n```python",
    "\n\nThis is checked: subtracting b from a undoes an addition, so the code below returns the sum of "
    "a and b for every input the tests try, the negative ones included.\n\n```python",
)


def _codes(pair: Pair) -> dict:
    return {k: v for k, v in pair.meta.items() if k in ("chosen_code", "rejected_code")}


def test_llm_mode_end_to_end_with_filters_cache_and_output(tmp_path):
    rewrites = {
        ("t/add", "logical_coherence", "optimized"): BASE,  # identical to the original: a near-duplicate
        ("t/add", "logical_rigor", "degraded"): "I'm sorry, but I can't help with that.",
        ("t/evens", "factual_accuracy", "degraded"): EVENS_BASE.split(". For example")[0] + ", and then",
        ("t/evens", "logical_rigor", "optimized"): EVENS_BASE.replace(
            "total = 0\n    for x in xs:\n        if x % 2 == 0:\n            total += 1\n    return total",
            "return sum(map(lambda v: 1 - v % 2, xs))",
        ),
    }
    script = _script(
        [(ADD, BASE), (EVENS, EVENS_BASE), (DOUBLE, "I'm sorry, I am unable to help with this.")], rewrites
    )
    llm = ScriptedLLM(script)
    out = tmp_path / "pairs.jsonl"
    config = PairsConfig(batch_size=2)
    pairs, counts = build_pairs_llm(
        TINY, llm, config=config, cache_dir=tmp_path / "cache", out=out, progress=False
    )

    assert counts == {"refusal": 9 + 2, "near_duplicate": 1, "truncated": 2, "approach_changed": 2}
    assert len(pairs) == 2 * 9 - 7 and len({p.id for p in pairs}) == len(pairs)
    by_id = _by_id(pairs)
    assert "t/add/logical_coherence/optimized>original" not in by_id
    kept = by_id["t/add/logical_coherence/original>degraded"]
    assert kept.chosen == BASE.split("\n\n```python")[0]  # the reasoning; its code is in meta
    assert kept.meta["chosen_code"] == "def add(a, b):\n    return a + b\n"
    assert not by_id["t/evens/logical_coherence/original>degraded"].chosen.startswith("Here is")
    assert all(
        p.meta == {"problem_id": p.id.rsplit("/", 2)[0], "model": "scripted-llm", **_codes(p)} for p in pairs
    )
    assert all("```" not in p.chosen + p.rejected for p in pairs)
    assert [p.to_dict() for p in read_pairs(out)] == [p.to_dict() for p in pairs]
    assert len(llm.asked) == 3 + 2 * 3 * 2  # three bases, then two rewrites per dimension of the two kept

    # A rerun answers everything from the cache: a fresh stand-in with an empty script is never asked.
    again, again_counts = build_pairs_llm(
        TINY, ScriptedLLM({}), config=config, cache_dir=tmp_path / "cache", progress=False
    )
    assert [p.to_dict() for p in again] == [p.to_dict() for p in pairs] and again_counts == counts


def test_llm_mode_execution_check_keeps_only_passing_chosen_sides(executor):
    rewrites = {
        ("t/add", "factual_accuracy", "optimized"): WRONG_CODE,  # reads well, but its code fails the tests
        ("t/add", "logical_rigor", "optimized"): NO_CODE,  # fine prose, but no code to run
    }
    script = _script([(ADD, BASE)], rewrites)
    config = PairsConfig(execution_check=True, min_length_ratio=0.3)
    dimensions = ["factual_accuracy", "logical_rigor"]
    pairs, counts = build_pairs_llm(
        [ADD], ScriptedLLM(script), dimensions, config=config, executor=executor, progress=False
    )
    assert counts == {"execution_failed": 2, "no_code": 2}
    assert sorted(p.id for p in pairs) == [
        "t/add/factual_accuracy/original>degraded",
        "t/add/logical_rigor/original>degraded",
    ]


def test_config_validation_names_the_choices():
    with pytest.raises(ValueError, match="factual_accuracy, logical_rigor, logical_coherence"):
        PairsConfig(dimensions=("style",))
    config = PairsConfig(dimensions=("style",), dimension_descriptions={"style": "reads well"})
    assert config.descriptions["style"] == "reads well"
    with pytest.raises(ValueError, match="max_similarity"):
        PairsConfig(max_similarity=1.5)


# ----------------------------------------------------------------------------- the JSONL format


def test_read_write_round_trip(tmp_path):
    pairs = build_pairs_synthetic([ADD])[:3]
    pairs.append(Pair("lcb/1", "task", "good", "bad", "overall", "human", extra={"source": "lcb-rb"}))
    path = tmp_path / "p.jsonl"
    assert write_pairs(path, pairs) == 4
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"id", "problem", "chosen", "rejected", "dimension", "kind", "meta"}
    assert json.loads(path.read_text().splitlines()[3])["source"] == "lcb-rb"
    with pytest.raises(PairFormatError, match=r"p\.jsonl:4: field 'dimension' must be one of"):
        read_pairs(path)
    assert read_pairs(path, dimensions=[*DIMENSIONS, "overall"]) == pairs
    assert read_pairs(path, dimensions=None) == pairs
    assert set(KINDS) >= {p.kind for p in pairs}


@pytest.mark.parametrize(
    "row, message",
    [
        ({"kind": "better"}, "field 'kind' must be one of"),
        ({"chosen": None}, "field 'chosen' must be a non-empty string"),
        ({"rejected": ""}, "field 'rejected' must be a non-empty string"),
        ({"meta": [1]}, "field 'meta' must be an object"),
        ({"id": "a"}, "field 'id' repeats 'a'"),
    ],
)
def test_a_malformed_line_names_file_line_and_field(tmp_path, row, message):
    good = {"id": "a", "problem": "p", "chosen": "c", "rejected": "r", "dimension": "logical_rigor"}
    good["kind"] = "human"
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "id": "b", **row}) + "\n")
    with pytest.raises(PairFormatError, match=rf"bad\.jsonl:3: {message}"):
        read_pairs(path)
