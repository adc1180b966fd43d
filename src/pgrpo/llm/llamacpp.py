"""The llama.cpp backend (llama-cpp-python): a .gguf model on the CPU, several sequences per decode step.

llama-cpp-python's high-level `Llama` generates one prompt at a time, so this backend drives the
low-level API: one context holds up to `batch_size` sequences, each with its own KV cells (its own
sequence id), and each decode step feeds the next token of every running sequence in one `llama_batch`.
A sequence that ends frees its cells and the next prompt takes its place (continuous batching); a new
prompt is read alone, in 512-token decodes, because a prompt split differently or read beside other
sequences' tokens can change the logits in their last bits and flip a greedy choice. So greedy texts do
not depend on the batch size or the worker count (tests/test_llamacpp.py). `workers` processes of
`threads` threads each (default: one 1-thread process per core; two threads in one process lose much
more to a busy neighbour than two processes do) take the prompts round-robin; with one worker the
model runs in this process.

Sampling: greedy (temperature 0) decodes once per prompt and repeats the text n times; otherwise each
of the n samples is its own sequence with a temperature -> top-p -> random-draw chain (no top-k, as in
the other backends) seeded from (`SamplingParams.seed` + sample index, prompt tokens): the seeds, and so the samples,
do not depend on the batch size, the worker count or the prompt's place in the call, and the cache's
shifted seed for a partly cached prompt continues the same sample numbering.

Limits: CPU only (the transformers and vLLM backends serve the GPU); flash attention is off unless asked,
since it changes greedy outputs; a prompt must fit the model's training context.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import sys
from array import array
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgrpo.llm import Completion, OnResult, Prompt, SamplingParams, is_chat, truncate_at_stop
from pgrpo.llm.gguf_tokenizer import GGUFTokenizer
from pgrpo.options import UsageError

if TYPE_CHECKING:
    from pgrpo.llm.llamacpp_workers import Pool

INSTALL_HINT = (
    "the llamacpp backend needs llama-cpp-python, which is not installed: pip install -e '.[llamacpp]' "
    "(a source build: about 9 minutes on 2 cores, needs cmake and a C++ compiler)"
)
CONTEXT_STEP = 256
"""Per-sequence context sizes are rounded up to this, so calls of similar lengths reuse one context."""
PREFILL_TOKENS = 512
"""Prompt tokens per decode call (llama.cpp's n_batch and n_ubatch); longer prompts take several."""


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    if not hasattr(llama_cpp, "llama_memory_seq_rm") or not hasattr(
        llama_cpp, "LLAMA_FLASH_ATTN_TYPE_DISABLED"
    ):
        raise UsageError(
            f"the llamacpp backend needs llama-cpp-python >= 0.3.36, found {llama_cpp.__version__}: "
            "pip install -U -e '.[llamacpp]'"
        )
    return llama_cpp


def _quiet(verbose: bool) -> None:
    """llama.cpp's loading chatter (hundreds of lines) only under --verbose; errors always."""
    logging.getLogger("llama-cpp-python").setLevel(logging.DEBUG if verbose else logging.ERROR)


def _gguf_path(model: str) -> Path:
    """The .gguf file `model` names, or the one inside the directory `model`."""
    path = Path(model).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) > 1:
            raise UsageError(f"{model} holds {len(found)} .gguf files: pass the one to load")
        path = found[0] if found else path
    if path.suffix != ".gguf" or not path.is_file():
        raise UsageError(f"{model}: the llamacpp backend loads a .gguf file (use --backend transformers)")
    return path.resolve()


def _load_model(llama_cpp: Any, path: Path, vocab_only: bool) -> Any:
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = vocab_only
    params.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise UsageError(f"{path}: llama.cpp could not load this .gguf file (run with --verbose to see why)")
    return model


def _meta(lib: Any, model: Any, key: str) -> str | None:
    buffer = ctypes.create_string_buffer(1024)
    n = lib.llama_model_meta_val_str(model, key.encode(), buffer, len(buffer))
    return buffer.value.decode("utf-8", "replace") if n >= 0 else None


def _context_length(lib: Any, model: Any) -> int:
    """The training context from the GGUF's metadata (a vocab-only model leaves n_ctx_train at 0)."""
    value = _meta(lib, model, f"{_meta(lib, model, 'general.architecture')}.context_length")
    return int(value) if value and value.isdigit() else 2048


