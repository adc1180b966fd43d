"""P-GRPO rewards: pure functions over the executor's typed result, and the batch that feeds them.

- `format`: R_format, the strict `<think>…</think><answer>…</answer>` layout (tags configurable);
- `compose`: R_outcome from an `ExecResult`, the variants `outcome`, `additive`, `posterior`, weights;
- `math`: the answer reward for math problems (math-verify);
- `batch`: `score_completions`, run once per completion, gated reward-model calls, counters;
- `advantages`: GRPO group advantages exactly as TRL computes them (for tests and tools).

`None` anywhere is "cannot score" (an infrastructure failure): masked and counted, never 0.
Nothing here imports torch.
"""

from pgrpo.rewards.advantages import group_advantages
from pgrpo.rewards.batch import RewardBreakdown, RewardStats, score_completions
from pgrpo.rewards.compose import (
    OUTCOME_MODES,
    VARIANTS,
    RewardWeights,
    Variant,
    compose,
    get_variant,
    needs_thinking,
    outcome_reward,
)
from pgrpo.rewards.format import FormatSpec, Parsed, answer_code, format_reward, parse_completion
from pgrpo.rewards.math import math_answer_reward

__all__ = [
    "OUTCOME_MODES",
    "VARIANTS",
    "FormatSpec",
    "Parsed",
    "RewardBreakdown",
    "RewardStats",
    "RewardWeights",
    "Variant",
    "answer_code",
    "compose",
    "format_reward",
    "get_variant",
    "group_advantages",
    "math_answer_reward",
    "needs_thinking",
    "outcome_reward",
    "parse_completion",
    "score_completions",
]
