"""Scoring reasoning with a thinking reward model: in this process, over HTTP, or as a small HTTP service.

A reward model reads one text, `TEMPLATE` filled with the problem and the reasoning (never the code), and
returns one raw Bradley–Terry score; `to_unit` maps scores to [0, 1] for R_thinking. The model's input is
exactly `tokenizer(text)` cut at `max_length` tokens, in training and in scoring alike (no EOS is
appended), so a copy served by `vllm serve` sees the same tokens.

- `LocalScorer`: a trained model directory (or any model object) in this process, batched, no grad.
- `pgrpo.rm.http`: `HttpScorer`, a model served elsewhere (`pgrpo rm serve`, vLLM), and the service itself.
- `check_reward_model`: refuse, before any work, a URL that does not score or a directory whose score
  head was never trained (`LocalScorer` applies the same check as it loads).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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
    from pgrpo.rm.http import HttpScorer

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