def _sample_seed(seed: int, tokens: list[int]) -> int:
    """A 32-bit seed from (seed, prompt tokens); never 0xFFFFFFFF, which llama.cpp reads as 'random'."""
    digest = hashlib.blake2b(str(seed).encode() + b":" + array("i", tokens).tobytes(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") % 0xFFFFFFFF


# ----------------------------------------------------------------------------- the decoding loop


class _Sequence:
    """One running sequence in a context slot (its sequence id)."""

    def __init__(self, key: Any, slot: int, sampler: Any) -> None:
        self.key = key
        self.slot = slot
        self.sampler = sampler  # None: greedy
        self.pos = 0  # tokens in its KV cells
        self.output = -1  # where its logits are in the last decode's outputs
        self.new = 0  # tokens generated
        self.last = -1  # the last generated token, fed in the next step
        self.text = bytearray()
        self.finish_reason = "stop"  # "length" when max_tokens or the context ended it


class Decoder:
    """A model and one context of `batch_size` sequences; `run` decodes a list of prompts with continuous
    batching. Used in this process (one worker) or inside each worker process."""

    def __init__(self, path: Path, *, threads: int, batch_size: int, flash_attn: bool, verbose: bool) -> None:
        self.lib = _import_llama_cpp()
        _quiet(verbose)
        self.lib.llama_backend_init()
        self.model = _load_model(self.lib, path, vocab_only=False)
        self.vocab = self.lib.llama_model_get_vocab(self.model)
        self.tokenizer = GGUFTokenizer(self.lib, self.model)
        self.n_ctx_train = self.tokenizer.n_ctx_train
        self.threads = threads
        self.batch_size = min(batch_size, self.lib.llama_max_parallel_sequences())
        self.flash_attn = flash_attn
        self.ctx: Any = None
        self.per_seq = 0
        self.batch = self.lib.llama_batch_init(max(PREFILL_TOKENS, self.batch_size), 0, 1)
        self.greedy = self.lib.llama_sampler_init_greedy()
        self._piece = (ctypes.c_char * 256)()

    def _context(self, per_seq: int) -> Any:
        """A context whose sequences hold `per_seq` tokens each (grown, never shrunk)."""
        if self.ctx is not None and per_seq <= self.per_seq:
            self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)
            return self.ctx
        if self.ctx is not None:
            self.lib.llama_free(self.ctx)
        params = self.lib.llama_context_default_params()
        params.n_ctx = per_seq * self.batch_size
        params.n_batch = params.n_ubatch = max(PREFILL_TOKENS, self.batch_size)
        params.n_seq_max = self.batch_size
        params.kv_unified = False
        params.n_threads = params.n_threads_batch = self.threads
        params.flash_attn_type = (
            self.lib.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if self.flash_attn
            else self.lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.no_perf = True
        self.ctx = self.lib.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not make a context of {params.n_ctx} tokens")
        self.per_seq = per_seq
        return self.ctx

    def _sampler(self, params: dict, seed: int) -> Any:
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(params["temperature"]))
        if params["top_p"] < 1:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(params["top_p"], 1))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed))
        return chain

    def _piece_bytes(self, token: int) -> bytes:
        buffer = self._piece
        n = self.lib.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, False)
        if n < 0:
            buffer = (ctypes.c_char * -n)()
            n = self.lib.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, False)
        return bytes(buffer[:n])

    def _decode(self, feeds: list[tuple[_Sequence, list[int], bool]]) -> None:
        """One llama_decode of (sequence, tokens, want the last token's logits) for each feed."""
        batch, n = self.batch, 0
        for seq, tokens, logits in feeds:
            for token in tokens:
                batch.token[n] = token
                batch.pos[n] = seq.pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq.slot
                batch.logits[n] = False
                seq.pos += 1
                n += 1
            batch.logits[n - 1] = logits
            seq.output = n - 1
        batch.n_tokens = n
        status = self.lib.llama_decode(self.ctx, batch)
        if status != 0:
            raise RuntimeError(
                f"llama_decode failed with status {status} ({len(feeds)} sequences, {n} tokens)"
            )

    def _step(self, seq: _Sequence, params: dict, per_seq: int) -> bool:
        """Pick `seq`'s next token from the last decode; True when the sequence is finished."""
        token = self.lib.llama_sampler_sample(seq.sampler or self.greedy, self.ctx, seq.output)
        if self.lib.llama_vocab_is_eog(self.vocab, token):
            return True
        seq.text += self._piece_bytes(token)
        seq.new += 1
        seq.last = token
        stop = params["stop"]
        if stop and any(s in seq.text.decode("utf-8", "ignore") for s in stop if s):
            return True
        if seq.new >= params["max_tokens"] or seq.pos >= per_seq:
            seq.finish_reason = "length"
            return True
        return False

    def run(
        self, jobs: list[tuple[Any, list[int], int | None]], params: dict, per_seq: int
    ) -> Iterator[tuple[Any, str]]:
        """Yield (key, text) for each job (key, prompt tokens, seed or None for greedy) as it finishes.

        A new prompt is read alone, in decodes of PREFILL_TOKENS (llama.cpp's n_ubatch), and only the
        one-token steps are batched: a prompt split at other places, or read together with other
        sequences' tokens, can change the logits in the last bits and so flip a greedy choice."""
        self._context(per_seq)
        memory = self.lib.llama_get_memory(self.ctx)
        todo = list(reversed(jobs))
        free = list(reversed(range(self.batch_size)))
        running: list[_Sequence] = []

        def finish(seq: _Sequence) -> tuple[Any, str]:
            self.lib.llama_memory_seq_rm(memory, seq.slot, -1, -1)
            free.append(seq.slot)
            if seq.sampler is not None:
                self.lib.llama_sampler_free(seq.sampler)
            text = seq.text.decode("utf-8", "replace")
            kept = truncate_at_stop(text, params["stop"])
            return seq.key, Completion(kept, seq.finish_reason if kept == text else "stop")

        while todo or running:
            while todo and free:
                key, tokens, seed = todo.pop()
                seq = _Sequence(key, free.pop(), None if seed is None else self._sampler(params, seed))
                for start in range(0, len(tokens), PREFILL_TOKENS):
                    chunk = tokens[start : start + PREFILL_TOKENS]
                    self._decode([(seq, chunk, start + PREFILL_TOKENS >= len(tokens))])
                if self._step(seq, params, per_seq):
                    yield finish(seq)
                else:
                    running.append(seq)
            if running:
                self._decode([(seq, [seq.last], True) for seq in running])
                for seq in list(running):
                    if self._step(seq, params, per_seq):
                        running.remove(seq)
                        yield finish(seq)

    def close(self) -> None:
        if self.ctx is not None:
            self.lib.llama_free(self.ctx)
            self.ctx = None
        if self.model is not None:
            self.lib.llama_batch_free(self.batch)
            self.lib.llama_sampler_free(self.greedy)
            self.lib.llama_model_free(self.model)
            self.model = None


