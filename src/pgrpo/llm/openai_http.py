"""The `openai` backend: any OpenAI-compatible HTTP server, with the standard library only.

Works with `vllm serve`, TGI, the llama.cpp server, hosted APIs and `pgrpo serve`.
Message lists go to `/chat/completions`, strings to `/completions`; each prompt is one request asking
for all n completions (servers that refuse n > 1 get n requests with seeds seed, seed+1, ...), and up to
`max_concurrency` requests are in flight at once. Transient failures (429, 5xx, timeouts, refused or
reset connections) are retried with exponential backoff and jitter, honouring Retry-After; other 4xx
answers fail at once with the server's message. Streaming is not used.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import random
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any

from pgrpo.llm import Completion, OnResult, Prompt, SamplingParams, is_chat, truncate_at_stop

PROBE_TIMEOUT_S = 10.0
"""The first request (GET /models) waits at most this long: a server that is up answers it at once."""


class ServerError(ConnectionError):
    """The server answered with an error: a 4xx other than 429, or a 429/5xx that outlasted the retries,
    or an answer that is not OpenAI JSON. A ConnectionError, so `pgrpo` says it in one line (exit 2)."""

    def __init__(self, url: str, status: int, message: str) -> None:
        super().__init__(f"{url} answered HTTP {status}: {message}")
        self.url, self.status, self.message = url, status, message


class ServerUnreachable(ConnectionError):
    """No usable answer from the server at all (refused, reset, timed out, unknown host)."""


def api_root(url: str) -> str:
    """The URL that `/completions` is appended to: `http://h:8000` -> `http://h:8000/v1`; a URL that
    already has a path (`.../v1`, `.../v1beta/openai`) is kept, less a trailing endpoint name."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    for endpoint in ("/chat/completions", "/completions", "/models"):
        if path.endswith(endpoint):
            path = path[: -len(endpoint)]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path or "/v1", "", ""))


SHOWN = 80
"""At most this many characters of an answer that is not OpenAI JSON are quoted (never a whole page)."""


