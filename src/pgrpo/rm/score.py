"""Scoring reasoning with a thinking reward model: in this process, over HTTP, or as a small HTTP service.

A reward model reads one text, `TEMPLATE` filled with the problem and the reasoning (never the code), and
returns one raw Bradley–Terry score; `to_unit` maps scores to [0, 1] for R_thinking. The model's input is
exactly `tokenizer(text)` cut at `max_length` tokens, in training and in scoring alike (no EOS is
appended), so a copy served by `vllm serve` sees the same tokens.

- `LocalScorer`: a trained model directory (or any model object) in this process, batched, no grad.
- `HttpScorer`: a model served elsewhere: `pgrpo rm serve` (`POST /score`) or vLLM's `/classify` and
  `/pooling`. Transient failures (429, 5xx, timeouts, refused connections) are retried with backoff;
  afterwards `ScorerUnavailable` is raised, which callers turn into a masked (None) reward, never 0.
- `serve_scorer` / `main`: `pgrpo rm serve --model DIR --port N`, standard library only.
- `check_reward_model`: refuse, before any work, a URL that does not score or a directory whose score
  head was never trained (`LocalScorer` applies the same check as it loads).
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import math
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pgrpo.httpjson import JsonHandler, run_server
from pgrpo.llm.openai_http import _error_message, _is_refused, _is_transient, _retry_after

TEMPLATE = "Problem:\n{problem}\n\nReasoning:\n{reasoning}"
META_FILE = "pgrpo_rm.json"
DEFAULT_MAX_LENGTH = 768
"""Tokens per reward-model input. Measured with the MiniLM tokenizer on `format_input` of every pair side
of `pgrpo rm pairs --synthetic` over MBPP train + LBPP dev (11,196 texts): median 294, p95 702, p99 844,
max 1,087 tokens; 768 holds 95% whole. BERT-style backbones cap it at their 512 positions (there 18% of
the pairs lose their end and 4% become identical, which training and the benchmark drop and count)."""
MAX_LENGTH_BASIS = "the p95 of synthetic MBPP-train + LBPP-dev inputs is 702 MiniLM tokens"
UNIT_METHODS = ("sigmoid", "minmax")


def format_input(problem: str, reasoning: str, template: str = TEMPLATE) -> str:
    """The one text a reward model reads for (problem, reasoning): training (`pgrpo.rm.train`), the
    benchmark and the thinking reward (both through a `Scorer`) all build it here.

    `reasoning` is the reasoning alone: a completion's `<think>` text, or a pair side (pair builders keep
    the final code apart, in the pair's meta). Both parts are stripped, so a problem's raw prompt (what the
    reward sends) and a pair's stripped copy of it give the same text."""
    return template.format(problem=problem.strip(), reasoning=reasoning.strip())


@runtime_checkable
class Scorer(Protocol):
    """Anything that gives one raw reward-model score per (problem, reasoning)."""

    def score(self, problems: list[str], reasonings: list[str]) -> list[float]: ...


class ScorerUnavailable(RuntimeError):
    """The reward model could not score: a server down or erring after the retries, or an answer of the
    wrong shape. Callers mask the reward (None) and count it; it is never a 0 reward."""


def to_unit(scores: Sequence[float | None], method: str = "sigmoid") -> list[float | None]:
    """Map raw scores to [0, 1]: `sigmoid` per score, or `minmax` within the group (a group whose scores
    are all equal maps to 0.5). None entries (unscored) stay None and take no part in the group."""
    if method not in UNIT_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(UNIT_METHODS)}")
    if method == "sigmoid":
        return [None if s is None else _sigmoid(s) for s in scores]
    present = [s for s in scores if s is not None]
    if not present:
        return [None] * len(scores)
    low, high = min(present), max(present)
    if high == low:
        return [None if s is None else 0.5 for s in scores]
    return [None if s is None else (s - low) / (high - low) for s in scores]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _check_lengths(problems: Sequence[str], reasonings: Sequence[str]) -> None:
    if len(problems) != len(reasonings):
        raise ValueError(f"{len(problems)} problems but {len(reasonings)} reasonings: one of each per score")


# ----------------------------------------------------------------------------- local models


