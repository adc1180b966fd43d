"""Search trees: nodes, the two beam rankings of ORPS, and the final selection.

Every method (the baselines too) records its candidates as nodes, so one JSONL format and one
selection rule serve them all: a CoT run is a one-node tree, best-of-n a row of roots, refine a chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pgrpo.search.metrics import Omega, omega, runtime_s
from pgrpo.types import ExecResult


@dataclass
class Node:
    id: int
    parent: int | None
    round: int
    hint: str | None
    reasoning: str
    code: str
    result: ExecResult | None = None
    omega: Omega | None = None
    rho: int | None = None
    critique: str = ""
    critic: str = (
        "not asked"  # "scored", "failed: ...", or "not asked" (baselines; a round that ended the search)
    )
    critic_replies: list[str] = field(default_factory=list)  # every raw critic reply, retries included
    selected: bool = False

    def record_run(self, result: ExecResult) -> None:
        self.result = result
        self.omega = omega(self.code, result)

    @property
    def pass_rate(self) -> float:
        return self.result.pass_rate if self.result else 0.0

    @property
    def passes_all(self) -> bool:
        """Passes every test search may use (and there is at least one)."""
        return bool(self.result and self.result.tests and self.result.passed)

    @property
    def runtime(self) -> float:
        return runtime_s(self.result) if self.result else float("inf")

    @property
    def critic_calls(self) -> int:
        return len(self.critic_replies)

    @property
    def omega_value(self) -> float:
        return self.omega.value if self.omega else 0.0

    def to_dict(self) -> dict:
        r = self.result
        return {
            "id": self.id,
            "parent": self.parent,
            "round": self.round,
            "hint": self.hint,
            "reasoning": self.reasoning,
            "code": self.code,
            "visible": None
            if r is None
            else {
                "verdict": r.verdict.value,
                "pass_rate": round(r.pass_rate, 6),
                "passed": sum(t.passed for t in r.tests),
                "tests": len(r.tests),
                "runtime_s": round(runtime_s(r), 6),
            },
            "rho": self.rho,
            "critic": self.critic,
            "critique": self.critique,
            "critic_replies": self.critic_replies,
            "omega": self.omega.to_dict() if self.omega else None,
            "selected": self.selected,
        }


# ----------------------------------------------------------------------------- rankings
# A node the critic could not score ranks below every scored one, on ω alone: a failure is never a score.


def weighted(node: Node) -> tuple:
    """q = 0.5·ρ + 0.5·ω, as the paper states it."""
    if node.rho is None:
        return (0, node.omega_value)
    return (1, 0.5 * node.rho + 0.5 * node.omega_value)


def critic_then_omega(node: Node) -> tuple:
    """ρ first, ω to break ties, as the paper's released code ranks."""
    return (0 if node.rho is None else 1, node.rho or 0, node.omega_value)


RANKINGS: dict[str, Callable[[Node], tuple]] = {"weighted": weighted, "critic-then-omega": critic_then_omega}


def beam(nodes: list[Node], ranking: str, width: int) -> list[Node]:
    """The `width` best nodes, best first; ties keep generation order."""
    key = RANKINGS[ranking]
    return sorted(nodes, key=key, reverse=True)[:width] if nodes else []


def selection_key(node: Node) -> tuple:
    """Final choice over the whole tree: pass rate on the search tests, then runtime, then ω."""
    return (node.pass_rate, -node.runtime, node.omega_value)


def select(nodes: list[Node]) -> Node | None:
    if not nodes:
        return None
    best = max(nodes, key=selection_key)  # max keeps the first of equals: the earliest node
    best.selected = True
    return best
