"""`pgrpo search` settings: one dataclass whose field help is the command line's `--help` text, and whose
ranges and choices are checked however the config is built (flags or Python)."""

from __future__ import annotations

from dataclasses import dataclass

from pgrpo.llm.options import BACKEND_CHOICES, GeneratorOptions
from pgrpo.options import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    SECONDS,
    SEED,
    Range,
    UsageError,
    check_options,
    option,
)

PROMPT_STYLES = ("instruct", "completion", "pgrpo")
RANKING_CHOICES = ("weighted", "critic-then-omega")  # tree.RANKINGS' names
MAX_TOKENS = {"pgrpo": 4096}  # a P-GRPO policy writes up to 4K tokens of reasoning and code
DEFAULT_MAX_TOKENS = 1024
TWO_OR_MORE = Range(low=2, integer=True)  # a budget pays for at least one solution and its critique


@dataclass
class SearchConfig(GeneratorOptions):
    dataset: str = option(
        None,
        "problems with visible and hidden tests: NAME:DIR for the ORPS layout (DIR holds dev.jsonl, the "
        "visible tests, and test.jsonl, the hidden ones; e.g. lbpp:/work/shared/data/lbpp), or any spec "
        "whose problems carry metadata.visible_tests (livecodebench:PATH, codecontests:PATH)",
        required=True,
    )
    out: str = option(None, "run directory (report.json, report.md, one folder per method)", required=True)
    method: str = option("orps", "comma-separated methods to run and compare: cot, best-of-n, refine, orps")
    prompt_style: str = option(
        "instruct",
        "instruct: chat messages, or their plain-text form for a model without a chat template; "
        "completion: always the plain-text form (base models); pgrpo: a model trained by pgrpo train, "
        "prompted as in training (its system prompt before every generator prompt, chat or plain as "
        "recorded in the model's pgrpo_prompt.json) and read as its reward reads it (reasoning from "
        "<think>, code from <answer>). The critic is always prompted without the system prompt",
        choices=PROMPT_STYLES,
    )
    critic_model: str | None = option(None, "a different model as ORPS's critic (default: the generator)")
    critic_backend: str = option("auto", "backend of --critic-model", choices=BACKEND_CHOICES)
    children: int = option(
        20, "ORPS: children per expanded node, each with its own strategy hint (N)", range=AT_LEAST_ONE
    )
    beam: int = option(
        3, "ORPS: nodes kept after each round and expanded in the next (K)", range=AT_LEAST_ONE
    )
    rounds: int = option(
        5,
        "ORPS: refinement rounds (T) after round 0, which answers the bare problem N times",
        range=AT_LEAST_ONE,
    )
    stop_on_pass: bool = option(
        False,
        "ORPS: end the search at the first child that passes every visible test (for budget studies); "
        "by default such a node is only retired from expansion and the others are refined until round T",
    )
    temperature: float = option(
        0.5, "sampling temperature of best-of-n, refine and ORPS's children", range=NON_NEGATIVE
    )
    cot_temperature: float = option(0.0, "temperature of the one CoT sample (0 = greedy)", range=NON_NEGATIVE)
    ranking: str = option(
        "weighted",
        "ORPS beam ranking: weighted (q = 0.5·ρ + 0.5·ω as the paper states, both first put on [0, 1]: "
        "(ρ-1)/4 and ω/2) or critic-then-omega (ρ, then ω, as its released code does)",
        choices=RANKING_CHOICES,
    )
    max_tokens: int | None = option(
        None,
        "new tokens per generated solution; default 4096 with --prompt-style pgrpo, else 1024",
        range=AT_LEAST_ONE,
    )
    critic_max_tokens: int = option(384, "new tokens per critique", range=AT_LEAST_ONE)
    critic_temperature: float = option(0.0, "critic sampling temperature (0 = greedy)", range=NON_NEGATIVE)
    critic_retries: int = option(
        2, "extra critic calls asking again for a score when none can be parsed", range=NON_NEGATIVE_INT
    )
    budget_calls: int | None = option(
        None,
        "LLM calls per problem for best-of-n, refine and ORPS (critic calls count); default: what ORPS "
        "uses with no node retired and no critic retries, 2·N·(1 + T·K) (each child: one generation and "
        "one critique). CoT always makes one call",
        range=TWO_OR_MORE,
    )
    oracle: bool = option(False, "ORACLE run: search and selection use the hidden tests (reports say so)")
    show_tests: int = option(
        3, "visible tests shown in the prompt as examples (0: none)", range=NON_NEGATIVE_INT
    )
    limit: int | None = option(None, "only the first N problems (canaries dropped)", range=AT_LEAST_ONE)
    workers: int = option(2, "sandbox workers", range=AT_LEAST_ONE)
    timeout: float | None = option(None, "per-test time limit override, seconds", range=SECONDS)
    efficiency_repeats: int = option(
        3,
        "runs of a solved answer and its reference on the hidden tests; min time kept",
        range=AT_LEAST_ONE,
    )
    cache_dir: str | None = option(None, "on-disk LLM cache: a rerun pays only for what is missing")
    seed: int = option(0, "sampling seed", range=SEED)

    def __post_init__(self) -> None:
        check_options(self)

    @property
    def methods(self) -> list[str]:
        return [m.strip() for m in self.method.split(",") if m.strip()]

    def resolved_max_tokens(self) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        return MAX_TOKENS.get(self.prompt_style, DEFAULT_MAX_TOKENS)

    def resolved_budget(self) -> int:
        """Calls per problem for the budgeted methods."""
        if self.budget_calls is not None:
            return self.budget_calls
        return 2 * self.children * (1 + self.rounds * self.beam)

    def validate(self, known_methods: list[str], hints: int) -> None:
        """The checks that involve more than one field or the installed prompts (each field's own range
        and choices are checked on construction). Fails fast, saying why and what is valid."""
        unknown = [m for m in self.methods if m not in known_methods]
        if unknown or not self.methods:
            raise UsageError(
                f"--method: unknown search method(s) {unknown or self.method!r}; "
                f"valid: {', '.join(known_methods)}"
            )
        if self.children > hints:
            raise UsageError(
                f"--children {self.children} needs {self.children} distinct strategy hints; "
                f"prompts/search_strategies.txt has {hints}: add hints there or lower --children"
            )
        if self.model is None:
            raise UsageError("--model is required (a directory, a .gguf file or an http(s):// URL)")
