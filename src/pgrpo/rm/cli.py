"""`pgrpo rm ...`: preference pairs, reward-model training, scoring service and pairwise benchmark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pgrpo.options import add_options, from_args, on_interrupt
from pgrpo.outputs import Output, check_outputs


def _problems(specs: list[str], limit: int | None) -> list:
    from pgrpo.problems import load_problems

    problems = [p for spec in specs for p in load_problems(spec) if not p.metadata.get("canary")]
    return problems[:limit] if limit else problems


def _say_what_is_kept(out: str, cache_dir: str | None) -> None:
    """On Ctrl-C during generation: the pairs written so far, and how a rerun resumes."""
    resume = (
        f"the same command resumes from the responses cached in {cache_dir}"
        if cache_dir
        else "give --cache-dir next time so that a rerun resumes without generating again"
    )
    on_interrupt(f"the pairs of the problems finished so far are in {out}; {resume}")


def pairs_command(args: argparse.Namespace) -> int:
    from pgrpo.rm.options import PairsOptions
    from pgrpo.rm.pairs import (
        DIMENSIONS,
        FilterCounts,
        PairsConfig,
        build_pairs_llm,
        build_pairs_synthetic,
        write_pairs,
    )

    opts = from_args(PairsOptions, args)
    check_outputs(
        [Output("--out", opts.out), Output("--cache-dir", opts.cache_dir, directory=True)],
        inputs={"--problems": opts.problems},
    )
    problems = _problems(opts.problems, opts.limit)
    dimensions = tuple(opts.dimensions.split(",")) if opts.dimensions else DIMENSIONS
    counts = FilterCounts()
    if opts.synthetic:
        pairs = build_pairs_synthetic(problems, dimensions, seed=opts.seed, counts=counts)
        write_pairs(opts.out, pairs)
    else:
        from pgrpo.llm import load_generator

        generator = load_generator(opts.model, opts.backend, **opts.backend_options())
        _say_what_is_kept(opts.out, opts.cache_dir)
        config = PairsConfig(
            dimensions=dimensions,
            execution_check=opts.execution_check,
            seed=opts.seed,
            max_tokens=opts.max_tokens,
        )
        pairs, counts = build_pairs_llm(
            problems, generator, dimensions, config=config, cache_dir=opts.cache_dir, out=opts.out
        )
    print(
        f"{len(problems)} problems -> {len(pairs)} pairs in {opts.out}"
        + (" (synthetic: rule-based rewrites, no LLM)" if opts.synthetic else "")
    )
    print(counts.format(len(pairs)))
    return 0


def build_bench_command(args: argparse.Namespace) -> int:
    """An LCB-RB-style benchmark. `natural` (default): sampled traces whose code passed vs failed, per
    problem; `od`: the OD pipeline, keeping only pairs whose better trace's code passes (execution-verified)."""
    from pgrpo.llm import load_generator
    from pgrpo.rm.options import BuildBenchOptions

    opts = from_args(BuildBenchOptions, args)
    outputs = [Output("--out", opts.out), Output("--cache-dir", opts.cache_dir, directory=True)]
    if opts.method == "natural":
        outputs.append(Output("--out (its report)", opts.report))
    check_outputs(outputs, inputs={"--problems": opts.problems, "--model": opts.model})
    problems = _problems(opts.problems, opts.limit)
    _say_what_is_kept(opts.out, opts.cache_dir)
    if opts.method == "od":
        from pgrpo.rm.pairs import DIMENSIONS, PairsConfig, build_pairs_llm

        config = PairsConfig(
            dimensions=DIMENSIONS, execution_check=True, seed=opts.seed, max_tokens=opts.max_tokens
        )
        generator = load_generator(
            opts.model, opts.backend, cache_dir=opts.cache_dir, **opts.backend_options()
        )
        pairs, counts = build_pairs_llm(problems, generator, DIMENSIONS, config=config, out=opts.out)
        print(f"{len(problems)} problems -> {len(pairs)} execution-verified OD pairs in {opts.out}")
        print(counts.format(len(pairs)))
        return 0

    from pgrpo.outputs import write_text
    from pgrpo.prompting import TrainedPrompt
    from pgrpo.rm.natural import NaturalConfig, build_pairs_natural

    trained = TrainedPrompt.find(opts.model)  # a model pgrpo train saved is prompted as in training
    natural = NaturalConfig(
        samples=opts.samples,
        temperature=opts.temperature,
        max_tokens=opts.max_tokens,
        pairs_per_problem=opts.pairs_per_problem,
        seed=opts.seed,
        workers=opts.workers,
        system_prompt=trained.system_prompt,
        chat=not opts.no_chat if trained.chat is None else trained.chat,
    )
    generator = load_generator(opts.model, opts.backend, cache_dir=opts.cache_dir, **opts.backend_options())
    pairs, report = build_pairs_natural(problems, generator, natural, out=opts.out)
    write_text(opts.report, json.dumps(report.to_dict(), indent=2) + "\n")
    print(f"{len(problems)} problems -> {len(pairs)} natural pairs in {opts.out} (report: {opts.report})")
    print(report.format())
    return 0


def split_command(args: argparse.Namespace) -> int:
    from pgrpo.rm.options import SplitOptions
    from pgrpo.rm.overlap import split_by_problem, subsample
    from pgrpo.rm.pairs import read_pairs, write_pairs

    opts = from_args(SplitOptions, args)
    check_outputs(
        [Output("--train", opts.train), Output("--test", opts.test)], inputs={"--pairs": opts.pairs}
    )
    train, test = split_by_problem(read_pairs(opts.pairs, None, "--pairs"), opts.test_fraction, opts.seed)
    train, test = subsample(train, opts.max_train, opts.seed), subsample(test, opts.max_test, opts.seed)
    write_pairs(opts.train, train)
    write_pairs(opts.test, test)
    print(
        f"{len(train)} training pairs -> {opts.train}, {len(test)} held-out pairs (unseen problems) -> {opts.test}"
    )
    return 0


