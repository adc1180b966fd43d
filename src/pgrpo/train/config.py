"""`pgrpo train` configuration: a TOML file in sections, overridable by `section.key=value` arguments.

    [data]    dataset spec(s) for `pgrpo.problems.load_problems`, limit, shuffle seed
    [policy]  model directory, hub id, or "tiny" (a small Llama built from the data's text)
    [grpo]    any field of TRL's `GRPOConfig`, passed through (our defaults below; TRL's otherwise)
    [reward]  variant, weights, outcome mode, reward model (directory or URL), mapping to [0,1], tags
    [lora]    optional LoRA adapters (peft)
    [output]  output directory, reporting backends

Unknown sections or keys are errors that name the file and the key; values are checked for type.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgrpo.options import (
    AT_LEAST_ONE,
    FINITE,
    FRACTION,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    PROBABILITY,
    SECONDS,
    SEED,
    Range,
    UsageError,
)

# The paper's choices where it states them (DAPO-style clip-higher instead of a KL term) and documented
# defaults where it does not (group size, learning rate, lengths). The one table of these defaults:
# `pgrpo train` and `pgrpo demo` both start from it.
GRPO_DEFAULTS: dict[str, Any] = {
    "num_generations": 8,
    "learning_rate": 1e-6,
    "epsilon": 0.2,
    "epsilon_high": 0.28,
    "beta": 0.0,
    "loss_type": "dapo",
    "temperature": 1.0,
    "max_completion_length": 4096,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "max_steps": 200,
    "logging_steps": 1,
    "save_steps": 50,
    "save_total_limit": 3,
    "seed": 0,
}

# Clip-higher is the algorithm's one stabiliser (the paper drops the KL term), and it acts only when the
# policy that computes the loss differs from the one that sampled: TRL's default of one optimizer step per
# generation batch makes the ratio exactly 1 and the clip inert. Each generation batch therefore feeds
# this many optimizer steps (`steps_per_generation` = this × `gradient_accumulation_steps`, unless the
# config sets `steps_per_generation` or `generation_batch_size` itself). We split the batch (as verl does
# with PPO mini-batches) rather than reuse it (`num_iterations` ≥ 2): the same number of samples per update,
# no extra forward passes, and later updates of a batch are off-policy, so the ratio moves and the clip acts.
OPTIMIZER_STEPS_PER_GENERATION = 4


def grpo_defaults(overrides: dict[str, Any]) -> dict[str, Any]:
    """GRPO_DEFAULTS, then `overrides`, then the generation batch rule above."""
    args = {**GRPO_DEFAULTS, **overrides}
    if "steps_per_generation" not in args and "generation_batch_size" not in args:
        accumulation = int(args.get("gradient_accumulation_steps", 1))
        args["steps_per_generation"] = OPTIMIZER_STEPS_PER_GENERATION * accumulation
    return args


class ConfigError(UsageError):
    """A configuration problem, naming the file (or argument) and the key (one line, exit 2)."""


@dataclass
class DataSection:
    dataset: list[str] = field(default_factory=list)
    """Problem set specs (`pgrpo problems export --help` lists the forms); a string or a list."""
    limit: int | None = None
    """Use only the first N problems (default: all)."""
    seed: int = 0
    """Shuffle seed for the problem order (TRL also shuffles each epoch)."""
    eval: list[str] = field(default_factory=list)
    """Evaluation sets the training problems must not overlap (by id or by normalised prompt text)."""
    allow_overlap: bool = False
    """Train even when a training problem is also in an `eval` set (recorded in summary.json)."""


@dataclass
class PolicySection:
    model: str = "tiny"
    """A transformers model directory, a hub id (cached locally), or "tiny". A quantized .gguf file
    cannot be trained (refused at load)."""
    gguf_file: str | None = None
    """Refused: a GGUF policy cannot be trained (the key is kept so that the message can say so)."""
    tiny_hidden: int = 128
    tiny_layers: int = 2
    warm_start_steps: int = 0
    """tiny only: supervised steps on the reference answers in the training format before GRPO, so that
    the samples of a group differ in reward (a random policy never writes the format: no signal)."""
    chat: bool | None = None
    """Prompt as chat messages (default: when the tokenizer has a chat template)."""
    system_prompt: str | None = None
    """Instruction placed before the problem (default: the P-GRPO answer format instruction)."""


@dataclass
class RewardSection:
    variant: str = "posterior"
    """outcome (R_f + R_o), additive (R_f + R_o + R_t) or posterior (R_f + R_o + R_o·R_t)."""
    weights: dict[str, float] = field(
        default_factory=lambda: {"format": 1.0, "outcome": 1.0, "thinking": 1.0}
    )
    outcome_mode: str = "all"
    """all: 1 only when every test passes (the paper); pass_rate: the share of tests passed."""
    model: str | None = None
    """The thinking reward model: a `pgrpo rm train` directory or an http(s) URL of a scoring server."""
    unit: str = "sigmoid"
    """Map reward-model scores to [0,1]: sigmoid, or minmax within each group."""
    think_tag: str = "think"
    answer_tag: str = "answer"
    executor_workers: int = 2
    time_limit_s: float | None = None
    """Per-program time limit (default: each problem's)."""
    monitor_score_all: bool = False
    """Also score failing samples' thinking (for the hacking monitor only; counted apart)."""


@dataclass
class LoraSection:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"


@dataclass
class OutputSection:
    dir: str = "runs/train"
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    plots: bool = True


@dataclass
class TrainConfig:
    data: DataSection = field(default_factory=DataSection)
    policy: PolicySection = field(default_factory=PolicySection)
    grpo: dict[str, Any] = field(default_factory=dict)
    reward: RewardSection = field(default_factory=RewardSection)
    lora: LoraSection = field(default_factory=LoraSection)
    output: OutputSection = field(default_factory=OutputSection)
    source: str = "<defaults>"
    origins: dict[str, str] = field(default_factory=dict, repr=False)
    """section.key -> where its value was set (the file, or `override 'section.key=value'`)."""

    def where(self, key: str) -> str:
        """What set `key` (section.key), to name in a message: the override, else the config file."""
        return self.origins.get(key, self.source)

    def grpo_args(self) -> dict[str, Any]:
        """Our defaults, then the file's [grpo] section (see `grpo_defaults`)."""
        return grpo_defaults(self.grpo)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("origins")
        d["grpo"] = self.grpo_args()
        return d


GROUP_SIZE = Range(low=2, integer=True)

# The numeric keys we check, by section: a value out of range is refused at load time, naming the key.
# [grpo] keys not listed here are checked for type only (TRL's GRPOConfig checks the rest when it is built).
RANGES: dict[str, dict[str, Range]] = {
    "data": {"limit": AT_LEAST_ONE, "seed": SEED},
    "policy": {
        "tiny_hidden": AT_LEAST_ONE,
        "tiny_layers": AT_LEAST_ONE,
        "warm_start_steps": NON_NEGATIVE_INT,
    },
    "reward": {"executor_workers": AT_LEAST_ONE, "time_limit_s": SECONDS},
    "lora": {"r": AT_LEAST_ONE, "alpha": POSITIVE, "dropout": Range(low=0, high=1, high_open=True)},
    "grpo": {
        "num_generations": GROUP_SIZE,
        "per_device_train_batch_size": AT_LEAST_ONE,
        "gradient_accumulation_steps": AT_LEAST_ONE,
        "steps_per_generation": AT_LEAST_ONE,
        "generation_batch_size": AT_LEAST_ONE,
        "num_iterations": AT_LEAST_ONE,
        "num_train_epochs": POSITIVE,
        "learning_rate": POSITIVE,
        "epsilon": NON_NEGATIVE,
        "epsilon_high": NON_NEGATIVE,
        "beta": NON_NEGATIVE,
        "temperature": POSITIVE,
        "top_p": PROBABILITY,
        "top_k": NON_NEGATIVE_INT,
        "min_p": FRACTION,
        "repetition_penalty": POSITIVE,
        "max_completion_length": AT_LEAST_ONE,
        "max_prompt_length": AT_LEAST_ONE,
        "logging_steps": POSITIVE,
        "save_steps": POSITIVE,
        "eval_steps": POSITIVE,
        "save_total_limit": AT_LEAST_ONE,
        "warmup_steps": NON_NEGATIVE,
        "warmup_ratio": FRACTION,
        "weight_decay": NON_NEGATIVE,
        "max_grad_norm": NON_NEGATIVE,
        "seed": SEED,
        "dataloader_num_workers": NON_NEGATIVE_INT,
        "vllm_gpu_memory_utilization": PROBABILITY,
    },
}


def _check_range(section: str, key: str, value: Any, where: str) -> None:
    """`value` against RANGES (reward weights: each finite); ConfigError naming `where`."""
    try:
        if section == "reward" and key == "weights" and isinstance(value, dict):
            for name, weight in value.items():
                FINITE.check(weight, f"{where}[{name!r}]")
        elif section == "grpo" and key == "max_steps":
            if value != -1:  # -1: num_train_epochs decides
                AT_LEAST_ONE.check(value, f"{where} (-1 or an integer >= 1)")
        elif key in RANGES.get(section, {}):
            RANGES[section][key].check(value, where)
    except UsageError as e:
        if section == "grpo" and key == "num_generations":
            raise ConfigError(
                f"{e}: a group advantage needs two samples (a sample's reward minus its group's mean is 0 "
                "in a group of one, so nothing is learned)"
            ) from None
        raise ConfigError(str(e)) from None


_SECTIONS = {
    "data": DataSection,
    "policy": PolicySection,
    "reward": RewardSection,
    "lora": LoraSection,
    "output": OutputSection,
}


def _grpo_fields() -> dict[str, Any]:
    """GRPOConfig's field names and their annotations."""
    from trl import GRPOConfig

    return {f.name: f.type for f in dataclasses.fields(GRPOConfig)}


_KINDS = ("bool", "int", "float", "str", "list", "dict")
_NAMES = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string"}


def _kinds(annotation: Any) -> set[str]:
    """The TOML kinds a field's annotation accepts: `int | None` -> {int}, `list[str] | str` -> {list, str};
    empty when the annotation names none of them (then the value is not checked here)."""
    text = annotation if isinstance(annotation, str) else str(annotation)
    text = re.sub(r"\b(list|dict)\[[^\]]*\]", r"\1", text.replace("typing.", ""))
    kinds = set(re.findall(r"\b(" + "|".join(_KINDS) + r")\b", text))
    if "Literal[False]" in text:
        kinds.add("bool")
    return kinds


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """`value` as the field's type (an int where a float is wanted becomes a float; a string where a list
    is wanted, a list of one), or ConfigError naming `where`."""
    kinds = _kinds(annotation)
    if not kinds:
        return value
    if isinstance(value, bool):
        if "bool" in kinds:
            return value
    elif isinstance(value, int) and "int" in kinds:
        return value
    elif isinstance(value, (int, float)) and "float" in kinds:
        return float(value)
    elif isinstance(value, str) and "str" in kinds:
        return value
    elif isinstance(value, str) and "list" in kinds:
        return [value]
    elif isinstance(value, list) and "list" in kinds or isinstance(value, dict) and "dict" in kinds:
        return value
    wanted = " or ".join(_NAMES.get(k, f"a {k}") for k in _KINDS if k in kinds)
    raise ConfigError(f"{where}: expected {wanted}, got {value!r}")


def _apply(cfg: TrainConfig, section: str, key: str, value: Any, where: str) -> None:
    cfg.origins[f"{section}.{key}"] = where
    if section == "grpo":
        fields = _grpo_fields()
        if key not in fields:
            raise ConfigError(f"{where}: grpo.{key} is not a field of trl.GRPOConfig")
        value = _check_type(value, fields[key], f"{where}: grpo.{key}")
        _check_range(section, key, value, f"{where}: grpo.{key}")
        cfg.grpo[key] = value
        return
    if section not in _SECTIONS:
        raise ConfigError(f"{where}: unknown section [{section}]; valid: grpo, {', '.join(_SECTIONS)}")
    target = getattr(cfg, section)
    names = {f.name: f for f in dataclasses.fields(target)}
    if key not in names:
        raise ConfigError(f"{where}: unknown key {section}.{key}; valid: {', '.join(names)}")
    value = _check_type(value, names[key].type, f"{where}: {section}.{key}")
    _check_range(section, key, value, f"{where}: {section}.{key}")
    setattr(target, key, value)


def _parse_value(text: str) -> Any:
    """A command-line value: TOML syntax when it parses (numbers, booleans, lists), else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Read a TOML config (or start from defaults) and apply `section.key=value` overrides in order."""
    cfg = TrainConfig()
    if path is not None:
        cfg.source = str(path)
        raw = _read_toml(Path(path))
        for section, body in raw.items():
            if not isinstance(body, dict):
                raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
            for key, value in body.items():
                _apply(cfg, section, key, value, str(path))
    for item in overrides:
        name, sep, text = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"override {item!r}: expected section.key=value, e.g. grpo.learning_rate=1e-5")
        _apply(cfg, section, key, _parse_value(text.strip()), f"override {item!r}")
    validate(cfg)
    return cfg


