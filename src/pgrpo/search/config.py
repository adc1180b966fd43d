"""`pgrpo search` settings: one dataclass whose field help is the command line's `--help` text."""

from __future__ import annotations

from dataclasses import dataclass, field

PROMPT_STYLES = ("instruct", "completion", "pgrpo")
MAX_TOKENS = {"pgrpo": 4096}  # a P-GRPO policy writes up to 4K tokens of reasoning and code
DEFAULT_MAX_TOKENS = 1024


def _opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class SearchConfig:
    dataset: str = _opt(
        None,
        "problems with visible and hidden tests: NAME:DIR for the ORPS layout (DIR holds dev.jsonl, the "
        "visible tests, and test.jsonl, the hidden ones; e.g. lbpp:/work/shared/data/lbpp), or any spec "
        "whose problems carry metadata.visible_tests (livecodebench:PATH, codecontests:PATH)",
        required=True,
    )
    out: str = _opt(None, "run directory (report.json, report.md, one folder per method)", required=True)
    model: str = _opt(None, "the generator: a local directory, a .gguf file, or an http(s):// server")
    method: str = _opt("orps", "comma-separated methods to run and compare: cot, best-of-n, refine, orps")
    backend: str = _opt("auto", "generation backend: transformers, vllm, openai or auto")
    prompt_style: str = _opt(
        "instruct",
        "instruct: chat messages, or their plain-text form for a model without a chat template; "
        "completion: always the plain-text form (base models); pgrpo: a model trained by pgrpo train, "
        "prompted as in training (its system prompt before every generator prompt, chat or plain as "
        "recorded in the model's pgrpo_prompt.json) and read as its reward reads it (reasoning from "
        "<think>, code from <answer>). The critic is always prompted without the system prompt",
    )
    critic_model: str | None = _opt(None, "a different model as ORPS's critic (default: the generator)")
    critic_backend: str = _opt("auto", "backend of --critic-model")
    children: int = _opt(20, "ORPS: children per expanded node, each with its own strategy hint (N)")
    beam: int = _opt(3, "ORPS: nodes kept after each round and expanded in the next (K)")
    rounds: int = _opt(5, "ORPS: refinement rounds (T) after round 0, which answers the bare problem N times")
    stop_on_pass: bool = _opt(
        False,
        "ORPS: end the search at the first child that passes every visible test (for budget studies); "
        "by default such a node is only retired from expansion and the others are refined until round T",
    )
    temperature: float = _opt(0.5, "sampling temperature of best-of-n, refine and ORPS's children")
    cot_temperature: float = _opt(0.0, "temperature of the one CoT sample (0 = greedy)")
    ranking: str = _opt(
        "weighted",
        "ORPS beam ranking: weighted (q = 0.5·ρ + 0.5·ω as the paper states, both first put on [0, 1]: "
        "(ρ-1)/4 and ω/2) or critic-then-omega (ρ, then ω, as its released code does)",
    )
    max_tokens: int | None = _opt(
        None, "new tokens per generated solution; default 4096 with --prompt-style pgrpo, else 1024"
    )
    critic_max_tokens: int = _opt(384, "new tokens per critique")
    critic_temperature: float = _opt(0.0, "critic sampling temperature (0 = greedy)")
    critic_retries: int = _opt(2, "extra critic calls asking again for a score when none can be parsed")
    budget_calls: int | None = _opt(
        None,
        "LLM calls per problem for best-of-n, refine and ORPS (critic calls count); default: what ORPS "
        "uses with no node retired and no critic retries, 2·N·(1 + T·K) (each child: one generation and "
        "one critique). CoT always makes one call",
    )
    oracle: bool = _opt(False, "ORACLE run: search and selection use the hidden tests (reports say so)")
    show_tests: int = _opt(3, "visible tests shown in the prompt as examples (0: none)")
    limit: int | None = _opt(None, "only the first N problems (canaries dropped)")
    workers: int = _opt(2, "sandbox workers")
    timeout: float | None = _opt(None, "per-test time limit override, seconds")
    efficiency_repeats: int = _opt(
        3, "runs of a solved answer and its reference on the hidden tests; min time kept"
    )
    cache_dir: str | None = _opt(None, "on-disk LLM cache: a rerun pays only for what is missing")
    seed: int = _opt(0, "sampling seed")
    batch_size: int | None = _opt(None, "transformers: sequences per forward pass (default 8)")
    device: str | None = _opt(None, "transformers: cpu, cuda, ...")
    generator_options: str | None = _opt(None, "other backend options as JSON")

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

    def validate(self, known_methods: list[str], known_rankings: list[str], hints: int) -> None:
        """Fail fast, saying why and what is valid."""
        unknown = [m for m in self.methods if m not in known_methods]
        if unknown or not self.methods:
            raise ValueError(
                f"unknown search method(s) {unknown or self.method!r}; valid: {', '.join(known_methods)}"
            )
        if self.ranking not in known_rankings:
            raise ValueError(f"unknown ranking {self.ranking!r}; valid: {', '.join(known_rankings)}")
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"unknown prompt style {self.prompt_style!r}; valid: {', '.join(PROMPT_STYLES)}")
        for name in (
            "children",
            "beam",
            "rounds",
            "critic_max_tokens",
            "workers",
            "efficiency_repeats",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.resolved_max_tokens() < 1:
            raise ValueError(f"--max-tokens must be at least 1, got {self.max_tokens}")
        if self.critic_retries < 0:
            raise ValueError(f"--critic-retries must be 0 or more, got {self.critic_retries}")
        if self.children > hints:
            raise ValueError(
                f"--children {self.children} needs {self.children} distinct strategy hints; "
                f"prompts/search_strategies.txt has {hints}: add hints there or lower --children"
            )
        if self.budget_calls is not None and self.budget_calls < 2:
            raise ValueError(
                f"--budget-calls must be at least 2 (one solution and its critique), got {self.budget_calls}"
            )
        if self.model is None:
            raise ValueError("pgrpo search: give --model (a directory, a .gguf file or an http(s):// URL)")
