"""`pgrpo eval`: generate (or read) samples, execute them, and report pass@k with intervals.

Stages, each timed: load problems -> generate or read samples -> execute (the sandbox) or check
answers (math) -> score (pass@k, bootstrap interval, verdict counts, format rate) -> write the run
directory:

    DIR/samples.jsonl   one row per sample (generated runs only)
    DIR/results.jsonl   one row per sample: its fields plus program, format, verdict, passed, tests
    DIR/problems.jsonl  one row per problem: n, correct, pass@k, well_formed
    DIR/report.json     {"dataset", "n", "pass_at_k", "ci95", "format_rate", "verdicts", "prompt", ...}
    DIR/report.md       the same as a short table

`--prompt-style pgrpo` evaluates a trained model in the format it was trained in: the prompt `pgrpo train`
built (its system prompt and chat flag read from the run's `pgrpo_prompt.json` beside the model, else the
defaults), 4096 new tokens by default, and each completion's program taken exactly as the training
reward takes it (a completion with no code is failed without running). The format rate (the share of
completions with R_format = 1) is reported for every style.

`--samples` must cover every problem evaluated (after `--limit`): a file covering only some would give
a pass@k that reads as the benchmark's. `--allow-partial` accepts it; then report.json holds
`coverage: {covered, total, missing}` and report.md and the console say it first. Generated
completions are cached in DIR/cache as each request completes, so a rerun after Ctrl-C resumes.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from dataclasses import asdict, dataclass

from pgrpo.eval.prompts import STYLES
from pgrpo.jsonl import write_jsonl
from pgrpo.llm.options import GeneratorOptions
from pgrpo.options import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    PROBABILITY,
    SECONDS,
    SEED,
    UsageError,
    check_options,
    on_interrupt,
    option,
)
from pgrpo.outputs import Output, check_outputs, write_text
from pgrpo.prompting import TrainedPrompt, program_for
from pgrpo.types import AnswerTest, ExecResult, Problem, Sample, TestResult, Verdict

NO_CODE = "no code in the completion"


def parse_ks(text: str) -> tuple[int, ...]:
    """`--k` text: comma-separated integers, "1,10" -> (1, 10)."""
    import argparse

    try:
        ks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 1,10, got {text!r}"
        ) from None
    return ks


@dataclass
class EvalConfig(GeneratorOptions):
    dataset: str = option(
        None, "humaneval, mbpp:PATH, lbpp:PATH, livecodebench:PATH, ... or native JSONL", required=True
    )
    out: str = option(None, "run directory (report.json, results.jsonl, ...)", required=True)
    samples: str | None = option(
        None, "score this samples JSONL (evalplus style accepted) instead of generating"
    )
    allow_partial: bool = option(
        False,
        "with --samples: accept a file covering only some of the problems; pass@k is then over the covered "
        "problems and the report says how many of how many",
    )
    n: int = option(1, "samples per problem", range=AT_LEAST_ONE)
    k: tuple[int, ...] = option(
        (1,), "comma-separated k for pass@k, each <= n (default: 1)", range=AT_LEAST_ONE, parse=parse_ks
    )
    temperature: float = option(0.0, "sampling temperature, 0 = greedy", range=NON_NEGATIVE)
    top_p: float = option(1.0, "nucleus sampling: top_p in (0, 1]", range=PROBABILITY)
    max_tokens: int | None = option(
        None, "new tokens per sample (default: 4096 for --prompt-style pgrpo, else 512)", range=AT_LEAST_ONE
    )
    prompt_style: str = option(
        "instruct",
        "instruct: the task as a chat message (default); completion: the raw prompt, for base models; "
        "pgrpo: the prompt pgrpo train used (its system prompt, read from the model's pgrpo_prompt.json "
        "when there is one), code taken from <answer> as the reward takes it",
        choices=STYLES,
    )
    workers: int = option(2, "sandbox workers", range=AT_LEAST_ONE)
    timeout: float | None = option(None, "per-test time limit override, seconds", range=SECONDS)
    limit: int | None = option(None, "only the first N problems (canaries dropped)", range=AT_LEAST_ONE)
    seed: int = option(0, "sampling seed", range=SEED)

    def __post_init__(self) -> None:
        self.k = tuple(self.k)
        check_options(self)
        if self.samples is None and self.model is None:
            raise UsageError("pgrpo eval: give --model (to generate) or --samples FILE (to score)")
        if self.samples is None and max(self.k) > self.n:
            raise UsageError(
                f"--k: every k must be between 1 and --n {self.n}; got {','.join(map(str, self.k))}"
            )


def _progress(total: int, desc: str):
    from pgrpo.log import progress

    return progress(total, desc, "sample")


def generate_samples(
    cfg: EvalConfig, problems: list[Problem], trained: TrainedPrompt
) -> tuple[list[tuple[Sample, Problem]], bool]:
    """(sample, problem) pairs, and whether the prompts were chat messages."""
    from pgrpo.eval.prompts import build_prompt, stop_strings
    from pgrpo.llm import SamplingParams, has_chat_template, load_generator

    cache_dir = os.path.join(cfg.out, "cache")
    generator = load_generator(cfg.model, cfg.backend, cache_dir=cache_dir, **cfg.backend_options())
    on_interrupt(
        f"the completions generated so far are cached in {cache_dir}; rerun the same command to resume"
    )
    chat = trained.chat_for(cfg.prompt_style, has_chat_template(generator))
    pairs: list[tuple[Sample, Problem]] = []
    by_stops: dict[tuple, list[Problem]] = collections.defaultdict(list)
    for problem in problems:
        by_stops[stop_strings(problem, cfg.prompt_style)].append(problem)
    texts: dict[str, list[str]] = {}
    for stops, group in by_stops.items():
        params = SamplingParams(
            n=cfg.n,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_tokens=cfg.max_tokens,
            stop=stops,
            seed=cfg.seed,
        )
        prompts = [
            build_prompt(p, cfg.prompt_style, chat=chat, system_prompt=trained.system_prompt) for p in group
        ]
        outputs = generator.generate(prompts, params)
        texts.update({p.id: out for p, out in zip(group, outputs, strict=True)})
    for problem in problems:
        for i, text in enumerate(texts[problem.id]):
            row = {"id": problem.id, "sample_id": i, "completion": text}
            pairs.append((Sample(id=problem.id, completion=text, sample_id=i, fields=row), problem))
    return pairs, chat


def program_of(problem: Problem, sample: Sample, style: str, spec) -> str | None:
    """The program a sample stands for; None: its completion holds no code. In the pgrpo style a
    completion is read by the training reward's own function, so eval runs what the reward ran."""
    if style == "pgrpo" and sample.solution is None:
        from pgrpo.rewards.batch import _program as reward_program

        return reward_program(problem, sample.completion or "", spec)
    return program_for(problem, sample)


