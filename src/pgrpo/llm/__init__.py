"""Text generation behind one small interface: `Generator.generate(prompts, SamplingParams)`.

Evaluation, reward-model data and search all ask for "n texts per prompt" and never care which engine
produced them. Backends, looked up by name in `BACKENDS`:

- `transformers` (`pgrpo.llm.hf`): a local directory or a .gguf file, CPU or GPU; the reference path.
- `llamacpp` (`pgrpo.llm.llamacpp`): a .gguf file on the CPU through llama-cpp-python (the `llamacpp`
  extra), several sequences per decode step in one 1-thread process per core; 2-3x the transformers
  backend's tokens/s on SmolLM2.
- `vllm` (`pgrpo.llm.vllm_backend`): fast batched sampling on a CUDA machine with vLLM installed.
- `openai` (`pgrpo.llm.openai_http`): any OpenAI-compatible HTTP server (vLLM serve, TGI, llama.cpp,
  hosted APIs, or `pgrpo serve`).

A prompt is a plain string (completion style: the text goes to the model as is) or a list of chat
messages `{"role", "content"}` (the backend applies the model's chat template). Outputs are only the
new text, cut before the first stop string. Importing this module is cheap: torch, transformers and
vLLM are imported inside the backends.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, Union, runtime_checkable

from pgrpo.options import UsageError

Message = dict[str, str]
Prompt = Union[str, list[Message]]
OnResult = Callable[[int, list[str]], None]
"""`on_result(i, texts)`: prompt i's texts are done (a backend calls it as each one finishes)."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample; the same meaning in every backend (the names follow vLLM and the OpenAI API)."""

    n: int = 1
    """Completions per prompt. With temperature 0 they are identical (the backend generates once)."""
    temperature: float = 0.0
    """0 means greedy decoding; higher values flatten the distribution before sampling."""
    top_p: float = 1.0
    """Nucleus sampling: sample only from the smallest set of tokens whose probability reaches top_p."""
    max_tokens: int = 512
    """At most this many new tokens per completion (the prompt does not count)."""
    stop: tuple[str, ...] = ()
    """Stop strings: the text is cut before the first occurrence of any of them (which is not returned)."""
    seed: int = 0
    """Seed for sampling, so that a run can be repeated. Backends honour it as far as the engine allows."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be at least 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"SamplingParams.max_tokens must be at least 1, got {self.max_tokens}")
        if isinstance(self.stop, str):  # a bare string would be read as a tuple of characters
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stop": list(self.stop)}


@runtime_checkable
class Generator(Protocol):
    """Anything that turns prompts into n completions each."""

    name: str
    """The model's identity; cache keys use it, so two different models must not share a name."""

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[str]]:
        """One list of `params.n` texts per prompt, in prompt order; only the new text.

        A backend may also take `on_result(i, texts)`, called as soon as prompt i's texts are done
        (the cache saves each one then, so an interruption loses only the requests in flight)."""
        ...


def takes_on_result(generator: Generator) -> bool:
    """Whether `generator.generate` reports each prompt's texts as they are done (`on_result=`)."""
    try:
        return "on_result" in inspect.signature(generator.generate).parameters
    except (TypeError, ValueError):
        return False


class Completion(str):
    """A completion's text that also says why it ended, as OpenAI reports it: finish_reason "stop" (the
    model ended it, or a stop sequence did) or "length" (max_tokens, or the context, was reached).
    Backends that know return these; anything else treats them as plain strings."""

    finish_reason: str

    def __new__(cls, text: str, finish_reason: str = "stop") -> Completion:
        completion = super().__new__(cls, text)
        completion.finish_reason = finish_reason
        return completion


def finish_reason(text: str) -> str:
    """ "length" when the backend said the token limit cut `text`, else "stop"."""
    return getattr(text, "finish_reason", "stop")


