"""A reward model over HTTP: the client (`HttpScorer`) and the service (`serve_scorer`, `pgrpo rm serve`).

- `HttpScorer`: a model served elsewhere: `pgrpo rm serve` (`POST /score`) or vLLM's `/classify` and
  `/pooling`. Transient failures (429, 5xx, timeouts, refused connections) are retried with backoff;
  afterwards `ScorerUnavailable` is raised, which callers turn into a masked (None) reward, never 0.
- `serve_scorer` / `main`: `pgrpo rm serve --model DIR --port N`, standard library only; the model is
  checked (a trained score head) before the port is bound.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import ThreadingHTTPServer
from typing import Any

from pgrpo.httpjson import JsonHandler, bind_error, check_port, run_server
from pgrpo.llm.openai_http import _error_message, _is_refused, _is_transient, _retry_after
from pgrpo.rm.score import TEMPLATE, LocalScorer, Scorer, ScorerUnavailable, _check_lengths, format_input

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
    from pgrpo.options import Parser, add_options, from_args
    from pgrpo.rm.options import ServeOptions

    parser = Parser(prog="pgrpo rm serve", description="serve a reward model over HTTP: POST /score")
    add_options(parser, ServeOptions)
    args = from_args(ServeOptions, parser.parse_args(argv))

    check_port(args.host, args.port)  # before the model loads
    scorer = LocalScorer(args.model, args.batch_size, args.device, args.max_length, where="--model")
    try:
        server = serve_scorer(scorer, args.host, args.port)
    except OSError as e:
        raise bind_error(e, args.host, args.port) from None
    run_server(server, f"reward model {args.model}", "/score", args.verbose or log.verbose())


if __name__ == "__main__":
    main()
