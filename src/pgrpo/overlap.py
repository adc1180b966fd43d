"""Training data must not contain the problems a run is evaluated on.

Two problems are the same when they share an id or when their prompts match after normalisation
(lower case, runs of whitespace collapsed, surrounding whitespace dropped): the same task copied into
another file under another id is still the same task. `check_disjoint` raises `OverlapError` (a
ValueError: the CLI prints it as one line and exits 2) naming both sets and a few shared problems.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class OverlapError(ValueError):
    """Training problems that are also evaluation problems."""


def normalise_prompt(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def shared_problems(
    train: Iterable[tuple[str, str]], evaluation: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(train id, evaluation id) for every training problem found in `evaluation`; both are (id, prompt)."""
    by_id: dict[str, str] = {}
    by_text: dict[str, str] = {}
    for pid, prompt in evaluation:
        by_id.setdefault(pid, pid)
        if prompt and prompt.strip():
            by_text.setdefault(normalise_prompt(prompt), pid)
    shared = []
    for pid, prompt in train:
        match = by_id.get(pid) or (
            by_text.get(normalise_prompt(prompt)) if prompt and prompt.strip() else None
        )
        if match is not None:
            shared.append((pid, match))
    return shared


def check_disjoint(
    train: Iterable[tuple[str, str]],
    evaluation: Iterable[tuple[str, str]],
    train_name: str,
    eval_name: str,
    hint: str = "",
    show: int = 5,
) -> None:
    """Raise OverlapError when a training problem is an evaluation problem."""
    shared = shared_problems(train, evaluation)
    if not shared:
        return
    examples = ", ".join(a if a == b else f"{a} (= {b})" for a, b in shared[:show])
    more = f" and {len(shared) - show} more" if len(shared) > show else ""
    raise OverlapError(
        f"overlap: {len(shared)} training problem(s) from {train_name} are also in {eval_name}: "
        f"{examples}{more}" + (f"; {hint}" if hint else "")
    )


def problem_keys(problems: Iterable) -> list[tuple[str, str]]:
    """(id, prompt) of `Problem`s."""
    return [(p.id, p.prompt) for p in problems]