def truncate_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> str:
    """`text` up to (not including) the earliest occurrence of any stop string; `text` itself (a
    Completion keeps its finish_reason) when none occurs."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text if cut == len(text) else text[:cut]


def is_chat(prompt: Prompt) -> bool:
    """A list of messages (chat template applies) rather than a plain string."""
    if isinstance(prompt, str):
        return False
    if isinstance(prompt, list) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in prompt
    ):
        return True
    raise TypeError(
        "a prompt is a string or a list of {'role': ..., 'content': ...} messages, "
        f"got {type(prompt).__name__}: {str(prompt)[:80]!r}"
    )


def has_chat_template(generator: Generator) -> bool:
    """Whether `generator` can take chat messages. False only for a local model whose tokenizer has no
    chat template (what `pgrpo train` saves from a base or tiny model); a server applies its own."""
    inner = generator
    while hasattr(inner, "inner"):  # CachedGenerator and other wrappers
        inner = inner.inner
    tokenizer = getattr(inner, "tokenizer", None)
    if tokenizer is None and hasattr(inner, "llm"):  # vLLM
        tokenizer = inner.llm.get_tokenizer()
    return tokenizer is None or getattr(tokenizer, "chat_template", None) is not None


# ----------------------------------------------------------------------------- backends


# Where each option comes from when it is not --generator-options (what the message should name).
_OPTION_FLAGS = {"batch_size": "--batch-size", "device": "--device"}


def check_backend_options(backend: str, cls: type, options: dict[str, Any]) -> None:
    """Refuse an option the backend's constructor does not take: UsageError naming the flag it came
    from and listing the valid ones. A constructor that takes **kwargs passes them on (vLLM's engine
    arguments) and is not checked here."""
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, model
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    valid = [p.name for p in params]
    unknown = sorted(key for key in options if key not in valid)
    if unknown:
        flags = sorted({_OPTION_FLAGS.get(key, "--generator-options") for key in unknown})
        raise UsageError(
            f"{', '.join(flags)}: {backend} backend: unknown option {', '.join(unknown)}; "
            f"valid: {', '.join(valid)}"
        )


def _transformers(model: str, **options: Any) -> Generator:
    from pgrpo.llm.hf import TransformersGenerator

    check_backend_options("transformers", TransformersGenerator, options)
    return TransformersGenerator(model, **options)


def _llamacpp(model: str, **options: Any) -> Generator:
    from pgrpo.llm.llamacpp import LlamaCppGenerator

    check_backend_options("llamacpp", LlamaCppGenerator, options)
    return LlamaCppGenerator(model, **options)


def _vllm(model: str, **options: Any) -> Generator:
    from pgrpo.llm.vllm_backend import VLLMGenerator

    check_backend_options("vllm", VLLMGenerator, options)
    return VLLMGenerator(model, **options)


def _openai(model: str, **options: Any) -> Generator:
    from pgrpo.llm.openai_http import OpenAIGenerator

    check_backend_options("openai", OpenAIGenerator, options)
    return OpenAIGenerator(model, **options)


BACKENDS: dict[str, Callable[..., Generator]] = {
    "transformers": _transformers,
    "llamacpp": _llamacpp,
    "vllm": _vllm,
    "openai": _openai,
}
"""Backend name -> factory(model, **options). `load_generator` picks from here."""


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _is_gguf(model: str) -> bool:
    """A .gguf file, or a directory holding one .gguf file and no config.json."""
    path = Path(model).expanduser()
    if path.is_dir():
        return not (path / "config.json").exists() and len(list(path.glob("*.gguf"))) == 1
    return path.suffix == ".gguf" and path.is_file()


def pick_backend(model: str) -> str:
    """`openai` for an http(s) URL, `vllm` when it is installed and CUDA is there, `llamacpp` for a .gguf
    file when llama-cpp-python is installed, else `transformers`."""
    if model.startswith(("http://", "https://")):
        return "openai"
    if importlib.util.find_spec("vllm") is not None and _cuda_available():
        return "vllm"
    if _is_gguf(model) and importlib.util.find_spec("llama_cpp") is not None:
        return "llamacpp"
    return "transformers"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _in_hub_cache(name: str) -> bool:
    """Whether the local Hugging Face cache holds the model `name` (its config.json); never downloads."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        found = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repo id (HFValidationError)
        return False
    return isinstance(found, str)


