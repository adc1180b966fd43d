"""The answer reward for math problems (tests of type `answer`): math-verify, nothing executed.

The completion's answer is read by `pgrpo.answers` (the last answer block, its last `\\boxed{}` if any).
math-verify's time limit uses SIGALRM, which works on the main thread only; off it (a reward function
run in a thread pool, as verl's reward loop does) the check runs without a time limit rather than fail.
A check that still cannot be made (`AnswerCheckError`: a timeout) is None, masked, never 0.
"""

from __future__ import annotations

import threading

from pgrpo.answers import TIMEOUT_S, AnswerCheckError, check_answer
from pgrpo.rewards.format import FormatSpec, last_answer_block


def math_answer_reward(text: str, expected: str, spec: FormatSpec = FormatSpec()) -> float | None:
    """1.0 when the completion's final answer equals `expected` (math-verify), 0.0 when not,
    None when math-verify could not decide (timeout)."""
    try:
        return 1.0 if check_answer(_with_answer_tag(text, spec), expected, timeout_s=_time_limit()) else 0.0
    except AnswerCheckError:
        return None


def _time_limit() -> int | None:
    return TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _with_answer_tag(text: str, spec: FormatSpec) -> str:
    """`pgrpo.answers` reads `<answer>`: a completion using another tag gets its last block re-tagged."""
    if spec.answer_tag == "answer":
        return text
    block = last_answer_block(text, spec)
    return text if block is None else f"<answer>{block}</answer>"
