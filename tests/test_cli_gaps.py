"""Gaps a new user's walk found: each bad input is one line `pgrpo: error: ...` naming the culprit
(the flag, the key or the file), exit 2, no traceback, and before any model loads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pgrpo.cli import main


def refused(capsys, argv: list[str], *names: str) -> str:
    """Run `pgrpo argv`; assert exit 2 and one stderr line naming each of `names`; that line."""
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--seed", "-1"],
        ["ablate", "--seeds", "0,-1"],
        ["eval", "--model", "m", "--problems", "p.jsonl", "--seed", "-1"],
        ["search", "--seed", str(2**32)],
        ["rm", "split", "--pairs", "p.jsonl", "--seed", "-1"],
    ],
)
def test_a_seed_out_of_range_is_refused_at_parse_time(capsys, argv):
    line = refused(capsys, argv, "--seed", "4294967295")
    assert "error" in line


@pytest.mark.parametrize("key", ["data.seed", "grpo.seed"])
def test_a_config_seed_out_of_range_is_refused(capsys, key):
    refused(capsys, ["train", f"{key}=-1"], key, "4294967295")


@pytest.mark.parametrize("value", ["0", "1"])
def test_a_group_of_fewer_than_two_is_one_range_with_its_reason(capsys, value):
    line = refused(capsys, ["train", f"grpo.num_generations={value}"], "grpo.num_generations", ">= 2")
    assert "two samples" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--model", "m", "--problems", "p.jsonl", "--device", "cuda"],
        ["serve", "--model", "m", "--device", "cuda"],
        ["rm", "serve", "--model", "m", "--device", "cuda:1"],
    ],
)
def test_a_cuda_device_without_cuda_is_refused_before_loading(capsys, monkeypatch, argv):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused(capsys, argv, "--device", "no CUDA")


@pytest.fixture
def fake_model(tmp_path):
    """A directory that passes check_model (a config.json) but that no loader could read."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    return model


PROBLEMS = str(Path(__file__).parent / "fixtures" / "native_small.jsonl")


def test_the_vllm_backend_without_vllm_says_how_to_install(capsys, fake_model, tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    argv = ["eval", "--dataset", PROBLEMS, "--model", str(fake_model), "--backend", "vllm"]
    refused(capsys, argv + ["--out", str(tmp_path / "out")], "--backend vllm", "pip install vllm")


def test_an_option_the_backend_does_not_take_is_named_with_the_valid_ones(capsys, fake_model, tmp_path):
    argv = ["eval", "--dataset", PROBLEMS, "--model", str(fake_model), "--backend", "transformers"]
    argv += ["--generator-options", '{"workers": 2}', "--out", str(tmp_path / "out")]
    line = refused(capsys, argv, "--generator-options", "workers")
    assert "valid:" in line and "dtype" in line


def test_a_classifier_given_as_the_generator_is_refused(capsys, fake_model, tmp_path):
    (fake_model / "config.json").write_text('{"architectures": ["BertForSequenceClassification"]}')
    argv = ["eval", "--dataset", PROBLEMS, "--model", str(fake_model), "--out", str(tmp_path / "out")]
    line = refused(capsys, argv, "--model", "BertForSequenceClassification")
    assert "a classifier, not a model that generates text" in line.replace(
        " (BertForSequenceClassification)", ""
    )


def test_a_gguf_policy_is_refused_at_the_config_check(capsys, tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    line = refused(capsys, ["train", f"policy.model={gguf}"], "policy.model", "GGUF")
    assert "cannot be trained" in line and "transformers model directory" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["problems", "export", "{empty}", "--out", "{tmp}/out.jsonl"],
        ["check", "--problems", "{empty}", "--references"],
        ["rm", "split", "--pairs", "{empty}", "--train", "{tmp}/train.jsonl", "--test", "{tmp}/test.jsonl"],
    ],
)
def test_an_input_that_holds_nothing_is_refused_naming_it(capsys, tmp_path, argv):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    argv = [a.format(empty=empty, tmp=tmp_path) for a in argv]
    line = refused(capsys, argv, str(empty))
    assert "holds no" in line
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "train.jsonl").exists()


def test_a_misspelt_pair_kind_in_margin_is_refused_listing_the_kinds(capsys, tmp_path):
    argv = ["rm", "train", "--pairs", str(tmp_path / "p.jsonl"), "--margin", '{"optimised>degraded": 1}']
    line = refused(capsys, argv, "--margin", "optimised>degraded", "optimized>degraded", "passed>failed")
    assert "unknown pair kind" in line