def read_meta(model_dir: str | Path) -> dict:
    """The `pgrpo_rm.json` written beside a trained model (template, max_length, ...), or {}."""
    from pgrpo.options import UsageError

    path = Path(model_dir) / META_FILE
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: not a readable {META_FILE} ({e}); `pgrpo rm train` writes it") from None
    if not isinstance(meta, dict):
        raise UsageError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def ensure_pad_token(tokenizer: Any) -> None:
    """Batching needs a pad token; causal LMs often have none, so their EOS token pads."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"the tokenizer {type(tokenizer).__name__} has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token


def max_positions(model: Any, wanted: int) -> int:
    """`wanted`, cut to what the model's position embeddings allow (512 for BERT-style encoders)."""
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    return min(wanted, limit) if limit else wanted


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, special tokens added, cut at max_length (the end of long reasoning goes)."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def load_reward_backbone(
    path: str | Path, seed: int = 0, dtype: Any = None, where: str = "model"
) -> tuple[Any, Any]:
    """(model, tokenizer) for `path` with a one-output sequence-classification head.

    A trained reward model loads as it was saved; any other causal LM or encoder gets a fresh head drawn
    with `seed` (the global random state is left as it was), and the EOS token as padding where the
    tokenizer has no pad token. A directory that does not load is a UsageError naming `where`."""
    model, tokenizer, _ = _load(path, seed=seed, dtype=dtype, where=where)
    return model, tokenizer


@contextlib.contextmanager
def quiet_weight_bars() -> Iterator[None]:
    """No "Loading weights" / "Writing model shards" bars unless --verbose: they take a second and
    would bury the one progress bar that matters (the Trainer's own bar is not affected)."""
    from transformers.utils import logging as hf_logging

    from pgrpo import log

    quiet = not log.verbose() and hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet:
            hf_logging.enable_progress_bar()


def _load(
    path: str | Path, seed: int = 0, dtype: Any = None, loading_info: bool = False, where: str = "model"
):
    from pgrpo.options import UsageError

    try:
        return _load_unchecked(path, seed, dtype, loading_info)
    except (OSError, ValueError, RuntimeError, KeyError) as e:  # incl. a head of another shape
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(
            f"{where} {path}: cannot load it as a model with a one-output score head ({first})"
        ) from None


def _load_unchecked(path: str | Path, seed: int, dtype: Any, loading_info: bool):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    ensure_pad_token(tokenizer)
    info: dict = {}
    with torch.random.fork_rng(devices=[]), quiet_weight_bars():
        torch.manual_seed(seed)
        loaded = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=dtype or torch.float32, output_loading_info=loading_info
        )
    model, info = loaded if loading_info else (loaded, info)
    # sequence-classification heads of causal LMs find the last real token through pad_token_id
    model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, info


# ----------------------------------------------------------------------------- is it a reward model?

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
CHECK_TIMEOUT_S = 10.0


def check_reward_model(spec: str, where: str) -> None:
    """Refuse, before any work, a reward model that cannot score: UsageError naming `where` (a flag, or
    `config file: reward.model`) and `spec`.

    - A URL gets one real scoring request (`POST /score`, or vLLM's /classify and /pooling) with a short
      timeout and no retries: a refused connection, an HTTP error, or an answer that is not one number
      per input is refused.
    - A directory must exist and hold a model (config.json and weights), and its score head must have
      been trained. How an untrained head is detected: the model is loaded as a one-output
      sequence classifier with `output_loading_info=True`; a head parameter (any parameter outside the
      backbone, e.g. `classifier.weight` or `score.weight`) among the `missing_keys` was newly
      initialised at random, not read from the directory: such a directory is a plain backbone (or a
      causal LM), not a reward model. A head of another shape (a classifier with several labels) is
      refused too. A head that is present is trusted: a randomly initialised head that someone saved is
      indistinguishable from a trained one (`pgrpo rm train` also writes pgrpo_rm.json beside its models).
    """
    if spec.startswith(("http://", "https://")):
        _check_url(spec, where)
    else:
        load_reward_model(spec, where)  # loaded once to see its head, then dropped


