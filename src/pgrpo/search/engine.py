"""The driver that runs a search method on many problems at once, and the books it keeps.

A method is a Python generator per problem: it yields `Generate` (prompts for the generator or the
critic) and `Execute` (programs to run on the search task's tests) and gets the answers back, so it
reads top to bottom like a single-problem algorithm. The driver advances all problems in lockstep and
merges their requests into one batched LLM call per (role, sampling params) and one executor batch,
which is what makes a CPU run affordable.

The driver is also the only place where calls, tokens and executions are counted (a method cannot
forget to), where the budget is enforced, and where programs meet tests: an `Execute` carries code
only, and the driver runs it on `SearchTask.problem`, the visible tests. Hidden tests are not
reachable from here.

One LLM call = one completion (a prompt asked for n samples is n calls). Prompt tokens are counted
once per completion. Tokens are counted with the backend's tokenizer where the generator exposes one
(transformers: the rendered chat prompt, and the completion text re-encoded); otherwise they are an
estimate, ceil(characters / 4), and `TokenCounter.method` says so.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Generator as Coroutine
from dataclasses import dataclass, field
from typing import Any

from pgrpo.llm import Generator, Prompt, SamplingParams, is_chat
from pgrpo.prompting import plain_text
from pgrpo.search.tasks import SearchTask
from pgrpo.search.tree import Node

ESTIMATE = "estimate: ceil(characters / 4)"


@dataclass(frozen=True)
class Generate:
    prompts: list[Prompt]
    params: SamplingParams
    role: str = "generator"  # or "critic"


@dataclass(frozen=True)
class Execute:
    codes: list[str]


Request = Generate | Execute


@dataclass
class MethodResult:
    nodes: list[Node]
    selected: Node | None
    stop: str  # why the search ended


Method = Callable[[SearchTask, Any, "Ledger"], Coroutine[Request, Any, MethodResult]]


class BudgetExceeded(RuntimeError):
    """A method asked for more LLM calls than its budget: a bug in the method, never a user error."""


@dataclass
class Ledger:
    """What one problem's search cost. Methods read `calls_left`; only the driver charges."""

    budget: int | None = None
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    prompt_tokens: int = 0
    completion_tokens: int = 0
    executions: int = 0
    critic_retries: int = 0
    critic_failures: int = 0

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def calls_left(self) -> float:
        return math.inf if self.budget is None else self.budget - self.total_calls

    def to_dict(self) -> dict:
        return {
            "llm_calls": self.total_calls,
            "generator_calls": self.calls.get("generator", 0),
            "critic_calls": self.calls.get("critic", 0),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.prompt_tokens + self.completion_tokens,
            "executions": self.executions,
            "critic_retries": self.critic_retries,
            "critic_failures": self.critic_failures,
            "budget_calls": self.budget,
        }