def well_formed(pairs: list[tuple[Sample, Problem]], spec) -> list[bool | None]:
    """R_format = 1 per sample, as the reward judges it (None: a solution, not a completion)."""
    from pgrpo.rewards import format_reward
    from pgrpo.rewards.batch import _spec_for as reward_spec  # math answers need no code

    return [
        None if s.completion is None else format_reward(s.completion, reward_spec(p, spec)) == 1.0
        for s, p in pairs
    ]


def score_samples(
    cfg: EvalConfig, pairs: list[tuple[Sample, Problem]], spec
) -> tuple[list[ExecResult], list[str | None]]:
    """(result, program) per sample: code is executed in the sandbox; math answers are checked with
    math-verify (nothing runs, no program)."""
    results: list[ExecResult | None] = [None] * len(pairs)
    programs: list[str | None] = [None] * len(pairs)
    code_jobs = []
    for i, (sample, problem) in enumerate(pairs):
        if any(isinstance(t, AnswerTest) for t in problem.tests):
            continue
        programs[i] = program_of(problem, sample, cfg.prompt_style, spec)
        if programs[i] is None:
            results[i] = ExecResult(Verdict.FAILED, [], message=NO_CODE)
        else:
            code_jobs.append((i, problem, programs[i]))
    for i, (sample, problem) in enumerate(pairs):
        if any(isinstance(t, AnswerTest) for t in problem.tests):
            results[i] = _answer_result(sample, problem, spec)
    if code_jobs:
        from pgrpo.sandbox import Executor

        bar = _progress(len(code_jobs), "executing")
        with Executor(workers=cfg.workers, time_limit_s=cfg.timeout) as executor:
            done = executor.map([(p, code) for _, p, code in code_jobs], progress=bar)
            for (i, _, _), result in zip(code_jobs, done, strict=True):
                results[i] = result
        if bar:
            bar.close()
    return results, programs  # type: ignore[return-value]


