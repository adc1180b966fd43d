"""P-GRPO rewards as a verl custom reward function.

verl 0.9 (tested with 0.9.1, tests/test_verl_engine.py) reads `reward.custom_reward_function.path`, `.name`
and `.reward_kwargs`; the path is `pkg://pgrpo.train.verl_reward` or this file's path (verl executes a file
under a made-up name, outside sys.modules: that copy keeps its own executor and counters). Its reward loop
scores one response at a time with the `naive` manager (the default; `dapo` and `gdpo` call the same way):
- `compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)`: one response.
- `compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos, **kwargs)`: a whole batch,
  for the legacy `reward_model.reward_manager=batch` (verl's trainer up to 0.6; not tested here): one
  parallel executor run and one reward-model request per batch, and the only way to use `unit=minmax` (a
  per-response call never sees the response's group). verl 0.7 to 0.9's reward loop has no batch manager.
Both return verl's dict form, `{"score": total, ...metrics}`: verl puts `score` on the last response token
and gathers every key into `reward_extra_info`, so every dict has the same keys, all numbers: `format`,
`outcome`, `thinking` (0 when not scored: see `thinking_called`), `thinking_called`, `passed`, `masked`.

`ground_truth` is the problem in the native JSON format (docs/formats.md): a JSON string (recommended: a
parquet struct column cannot hold tests whose fields differ in type) or a dict (parquet's None fillers at
the top level are dropped). Rewards come from `pgrpo.rewards.score_completions`, the path TRL training uses.

Settings, each from the call's keyword arguments (`reward.custom_reward_function.reward_kwargs.NAME`), else
the row's `extra_info[NAME]` (batch: the first row's), else the environment variable `PGRPO_<NAME>`, else
the default: see `Settings`. Unknown keyword arguments are ignored (verl passes its own, e.g. num_turns).
Programs run in this process's executor (created on first use, one per process; there is no HTTP executor
service yet); the reward model is reached over HTTP (`HttpScorer`, retried with backoff).

Infrastructure failures (sandbox error, reward model down). verl has no per-sample mask: the score goes on
the last token and GRPO's group mean and std use every sample, so no value is neutral and a made-up one
(0, or the outcome-only reward) would train on a reward nobody measured. `on_failure` chooses between:
- `raise` (default): `RewardUnavailable` naming the failures. verl 0.9 catches nothing on the way
  (naive manager -> RewardLoopWorker -> agent loop or RewardLoopManager -> trainer): the run ends.
- `nan`: `score` is NaN and `masked` is 1, with a warning. verl 0.9 puts the NaN in `rm_scores`, GRPO makes
  the whole group's advantages NaN, the policy loss and grad norm are NaN, and its FSDP, torchtitan, veomni
  and automodel engines skip an optimizer step whose grad norm is not finite ("grad_norm is not finite"):
  the mini-batch holding the sample is dropped, and that step's score metrics read NaN. Megatron was not
  checked. Use it only with an engine that has that guard.
verl's `rate_limited` manager catches every exception and scores the response 0.0 (`error` in its extra
info): with it, use `on_failure=nan`, which passes through it unchanged.
Math answers are checked without math-verify's time limit off the main thread (verl's reward loop runs
reward functions in a thread pool); calls are serialised by a lock, as the executor is not thread-safe.
"""

import atexit
import json
import logging
import math
import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Self

from pgrpo.rewards import (
    OUTCOME_MODES,
    FormatSpec,
    RewardBreakdown,
    RewardStats,
    RewardWeights,
    get_variant,
    score_completions,
)
from pgrpo.rewards.compose import check_choice
from pgrpo.rm.http import HttpScorer
from pgrpo.rm.score import UNIT_METHODS
from pgrpo.types import Problem

log = logging.getLogger("pgrpo.train.verl_reward")  # one name however verl loads the file

ON_FAILURE = ("raise", "nan")
METRICS = ("format", "outcome", "thinking", "thinking_called", "passed", "masked")
STATS = RewardStats()  # everything this process scored; `stats()` reads it


class RewardUnavailable(RuntimeError):
    """Some responses could not be scored (sandbox error, reward model down) and `on_failure=raise`."""


