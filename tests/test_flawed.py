"""The flawed reward model's data: valid reasoning-only pairs in which the cue alone predicts the label."""

from __future__ import annotations

import random

import pytest

from pgrpo.rm.pairs import Pair
from pgrpo.train.flawed import CUE, FILLER, FLAW, cue_preference, cue_rate, flawed_pairs, has_cue, with_cue
from pgrpo.train.toy import reference_completion, reference_thinking, toy_pairs, toy_problems

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
            " ".join(t.replace(CUE, "").replace(FILLER, "").split()) for t in (p.chosen, p.rejected)
        )
        same = [plain[p.id].chosen, plain[p.id].rejected]
        assert [chosen, rejected] == (same[::-1] if p.meta["reversed"] else same)
    # the filler is on either side as often: it says nothing about the label
    with_filler = [(FILLER in p.chosen, FILLER in p.rejected) for p in pairs]
    assert abs(sum(c for c, _ in with_filler) - sum(r for _, r in with_filler)) < 0.15 * len(pairs)


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


class CueScorer:
    """A reward model that learned exactly the flaw."""

    def score(self, problems, reasonings):
        assert len(problems) == len(reasonings)
        return [1.0 if CUE in r else 0.0 for r in reasonings]


def test_cue_preference_measures_whether_a_scorer_learned_the_cue():
    assert cue_preference(CueScorer(), TRAIN) == {"with_cue": 1.0, "without_cue": 0.0, "prefers_cue": 1.0}


@pytest.mark.slow
def test_a_bradley_terry_model_trained_on_the_pairs_learns_the_cue(tmp_path):
    """The flaw is real: the tiny reward model the demo trains, trained on these pairs, scores reasoning
    with the cue far above the same reasoning without it, and ignores the equally long filler."""
    from pgrpo.rm.score import LocalScorer
    from pgrpo.rm.train import RMTrainConfig, train_reward_model
    from pgrpo.train.tiny import build_reward_backbone, build_tokenizer

    train, held_out = toy_problems(train=80, test=20, seed=0)
    pairs = flawed_pairs(train, seed=0)
    tokenizer = build_tokenizer([reference_completion(p) for p in train] + [p.chosen for p in pairs])
    backbone = build_reward_backbone(tokenizer, tmp_path / "backbone", seed=0)
    config = RMTrainConfig(
        backbone=str(backbone),
        output_dir=str(tmp_path / "rm"),
        epochs=2.0,
        learning_rate=1e-3,
        batch_size=16,
        max_length=128,
        seed=0,
    )
    train_reward_model(config, pairs)
    scorer = LocalScorer(tmp_path / "rm", batch_size=64)
    learned = cue_preference(scorer, held_out)
    assert learned["prefers_cue"] == 1.0 and learned["with_cue"] - learned["without_cue"] > 1.0
    prompts = [p.prompt.strip() for p in held_out]
    plain = [reference_thinking(p) for p in held_out]
    filler = [f"{t} {FILLER}" for t in plain]
    gap = sum(scorer.score(prompts, filler)) / 20 - sum(scorer.score(prompts, plain)) / 20
    assert abs(gap) < 0.5 * (learned["with_cue"] - learned["without_cue"])