def train_command(args: argparse.Namespace) -> int:
    from pgrpo.rm.options import TrainOptions
    from pgrpo.rm.pairs import read_pairs
    from pgrpo.rm.train import train_reward_model

    cfg = from_args(TrainOptions, args)
    cfg.validate()
    inputs = {"--pairs": cfg.pairs, "--eval-pairs": cfg.eval_pairs, "--backbone": cfg.backbone}
    check_outputs([Output("--out", cfg.output_dir, directory=True)], inputs=inputs)
    metrics = train_reward_model(cfg, read_pairs(cfg.pairs, None, "--pairs"))
    print(json.dumps({k: v for k, v in metrics.items() if k != "eval_report"}, indent=2, default=str))
    print(
        f"dropped {metrics['train_pairs_identical_after_truncation']} of {metrics['train_pairs']} training "
        f"pairs whose two sides are identical after truncation at {metrics['max_length']} tokens"
        + (
            f" (and {metrics['eval_pairs_identical_after_truncation']} of {metrics['eval_pairs']} held-out)"
            if "eval_pairs" in metrics
            else ""
        )
    )
    return 0


def bench_command(args: argparse.Namespace) -> int:
    from pgrpo.options import UsageError
    from pgrpo.outputs import write_text
    from pgrpo.rm.bench import LengthScorer, markdown, run_bench, untrained_scorer, without_identical
    from pgrpo.rm.http import HttpScorer
    from pgrpo.rm.options import BenchOptions
    from pgrpo.rm.overlap import check_overlap
    from pgrpo.rm.pairs import read_pairs
    from pgrpo.rm.score import (
        LocalScorer,
        check_model_directory,
        check_reward_model,
        read_meta,
    )

    opts = from_args(BenchOptions, args)
    check_outputs([Output("--out", opts.out, directory=True)], inputs={"--pairs": opts.pairs})
    if opts.backbone:  # before minutes of scoring, not after
        check_model_directory(opts.backbone, "--backbone", "the untrained backbone")
    pairs = read_pairs(opts.pairs, None, "--pairs")
    remote = opts.model.startswith(("http://", "https://"))
    if remote:
        check_reward_model(opts.model, "--model")
    trained = None if remote else read_meta(opts.model).get("train_problems")
    overlap = check_overlap(pairs, trained, f"the model {opts.model}", allow=opts.allow_overlap)
    # a directory gets check_reward_model's test as it loads (loaded once)
    scorer = HttpScorer(opts.model) if remote else LocalScorer(opts.model, where="--model")
    total = len(pairs)
    pairs, identical = without_identical(pairs, scorer)  # the same pairs for the model and the baselines
    if not pairs:
        raise UsageError(
            f"--pairs {opts.pairs}: all {total} pairs have identical sides after truncation at "
            f"{scorer.max_length} tokens: nothing to score"
        )
    facts = {"identical_after_truncation": identical, "max_length": getattr(scorer, "max_length", None)}
    facts["overlap"] = overlap
    reports = [run_bench(pairs, scorer, name=opts.model, progress=True)]
    if opts.baselines:
        reports.append(run_bench(pairs, LengthScorer(), name="length only"))
        if opts.backbone:  # read at the model's length, so both see the same text
            same_length = {"max_length": facts["max_length"]} if facts["max_length"] else {}
            untrained = untrained_scorer(opts.backbone, **same_length)
            reports.append(run_bench(pairs, untrained, name=f"untrained {opts.backbone}", progress=True))
    for report in reports:
        report.update(facts)
    table = markdown(reports)
    print(table)
    if opts.out:
        write_text(Path(opts.out) / "report.json", json.dumps(reports, indent=2) + "\n")
        write_text(Path(opts.out) / "report.md", table)
        print(f"report: {Path(opts.out) / 'report.json'}, {Path(opts.out) / 'report.md'}")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from pgrpo.rm.http import main

    main(args.rest)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from pgrpo.rm.options import BenchOptions, BuildBenchOptions, PairsOptions, SplitOptions, TrainOptions

    rm = sub.add_parser("rm", help="the thinking reward model: pairs, train, bench, serve")
    rm_sub = rm.add_subparsers(dest="rm_command", required=True)

    commands = [
        (
            "pairs",
            PairsOptions,
            pairs_command,
            "preference pairs by the OD method (optimize/degrade reasoning)",
        ),
        (
            "build-bench",
            BuildBenchOptions,
            build_bench_command,
            "an LCB-RB-style benchmark: passing vs failing reasoning (natural), or OD pairs",
        ),
        ("split", SplitOptions, split_command, "split pairs by problem into train and held-out sets"),
        ("train", TrainOptions, train_command, "Bradley-Terry reward model with TRL's RewardTrainer"),
        ("bench", BenchOptions, bench_command, "pairwise accuracy of a reward model on preference pairs"),
    ]
    for name, options, command, help_text in commands:
        parser = rm_sub.add_parser(name, help=help_text, description=help_text)
        add_options(parser, options)
        parser.set_defaults(func=command)

    serve = rm_sub.add_parser("serve", help="serve a reward model: POST /score", add_help=False)
    serve.set_defaults(func=serve_command, rest=[])


__all__ = ["add_parser"]