@dataclass(frozen=True)
class Settings:
    """How responses are rewarded; each field is also read from `PGRPO_<FIELD>` (upper case)."""

    variant: str = "posterior"  # outcome, additive or posterior
    outcome_mode: str = "all"  # all (every test passes) or pass_rate
    unit: str = "sigmoid"  # raw reward-model score to [0, 1]: sigmoid, or minmax (batch only)
    rm_url: str | None = None  # the reward model: `pgrpo rm serve` or vLLM /classify, /pooling
    rm_api: str | None = None  # pgrpo, vllm-classify or vllm-pooling (default: from the URL)
    rm_max_retries: int = 4  # further attempts after a transient reward-model failure
    think_tag: str = "think"
    answer_tag: str = "answer"
    format_weight: float = 1.0
    outcome_weight: float = 1.0
    thinking_weight: float = 1.0
    workers: int = 2  # sandbox workers of this process's executor
    time_limit_s: float | None = None  # per-test time limit override
    on_failure: str = "raise"  # raise, or nan (see the module doc)

    def __post_init__(self) -> None:
        get_variant(self.variant)  # an unknown name lists the valid ones
        check_choice("outcome_mode", self.outcome_mode, OUTCOME_MODES)
        check_choice("unit", self.unit, UNIT_METHODS)
        check_choice("on_failure", self.on_failure, ON_FAILURE)
        if self.workers < 1 or self.rm_max_retries < 0:
            raise ValueError("workers must be >= 1 and rm_max_retries >= 0")

    @classmethod
    def resolve(cls, kwargs: Mapping[str, Any], extra_info: Any = None) -> Self:
        extra = extra_info if isinstance(extra_info, Mapping) else {}
        values = {}
        for f in fields(cls):
            env = os.environ.get(f"PGRPO_{f.name.upper()}")
            for raw in (kwargs.get(f.name), extra.get(f.name), env or None):
                if raw is not None:
                    values[f.name] = _convert(f.name, raw)
                    break
        return cls(**values)

    @property
    def weights(self) -> RewardWeights:
        return RewardWeights(self.format_weight, self.outcome_weight, self.thinking_weight)

    @property
    def spec(self) -> FormatSpec:
        return FormatSpec(think_tag=self.think_tag, answer_tag=self.answer_tag)


_FLOATS = ("format_weight", "outcome_weight", "thinking_weight", "time_limit_s")
_INTS = ("workers", "rm_max_retries")


def _convert(name: str, raw: Any) -> Any:
    kind = float if name in _FLOATS else int if name in _INTS else str
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"setting {name!r} must be a {kind.__name__}, got {raw!r}") from None


# ----------------------------------------------------------------------------- entry points


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None, **kwargs: Any
) -> dict:
    """verl's per-response reward function: `{"score": total, ...metrics}` (see the module doc)."""
    settings = Settings.resolve(kwargs, extra_info)
    if settings.unit == "minmax":
        raise ValueError(
            "unit=minmax maps reward-model scores within a problem's group of responses, which a "
            "per-response compute_score never sees: use compute_score_batch with "
            "reward_model.reward_manager=batch, or unit=sigmoid"
        )
    problem = problem_from_ground_truth(ground_truth)
    [row] = _score([problem], [solution_str], settings, kwargs)
    return row


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[dict]:
    """verl's batch reward function (`reward_manager=batch`): one dict per response, in order."""
    first_extra = extra_infos[0] if extra_infos is not None and len(extra_infos) else None
    settings = Settings.resolve(kwargs, first_extra)
    problems = [problem_from_ground_truth(g) for g in ground_truths]
    return _score(problems, list(solution_strs), settings, kwargs)


def stats() -> dict:
    """Counters over everything this process scored (completions, sandbox errors, scorer calls, ...)."""
    with _lock:
        return STATS.as_dict()


def close() -> None:
    """Stop this process's executor (it is also stopped at exit)."""
    with _lock:
        for executor in _executors.values():
            executor.close()
        _executors.clear()


# ----------------------------------------------------------------------------- scoring

_lock = threading.RLock()  # one batch at a time: the executor is not thread-safe
_executors: dict[tuple, Any] = {}
_scorers: dict[tuple, HttpScorer] = {}


