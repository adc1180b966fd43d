"""The search methods, each written for one problem (the driver in `engine` batches them):

- `cot`: one answer (greedy by default) after step-by-step reasoning.
- `best-of-n`: n = budget answers at the search temperature; the best on the visible tests wins.
- `refine`: Reflexion-style: answer, run, then revise with the execution feedback until the visible
  tests pass or the budget is spent; the best attempt wins.
- `orps`: Outcome-Refining Process Supervision (arXiv 2412.15118): a beam search whose every node is
  reasoning + code, run on the visible tests with profiling, reviewed by a critic that reads the
  execution report (score ρ in 1..5), and scored by ω (`metrics`). Round 0 answers the bare problem
  N times; each of the T refinement rounds expands the K best nodes of the round before into N
  children each, with distinct strategy hints: at most N(1 + T·K) children, each with a critique.
  A node judged good (`judged_good`: it passes every visible test) is retired from expansion and the
  others are refined until round T; the search ends earlier only when the budget cannot pay for
  another child and its critique, or when every child of a round is retired. `--stop-on-pass` ends it
  at the first child that passes every visible test (that round is not critiqued), for budget
  studies. The answer is the best node of the whole tree (`tree.select`).
  Budget: a round only plans children it can pay a critique for; critic retries are paid from the same
  budget before the next round is planned, so a critic that never writes a score line can starve later
  rounds (see `--critic-retries`).

All methods see a `SearchTask` only; every candidate is a `tree.Node`, so all export the same JSONL.
"""

from __future__ import annotations

from pgrpo.llm import SamplingParams
from pgrpo.search import prompts
from pgrpo.search.config import SearchConfig
from pgrpo.search.engine import Execute, Generate, Ledger, Method, MethodResult
from pgrpo.search.tasks import SearchTask
from pgrpo.search.tree import Node, beam, select

RETRY_MAX_TOKENS = 32  # a retry asks for the score line only


def _params(cfg: SearchConfig, temperature: float, n: int = 1, step: int = 0) -> SamplingParams:
    """`step` shifts the seed: a prompt asked again (a revision that repeats itself) must get a fresh
    sample, not the cached or identically seeded one."""
    return SamplingParams(
        n=n, temperature=temperature, max_tokens=cfg.resolved_max_tokens(), seed=cfg.seed + step
    )


def _nodes(
    task: SearchTask, texts: list[str], start: int, parent: int | None, round_: int, hints
) -> list[Node]:
    nodes = []
    for i, (text, hint) in enumerate(zip(texts, hints, strict=True)):
        reasoning, code = prompts.split_answer(task, text)
        nodes.append(Node(start + i, parent, round_, hint, reasoning, code))
    return nodes


def _run(nodes: list[Node]):
    results = yield Execute([n.code for n in nodes])
    for node, result in zip(nodes, results, strict=True):
        node.record_run(result)


def cot(task: SearchTask, cfg: SearchConfig, ledger: Ledger):
    (texts,) = yield Generate([prompts.solve_prompt(task, cfg.show_tests)], _params(cfg, cfg.cot_temperature))
    nodes = _nodes(task, texts[:1], 0, None, 0, [None])
    yield from _run(nodes)
    return MethodResult(nodes, select(nodes), "one sample")


def best_of_n(task: SearchTask, cfg: SearchConfig, ledger: Ledger):
    n = int(ledger.budget or cfg.resolved_budget())
    (texts,) = yield Generate([prompts.solve_prompt(task, cfg.show_tests)], _params(cfg, cfg.temperature, n))
    nodes = _nodes(task, texts, 0, None, 0, [None] * n)
    yield from _run(nodes)
    return MethodResult(nodes, select(nodes), f"{n} samples")


def refine(task: SearchTask, cfg: SearchConfig, ledger: Ledger):
    (texts,) = yield Generate([prompts.solve_prompt(task, cfg.show_tests)], _params(cfg, cfg.temperature))
    nodes = _nodes(task, texts, 0, None, 0, [None])
    yield from _run(nodes)
    stop = "budget spent"
    while True:
        last = nodes[-1]
        if last.passes_all:
            stop = "passed the visible tests"
            break
        if ledger.calls_left < 1:
            break
        prompt = prompts.reflect_prompt(task, cfg.show_tests, last.code, last.result)
        (texts,) = yield Generate([prompt], _params(cfg, cfg.temperature, step=len(nodes)))
        child = _nodes(task, texts, len(nodes), last.id, last.round + 1, [None])
        yield from _run(child)
        nodes += child
    return MethodResult(nodes, select(nodes), stop)


