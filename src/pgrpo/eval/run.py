"""`pgrpo eval`: generate (or read) samples, execute them, and report pass@k with intervals.

Stages, each timed: load problems -> generate or read samples -> execute (the sandbox) or check
answers (math) -> score (pass@k, bootstrap interval, verdict counts) -> write the run directory:

    DIR/samples.jsonl   one row per sample (generated runs only)
    DIR/results.jsonl   one row per sample: its fields plus verdict, passed, tests
    DIR/problems.jsonl  one row per problem: n, correct, pass@k
    DIR/report.json     {"dataset", "n", "pass_at_k", "ci", "verdicts", "seconds", ...}
    DIR/report.md       the same as a short table
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

from pgrpo.eval.passk import bootstrap_interval, mean_pass_at_k
from pgrpo.jsonl import write_jsonl
from pgrpo.types import AnswerTest, ExecResult, Problem, Sample, TestResult, Verdict


@dataclass
class EvalConfig:
    dataset: str  # humaneval, mbpp:PATH, lbpp:PATH, livecodebench:PATH, ... or native JSONL
    out: str  # the run directory
    model: str | None = None  # a local directory, a .gguf file, or an http(s):// server
    backend: str = "auto"  # transformers, vllm, openai, or auto
    samples: str | None = None  # score these samples instead of generating
    n: int = 1  # samples per problem
    k: tuple[int, ...] = (1,)  # pass@k to report (each k <= n)
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    prompt_style: str = "instruct"  # instruct (chat) or completion (raw prompt, base models)
    workers: int = 2  # sandbox workers
    timeout: float | None = None  # per-test time limit override, seconds
    limit: int | None = None  # only the first N problems
    seed: int = 0
    generator_options: dict = field(default_factory=dict)  # e.g. {"batch_size": 8, "device": "cpu"}


def _progress(total: int, desc: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr)


def generate_samples(cfg: EvalConfig, problems: list[Problem]) -> list[tuple[Sample, Problem]]:
    from pgrpo.eval.prompts import build_prompt, stop_strings
    from pgrpo.llm import SamplingParams, load_generator

    generator = load_generator(
        cfg.model, cfg.backend, cache_dir=os.path.join(cfg.out, "cache"), **cfg.generator_options
    )
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
        outputs = generator.generate([build_prompt(p, cfg.prompt_style) for p in group], params)
        texts.update({p.id: out for p, out in zip(group, outputs, strict=True)})
    for problem in problems:
        for i, text in enumerate(texts[problem.id]):
            row = {"id": problem.id, "sample_id": i, "completion": text}
            pairs.append((Sample(id=problem.id, completion=text, sample_id=i, fields=row), problem))
    return pairs


def score_samples(cfg: EvalConfig, pairs: list[tuple[Sample, Problem]]) -> list[ExecResult]:
    """Execute code samples in the sandbox; check math answers with math-verify (nothing runs)."""
    from pgrpo.prompting import program_for

    results: list[ExecResult | None] = [None] * len(pairs)
    code_jobs = [
        (i, p, program_for(p, s))
        for i, (s, p) in enumerate(pairs)
        if not any(isinstance(t, AnswerTest) for t in p.tests)
    ]
    if len(code_jobs) < len(pairs):
        from pgrpo.answers import check_answer

        for i, (sample, problem) in enumerate(pairs):
            answers = [t for t in problem.tests if isinstance(t, AnswerTest)]
            if answers:
                ok = all(
                    check_answer(sample.completion or sample.solution or "", t.expected) for t in answers
                )
                verdict = Verdict.PASSED if ok else Verdict.FAILED
                results[i] = ExecResult.from_tests([TestResult(verdict) for _ in answers])
    if code_jobs:
        from pgrpo.sandbox import Executor

        bar = _progress(len(code_jobs), "executing")
        with Executor(workers=cfg.workers, time_limit_s=cfg.timeout) as executor:
            done = executor.map([(p, code) for _, p, code in code_jobs], progress=bar)
            for (i, _, _), result in zip(code_jobs, done, strict=True):
                results[i] = result
        if bar:
            bar.close()
    return results  # type: ignore[return-value]


def summarise(
    cfg: EvalConfig, pairs: list[tuple[Sample, Problem]], results: list[ExecResult]
) -> tuple[dict, list[dict]]:
    per_problem: dict[str, list[ExecResult]] = collections.defaultdict(list)
    order: list[str] = []
    for (_, problem), result in zip(pairs, results, strict=True):
        if problem.id not in per_problem:
            order.append(problem.id)
        per_problem[problem.id].append(result)
    counts = [(len(per_problem[pid]), sum(r.passed for r in per_problem[pid])) for pid in order]
    smallest_n = min((n for n, _ in counts), default=0)
    ks = [k for k in cfg.k if k <= smallest_n]
    if len(ks) < len(cfg.k):
        skipped = sorted(set(cfg.k) - set(ks))
        print(
            f"pgrpo eval: pass@{skipped} skipped: some problems have only {smallest_n} samples",
            file=sys.stderr,
        )
    verdicts = collections.Counter(r.verdict.value for r in results)
    report = {
        "dataset": cfg.dataset,
        "model": cfg.model,
        "problems": len(order),
        "n": smallest_n
        if all(n == smallest_n for n, _ in counts)
        else {"min": smallest_n, "max": max(n for n, _ in counts)},
        "pass_at_k": {str(k): mean_pass_at_k(counts, k) for k in ks},
        "ci95": {str(k): list(bootstrap_interval(counts, k)) for k in ks},
        "verdicts": {v.value: verdicts.get(v.value, 0) for v in Verdict},
        "infrastructure_failures": verdicts.get(Verdict.SANDBOX_ERROR.value, 0),
    }
    rows = []
    for pid, (n, c) in zip(order, counts, strict=True):
        row = {"id": pid, "n": n, "correct": c}
        row.update({f"pass@{k}": mean_pass_at_k([(n, c)], k) for k in ks})
        row["verdicts"] = dict(collections.Counter(r.verdict.value for r in per_problem[pid]))
        rows.append(row)
    return report, rows


def markdown(report: dict) -> str:
    lines = [
        f"# {report['dataset']}",
        "",
        f"model: `{report.get('model')}`, problems: {report['problems']}, samples per problem: {report['n']}",
        "",
        "| metric | value | 95% CI |",
        "|---|---:|---:|",
    ]
    for k, value in report["pass_at_k"].items():
        low, high = report["ci95"][k]
        lines.append(f"| pass@{k} | {value:.4f} | {low:.4f}–{high:.4f} |")
    lines += ["", "| verdict | samples |", "|---|---:|"]
    lines += [f"| {v} | {count} |" for v, count in report["verdicts"].items() if count]
    if report.get("seconds"):
        lines += ["", "| stage | seconds |", "|---|---:|"]
        lines += [f"| {stage} | {s:.1f} |" for stage, s in report["seconds"].items()]
    return "\n".join(lines) + "\n"


def run_eval(cfg: EvalConfig) -> dict:
    from pgrpo.problems import load_problems

    if cfg.samples is None and cfg.model is None:
        raise ValueError("pgrpo eval: give --model (to generate) or --samples FILE (to score)")
    if any(k < 1 for k in cfg.k) or max(cfg.k) > cfg.n and cfg.samples is None:
        raise ValueError(f"pgrpo eval: every k must be between 1 and n={cfg.n}; got k={list(cfg.k)}")
    os.makedirs(cfg.out, exist_ok=True)
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    problems = load_problems(cfg.dataset)
    problems = [p for p in problems if not p.metadata.get("canary")][: cfg.limit]
    seconds["load"] = time.monotonic() - t0
    t0 = time.monotonic()
    if cfg.samples:
        from pgrpo.check import read_samples

        pairs = read_samples(cfg.samples, {p.id: p for p in problems})
    else:
        pairs = generate_samples(cfg, problems)
        write_jsonl(os.path.join(cfg.out, "samples.jsonl"), (s.fields for s, _ in pairs))
        seconds["generate"] = time.monotonic() - t0
    t0 = time.monotonic()
    results = score_samples(cfg, pairs)
    seconds["execute"] = time.monotonic() - t0
    report, rows = summarise(cfg, pairs, results)
    report["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    if (
        "pgrpo.answers" in sys.modules
    ):  # math answers were checked: say how many comparisons sympy could not do
        report["answer_comparison_errors"] = dict(sys.modules["pgrpo.answers"].comparison_errors)
    report["config"] = {k: v for k, v in asdict(cfg).items() if k not in ("out",)}
    write_jsonl(
        os.path.join(cfg.out, "results.jsonl"),
        ({**s.fields, **r.to_dict()} for (s, _), r in zip(pairs, results, strict=True)),
    )
    write_jsonl(os.path.join(cfg.out, "problems.jsonl"), rows)
    with open(os.path.join(cfg.out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(cfg.out, "report.md"), "w") as f:
        f.write(markdown(report))
    return report