class TokenCounter:
    """Counts tokens with the generator's own tokenizer when it has one, else estimates (labelled)."""

    def __init__(self, generator: Generator) -> None:
        inner = generator
        while hasattr(inner, "inner"):  # CachedGenerator and other wrappers
            inner = inner.inner
        self.tokenizer = getattr(inner, "tokenizer", None)
        self.render = getattr(inner, "render", None)
        if self.tokenizer is not None and callable(self.render):
            self.method = f"tokenizer of {generator.name}"
        else:
            self.tokenizer = self.render = None
            self.method = ESTIMATE
        self._prompts: dict[str, int] = {}

    def _count(self, text: str, special: bool) -> int:
        if self.tokenizer is None:
            return math.ceil(len(text) / 4)
        return len(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def prompt(self, prompt: Prompt) -> int:
        key = json.dumps(prompt, sort_keys=True)
        if key not in self._prompts:
            if self.render is None:
                text = prompt if not is_chat(prompt) else "\n".join(m["content"] for m in prompt)
                self._prompts[key] = self._count(text, special=False)
            else:  # a rendered chat template holds its special tokens already
                self._prompts[key] = self._count(self.render(prompt), special=not is_chat(prompt))
        return self._prompts[key]

    def completion(self, text: str) -> int:
        return self._count(text, special=False)


@dataclass(frozen=True)
class PromptForm:
    """How one model is prompted: the methods write chat messages; a model without a chat template gets
    their plain-text form (`pgrpo.prompting.plain_text`), and in the pgrpo style the training system
    prompt goes first, so a solve prompt reaches the model exactly as `pgrpo train` would render it."""

    chat: bool = True
    system_prompt: str | None = None

    def render(self, prompt: Prompt) -> Prompt:
        if not is_chat(prompt):
            return prompt
        if self.system_prompt is not None:
            prompt = [{"role": "system", "content": self.system_prompt}, *prompt]
        return prompt if self.chat else plain_text(prompt)


@dataclass
class Backends:
    """The models a search talks to, by role, how each is prompted and how its tokens are counted."""

    generator: Generator
    critic: Generator
    counters: dict[str, TokenCounter] = field(default_factory=dict)
    forms: dict[str, PromptForm] = field(default_factory=dict)  # by role; default: chat messages as is

    def __post_init__(self) -> None:
        self.counters = {"generator": TokenCounter(self.generator)}
        self.counters["critic"] = (
            self.counters["generator"] if self.critic is self.generator else TokenCounter(self.critic)
        )

    def model(self, role: str) -> Generator:
        return self.critic if role == "critic" else self.generator

    def render(self, role: str, prompt: Prompt) -> Prompt:
        return self.forms.get(role, PromptForm()).render(prompt)


def drive(
    tasks: list[SearchTask],
    method: Method,
    config: Any,
    backends: Backends,
    executor: Any,
    budget: int | None,
    progress: Any = None,
) -> dict[str, tuple[MethodResult, Ledger]]:
    """Run `method` on every task; returns {task id: (result, ledger)}. `progress.update(1)` per task done."""
    by_id = {t.id: t for t in tasks}
    ledgers = {t.id: Ledger(budget=budget) for t in tasks}
    running = {t.id: method(t, config, ledgers[t.id]) for t in tasks}
    requests: dict[str, Request] = {}
    results: dict[str, MethodResult] = {}

    def advance(pid: str, reply: Any) -> None:
        try:
            requests[pid] = running[pid].send(reply)
        except StopIteration as done:
            requests.pop(pid, None)
            results[pid] = done.value
            if progress is not None:
                progress.update(1)

    for pid in running:
        advance(pid, None)
    while requests:
        replies: dict[str, Any] = {}
        groups: dict[tuple[str, SamplingParams], list[str]] = defaultdict(list)
        for pid, request in requests.items():
            if isinstance(request, Generate):
                groups[request.role, request.params].append(pid)
        for (role, params), members in groups.items():
            for pid in members:
                ledger = ledgers[pid]
                asked = len(requests[pid].prompts) * params.n
                if ledger.budget is not None and ledger.total_calls + asked > ledger.budget:
                    raise BudgetExceeded(
                        f"{pid}: asked for {asked} calls with {ledger.calls_left} left of {ledger.budget}"
                    )
            prompts = [backends.render(role, p) for pid in members for p in requests[pid].prompts]
            texts = backends.model(role).generate(prompts, params) if prompts else []
            counter = backends.counters[role]
            at = 0
            for pid in members:
                own = prompts[at : at + len(requests[pid].prompts)]
                replies[pid] = texts[at : at + len(own)]
                at += len(own)
                ledger = ledgers[pid]
                ledger.calls[role] += len(own) * params.n
                ledger.prompt_tokens += sum(counter.prompt(p) for p in own) * params.n
                ledger.completion_tokens += sum(counter.completion(t) for out in replies[pid] for t in out)
        runs = [
            (pid, code)
            for pid, request in requests.items()
            if isinstance(request, Execute)
            for code in request.codes
        ]
        outcomes = executor.map([(by_id[pid].problem, code) for pid, code in runs]) if runs else []
        for (pid, _), outcome in zip(runs, outcomes, strict=True):
            replies.setdefault(pid, []).append(outcome)
            ledgers[pid].executions += 1
        for pid, request in list(requests.items()):
            if isinstance(request, Execute) and not request.codes:
                replies[pid] = []
            advance(pid, replies[pid])
    return {pid: (results[pid], ledgers[pid]) for pid in running}