def _answer_result(sample: Sample, problem: Problem, spec) -> ExecResult:
    """A math sample judged by the training reward's own check (`math_answer_reward`, read with the
    trained answer tag). math-verify that cannot decide in its time limit is `sandbox_error`: counted as
    an infrastructure failure, not read as a wrong answer."""
    from pgrpo.rewards import math_answer_reward

    text = sample.completion or sample.solution or ""
    tests = []
    for test in problem.tests:
        if isinstance(test, AnswerTest):
            reward = math_answer_reward(text, test.expected, spec)
            if reward is None:
                message = "math-verify could not decide in its time limit"
                tests.append(TestResult(Verdict.SANDBOX_ERROR, message=message))
            else:
                tests.append(TestResult(Verdict.PASSED if reward == 1.0 else Verdict.FAILED))
    return ExecResult.from_tests(tests)


def summarise(
    cfg: EvalConfig,
    pairs: list[tuple[Sample, Problem]],
    results: list[ExecResult],
    formats: list[bool | None],
) -> tuple[dict, list[dict]]:
    from pgrpo.eval.passk import bootstrap_interval, mean_pass_at_k

    per_problem: dict[str, list[ExecResult]] = collections.defaultdict(list)
    formed: dict[str, list[bool]] = collections.defaultdict(list)
    order: list[str] = []
    for (_, problem), result, ok in zip(pairs, results, formats, strict=True):
        if problem.id not in per_problem:
            order.append(problem.id)
        per_problem[problem.id].append(result)
        if ok is not None:
            formed[problem.id].append(ok)
    counts = [(len(per_problem[pid]), sum(r.passed for r in per_problem[pid])) for pid in order]
    smallest_n = min((n for n, _ in counts), default=0)
    ks = [k for k in cfg.k if k <= smallest_n]
    if len(ks) < len(cfg.k):
        skipped = sorted(set(cfg.k) - set(ks))
        from pgrpo.log import logger

        logger.warning("pass@%s skipped: some problems have only %d samples", skipped, smallest_n)
    verdicts = collections.Counter(r.verdict.value for r in results)
    judged = [ok for ok in formats if ok is not None]
    report = {
        "dataset": cfg.dataset,
        "model": cfg.model,
        "problems": len(order),
        "n": smallest_n
        if all(n == smallest_n for n, _ in counts)
        else {"min": smallest_n, "max": max(n for n, _ in counts)},
        "pass_at_k": {str(k): mean_pass_at_k(counts, k) for k in ks},
        "ci95": {str(k): list(bootstrap_interval(counts, k)) for k in ks},
        # R_format = 1 share over the samples that are completions (None: all were full solutions)
        "format_rate": sum(judged) / len(judged) if judged else None,
        "well_formed": sum(judged),
        "completions": len(judged),
        "verdicts": {v.value: verdicts.get(v.value, 0) for v in Verdict},
        "infrastructure_failures": verdicts.get(Verdict.SANDBOX_ERROR.value, 0),
    }
    if report["infrastructure_failures"]:
        report["without_infrastructure_failures"] = _masked_pass_at_k(order, per_problem, ks)
    rows = []
    for pid, (n, c) in zip(order, counts, strict=True):
        row = {"id": pid, "n": n, "correct": c}
        row.update({f"pass@{k}": mean_pass_at_k([(n, c)], k) for k in ks})
        row["well_formed"] = sum(formed[pid]) if formed[pid] else None
        row["verdicts"] = dict(collections.Counter(r.verdict.value for r in per_problem[pid]))
        rows.append(row)
    return report, rows


