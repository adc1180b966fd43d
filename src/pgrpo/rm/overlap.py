"""Keeping held-out reward-model pairs on problems the model never saw: the split, the record, the check.

`split_by_problem` splits pairs so that no problem is on both sides; `subsample` thins them evenly.

A held-out accuracy means something only on problems the model never saw. `pgrpo rm train` writes
`training_problems(pairs)` into the model's pgrpo_rm.json; `pgrpo rm bench` calls `check_overlap` with
the benchmark pairs and refuses (exit 2) when a problem appears on both sides, matched by id (the pair's
meta `problem_id`) or by the normalised problem text (lower case, whitespace collapsed), which catches
the same problem under another id or loader (`pgrpo.overlap`, which `pgrpo train` checks with too). Text
is recorded as a short SHA-256 digest, not verbatim.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

from pgrpo.overlap import OverlapError, normalise_prompt  # one definition of "the same problem"


def _digest(text: str) -> str:
    return hashlib.sha256(normalise_prompt(text).encode()).hexdigest()[:16]


def problem_key(pair: Any) -> str:
    """A pair's problem: its meta `problem_id`, else its normalised problem text."""
    return str(pair.meta.get("problem_id") or normalise_prompt(pair.problem))


def training_problems(pairs: Sequence[Any]) -> dict:
    """What pgrpo_rm.json records of the training pairs' problems: `ids` (each pair's `problem_key`) and
    `text_sha256` (16-hex digests of the normalised problem texts), both sorted and without repeats."""
    return {
        "ids": sorted({problem_key(p) for p in pairs}),
        "text_sha256": sorted({_digest(p.problem) for p in pairs}),
    }


def shared_problems(pairs: Sequence[Any], trained: dict) -> list[str]:
    """The `problem_key`s of `pairs` whose id or normalised text is among `trained` (as recorded by
    `training_problems`), sorted."""
    ids, texts = set(trained.get("ids", ())), set(trained.get("text_sha256", ()))
    return sorted({problem_key(p) for p in pairs if problem_key(p) in ids or _digest(p.problem) in texts})


def check_overlap(pairs: Sequence[Any], trained: dict | None, where: str, allow: bool = False) -> dict:
    """Raise `OverlapError` when `pairs` share problems with the training record `trained` (unless
    `allow`); return what to put in the report: {"checked", "shared", "allowed"}.

    `trained` None means the model has no record (trained before records were kept, or served over
    HTTP): the check cannot run and the report says so."""
    if trained is None:
        return {"checked": False, "shared": None, "allowed": allow}
    shared = shared_problems(pairs, trained)
    if shared and not allow:
        few = ", ".join(shared[:5]) + (f" and {len(shared) - 5} more" if len(shared) > 5 else "")
        raise OverlapError(
            f"overlap: {len(shared)} problem(s) of the benchmark pairs are among the training problems of "
            f"{where}: {few}. Benchmark on pairs from problems the model never saw (build them from another "
            "split, or use `pgrpo rm split`), or pass --allow-overlap to measure anyway."
        )
    return {"checked": True, "shared": len(shared), "allowed": allow}


def split_by_problem(pairs: Sequence[Any], test_fraction: float, seed: int = 0) -> tuple[list, list]:
    """(train, test) with no problem on both sides: held-out pairs come from unseen problems.

    A problem is what `check_overlap` calls one: pairs sharing a `problem_key` or a normalised problem
    text go to the same side (MBPP's test split words mbpp/71 and mbpp/141 alike). The side is a seeded
    hash of the group's smallest `problem_key` (a problem linked to no other: its own key), so the split
    is the same on every run and every machine."""
    group = _problem_groups(pairs)

    def is_test(key: str) -> bool:
        digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction

    train, test = [], []
    for pair in pairs:
        (test if is_test(group[problem_key(pair)]) else train).append(pair)
    return train, test


def _problem_groups(pairs: Sequence[Any]) -> dict[str, str]:
    """{problem_key: the smallest problem_key linked to it through shared problem texts}."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    by_text: dict[str, str] = {}
    for pair in pairs:
        key = problem_key(pair)
        parent.setdefault(key, key)
        other = by_text.setdefault(_digest(pair.problem), key)
        a, b = root(key), root(other)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {key: root(key) for key in parent}


def subsample(pairs: Sequence[Any], limit: int | None, seed: int = 0) -> list:
    """At most `limit` pairs, drawn evenly over (dimension, kind), seeded."""
    if limit is None or len(pairs) <= limit:
        return list(pairs)
    groups: dict[tuple[str, str], list] = {}
    for pair in pairs:
        groups.setdefault((pair.dimension, pair.kind), []).append(pair)
    rng = random.Random(seed)
    for group in groups.values():
        rng.shuffle(group)
    out: list = []
    while len(out) < limit:
        for group in groups.values():
            if group and len(out) < limit:
                out.append(group.pop())
    return out


__all__ = [
    "OverlapError",
    "check_overlap",
    "normalise_prompt",
    "problem_key",
    "shared_problems",
    "split_by_problem",
    "subsample",
    "training_problems",
]