def test_resume_with_no_checkpoint_is_refused_and_makes_no_directory(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["train", f"data.dataset={PROBLEMS}", "reward.variant=outcome", f"output.dir={out}", "--resume"]
    refused(capsys, argv, "--resume", "nothing to resume", str(out))
    assert not out.exists()


def test_a_warm_start_for_a_pretrained_policy_is_refused(capsys, fake_model):
    argv = ["train", f"policy.model={fake_model}", "policy.warm_start_steps=10"]
    refused(capsys, argv, "policy.warm_start_steps", "tiny")


def test_a_bad_override_is_blamed_on_the_override_not_the_config_file(capsys, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(f'[data]\ndataset = ["{PROBLEMS}"]\n')
    line = refused(capsys, ["train", "--config", str(config), "reward.variant=posterio"], "reward.variant")
    assert line.startswith("pgrpo: error: override 'reward.variant=posterio'") and str(config) not in line


def test_the_connection_hint_names_pgrpo_serve(capsys, tmp_path):
    argv = ["eval", "--dataset", PROBLEMS, "--model", "http://127.0.0.1:9", "--out", str(tmp_path / "out")]
    line = refused(capsys, argv + ["--generator-options", '{"max_retries": 0}'], "127.0.0.1:9", "pgrpo serve")
    assert "python -m" not in line


@pytest.mark.parametrize(
    "command",
    [
        ["problems", "export", "{spec}", "--out", "{tmp}/x.jsonl"],
        ["check", "--problems", "{spec}", "--references"],
    ],
)
def test_a_directory_given_as_a_problem_file_names_the_file_to_give(capsys, tmp_path, command):
    layout = tmp_path / "mbpp"
    layout.mkdir()
    (layout / "dev.jsonl").write_text("")
    (layout / "test.jsonl").write_text("")
    argv = [a.format(spec=f"mbpp:{layout}", tmp=tmp_path) for a in command]
    refused(capsys, argv, "a directory", str(layout / "test.jsonl"))


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    """A random 2-layer Llama (pgrpo.train.tiny) saved and loaded back through the transformers backend."""
    from pgrpo.llm import load_generator
    from pgrpo.train.tiny import build_policy, build_tokenizer

    where = tmp_path_factory.mktemp("tiny")
    tokenizer = build_tokenizer(["def add(a, b):\n    return a + b\n", "print('hello world')\n"] * 5)
    build_policy(tokenizer, hidden=32, layers=1, heads=2).save_pretrained(where)
    tokenizer.save_pretrained(where)
    return load_generator(str(where), "transformers", device="cpu", progress=False)


def test_serve_says_length_when_max_tokens_cut_the_completion(tiny_generator):
    import json
    import threading
    import urllib.request

    from pgrpo.llm.serve import make_server

    server = make_server(tiny_generator, port=0)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def complete(**body) -> dict:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/completions"
        data = json.dumps({"prompt": "def add(a, b):", "temperature": 0, **body}).encode()
        request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)["choices"][0]

    try:
        cut = complete(max_tokens=4)
        assert cut["finish_reason"] == "length", cut
        text = cut["text"].strip()
        assert len(text) >= 2, cut
        stopped = complete(max_tokens=4, stop=[text[-1]])  # the same greedy text, ended by a stop string
        assert stopped["finish_reason"] == "stop", stopped
    finally:
        server.shutdown()
        server.server_close()


def test_check_without_out_says_in_its_help_and_at_the_end_that_nothing_is_written(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    assert "nothing is written" in " ".join(capsys.readouterr().out.split())
    one = tmp_path / "one.jsonl"
    one.write_text(Path(PROBLEMS).read_text().splitlines()[0] + "\n")
    main(["check", "--problems", str(one), "--references"])
    assert "no results file written (give --out FILE" in capsys.readouterr().out


def test_use_vllm_without_vllm_is_refused_before_the_policy_loads(capsys, tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    argv = ["train", f"data.dataset={PROBLEMS}", "reward.variant=outcome", "grpo.use_vllm=true"]
    refused(capsys, argv + [f"output.dir={tmp_path / 'run'}"], "grpo.use_vllm", "pip install vllm")
    assert not (tmp_path / "run").exists()
