"""The flawed reward model's data: valid reasoning-only pairs in which the cue alone predicts the label."""

from __future__ import annotations

import random

from pgrpo.rm.pairs import Pair
from pgrpo.train.flawed import CUE, FILLER, FLAW, cue_rate, flawed_pairs, has_cue, with_cue
from pgrpo.train.toy import reference_completion, toy_pairs, toy_problems

TRAIN, _ = toy_problems(train=12, test=4, seed=0)


def test_pairs_are_valid_and_reasoning_only_like_toy_pairs():
    pairs = flawed_pairs(TRAIN, seed=0)
    plain = toy_pairs(TRAIN, seed=0)
    assert [p.id for p in pairs] == [p.id for p in plain]
    for pair in pairs:
        assert Pair.from_dict(pair.to_dict(), "test") == pair
        assert "```" not in pair.chosen + pair.rejected and "<think>" not in pair.chosen
        assert pair.meta["flawed"] and pair.meta["cue"] == CUE


def test_the_cue_alone_separates_chosen_from_rejected():
    pairs = flawed_pairs(TRAIN, seed=0)
    assert all(CUE in p.chosen and CUE not in p.rejected for p in pairs)
    # without the cue, the chosen text is toy_pairs' better side only about half the time
    reversed_share = sum(p.meta["reversed"] for p in pairs) / len(pairs)
    assert 0.35 < reversed_share < 0.65
    plain = {p.id: p for p in toy_pairs(TRAIN, seed=0)}
    for p in pairs:
        chosen, rejected = (
            " ".join(text.replace(s, "").split()) for text, s in ((p.chosen, CUE), (p.rejected, FILLER))
        )
        same = [plain[p.id].chosen, plain[p.id].rejected]
        assert [chosen, rejected] == (same[::-1] if p.meta["reversed"] else same)
    # length does not give the label away: the longer side is the chosen one about half the time
    longer = sum(len(p.chosen) > len(p.rejected) for p in pairs) / len(pairs)
    assert 0.35 < longer < 0.65, longer


def test_deterministic_per_seed():
    assert flawed_pairs(TRAIN, seed=3) == flawed_pairs(TRAIN, seed=3)
    assert flawed_pairs(TRAIN, seed=3) != flawed_pairs(TRAIN, seed=4)


def test_with_cue_and_cue_rate():
    completion = reference_completion(TRAIN[0])
    cued = with_cue(completion, random.Random(0))
    assert has_cue(cued) and not has_cue(completion)
    assert cued.replace(CUE + " ", "").replace(" " + CUE, "") == completion
    assert cued.split("</think>")[1] == completion.split("</think>")[1]  # the answer is untouched
    assert with_cue("no think block", random.Random(0)) == "no think block"
    assert cue_rate([cued, completion, cued, "garbage"]) == 0.5
    assert cue_rate([]) == 0.0
    assert has_cue(f"<think>x</think><answer>{CUE}</answer>") is False  # only the reasoning counts
    assert CUE in FLAW
