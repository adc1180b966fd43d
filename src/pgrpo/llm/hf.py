"""The transformers backend: a local model directory or a .gguf file, on CPU or one GPU.

The slow but dependable path: it runs anywhere torch does, and it is what the tests and the CPU
machine use. Prompts are batched with left padding (sorted by length, so a batch pads little);
greedy decoding runs once per prompt and is repeated n times; sampling draws n sequences per prompt
with the global torch RNG seeded from `SamplingParams.seed` for each batch (restored afterwards), so
a rerun with the same prompts, params and batch size reproduces its samples.

Limits: no continuous batching or paged attention (use vLLM on a GPU for throughput); a GGUF file is
de-quantized to full precision on load (SmolLM2-135M Q4_1 takes ~30 s on 2 CPU cores).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from pgrpo.llm import Completion, OnResult, Prompt, SamplingParams, is_chat, truncate_at_stop


def _locate(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """(directory, gguf file name or None) for a directory, a .gguf path, or a directory holding one .gguf."""
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if gguf_file is not None or not path.is_dir() or (path / "config.json").exists():
        return str(path) if path.exists() else model, gguf_file
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return str(path), ggufs[0].name
    if len(ggufs) > 1:
        raise ValueError(
            f"{path} holds several .gguf files ({', '.join(g.name for g in ggufs)}): "
            "pass the file itself as the model, or gguf_file=NAME"
        )
    return str(path), None


@contextlib.contextmanager
def _unloadable(model: str) -> Iterator[None]:
    """transformers' refusals to load (a directory with a config but no tokenizer or weights, a
    corrupt file) as one line naming the model; their messages run over several lines."""
    from pgrpo.options import UsageError

    try:
        yield
    except (OSError, ValueError, KeyError) as e:
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        missing = _missing_files(Path(model))
        why = f"it has no {' and no '.join(missing)}" if missing else first
        raise UsageError(f"--model {model}: transformers cannot load it: {why}") from e


MODEL_FILES = {
    "weights (*.safetensors, *.bin)": ("*.safetensors", "*.bin", "*.safetensors.index.json"),
    "tokenizer (tokenizer.json, tokenizer_config.json)": (
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
    ),
}


def _missing_files(directory: Path) -> list[str]:
    """What a model directory lacks that transformers needs (empty for a file or a complete directory)."""
    if not directory.is_dir() or any(directory.glob("*.gguf")):
        return []
    return [
        what for what, patterns in MODEL_FILES.items() if not any(any(directory.glob(p)) for p in patterns)
    ]


@contextlib.contextmanager
def _load_bars(show: bool) -> Iterator[None]:
    """transformers' loading bars (GGUF de-quantizing, weights) only on a terminal: in a log file each
    redraw is another line."""
    import functools

    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    try:  # the GGUF de-quantizing bar is a plain tqdm, which hf_logging's switch does not reach
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        gguf_utils = None
    gguf_bar = getattr(gguf_utils, "tqdm", None)
    if not show:
        hf_logging.disable_progress_bar()
        if gguf_bar is not None:
            gguf_utils.tqdm = functools.partial(gguf_bar, disable=True)
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
        if gguf_bar is not None:
            gguf_utils.tqdm = gguf_bar


def _ids(token_ids: int | list[int] | None) -> list[int]:
    """generation_config.eos_token_id as a list (it may be one id, several, or none)."""
    if token_ids is None:
        return []
    return [token_ids] if isinstance(token_ids, int) else list(token_ids)


class TransformersGenerator:
    """`Generator` over `transformers.AutoModelForCausalLM`."""

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        gguf_file: str | None = None,
        name: str | None = None,
        progress: bool = True,
        trust_remote_code: bool = False,
    ) -> None:
        """Load `model`.

        device: "cpu", "cuda", "cuda:1", ...; default: cuda when available, else cpu.
        dtype: "float32", "bfloat16", "float16"; default: bfloat16 on a GPU that supports it, else float32
            (bf16 on CPU is several times slower here).
        batch_size: sequences per forward pass (prompts x samples); prompts per batch = batch_size // n.
        gguf_file: the .gguf file inside the directory `model` (also found when `model` is the file).
        name: the identity used in cache keys; default: the resolved model path.
        """
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        directory, gguf = _locate(model, gguf_file)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            bf16_ok = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
            torch_dtype = torch.bfloat16 if bf16_ok else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        local = Path(directory, gguf or "")
        self.name = name or (str(local.resolve()) if local.exists() else directory)  # hub names stay as is
        self.batch_size = batch_size
        self.progress = progress

        load = {"gguf_file": gguf} if gguf else {}
        with _load_bars(progress and sys.stderr.isatty()), _unloadable(model):
            self.tokenizer = AutoTokenizer.from_pretrained(
                directory, trust_remote_code=trust_remote_code, **load
            )
            self.model = AutoModelForCausalLM.from_pretrained(
                directory, dtype=torch_dtype, trust_remote_code=trust_remote_code, **load
            ).to(self.device)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_token_id = eos if eos is not None else self.tokenizer.eos_token_id

    def render(self, prompt: Prompt) -> str:
        """The text the model sees: a string as is, messages through the chat template."""
        if not is_chat(prompt):
            return prompt
        if self.tokenizer.chat_template is None:
            raise ValueError(f"{self.name} has no chat template: pass plain string prompts instead")
        return self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)

    def _encode(self, prompt: Prompt) -> list[int]:
        # A rendered chat template already holds its special tokens (BOS and all); adding them again
        # would double the BOS.
        return self.tokenizer(self.render(prompt), add_special_tokens=not is_chat(prompt))["input_ids"]

    def generate(
        self, prompts: list[Prompt], params: SamplingParams, on_result: OnResult | None = None
    ) -> list[list[str]]:
        """`on_result(i, texts)` is called for each prompt of a batch as soon as the batch is done."""
        from tqdm.auto import tqdm

        encoded = [self._encode(p) for p in prompts]
        per_call = 1 if params.greedy else params.n
        step = max(1, self.batch_size // per_call)
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        batches = [order[i : i + step] for i in range(0, len(order), step)]
        results: list[list[str]] = [[] for _ in prompts]
        bar = tqdm(  # disable=None: no bar when stderr is not a terminal
            batches, desc="generate", unit="batch", file=sys.stderr, disable=None if self.progress else True
        )
        for batch_index, batch in enumerate(bar):
            texts = self._generate_batch([encoded[i] for i in batch], params, seed=params.seed + batch_index)
            for k, i in enumerate(batch):
                mine = texts[k * per_call : (k + 1) * per_call]
                results[i] = mine * params.n if params.greedy else mine
                if on_result is not None:
                    on_result(i, results[i])
        return results

    def _generate_batch(self, ids: list[list[int]], params: SamplingParams, seed: int) -> list[str]:
        import torch
        from transformers import GenerationConfig

        inputs = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt").to(self.device)
        # A fresh config, not the model's: its defaults (top_k=50, repetition penalties...) would make
        # the same SamplingParams mean different things here and in vLLM.
        config = GenerationConfig(
            max_new_tokens=params.max_tokens,
            do_sample=not params.greedy,
            num_return_sequences=1 if params.greedy else params.n,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.eos_token_id,
            stop_strings=list(params.stop) or None,
            **(
                {}
                if params.greedy
                else {"temperature": params.temperature, "top_p": params.top_p, "top_k": 0}
            ),
        )
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = self.model.generate(**inputs, generation_config=config, tokenizer=self.tokenizer)
        new = out[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        # A row the limit cut is full length and ends in neither padding nor an end token (a finished
        # row is padded); one a stop string ended is cut by truncate_at_stop.
        ends = {self.tokenizer.pad_token_id, *_ids(self.eos_token_id)}
        cut = [new.shape[1] >= params.max_tokens and int(row[-1]) not in ends for row in new]
        completions = []
        for text, limited in zip(texts, cut, strict=True):
            kept = truncate_at_stop(text, params.stop)
            completions.append(Completion(kept, "length" if limited and kept == text else "stop"))
        return completions

    def __repr__(self) -> str:
        return f"TransformersGenerator({self.name!r}, device={self.device}, batch_size={self.batch_size})"
