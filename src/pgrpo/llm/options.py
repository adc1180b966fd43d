"""The generator's flags, defined once for every command that generates (eval, search, rm pairs,
rm build-bench): a config dataclass inherits `GeneratorOptions` and gets `--model`, `--backend`,
`--batch-size`, `--device` and `--generator-options`, with one help text and one check each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pgrpo.options import AT_LEAST_ONE, UsageError, option

BACKEND_CHOICES = ("auto", "transformers", "llamacpp", "vllm", "openai")


def json_object(text: str) -> dict:
    """`--generator-options` text: a JSON object, or a one-line error naming the flag."""
    import argparse

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at column {e.colno}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object like '{{\"max_concurrency\": 16}}', got {text!r}"
        )
    return value


def parse_device(text: str) -> str:
    """`--device` text: a torch device this machine has (cpu, cuda, cuda:1, mps), refused at parse time
    rather than when the model is on its way there."""
    import argparse

    import torch

    try:
        where = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:1 ..., got {text!r}") from None
    if where.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{text!r}: no CUDA on this machine (torch has no CUDA build or sees no GPU); use --device cpu"
            )
        if where.index is not None and where.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
            )
    elif where.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: no MPS on this machine; use --device cpu")
    return text


@dataclass
class GeneratorOptions:
    model: str | None = option(
        None,
        "the generator: a local model directory, a .gguf file, or an http(s):// OpenAI-compatible server",
    )
    backend: str = option("auto", "generation backend", choices=BACKEND_CHOICES)
    batch_size: int | None = option(
        None,
        "transformers: sequences per forward pass; llamacpp: sequences per worker process (default 8)",
        range=AT_LEAST_ONE,
    )
    device: str | None = option(None, "transformers: cpu, cuda, cuda:1, ...", parse=parse_device)
    generator_options: dict | None = option(
        None, "other backend options as JSON, e.g. '{\"max_concurrency\": 16}'", parse=json_object
    )

    def backend_options(self) -> dict[str, Any]:
        """What `load_generator` gets besides the model and backend."""
        extra = self.generator_options or {}
        if not isinstance(extra, dict):
            raise UsageError(f"--generator-options: expected a JSON object, got {extra!r}")
        return {
            **({"batch_size": self.batch_size} if self.batch_size else {}),
            **({"device": self.device} if self.device else {}),
            **extra,
        }


__all__ = ["BACKEND_CHOICES", "GeneratorOptions", "json_object", "parse_device"]
