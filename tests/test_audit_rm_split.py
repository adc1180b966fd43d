"""`split_by_problem` and `check_overlap` agree on what "the same problem" is: two ids with one problem
text (MBPP's test split has mbpp/71 and mbpp/141, both "Write a function to sort a list of elements.")
never land on both sides of a split, so a held-out set made by the split passes the overlap check."""

from __future__ import annotations

from pgrpo.rm.overlap import shared_problems, split_by_problem, training_problems
from pgrpo.rm.pairs import Pair


def _pair(pid: str, problem: str, n: int) -> Pair:
    return Pair(
        id=f"{pid}/{n}",
        problem=problem,
        chosen=f"good {n}",
        rejected=f"bad {n}",
        dimension="logical_rigor",
        kind="optimized>degraded",
        meta={"problem_id": pid},
    )


def test_two_ids_with_one_problem_text_stay_on_one_side():
    text = "Write a function to sort a list of elements."
    pairs = [_pair("mbpp/71", text, n) for n in range(3)] + [
        _pair("mbpp/141", "  " + text.upper(), n) for n in range(3)
    ]
    pairs += [_pair(f"other/{i}", f"Problem number {i}.", 0) for i in range(20)]
    for seed in range(20):
        train, test = split_by_problem(pairs, 0.5, seed)
        assert len(train) + len(test) == len(pairs)
        assert shared_problems(test, training_problems(train)) == [], seed
        sides = {p.meta["problem_id"] for p in test} & {"mbpp/71", "mbpp/141"}
        assert sides in (set(), {"mbpp/71", "mbpp/141"}), seed


def test_a_problem_alone_keeps_the_split_it_had():
    """Problems linked to no other keep their seeded hash of the problem key (splits made before stay)."""
    import hashlib

    pairs = [_pair(f"p/{i}", f"Problem {i}.", 0) for i in range(40)]
    train, test = split_by_problem(pairs, 0.3, seed=7)

    def was_test(pair):
        digest = hashlib.sha256(f"7:{pair.meta['problem_id']}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < 0.3

    assert [p.id for p in test] == [p.id for p in pairs if was_test(p)]
    assert [p.id for p in train] == [p.id for p in pairs if not was_test(p)]
