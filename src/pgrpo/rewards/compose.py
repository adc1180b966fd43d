"""Turning the components into one reward: R_outcome from an execution result, and the variants.

    outcome    R = w_f·R_f + w_o·R_o                 plain GRPO on code (no reward model)
    additive   R = w_f·R_f + w_o·R_o + w_t·R_t       the paper's ablation: reward-hacked
    posterior  R = w_f·R_f + w_o·R_o + w_t·R_o·R_t   P-GRPO: reasoning counts only when the code is right

`None` is "cannot score" (a sandbox error, a reward model down): it propagates to the total, which the
trainer masks. It is never read as 0. The posterior gate is the one visible `if` in `_posterior`: a
closed gate (R_o = 0) needs no thinking score, so a missing one does not mask the sample.
A new variant is a function here plus an entry in `_VARIANTS`: the trainer's reward functions, the
config check and the command-line choices all read that table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from pgrpo.types import ExecResult

OUTCOME_MODES = ("all", "pass_rate")


@dataclass(frozen=True)
class RewardWeights:
    """Weights of R_format, R_outcome and R_thinking in the total (the paper uses 1, 1, 1)."""

    format: float = 1.0
    outcome: float = 1.0
    thinking: float = 1.0

    def __post_init__(self) -> None:
        for name in ("format", "outcome", "thinking"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"reward weight {name!r} must be a finite number, got {value!r}")


def outcome_reward(result: ExecResult, mode: str = "all") -> float | None:
    """R_outcome: 1.0 when every test passed (`all`, the paper's), or the fraction passed (`pass_rate`).
    None when the sandbox failed: the program's outcome is unknown, not wrong."""
    check_choice("outcome mode", mode, OUTCOME_MODES)
    if result.is_infrastructure_failure:
        return None
    if mode == "pass_rate":
        return result.pass_rate
    return 1.0 if result.passed else 0.0


# ----------------------------------------------------------------------------- variants


def _outcome_only(f: float, o: float, t: float | None, w: RewardWeights) -> float | None:
    return w.format * f + w.outcome * o


def _additive(f: float, o: float, t: float | None, w: RewardWeights) -> float | None:
    return None if t is None else w.format * f + w.outcome * o + w.thinking * t


def _posterior(f: float, o: float, t: float | None, w: RewardWeights) -> float | None:
    if o <= 0:  # the gate is closed: the reasoning of wrong code earns nothing
        return w.format * f + w.outcome * o
    return None if t is None else w.format * f + w.outcome * o + w.thinking * o * t


def _gated_thinking(o: float, t: float | None) -> float | None:
    return (o * t if t is not None else None) if o > 0 else 0.0


@dataclass(frozen=True)
class Variant:
    """One way of combining the components. `thinking_term` is the unweighted third term as a function of
    (R_outcome, R_thinking) — what TRL logs as `rewards/<term_name>` — or None when the variant has none."""

    name: str
    combine: Callable[[float, float, float | None, RewardWeights], float | None]
    needs_thinking: Callable[[float], bool]  # given a known R_outcome: is R_thinking part of the total?
    term_name: str | None = None
    thinking_term: Callable[[float, float | None], float | None] | None = None
    help: str = ""

    @property
    def uses_reward_model(self) -> bool:
        return self.thinking_term is not None


_VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("outcome", _outcome_only, lambda o: False, help="R_f + R_o: plain GRPO on code"),
        Variant(
            "additive",
            _additive,
            lambda o: True,
            "thinking",
            lambda o, t: t,
            help="R_f + R_o + R_t: the paper's reward-hacked ablation",
        ),
        Variant(
            "posterior",
            _posterior,
            lambda o: o > 0,
            "outcome_x_thinking",
            _gated_thinking,
            help="R_f + R_o + R_o·R_t: P-GRPO",
        ),
    )
}
VARIANTS = tuple(_VARIANTS)


def get_variant(name: str) -> Variant:
    """The registered variant called `name` (an unknown name lists the valid ones)."""
    check_choice("variant", name, tuple(_VARIANTS))
    return _VARIANTS[name]


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def needs_thinking(variant: str, r_outcome: float | None) -> bool:
    """Whether the total needs R_thinking, i.e. whether to call the reward model for this sample.

    posterior: only when R_outcome > 0 (= 1 in `all` mode); additive: always; outcome: never.
    Never when R_outcome is None: the total is masked whatever the reward model says."""
    return r_outcome is not None and get_variant(variant).needs_thinking(r_outcome)


def compose(
    variant: str,
    r_format: float | None,
    r_outcome: float | None,
    r_thinking: float | None,
    weights: RewardWeights = RewardWeights(),
) -> float | None:
    """The total reward, or None when a component it needs is None (masked, never 0)."""
    combine = get_variant(variant).combine
    if r_format is None or r_outcome is None:
        return None
    return combine(r_format, r_outcome, r_thinking, weights)