def _not_json(body: bytes | str, content_type: str | None) -> str:
    """What an answer that is not JSON looks like, in a few words: its content type and first characters."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    shown = text[:SHOWN] + ("..." if len(text) > SHOWN else "")
    return f"not an OpenAI JSON answer (content-type {content_type or 'not given'}): {shown!r}"


def _error_message(error: urllib.error.HTTPError) -> str:
    """The server's own words: OpenAI's `{"error": {"message"}}`, FastAPI's `detail`; for an answer
    that is not JSON (an HTML error page), its content type and first characters."""
    try:
        body = error.read().decode("utf-8", "replace")
    except OSError:
        return error.reason or "no message"
    try:
        data = json.loads(body)
    except ValueError:
        return _not_json(body, error.headers.get("Content-Type") if error.headers else None)
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict):
            for field in ("message", "detail", "error"):
                if inner.get(field):
                    return str(inner[field])
        elif inner:
            return str(inner)
    return body.strip()[:2000]


def _retry_after(headers: Any) -> float | None:
    """Seconds asked for by a Retry-After header (a number, fractions allowed, or an HTTP date)."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _is_transient(error: BaseException) -> bool:
    """Worth another try: refused/reset/aborted connections, timeouts, a truncated answer."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    return isinstance(error, (ConnectionError, TimeoutError, http.client.HTTPException))


def _is_refused(error: BaseException) -> bool:
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    return isinstance(reason, ConnectionRefusedError)


class OpenAIGenerator:
    """`Generator` over an OpenAI-compatible server at `base_url`."""

    def __init__(
        self,
        base_url: str,
        *,
        model_name: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        max_retries: int = 5,
        timeout_s: float = 600.0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        name: str | None = None,
        progress: bool = True,
    ) -> None:
        """Connect to `base_url` (e.g. `http://localhost:8000` or `https://api.example.com/v1`).

        model_name: the model to ask for; default: the first one the server lists at /models.
        api_key: sent as a Bearer token; default: $OPENAI_API_KEY (none for a local server).
        max_concurrency: requests in flight at once.
        max_retries: further attempts after a transient failure; the wait doubles each time from
            `backoff_s` up to `max_backoff_s`, times a random factor in [0.5, 1.5).
        timeout_s: per request; generous, since one request may generate thousands of tokens.
        name: the identity used in cache keys; default: the model name.
        """
        if max_concurrency < 1 or max_retries < 0:
            raise ValueError("max_concurrency must be >= 1 and max_retries >= 0")
        self.base_url = api_root(base_url)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.progress = progress
        listing = self.check_server()
        self.model_name = model_name or self._first_model(listing)
        self.name = name or self.model_name
        self._n_supported = True  # cleared once the server rejects n > 1 and accepts n = 1
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ HTTP

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.5)

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        retries: int | None = None,
        timeout: float | None = None,
    ) -> dict:
        """One JSON request with retries (default: max_retries); raises ServerError or ServerUnreachable."""
        retries = self.max_retries if retries is None else retries
        url = self.base_url + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        last: BaseException | None = None
        for attempt in range(retries + 1):
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method=method)
                with urllib.request.urlopen(req, timeout=timeout or self.timeout_s) as response:
                    raw, content_type = response.read(), response.headers.get("Content-Type")
            except urllib.error.HTTPError as e:
                error = ServerError(url, e.code, _error_message(e))
                if e.code != 429 and e.code < 500:
                    raise error from None
                last, delay = error, _retry_after(e.headers)
            except (OSError, http.client.HTTPException) as e:
                if not _is_transient(e):
                    raise ServerUnreachable(f"cannot reach {url}: {getattr(e, 'reason', e)}") from e
                last, delay = e, None
            else:
                try:
                    answer = json.loads(raw)
                except ValueError:
                    answer = None
                if not isinstance(answer, dict):
                    raise ServerError(url, 200, _not_json(raw, content_type)) from None
                return answer
            if attempt < retries:
                time.sleep(delay if delay is not None else self._backoff(attempt))
        tries = f"after {retries + 1} attempt{'s' if retries else ''}"
        if isinstance(last, ServerError):
            raise ServerError(url, last.status, f"{last.message} ({tries})")
        if last is not None and _is_refused(last):
            raise ServerUnreachable(
                f"no server answering at {url} ({tries}): start one, e.g. `vllm serve MODEL --port PORT` "
                "or `pgrpo serve --model PATH --port PORT`"
            )
        raise ServerUnreachable(f"no usable answer from {url} ({tries}): {last}")

    def check_server(self) -> dict:
        """GET /models once, quickly (no retries, at most `PROBE_TIMEOUT_S`), before any work: a server
        that is down, silent, or not an OpenAI server is found at once rather than after the backoff."""
        url = self.base_url + "/models"
        try:
            listing = self.request("GET", "/models", retries=0, timeout=min(self.timeout_s, PROBE_TIMEOUT_S))
        except ServerError as e:
            raise ServerError(url, e.status, f"{e.message} (is this an OpenAI-compatible server?)") from None
        if not isinstance(listing.get("data"), list):
            raise ServerError(
                url, 200, f"not an OpenAI model list (no 'data' list): {str(listing)[:SHOWN]!r}"
            )
        return listing

    def _first_model(self, listing: dict) -> str:
        models = listing["data"]
        if not models or not isinstance(models[0], dict) or "id" not in models[0]:
            raise ServerError(self.base_url + "/models", 200, "the server lists no models: pass model_name")
        return models[0]["id"]

    # ------------------------------------------------------------------ generation

    def _call(self, prompt: Prompt, params: SamplingParams, n: int, seed: int) -> list[str]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "seed": seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        chat = is_chat(prompt)
        if chat:
            answer = self.request("POST", "/chat/completions", {**body, "messages": prompt})
        else:
            answer = self.request("POST", "/completions", {**body, "prompt": prompt})
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not choices:
            raise ServerError(self.base_url, 200, f"the answer has no choices: {str(answer)[:200]}")
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        if chat:  # content is null when a reasoning model spent its whole budget thinking
            texts = [(c.get("message") or {}).get("content") or "" for c in choices]
        else:
            texts = [c.get("text") or "" for c in choices]
        return [
            Completion(t, "length" if c.get("finish_reason") == "length" else "stop")
            for t, c in zip(texts, choices, strict=True)
        ]

    def complete(self, prompt: Prompt, params: SamplingParams) -> list[str]:
        """The n completions of one prompt (one request when the server honours n)."""
        want = 1 if params.greedy else params.n
        texts: list[str] = []
        single = not self._n_supported
        while len(texts) < want:
            k = 1 if single else want - len(texts)
            try:
                # A fresh seed per request, or n single requests would return n copies of one sample.
                got = self._call(prompt, params, n=k, seed=params.seed + len(texts))
            except ServerError as e:
                if k > 1 and e.status in (400, 422):  # perhaps "n must be 1": try one at a time
                    single = True
                    continue
                raise
            if single and self._n_supported and want > 1:
                with self._lock:
                    self._n_supported = False
            texts.extend(got[: want - len(texts)])
        texts = [truncate_at_stop(t, params.stop) for t in texts]
        return texts * params.n if params.greedy else texts

    def generate(
        self, prompts: list[Prompt], params: SamplingParams, on_result: OnResult | None = None
    ) -> list[list[str]]:
        """`on_result(i, texts)` is called (in this thread) as soon as prompt i's request is answered."""
        from tqdm.auto import tqdm

        for prompt in prompts:
            is_chat(prompt)  # reject a malformed prompt before sending anything
        results: list[list[str]] = [[] for _ in prompts]
        todo: queue.SimpleQueue = queue.SimpleQueue()
        answers: queue.SimpleQueue = queue.SimpleQueue()
        for item in enumerate(prompts):
            todo.put(item)

        def work() -> None:
            while True:
                try:
                    i, prompt = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    answers.put((i, self.complete(prompt, params), None))
                except BaseException as e:  # handed to the caller's thread, which raises it
                    answers.put((i, None, e))

        # Daemon threads: after an error or Ctrl-C the caller leaves at once instead of waiting for
        # the requests still in flight (every answered one was already handed to on_result).
        for _ in range(min(self.max_concurrency, len(prompts))):
            threading.Thread(target=work, name="openai-http", daemon=True).start()
        bar = tqdm(  # disable=None: no bar when stderr is not a terminal
            total=len(prompts), desc="generate", file=sys.stderr, disable=None if self.progress else True
        )
        try:
            for _ in prompts:
                i, texts, error = answers.get()
                if error is not None:
                    raise error
                results[i] = texts
                bar.update(1)
                if on_result is not None:
                    on_result(i, texts)
        finally:
            bar.close()
            while True:  # nothing new is sent after an error or an interruption
                try:
                    todo.get_nowait()
                except queue.Empty:
                    break
        return results

    def __repr__(self) -> str:
        return f"OpenAIGenerator({self.base_url!r}, model_name={self.model_name!r})"
