"""Search trees: nodes, the two beam rankings of ORPS, and the final selection.

Every method (the baselines too) records its candidates as nodes, so one JSONL format and one
selection rule serve them all: a CoT run is a one-node tree, best-of-n a row of roots, refine a chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pgrpo.search.metrics import Omega, omega
from pgrpo.types import ExecResult, Verdict

OMEGA_MAX = 2.0  # ω = pass_rate·(1 + 0.5·static + 0.5·dynamic), each part at most 1
DID_NOT_RUN = (Verdict.COMPILE_ERROR, Verdict.SANDBOX_ERROR)


def passing_runtime_s(result: ExecResult) -> float | None:
    """Time over the passing tests only (CPU where each of them has it, else wall); None when none pass:
    a run that fails fast has not shown how fast it is."""
    passing = [t for t in result.tests if t.passed]
    if not passing:
        return None
    if all(t.cpu_s is not None for t in passing):
        return sum(t.cpu_s for t in passing)
    return sum(t.wall_s for t in passing)


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
    def ran(self) -> bool:
        """The program ran: there is code, and it compiled (with no tests to run it on: it parses)."""
        if self.result is None or not self.code.strip():
            return False
        if not self.result.tests:
            return bool(self.omega and self.omega.static is not None)
        return any(t.verdict not in DID_NOT_RUN for t in self.result.tests)

    @property
    def runtime(self) -> float | None:
        """Seconds over the passing search tests; None (unknown) when none passes."""
        return passing_runtime_s(self.result) if self.result else None

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
                "ran": self.ran,
                "runtime_s": None if self.runtime is None else round(self.runtime, 6),
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
    """q = 0.5·ρ + 0.5·ω, as the paper states it, with both on [0, 1] first: (ρ-1)/4 and ω/2. On their
    raw scales (ρ in 1..5, ω in 0..2) ρ would decide alone."""
    if node.rho is None:
        return (0, node.omega_value)
    return (1, 0.5 * (node.rho - 1) / 4 + 0.5 * node.omega_value / OMEGA_MAX)


def critic_then_omega(node: Node) -> tuple:
    """ρ first, ω to break ties, as the paper's released code ranks."""
    return (0 if node.rho is None else 1, node.rho or 0, node.omega_value)


RANKINGS: dict[str, Callable[[Node], tuple]] = {"weighted": weighted, "critic-then-omega": critic_then_omega}


def beam(nodes: list[Node], ranking: str, width: int) -> list[Node]:
    """The `width` best nodes, best first; ties keep generation order."""
    key = RANKINGS[ranking]
    return sorted(nodes, key=key, reverse=True)[:width] if nodes else []


def selection_key(node: Node) -> tuple:
    """Final choice over the whole tree: pass rate on the search tests; then a program that ran before one
    that did not (compile error, no code); then runtime over the passing tests, known before unknown;
    then ω; then ρ, which alone separates programs of a problem with no visible tests."""
    runtime = node.runtime
    return (
        node.pass_rate,
        node.ran,
        runtime is not None,
        -(runtime or 0.0),
        node.omega_value,
        node.rho or 0,
    )


def select(nodes: list[Node]) -> Node | None:
    if not nodes:
        return None
    best = max(nodes, key=selection_key)  # max keeps the first of equals: the earliest node
    best.selected = True
    return best