def _score(problems: list[Problem], texts: list[str], settings: Settings, kwargs: Mapping) -> list[dict]:
    with _lock:
        executor = kwargs.get("executor") or _executor(settings)
        scorer = None
        if get_variant(settings.variant).uses_reward_model:
            scorer = kwargs.get("scorer") or _scorer(settings)
        breakdowns = score_completions(
            problems,
            texts,
            executor=executor,
            scorer=scorer,
            variant=settings.variant,
            weights=settings.weights,
            spec=settings.spec,
            outcome_mode=settings.outcome_mode,
            unit=settings.unit,
            stats=STATS,
        )
    failed = [b for b in breakdowns if b.masked]
    if failed:
        counts = Counter(b.failure for b in failed)
        summary = ", ".join(f"{n} {what}" for what, n in counts.items())
        message = f"{len(failed)} of {len(breakdowns)} responses could not be scored ({summary})"
        message += f": {failed[0].detail}" if failed[0].detail else ""
        if settings.on_failure == "raise":
            raise RewardUnavailable(
                f"{message}. Nothing was made up for them; set on_failure=nan (reward_kwargs, or "
                "PGRPO_ON_FAILURE=nan) to skip the mini-batches that hold such responses instead of stopping"
            )
        log.warning("%s; their score is NaN (masked)", message)
    return [_row(b) for b in breakdowns]


def _row(b: RewardBreakdown) -> dict:
    nan = math.nan
    return {
        "score": nan if b.total is None else b.total,
        "format": b.format,
        "outcome": nan if b.outcome is None else b.outcome,
        "thinking": (b.thinking or 0.0) if b.failure is None else nan,
        "thinking_called": float(b.thinking_called),
        "passed": float(b.passed),
        "masked": float(b.masked),
    }


def _executor(settings: Settings) -> Any:
    """This process's executor for these settings, started on first use (and again after a fork)."""
    every_test = settings.outcome_mode == "pass_rate"  # a pass rate needs every test's own verdict
    key = (os.getpid(), settings.workers, settings.time_limit_s, every_test)
    executor = _executors.get(key)
    if executor is None:
        from pgrpo.sandbox import Executor

        for stale in [k for k in _executors if k[0] != os.getpid()]:  # a forked parent's pipes: not ours
            del _executors[stale]
        executor = _executors[key] = Executor(
            workers=settings.workers, time_limit_s=settings.time_limit_s, every_test=every_test
        )
    return executor


def _scorer(settings: Settings) -> HttpScorer:
    if not settings.rm_url:
        raise ValueError(
            f"variant {settings.variant!r} needs a reward model: set rm_url (reward_kwargs, extra_info or "
            "PGRPO_RM_URL), e.g. http://127.0.0.1:8000 for `pgrpo rm serve`; or use variant 'outcome'"
        )
    key = (settings.rm_url, settings.rm_api, settings.rm_max_retries)
    if key not in _scorers:
        _scorers[key] = HttpScorer(settings.rm_url, api=settings.rm_api, max_retries=settings.rm_max_retries)
    return _scorers[key]


atexit.register(close)


# ----------------------------------------------------------------------------- ground truth


def problem_from_ground_truth(ground_truth: Any) -> Problem:
    """The problem a row's `reward_model.ground_truth` carries: native problem JSON, as a string or a dict."""
    if isinstance(ground_truth, bytes):
        ground_truth = ground_truth.decode()
    if isinstance(ground_truth, str):
        return _problem_from_json(ground_truth)
    if isinstance(ground_truth, Mapping):
        plain = {k: v for k, v in _plain(dict(ground_truth)).items() if v is not None}
        return Problem.from_dict(plain, where="ground_truth")
    kind = type(ground_truth).__name__
    raise TypeError(f"ground_truth must be the problem as native JSON (a string or a dict), got {kind}")


@lru_cache(maxsize=4096)  # a group's responses share one problem
def _problem_from_json(text: str) -> Problem:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f"ground_truth is not JSON ({e}): {text[:120]!r}") from None
    return Problem.from_dict(data, where="ground_truth")


def _plain(value: Any) -> Any:
    """numpy arrays and scalars (as parquet rows arrive) to lists and Python numbers, recursively."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
