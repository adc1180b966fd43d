"""GRPO group advantages, as TRL 1.16's GRPOTrainer computes them (pure Python, for tests and tools).

TRL (`_generate_and_score_completions`, `multi_objective_aggregation="sum_then_normalize"`) takes each
group of `num_generations` consecutive rewards and computes `A = (r - mean) / (std + 1e-4)`, where
- `mean` is `torch.nanmean` over the group's scored rewards (None arrives there as NaN),
- `std` is `trl.trainer.utils.nanstd`: the *unbiased* (Bessel, n-1) standard deviation of the scored
  rewards, NaN when fewer than two are scored; with `num_generations == 1` TRL uses std = 0;
- `scale_rewards="none"` keeps `r - mean` (std is then only used for logging);
- finally `nan_to_num(A, 0)`: a masked completion, and every completion of a group with a single scored
  reward when scaling, gets advantage 0.
TRL computes in float32; this computes in float64, so values agree to about 1e-6.
verl's GRPO is the same with `epsilon=1e-6` (and a group of one gets mean 0, std 1 there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EPSILON = 1e-4  # TRL's: A = (r - mean) / (std + 1e-4)


def group_advantages(
    rewards: Sequence[float | None], group_size: int, scale: bool = True, epsilon: float = EPSILON
) -> list[float]:
    """Advantages for rewards laid out group after group (`group_size` each); None or NaN = masked."""
    if group_size < 1 or len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    advantages: list[float] = []
    for start in range(0, len(rewards), group_size):
        group = [_nan_if_none(r) for r in rewards[start : start + group_size]]
        scored = [r for r in group if not math.isnan(r)]
        mean = sum(scored) / len(scored) if scored else math.nan
        if group_size == 1:
            std = 0.0
        elif len(scored) < 2:
            std = math.nan
        else:
            std = math.sqrt(sum((r - mean) ** 2 for r in scored) / (len(scored) - 1))
        for r in group:
            a = (r - mean) / (std + epsilon) if scale else r - mean
            advantages.append(0.0 if math.isnan(a) else a)
    return advantages


def _nan_if_none(r: float | None) -> float:
    return math.nan if r is None else float(r)