# ----------------------------------------------------------------------------- the generator


def _pool(path: Path, workers: int, options: dict) -> Pool:
    from pgrpo.llm.llamacpp_workers import Pool

    return Pool(path, workers, options)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class LlamaCppGenerator:
    """`Generator` over llama.cpp for a .gguf file, batched, in `workers` processes."""

    def __init__(
        self,
        model: str,
        *,
        workers: int | None = None,
        threads: int = 1,
        batch_size: int = 8,
        flash_attn: bool = False,
        device: str | None = None,
        name: str | None = None,
        progress: bool = True,
        verbose: bool | None = None,
    ) -> None:
        """Load `model` (a .gguf file, or a directory holding one).

        workers: processes, each with its own copy of the model (default: cores // threads).
        threads: threads per process (default 1).
        batch_size: sequences decoded together in each process (default 8).
        flash_attn: use flash attention (off by default: it changes greedy outputs).
        device: only "cpu" (this backend does not offload to a GPU).
        name: the identity used in cache keys; default `llamacpp:<resolved .gguf path>`, so that the
            transformers backend's outputs for the same file (de-quantized weights) are not mixed in.
        """
        counts = {"threads": threads, "batch_size": batch_size, "workers": 1 if workers is None else workers}
        for option, value in counts.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"llamacpp backend: {option} must be a whole number >= 1, got {value!r}")
        if device not in (None, "cpu"):
            raise UsageError(
                f"llamacpp backend: device {device!r}: it runs on the CPU; use --backend vllm or transformers on a GPU"
            )
        _import_llama_cpp()
        from pgrpo import log

        self.verbose = log.verbose() if verbose is None else verbose
        _quiet(self.verbose)
        self.path = _gguf_path(model)
        self.name = name or f"llamacpp:{self.path}"
        self.workers = workers or max(1, _cores() // threads)
        self.threads = threads
        self.batch_size = batch_size
        self.flash_attn = flash_attn
        self.progress = progress
        self._options = {
            "threads": threads,
            "batch_size": batch_size,
            "flash_attn": flash_attn,
            "verbose": self.verbose,
        }
        self._decoder: Decoder | None = None
        self._pool: Pool | None = None
        if self.workers == 1:
            self._decoder = Decoder(self.path, **self._options)
            self.tokenizer = self._decoder.tokenizer
            self.n_ctx_train = self._decoder.n_ctx_train
        else:
            self.tokenizer = GGUFTokenizer.from_file(self.path, self.verbose)
            self.n_ctx_train = self.tokenizer.n_ctx_train
            self._pool = _pool(self.path, self.workers, self._options)  # loads while the caller prepares

    def render(self, prompt: Prompt) -> str:
        """The text the model sees: a string as is, messages through the GGUF's chat template."""
        if not is_chat(prompt):
            return prompt
        if self.tokenizer.chat_template is None:
            raise ValueError(f"{self.name} has no chat template: pass plain string prompts instead")
        return self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True)

    def _encode(self, prompt: Prompt) -> list[int]:
        # A rendered chat template holds its special tokens already (as in the transformers backend).
        tokens = self.tokenizer.encode(self.render(prompt), add_special_tokens=not is_chat(prompt))
        if not tokens:
            raise ValueError("an empty prompt: the model needs at least one token to continue")
        return tokens

    def generate(
        self, prompts: list[Prompt], params: SamplingParams, on_result: OnResult | None = None
    ) -> list[list[str]]:
        """`on_result(i, texts)` is called as soon as all of prompt i's samples are done."""
        from tqdm.auto import tqdm

        encoded = [self._encode(p) for p in prompts]
        if not encoded:
            return []
        longest = max(len(t) for t in encoded)
        if longest >= self.n_ctx_train:
            raise ValueError(
                f"a prompt of {longest} tokens does not fit the model's context of {self.n_ctx_train} tokens"
            )
        need = longest + params.max_tokens
        per_seq = min(self.n_ctx_train, -(-need // CONTEXT_STEP) * CONTEXT_STEP)
        per_prompt = 1 if params.greedy else params.n
        jobs = [
            ((i, j), tokens, None if params.greedy else _sample_seed(params.seed + j, tokens))
            for i, tokens in enumerate(encoded)
            for j in range(per_prompt)
        ]
        settings = asdict(params)
        texts: list[list[str | None]] = [[None] * per_prompt for _ in prompts]
        left = [per_prompt] * len(prompts)
        results: list[list[str]] = [[] for _ in prompts]
        if self._decoder is None and self._pool is None:
            self._pool = _pool(self.path, self.workers, self._options)
        engine = self._decoder.run if self._decoder is not None else self._pool.run  # type: ignore[union-attr]
        bar = tqdm(
            total=len(prompts),
            desc="generate",
            unit="prompt",
            file=sys.stderr,
            disable=None if self.progress else True,
        )
        try:
            for (i, j), text in engine(jobs, settings, per_seq):
                texts[i][j] = text
                left[i] -= 1
                if left[i] == 0:
                    results[i] = texts[i] * params.n if params.greedy else texts[i]  # type: ignore[assignment]
                    bar.update()
                    if on_result is not None:
                        on_result(i, results[i])
        except BaseException:
            self._reset()  # workers hold a half-done call: start fresh ones next time
            raise
        finally:
            bar.close()
        return results

    def _reset(self) -> None:
        if self._pool is not None:
            self._pool.close(wait=False)
            self._pool = None  # the next call starts fresh workers
        elif self._decoder is not None and self._decoder.ctx is not None:
            self._decoder.lib.llama_memory_clear(self._decoder.lib.llama_get_memory(self._decoder.ctx), True)

    def close(self) -> None:
        """Stop the worker processes (they also end with this process)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None

    def __repr__(self) -> str:
        return (
            f"LlamaCppGenerator({str(self.path)!r}, workers={self.workers}, threads={self.threads}, "
            f"batch_size={self.batch_size}, flash_attn={self.flash_attn})"
        )