def _masked_pass_at_k(order: list[str], per_problem: dict, ks: list[int]) -> dict:
    """pass@k with the sandbox_error samples left out (as rewards mask them), beside the headline
    figure that counts them as failures; a problem left with fewer than k samples is left out of k."""
    from pgrpo.eval.passk import mean_pass_at_k

    counts = []
    for pid in order:
        judged = [r for r in per_problem[pid] if r.verdict is not Verdict.SANDBOX_ERROR]
        counts.append((len(judged), sum(r.passed for r in judged)))
    return {
        "pass_at_k": {str(k): mean_pass_at_k([c for c in counts if c[0] >= k], k) for k in ks},
        "problems": {str(k): sum(n >= k for n, _ in counts) for k in ks},
    }


def _infrastructure_lines(report: dict) -> list[str]:
    masked = report.get("without_infrastructure_failures")
    if not masked:
        return []
    figures = ", ".join(
        f"pass@{k} {value:.4f} over {masked['problems'][k]} problems"
        for k, value in masked["pass_at_k"].items()
        if masked["problems"][k]
    )
    return [
        "",
        f"**INFRASTRUCTURE FAILURES: {report['infrastructure_failures']} samples ended in sandbox_error "
        "(the executor's fault, not the model's) and count as failures below; without them: "
        f"{figures or 'no problem keeps enough samples'}** (their messages are in results.jsonl)",
    ]


def _coverage_lines(coverage: dict | None) -> list[str]:
    if not coverage:
        return []
    missing = coverage["missing"]
    shown = ", ".join(missing[:5]) + (f", ... ({len(missing) - 5} more)" if len(missing) > 5 else "")
    return [
        "",
        f"**PARTIAL COVERAGE: {coverage['covered']} of {coverage['total']} problems have samples; "
        f"pass@k is over these {coverage['covered']} only** (no samples for: {shown})",
    ]


def _base_only_lines(base_only: dict | None) -> list[str]:
    if not base_only:
        return []
    return [
        "",
        f"**BASE TESTS ONLY: {base_only['problems']} of {base_only['of']} problems come from an evalplus "
        "release whose plus inputs carry no expected outputs; only the base test ran, so this is not a "
        "HumanEval+/MBPP+ score** (the original-format release, e.g. evalplus/humanevalplus, holds them)",
    ]


def markdown(report: dict) -> str:
    prompt = report.get("prompt") or {}
    lines = [
        f"# {report['dataset']}",
        "",
        f"model: `{report.get('model')}`, problems: {report['problems']}, samples per problem: {report['n']}",
        *_coverage_lines(report.get("coverage")),
        *_base_only_lines(report.get("base_tests_only")),
        *_infrastructure_lines(report),
        f"prompt style: {prompt.get('style')}"
        + (f", chat: {prompt['chat']}" if prompt.get("chat") is not None else "")
        + (f", prompt from: {prompt['from']}" if prompt.get("from") else ""),
        "",
        "| metric | value | 95% CI |",
        "|---|---:|---:|",
    ]
    for k, value in report["pass_at_k"].items():
        low, high = report["ci95"][k]
        lines.append(f"| pass@{k} | {value:.4f} | {low:.4f}–{high:.4f} |")
    rate = report.get("format_rate")
    lines.append(
        "| format rate (R_format = 1) | – | |"
        if rate is None
        else f"| format rate (R_format = 1) | {rate:.4f} ({report['well_formed']}/{report['completions']}) | |"
    )
    lines += ["", "| verdict | samples |", "|---|---:|"]
    lines += [f"| {v} | {count} |" for v, count in report["verdicts"].items() if count]
    if report.get("seconds"):
        lines += ["", "| stage | seconds |", "|---|---:|"]
        lines += [f"| {stage} | {s:.1f} |" for stage, s in report["seconds"].items()]
    return "\n".join(lines) + "\n"