def _read_toml(path: Path) -> dict[str, Any]:
    """The config file's tables, or ConfigError saying why the file cannot be read (one line)."""
    if path.is_dir():
        raise ConfigError(f"--config {path}: is a directory; give a TOML file (see configs/)")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such config file") from None
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"--config {path}: not UTF-8 text (byte {e.start}); a config is a TOML file"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None


def check_policy_model(cfg: TrainConfig) -> None:
    """Refuse, before any work, a policy.model that is not "tiny", not an existing path (directory or
    .gguf) and not a hub id in the local Hugging Face cache (offline, nothing else can be loaded)."""
    model = cfg.policy.model
    if model == "tiny" or Path(model).expanduser().exists():
        return
    hub_id = re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", model) and not model.endswith(".gguf")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if hub_id and (not offline or _in_hf_cache(model)):
        return
    where = (
        "a hub id not in the local Hugging Face cache (HF_HUB_OFFLINE is set)" if hub_id else "no such path"
    )
    raise ConfigError(
        f"{cfg.where('policy.model')}: policy.model {model!r}: {where}; give a model directory, a .gguf file, "
        'a downloaded hub id, or "tiny"'
    )


def _in_hf_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id after all
        return False


def _gguf_policy(policy: PolicySection) -> bool:
    """Whether policy.model is a GGUF file (or a directory holding one and no config.json)."""
    path = Path(policy.model).expanduser()
    if policy.gguf_file or policy.model.endswith(".gguf"):
        return True
    return path.is_dir() and not (path / "config.json").exists() and any(path.glob("*.gguf"))


