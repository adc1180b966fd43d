"""A tiny OpenAI-compatible HTTP server in front of any Generator (standard library only).

    pgrpo serve --model PATH --port 8000

Serves GET /v1/models, POST /v1/completions and POST /v1/chat/completions (no streaming, no logprobs,
no token usage). Requests that arrive while the model is busy are queued and then generated together,
one `generate` call per distinct set of sampling parameters, so concurrent clients share batches.
Its job is to let the `openai` backend's real path run end to end against a real model, and to put a
CPU model behind a URL; for throughput on a GPU, use `vllm serve`.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import Future
from http.server import ThreadingHTTPServer

from pgrpo.httpjson import JsonHandler, bind_error, check_port, run_server
from pgrpo.llm import Generator, Prompt, SamplingParams, finish_reason, is_chat, load_generator
from pgrpo.llm.options import BACKEND_CHOICES, parse_device
from pgrpo.options import AT_LEAST_ONE, PORT, Parser


class BadRequest(ValueError):
    """A request the server cannot serve; its message goes back to the client with HTTP 400."""


class Batcher:
    """One thread that owns the generator: it drains the queue and generates each batch in one call."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self._queue: queue.Queue[tuple[Prompt, SamplingParams, Future]] = queue.Queue()
        threading.Thread(target=self._run, name="generate", daemon=True).start()

    def submit(self, prompt: Prompt, params: SamplingParams) -> Future:
        future: Future = Future()
        self._queue.put((prompt, params, future))
        return future

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            groups: dict[SamplingParams, list[tuple[Prompt, Future]]] = defaultdict(list)
            for prompt, params, future in batch:
                groups[params].append((prompt, future))
            for params, items in groups.items():
                try:
                    outputs = self.generator.generate([p for p, _ in items], params)
                except Exception as e:  # the error belongs to the requests; the server goes on
                    for _, future in items:
                        future.set_exception(e)
                    continue
                for (_, future), texts in zip(items, outputs):
                    future.set_result(texts)


def sampling_params(body: dict) -> SamplingParams:
    """The request's sampling fields, with OpenAI's defaults where it has them."""
    stop = body.get("stop") or ()
    try:
        return SamplingParams(
            n=int(body.get("n") or 1),
            temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)),
            max_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 512),
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            seed=int(body.get("seed") or 0),
        )
    except (TypeError, ValueError) as e:
        raise BadRequest(str(e)) from None


def _prompts(body: dict, chat: bool) -> list[Prompt]:
    if chat:
        messages = body.get("messages")
        try:
            if not messages or not is_chat(messages):
                raise TypeError
        except TypeError:
            raise BadRequest("'messages' must be a non-empty list of {'role', 'content'} objects") from None
        return [messages]
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise BadRequest("'prompt' must be a string or a non-empty list of strings")
    return prompts


def make_server(generator: Generator, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server for `generator` bound to host:port (port 0 picks a free one); call `serve_forever()`."""
    batcher = Batcher(generator)

    class Handler(JsonHandler):
        def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
            self._reply(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                return self._error(404, f"no route {self.path}; try /v1/models")
            model = {"id": generator.name, "object": "model", "created": 0, "owned_by": "pgrpo"}
            self._reply(200, {"object": "list", "data": [model]})

        def do_POST(self) -> None:
            route = self.path.rstrip("/")
            if route not in ("/v1/completions", "/v1/chat/completions"):
                return self._error(404, f"no route {self.path}; try /v1/completions or /v1/chat/completions")
            chat = route.endswith("chat/completions")
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if not isinstance(body, dict):
                    raise BadRequest("the request body must be a JSON object")
                if body.get("stream"):
                    raise BadRequest("streaming is not supported by this server")
                params = sampling_params(body)
                futures = [batcher.submit(p, params) for p in _prompts(body, chat)]
            except (BadRequest, ValueError) as e:
                return self._error(400, str(e))
            try:
                outputs = [f.result() for f in futures]
            except Exception as e:  # a generation failure is the server's, not the client's
                return self._error(500, f"{type(e).__name__}: {e}", "server_error")
            texts = [t for texts in outputs for t in texts]
            if chat:
                choices = [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": t},
                        "finish_reason": finish_reason(t),
                    }
                    for i, t in enumerate(texts)
                ]
            else:
                choices = [
                    {"index": i, "text": t, "logprobs": None, "finish_reason": finish_reason(t)}
                    for i, t in enumerate(texts)
                ]
            self._reply(
                200,
                {
                    "id": f"cmpl-{uuid.uuid4().hex}",
                    "object": "chat.completion" if chat else "text_completion",
                    "created": int(time.time()),
                    "model": generator.name,
                    "choices": choices,
                },
            )

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.verbose = False  # type: ignore[attr-defined]
    return server


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="pgrpo serve", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model directory, .gguf file or (vllm) hub name")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_CHOICES,
        help="generation backend",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 for all)")
    parser.add_argument("--port", type=PORT.parse, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--name", help="model id reported at /v1/models (default: the model path)")
    parser.add_argument("--device", type=parse_device, help="transformers: cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--batch-size", type=AT_LEAST_ONE.parse, help="transformers: sequences per forward pass"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    check_port(args.host, args.port)
    options = {"name": args.name, "device": args.device, "batch_size": args.batch_size}
    generator = load_generator(
        args.model, args.backend, **{k: v for k, v in options.items() if v is not None}
    )
    try:
        server = make_server(generator, args.host, args.port)
    except OSError as e:  # taken while the model loaded
        raise bind_error(e, args.host, args.port) from None
    run_server(server, generator.name, "/v1", args.verbose)


if __name__ == "__main__":  # through pgrpo's main: one-line errors, exit 2
    import sys

    from pgrpo.cli import main as pgrpo_main

    sys.exit(pgrpo_main(["serve", *sys.argv[1:]]))