def critique(task: SearchTask, nodes: list[Node], cfg: SearchConfig, ledger: Ledger, tree=()):
    """Ask the critic for ρ of each node, asking again (up to `critic_retries` times) when no score can be
    parsed. A node left without a score is a counted failure (`ledger.critic_failures`), never a guess.
    `tree` (the nodes so far) gives the critic the path of attempts that led to each node."""
    conversations = {n.id: prompts.critic_prompt(task, n, tree) for n in nodes}
    pending = list(nodes)
    for attempt in range(cfg.critic_retries + 1):
        affordable = pending[: int(min(len(pending), ledger.calls_left))]
        for node in pending[len(affordable) :]:
            node.critic = "failed: budget spent before a score" if attempt else "not asked: budget spent"
            ledger.critic_failures += bool(attempt)
        if not affordable:
            return
        if attempt:
            ledger.critic_retries += len(affordable)
        params = SamplingParams(
            temperature=cfg.critic_temperature,
            max_tokens=cfg.critic_max_tokens if attempt == 0 else RETRY_MAX_TOKENS,
            seed=cfg.seed,
        )
        replies = yield Generate([conversations[n.id] for n in affordable], params, role="critic")
        pending = []
        for node, (reply,) in zip(affordable, replies, strict=True):
            node.critic_replies.append(reply)
            score = prompts.parse_score(reply)
            if score is not None:
                node.rho, node.critic = score, "scored"
                node.critique = reply if attempt == 0 else node.critique
            else:
                node.critique = node.critique or reply
                conversations[node.id] = prompts.critic_retry(conversations[node.id], reply)
                pending.append(node)
    for node in pending:
        node.critic = f"failed: no score in {node.critic_calls} replies"
        ledger.critic_failures += 1


def judged_good(task: SearchTask, node: Node) -> bool:
    """Retired from expansion: it passes every visible test. The critic alone does not retire a node (it
    is the generator judging itself), except on a problem with no visible tests, where ρ = 5 does."""
    if task.problem.tests:
        return node.passes_all
    return node.rho == 5


def orps(task: SearchTask, cfg: SearchConfig, ledger: Ledger):
    nodes: list[Node] = []
    frontier: list[Node | None] = [None]  # None: the root, the bare problem
    stop = f"{cfg.rounds} refinement rounds done"
    for round_ in range(cfg.rounds + 1):  # round 0 answers the bare problem; then T refinement rounds
        hints = prompts.hints_for(round_ + 1, cfg.children)  # hints_for counts rounds from 1
        slots = [(parent, hint) for parent in frontier for hint in hints]
        slots = slots[: int(min(len(slots), ledger.calls_left // 2))]  # each child also needs a critique
        if not slots:
            stop = "budget spent"
            break
        asks = [
            prompts.solve_prompt(task, cfg.show_tests, hint)
            if parent is None
            else prompts.expand_prompt(task, cfg.show_tests, parent, hint, nodes)
            for parent, hint in slots
        ]
        texts = yield Generate(asks, _params(cfg, cfg.temperature, step=round_))
        children = []
        for (parent, hint), (text,) in zip(slots, texts, strict=True):
            children += _nodes(
                task,
                [text],
                len(nodes) + len(children),
                None if parent is None else parent.id,
                round_,
                [hint],
            )
        nodes += children
        yield from _run(children)
        if cfg.stop_on_pass and any(child.passes_all for child in children):
            stop = f"a child passed the visible tests in round {round_}"
            break
        yield from critique(task, children, cfg, ledger, nodes)
        frontier = beam([c for c in children if not judged_good(task, c)], cfg.ranking, cfg.beam)
        if not frontier:  # (reports group stops by the text before " in round")
            stop = f"every child was judged good in round {round_}"
            break
    return MethodResult(nodes, select(nodes), stop)


METHODS: dict[str, Method] = {"cot": cot, "best-of-n": best_of_n, "refine": refine, "orps": orps}
"""Method name -> per-problem search. A new method is a function here plus this entry."""


__all__ = ["METHODS", "critique"]