def _check_url(url: str, where: str) -> None:
    from pgrpo.options import UsageError

    scorer = HttpScorer(url, max_retries=0, timeout_s=CHECK_TIMEOUT_S)
    try:
        scores = scorer.score(["def f(): pass"], ["A check that the reward model answers."])
    except ScorerUnavailable as e:
        raise UsageError(f"{where} {url}: not a working reward-model server ({e})") from None
    if not all(math.isfinite(s) for s in scores):
        raise UsageError(f"{where} {url}: the server's score is not a finite number: {scores}")


def check_model_directory(
    path: str | Path, where: str, expected: str = "a reward model from `pgrpo rm train`, or a URL"
) -> None:
    """`path` is a directory holding a model (config.json and weights), or UsageError naming `where`."""
    from pgrpo.options import UsageError

    path = Path(path)
    if not path.exists():
        raise UsageError(f"{where} {path}: no such directory ({expected})")
    if not path.is_dir():
        raise UsageError(f"{where} {path}: not a directory ({expected})")
    if not (path / "config.json").is_file() or not any((path / name).is_file() for name in WEIGHT_FILES):
        raise UsageError(
            f"{where} {path}: holds no model (config.json and weights such as model.safetensors)"
        )


def load_reward_model(path: str | Path, where: str = "reward model", dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a trained reward model, or UsageError when `path` is not one (see
    `check_reward_model` for how an untrained head is told apart)."""
    from pgrpo.options import UsageError

    check_model_directory(path, where)
    model, tokenizer, info = _load(path, dtype=dtype, loading_info=True, where=where)
    prefix = getattr(model, "base_model_prefix", "") + "."
    fresh = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(prefix))
    if fresh:
        raise UsageError(
            f"{where} {path}: not a trained reward model: its score head ({', '.join(fresh)}) is not in the "
            "directory and would be random (detected as weights newly initialised on loading); train one "
            "with `pgrpo rm train --backbone DIR --pairs P --out OUT`"
        )
    return model, tokenizer


class LocalScorer:
    """A reward model in this process: texts sorted by length into batches, scored without gradients."""

    def __init__(
        self,
        model_dir: str | Path,
        batch_size: int = 16,
        device: str | None = None,
        max_length: int | None = None,
        template: str | None = None,
        where: str = "reward model",
    ) -> None:
        """Load the reward model saved in `model_dir` by `train_reward_model`; a directory that is not a
        trained reward model is a UsageError naming `where` (`check_reward_model`).

        device: `cpu`, `cuda`, `cuda:1` ...; default: cuda when available. bf16 on a GPU that has it.
        max_length / template: default to the ones the model was trained with (its pgrpo_rm.json)."""
        import torch

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        use_bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
        model, tokenizer = load_reward_model(model_dir, where, dtype=torch.bfloat16 if use_bf16 else None)
        meta = read_meta(model_dir)
        self._setup(
            model,
            tokenizer,
            batch_size=batch_size,
            device=device,
            max_length=max_length or meta.get("max_length") or DEFAULT_MAX_LENGTH,
            template=template or meta.get("template") or TEMPLATE,
        )
        self.name = str(model_dir)

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 16,
        device: str | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        template: str = TEMPLATE,
        name: str = "model",
    ) -> LocalScorer:
        """Score with a model already in memory (during training, or a baseline with a fresh head)."""
        self = cls.__new__(cls)
        ensure_pad_token(tokenizer)
        self._setup(
            model, tokenizer, batch_size=batch_size, device=device, max_length=max_length, template=template
        )
        self.name = name
        return self

    def _setup(self, model, tokenizer, *, batch_size, device, max_length, template) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = device or str(next(model.parameters()).device)
        text_config = model.config.get_text_config()
        if text_config.pad_token_id is None:  # causal LMs pick the last real token through it
            text_config.pad_token_id = tokenizer.pad_token_id
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_positions(model, max_length)
        self.template = template

    def input_ids(self, problems: Sequence[str], reasonings: Sequence[str]) -> list[list[int]]:
        """The token ids the model reads for each (problem, reasoning), cut at max_length."""
        _check_lengths(problems, reasonings)
        texts = [format_input(p, r, self.template) for p, r in zip(problems, reasonings)]
        return encode(self.tokenizer, texts, self.max_length) if texts else []

    def score(self, problems: list[str], reasonings: list[str]) -> list[float]:
        ids = self.input_ids(problems, reasonings)
        if not ids:
            return []
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        scores = [0.0] * len(ids)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            for i, value in zip(batch, self._forward([ids[i] for i in batch])):
                scores[i] = value
        return scores

    def _forward(self, batch: list[list[int]]) -> list[float]:
        import torch

        width = max(len(x) for x in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in batch], device=self.device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in batch], device=self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=mask).logits
        return logits[:, 0].float().tolist()


# ----------------------------------------------------------------------------- remote models

APIS = {"pgrpo": "/score", "vllm-classify": "/classify", "vllm-pooling": "/pooling"}


class HttpScorer:
    """A reward model behind a URL: `pgrpo rm serve`, or `vllm serve MODEL` (runner pooling)."""

    def __init__(
        self,
        url: str,
        *,
        api: str | None = None,
        model: str | None = None,
        template: str = TEMPLATE,
        max_length: int | None = None,
        raw: bool = True,
        batch_size: int = 64,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        api_key: str | None = None,
    ) -> None:
        """url: the server (`http://host:8000`) or the endpoint itself (`.../classify`).

        api: `pgrpo` (POST /score with problems and reasonings; the server applies its model's template),
            `vllm-classify` or `vllm-pooling` (POST {"model", "input": [texts]}; the texts are built here
            with `template`, which must be the one the model was trained with). Default: from the URL's
            path (/classify, /pooling), else `pgrpo`.
        model: vLLM's model name; default: the server's only model.
        max_length: vLLM: cut inputs at this many tokens, keeping the start (as in training).
        raw: vLLM: ask for the raw score (`use_activation: false`); False for servers too old to know
            that field: their sigmoid-activated single-label output is mapped back to the raw score.
        max_retries: further attempts after a transient failure; the wait doubles from `backoff_s` up to
            `max_backoff_s` (times a random factor in [0.5, 1.5)) unless the server sends Retry-After.
        """
        path = urllib.parse.urlsplit(url).path.rstrip("/")
        inferred = next((name for name, end in APIS.items() if path.endswith(end)), "pgrpo")
        self.api = api or inferred
        if self.api not in APIS:
            raise ValueError(f"unknown api {self.api!r}; choose one of {', '.join(APIS)}")
        endpoint = APIS[self.api]
        self.url = url.rstrip("/") if path.endswith(endpoint) else url.rstrip("/") + endpoint
        if batch_size < 1 or max_retries < 0:
            raise ValueError("batch_size must be >= 1 and max_retries >= 0")
        self.model, self.template, self.max_length, self.raw = model, template, max_length, raw
        self.batch_size, self.timeout_s, self.max_retries = batch_size, timeout_s, max_retries
        self.backoff_s, self.max_backoff_s, self.api_key = backoff_s, max_backoff_s, api_key
        self.name = self.url

    def score(self, problems: list[str], reasonings: list[str]) -> list[float]:
        _check_lengths(problems, reasonings)
        scores: list[float] = []
        for start in range(0, len(problems), self.batch_size):
            chunk_p = problems[start : start + self.batch_size]
            chunk_r = reasonings[start : start + self.batch_size]
            scores.extend(self._parse(self._post(self._body(chunk_p, chunk_r)), len(chunk_p)))
        return scores

    def _body(self, problems: list[str], reasonings: list[str]) -> dict:
        if self.api == "pgrpo":
            return {"problems": problems, "reasonings": reasonings}
        body: dict[str, Any] = {
            "input": [format_input(p, r, self.template) for p, r in zip(problems, reasonings)],
            "use_activation": not self.raw,
        }
        if self.model:
            body["model"] = self.model
        if self.max_length:
            body.update(truncate_prompt_tokens=self.max_length, truncation_side="right")
        return body

    def _parse(self, answer: Any, n: int) -> list[float]:
        try:
            if self.api == "pgrpo":
                values = [float(s) for s in answer["scores"]]
            else:
                rows = sorted(answer["data"], key=lambda row: row["index"])
                field = "probs" if self.api == "vllm-classify" else "data"
                values = [_single_value(row[field]) for row in rows]
                if not self.raw:
                    values = [_logit(v) for v in values]
        except (KeyError, TypeError, ValueError) as e:
            shape = f"{self.url} answered in an unexpected shape ({e}): {str(answer)[:300]}"
            raise ScorerUnavailable(shape) from None
        if len(values) != n:
            raise ScorerUnavailable(f"{self.url} returned {len(values)} scores for {n} inputs")
        return values

    def _post(self, body: dict) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        last: BaseException | None = None
        for attempt in range(self.max_retries + 1):
            delay = None
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
            except urllib.error.HTTPError as e:
                message = f"HTTP {e.code}: {_error_message(e)}"
                if e.code != 429 and e.code < 500:
                    raise ScorerUnavailable(f"{self.url} refused the request, {message}") from None
                last, delay = RuntimeError(message), _retry_after(e.headers)
            except (OSError, http.client.HTTPException) as e:
                if not _is_transient(e):
                    raise ScorerUnavailable(f"cannot reach {self.url}: {getattr(e, 'reason', e)}") from e
                last = e
            else:
                try:
                    return json.loads(raw)
                except ValueError:
                    raise ScorerUnavailable(f"{self.url} answered with non-JSON: {raw[:200]!r}") from None
            if attempt < self.max_retries:
                time.sleep(delay if delay is not None else self._backoff(attempt))
        tries = f"after {self.max_retries + 1} attempts"
        if last is not None and _is_refused(last):
            raise ScorerUnavailable(
                f"no reward-model server answering at {self.url} ({tries}): start one with "
                "`pgrpo rm serve --model DIR --port N` or `vllm serve DIR --runner pooling`"
            )
        raise ScorerUnavailable(f"no usable answer from {self.url} ({tries}): {last}")

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.5)


def _single_value(value: Any) -> float:
    """A one-label head's output: a number, [x], or per-token rows [[x], ...] (the last token's)."""
    if isinstance(value, list) and value and isinstance(value[-1], list):
        value = value[-1]
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"expected one score per input (a num_labels=1 head), got {len(value)} values")
        value = value[0]
    return float(value)


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


# ----------------------------------------------------------------------------- serving


def _string_list(body: Any, key: str) -> list[str]:
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValueError(f"'{key}' must be a list of strings")
    return value


def serve_scorer(scorer: Scorer, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server for `scorer` bound to host:port (port 0 picks a free one); call `serve_forever()`.

    POST /score {"problems": [...], "reasonings": [...]} -> {"scores": [...]}; GET /health.
    Requests are scored one at a time (the model is not shared between threads)."""
    lock = threading.Lock()
    name = getattr(scorer, "name", type(scorer).__name__)

    class Handler(JsonHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/health":
                return self._reply(404, {"error": f"no route {self.path}; try POST /score or GET /health"})
            self._reply(200, {"status": "ok", "model": name})

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/score":
                return self._reply(404, {"error": f"no route {self.path}; try POST /score"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                problems, reasonings = _string_list(body, "problems"), _string_list(body, "reasonings")
                _check_lengths(problems, reasonings)
            except (ValueError, TypeError) as e:
                return self._reply(
                    400, {"error": f"{e}; expected {{'problems': [str], 'reasonings': [str]}}"}
                )
            try:
                with lock:
                    scores = scorer.score(problems, reasonings)
            except Exception as e:  # the model's failure is the server's, not the client's
                return self._reply(500, {"error": f"{type(e).__name__}: {e}"})
            self._reply(200, {"scores": scores})

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.verbose = False  # type: ignore[attr-defined]
    return server


def main(argv: list[str] | None = None) -> None:
    """`pgrpo rm serve --model DIR --port N`: the model is checked (a trained score head) before the
    port is bound; a port in use is a one-line error."""
    from pgrpo import log
    from pgrpo.options import Parser, UsageError, add_options, from_args
    from pgrpo.rm.options import ServeOptions

    parser = Parser(prog="pgrpo rm serve", description="serve a reward model over HTTP: POST /score")
    add_options(parser, ServeOptions)
    args = from_args(ServeOptions, parser.parse_args(argv))

    scorer = LocalScorer(args.model, args.batch_size, args.device, args.max_length, where="--model")
    try:
        server = serve_scorer(scorer, args.host, args.port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {args.port} on {args.host} is in use: stop what listens there or choose another --port"
            ) from None
        raise UsageError(
            f"--host {args.host} --port {args.port}: cannot listen there ({e.strerror or e})"
        ) from None
    run_server(server, f"reward model {args.model}", "/score", args.verbose or log.verbose())


if __name__ == "__main__":
    main()