def validate(cfg: TrainConfig) -> None:
    from pgrpo.rewards import get_variant

    where = cfg.where
    if cfg.policy.warm_start_steps and cfg.policy.model != "tiny":
        raise ConfigError(
            f"{where('policy.warm_start_steps')}: policy.warm_start_steps = {cfg.policy.warm_start_steps}: the warm start is for "
            f'policy.model = "tiny" only (a pretrained model already writes text); remove it'
        )
    if _gguf_policy(cfg.policy):
        raise ConfigError(
            f"{where('policy.model')}: policy.model {cfg.policy.model!r}: a quantized GGUF model cannot be trained; give a "
            "transformers model directory (config.json and .safetensors weights) or a hub id"
        )
    try:
        variant = get_variant(cfg.reward.variant)
    except ValueError as e:
        raise ConfigError(f"{where('reward.variant')}: reward.variant: {e}") from None
    if variant.uses_reward_model and not cfg.reward.model:
        raise ConfigError(
            f"{where('reward.variant')}: reward.variant={cfg.reward.variant} needs reward.model (directory or URL)"
        )
    unknown = set(cfg.reward.weights) - {"format", "outcome", "thinking"}
    if unknown:
        raise ConfigError(f"{where('reward.weights')}: reward.weights has unknown keys {sorted(unknown)}")
    if cfg.reward.outcome_mode not in ("all", "pass_rate"):
        raise ConfigError(f"{where('reward.outcome_mode')}: reward.outcome_mode must be all or pass_rate")
    if cfg.reward.unit not in ("sigmoid", "minmax"):
        raise ConfigError(f"{where('reward.unit')}: reward.unit must be sigmoid or minmax")
    processes = int(os.environ.get("WORLD_SIZE", "1") or 1)  # set by accelerate launch and torchrun
    if cfg.reward.unit == "minmax" and processes > 1:
        raise ConfigError(
            f"{where('reward.unit')}: reward.unit = minmax maps scores within a group on one process, but with "
            f"{processes} processes TRL may split a group across them (each would min-max a part of it): "
            "use sigmoid, or one process"
        )
    if not cfg.data.dataset:
        raise ConfigError(f"{where('data.dataset')}: data.dataset is empty")