_CLASSIFIER_HEADS = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")


def _classifier(path: Path) -> str | None:
    """The architecture named in `path`/config.json when it is a classifier (a reward model), else None.
    An unreadable config.json is left to the loader to report."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    architectures = config.get("architectures") if isinstance(config, dict) else None
    for name in architectures if isinstance(architectures, list) else []:
        if isinstance(name, str) and name.endswith(_CLASSIFIER_HEADS):
            return name
    return None


def check_model(model: str | None, flag: str = "--model", backend: str = "auto") -> None:
    """Refuse a model that cannot be loaded, before anything is loaded: UsageError naming `flag`.

    Accepted: an http(s):// URL, a directory with a config.json or one .gguf file, a .gguf file, a
    model in the local Hugging Face cache, or (only when HF_HUB_OFFLINE is not set) a hub name such
    as `org/name` that transformers or vLLM will download."""
    if not model:
        raise UsageError(f"{flag}: give a model directory, a .gguf file or an http(s):// server URL")
    if model.startswith(("http://", "https://")):
        return
    if backend == "openai":
        raise UsageError(f"{flag} {model}: the openai backend needs an http(s):// server URL")
    path = Path(model).expanduser()
    if path.is_dir():
        classifier = _classifier(path)
        if classifier:
            raise UsageError(
                f"{flag} {model}: a classifier ({classifier}), not a model that generates text "
                "(a reward model is scored with `pgrpo rm bench` or served with `pgrpo rm serve`)"
            )
        if (path / "config.json").exists() or any(path.glob("*.gguf")):
            return
        raise UsageError(f"{flag} {model}: a directory, but not a model (no config.json and no .gguf file)")
    if path.exists():
        if path.suffix == ".gguf":
            return
        raise UsageError(f"{flag} {model}: a file, but not a .gguf model")
    looks_like_hub_name = not model.startswith((".", "/", "~")) and model.count("/") <= 1
    if looks_like_hub_name and (_in_hub_cache(model) or not _offline()):
        return
    raise UsageError(
        f"{flag} {model}: neither a directory, a .gguf file nor a cached hub model"
        + (" (HF_HUB_OFFLINE is set: nothing is downloaded)" if looks_like_hub_name else "")
    )


def load_generator(
    model: str,
    backend: str = "auto",
    cache_dir: str | None = None,
    *,
    model_flag: str = "--model",
    **options: Any,
) -> Generator:
    """A generator for `model` (a local directory, a .gguf file, a hub name for vLLM, or a server URL).

    The model is checked first (`check_model`); a wrong one is a UsageError naming `model_flag`.

    `options` go to the backend (e.g. `device`, `batch_size` for transformers; `max_concurrency`,
    `api_key`, `model_name` for openai). With `cache_dir`, completions are cached on disk
    (`pgrpo.llm.cache.CachedGenerator`), so a rerun or a resumed run only pays for what is missing.
    """
    if backend != "auto" and backend not in BACKENDS:
        raise UsageError(
            f"unknown generation backend {backend!r}; valid: auto, {', '.join(sorted(BACKENDS))}"
        )
    check_model(model, model_flag, backend)
    name = pick_backend(model) if backend == "auto" else backend
    generator = BACKENDS[name](model, **options)
    if cache_dir is not None:
        from pgrpo.llm.cache import CachedGenerator

        generator = CachedGenerator(generator, cache_dir)
    return generator


__all__ = [
    "BACKENDS",
    "Completion",
    "Generator",
    "Message",
    "OnResult",
    "Prompt",
    "SamplingParams",
    "finish_reason",
    "has_chat_template",
    "is_chat",
    "check_backend_options",
    "check_model",
    "load_generator",
    "pick_backend",
    "takes_on_result",
    "truncate_at_stop",
]