def read_covering_samples(
    cfg: EvalConfig, every: list[Problem], problems: list[Problem]
) -> tuple[list[tuple[Sample, Problem]], dict | None]:
    """The samples file's (sample, problem) pairs for `problems` (those past --limit are dropped), and
    its coverage when it covers only some of them (refused unless --allow-partial)."""
    from pgrpo.check import read_samples

    pairs = read_samples(cfg.samples, {p.id: p for p in every})
    if not pairs:
        raise UsageError(f"--samples {cfg.samples}: the file holds no samples")
    wanted = {p.id for p in problems}
    pairs = [(s, p) for s, p in pairs if p.id in wanted]
    covered = {p.id for _, p in pairs}
    if len(covered) == len(wanted):
        return pairs, None
    within = f" (the first {cfg.limit})" if cfg.limit else ""
    if not cfg.allow_partial:
        raise UsageError(
            f"--samples {cfg.samples} covers {len(covered)} of {len(wanted)} problems{within} of "
            f"{cfg.dataset}: pass@k over the covered ones alone would read as the benchmark's; pass "
            "--allow-partial to score only those (the report states the coverage)"
        )
    missing = [p.id for p in problems if p.id not in covered]
    return pairs, {"covered": len(covered), "total": len(wanted), "missing": missing}


def run_eval(cfg: EvalConfig) -> dict:
    from dataclasses import replace

    from pgrpo.eval.prompts import max_tokens_for
    from pgrpo.log import logger
    from pgrpo.problems import load_problems

    if cfg.max_tokens is None:
        cfg = replace(cfg, max_tokens=max_tokens_for(cfg.prompt_style))
    if cfg.samples is None:
        from pgrpo.llm import check_model

        check_model(cfg.model, "--model", cfg.backend)
    check_outputs(
        [Output("--out", cfg.out, directory=True)],
        inputs={"--samples": cfg.samples, "--dataset": cfg.dataset},
    )
    trained = TrainedPrompt.find(cfg.model)
    spec = trained.spec()
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    every = load_problems(cfg.dataset)
    problems = [p for p in every if not p.metadata.get("canary")][: cfg.limit]
    seconds["load"] = time.monotonic() - t0
    t0 = time.monotonic()
    coverage = None
    if cfg.samples:
        pairs, coverage = read_covering_samples(cfg, every, problems)
        chat = None
    else:
        pairs, chat = generate_samples(cfg, problems, trained)
        write_jsonl(os.path.join(cfg.out, "samples.jsonl"), (s.fields for s, _ in pairs))
        seconds["generate"] = time.monotonic() - t0
    if coverage:
        logger.warning(
            "partial coverage: %d of %d problems have samples; pass@k is over these %d only",
            coverage["covered"],
            coverage["total"],
            coverage["covered"],
        )
    t0 = time.monotonic()
    results, programs = score_samples(cfg, pairs, spec)
    formats = well_formed(pairs, spec)
    seconds["execute"] = time.monotonic() - t0
    report, rows = summarise(cfg, pairs, results, formats)
    if coverage:
        report["coverage"] = coverage
    base_only = {p.id for _, p in pairs if p.metadata.get("plus_tests") is False}
    if base_only:  # an evalplus release: the plus inputs have no expected outputs, only the base test runs
        report["base_tests_only"] = {"problems": len(base_only), "of": report["problems"]}
        logger.warning(
            "%d of %d problems have the base tests only (an evalplus release without the plus outputs): "
            "this pass@k is not HumanEval+/MBPP+'s",
            len(base_only),
            report["problems"],
        )
    report["prompt"] = {
        "style": cfg.prompt_style,
        "chat": chat,
        "system_prompt": trained.system_prompt if cfg.prompt_style == "pgrpo" else None,
        "from": trained.source if cfg.prompt_style == "pgrpo" else None,
        "format_tags": [spec.think_tag, spec.answer_tag],
    }
    report["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    if (
        "pgrpo.answers" in sys.modules
    ):  # math answers were checked: say how many comparisons sympy could not do
        report["answer_comparison_errors"] = dict(sys.modules["pgrpo.answers"].comparison_errors)
    report["config"] = {k: v for k, v in asdict(cfg).items() if k not in ("out",)}
    write_jsonl(
        os.path.join(cfg.out, "results.jsonl"),
        (
            {**s.fields, "program": code, "format": ok, **r.to_dict()}
            for (s, _), r, code, ok in zip(pairs, results, programs, formats, strict=True)
        ),
    )
    write_jsonl(os.path.join(cfg.out, "problems.jsonl"), rows)
    write_text(os.path.join(cfg.out, "report.json"), json.dumps(report, indent=2))
    write_text(os.path.join(cfg.out, "report.md"), markdown(report))
    return report
