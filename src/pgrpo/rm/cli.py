"""`pgrpo rm ...`: preference pairs, reward-model training, scoring service and pairwise benchmark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _problems(specs: list[str], limit: int | None) -> list:
    from pgrpo.problems import load_problems

    problems = [p for spec in specs for p in load_problems(spec) if not p.metadata.get("canary")]
    return problems[:limit] if limit else problems


def pairs_command(args: argparse.Namespace) -> int:
    from pgrpo.rm.pairs import (
        DIMENSIONS,
        FilterCounts,
        PairsConfig,
        build_pairs_llm,
        build_pairs_synthetic,
        write_pairs,
    )

    problems = _problems(args.problems, args.limit)
    dimensions = tuple(args.dimensions.split(",")) if args.dimensions else DIMENSIONS
    counts = FilterCounts()
    if args.synthetic:
        pairs = build_pairs_synthetic(problems, dimensions, seed=args.seed, counts=counts)
        write_pairs(args.out, pairs)
    else:
        if not args.model:
            raise ValueError(
                "pgrpo rm pairs: give --model (an LLM to write and rewrite reasoning) or --synthetic"
            )
        from pgrpo.llm import load_generator

        generator = load_generator(args.model, args.backend, **json.loads(args.generator_options or "{}"))
        config = PairsConfig(
            dimensions=dimensions,
            execution_check=args.execution_check,
            seed=args.seed,
            max_tokens=args.max_tokens,
        )
        pairs, counts = build_pairs_llm(
            problems, generator, dimensions, config=config, cache_dir=args.cache_dir, out=args.out
        )
    print(
        f"{len(problems)} problems -> {len(pairs)} pairs in {args.out}"
        + (" (synthetic: rule-based rewrites, no LLM)" if args.synthetic else "")
    )
    print(counts.format(len(pairs)))
    return 0


def build_bench_command(args: argparse.Namespace) -> int:
    """An LCB-RB-style benchmark. `natural` (default): sampled traces whose code passed vs failed, per
    problem; `od`: the OD pipeline, keeping only pairs whose better trace's code passes (execution-verified)."""
    from pgrpo.llm import load_generator

    problems = _problems(args.problems, args.limit)
    options = json.loads(args.generator_options or "{}")
    if args.method == "od":
        from pgrpo.rm.pairs import DIMENSIONS, PairsConfig, build_pairs_llm

        config = PairsConfig(
            dimensions=DIMENSIONS, execution_check=True, seed=args.seed, max_tokens=args.max_tokens
        )
        generator = load_generator(args.model, args.backend, cache_dir=args.cache_dir, **options)
        pairs, counts = build_pairs_llm(problems, generator, DIMENSIONS, config=config, out=args.out)
        print(f"{len(problems)} problems -> {len(pairs)} execution-verified OD pairs in {args.out}")
        print(counts.format(len(pairs)))
        return 0

    from pgrpo.prompting import TrainedPrompt
    from pgrpo.rm.natural import NaturalConfig, build_pairs_natural

    trained = TrainedPrompt.find(args.model)  # a model pgrpo train saved is prompted as in training
    natural = NaturalConfig(
        samples=args.samples,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        pairs_per_problem=args.pairs_per_problem,
        seed=args.seed,
        workers=args.workers,
        system_prompt=trained.system_prompt,
        chat=not args.no_chat if trained.chat is None else trained.chat,
    )
    generator = load_generator(args.model, args.backend, cache_dir=args.cache_dir, **options)
    pairs, report = build_pairs_natural(problems, generator, natural, out=args.out)
    summary = Path(args.out).with_suffix(".report.json")
    summary.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(f"{len(problems)} problems -> {len(pairs)} natural pairs in {args.out} (report: {summary})")
    print(report.format())
    return 0


def split_command(args: argparse.Namespace) -> int:
    from pgrpo.rm.overlap import split_by_problem, subsample
    from pgrpo.rm.pairs import read_pairs, write_pairs

    train, test = split_by_problem(read_pairs(args.pairs, dimensions=None), args.test_fraction, args.seed)
    train, test = subsample(train, args.max_train, args.seed), subsample(test, args.max_test, args.seed)
    write_pairs(args.train, train)
    write_pairs(args.test, test)
    print(
        f"{len(train)} training pairs -> {args.train}, {len(test)} held-out pairs (unseen problems) -> {args.test}"
    )
    return 0


def train_command(args: argparse.Namespace) -> int:
    from pgrpo.rm.pairs import read_pairs
    from pgrpo.rm.train import RMTrainConfig, train_reward_model

    cfg = RMTrainConfig(
        backbone=args.backbone,
        output_dir=args.out,
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        margin=json.loads(args.margin) if args.margin else {},
        lora=args.lora,
        seed=args.seed,
        eval_pairs=args.eval_pairs,
        allow_overlap=args.allow_overlap,
    )
    metrics = train_reward_model(cfg, read_pairs(args.pairs, dimensions=None))
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
    from pgrpo.rm.bench import LengthScorer, markdown, run_bench, untrained_scorer, without_identical
    from pgrpo.rm.overlap import check_overlap
    from pgrpo.rm.pairs import read_pairs
    from pgrpo.rm.score import HttpScorer, LocalScorer, read_meta

    pairs = read_pairs(args.pairs, dimensions=None)
    remote = args.model.startswith(("http://", "https://"))
    if not remote and not Path(args.model).is_dir():
        raise ValueError(f"--model {args.model}: not a reward-model directory (or an http(s):// server)")
    trained = None if remote else read_meta(args.model).get("train_problems")
    overlap = check_overlap(pairs, trained, f"the model {args.model}", allow=args.allow_overlap)
    scorer = HttpScorer(args.model) if remote else LocalScorer(args.model)
    pairs, identical = without_identical(pairs, scorer)  # the same pairs for the model and the baselines
    facts = {"identical_after_truncation": identical, "max_length": getattr(scorer, "max_length", None)}
    facts["overlap"] = overlap
    reports = [run_bench(pairs, scorer, name=args.model)]
    if args.baselines:
        reports.append(run_bench(pairs, LengthScorer(), name="length only"))
        if args.backbone:  # read at the model's length, so both see the same text
            same_length = {"max_length": facts["max_length"]} if facts["max_length"] else {}
            untrained = untrained_scorer(args.backbone, **same_length)
            reports.append(run_bench(pairs, untrained, name=f"untrained {args.backbone}"))
    for report in reports:
        report.update(facts)
    table = markdown(reports)
    print(table)
    if args.out:
        with open(args.out + ".json", "w") as f:
            json.dump(reports, f, indent=2)
        with open(args.out + ".md", "w") as f:
            f.write(table)
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from pgrpo.rm.score import main

    main(args.rest)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from pgrpo.rm.score import DEFAULT_MAX_LENGTH, MAX_LENGTH_BASIS

    rm = sub.add_parser("rm", help="the thinking reward model: pairs, train, bench, serve")
    rm_sub = rm.add_subparsers(dest="rm_command", required=True)

    pairs = rm_sub.add_parser("pairs", help="preference pairs by the OD method (optimize/degrade reasoning)")
    pairs.add_argument("--problems", action="append", required=True, help="dataset spec; repeat for several")
    pairs.add_argument("--out", required=True, help="pairs JSONL")
    pairs.add_argument(
        "--synthetic",
        action="store_true",
        help="offline: deterministic rule-based rewrites of a trace made from the reference",
    )
    pairs.add_argument("--model", help="the LLM that writes and rewrites reasoning (directory, .gguf, URL)")
    pairs.add_argument("--backend", default="auto")
    pairs.add_argument("--generator-options", help="backend options as JSON")
    pairs.add_argument("--cache-dir", help="LLM response cache: reruns resume without paying twice")
    pairs.add_argument(
        "--dimensions", help="comma-separated (default factual_accuracy,logical_rigor,logical_coherence)"
    )
    pairs.add_argument(
        "--execution-check",
        action="store_true",
        help="keep only pairs whose better side ends in code that passes the tests",
    )
    pairs.add_argument("--max-tokens", type=int, default=2048)
    pairs.add_argument("--limit", type=int, help="only the first N problems")
    pairs.add_argument("--seed", type=int, default=0)
    pairs.set_defaults(func=pairs_command)

    build = rm_sub.add_parser(
        "build-bench", help="an LCB-RB-style benchmark: passing vs failing reasoning (natural), or OD pairs"
    )
    build.add_argument(
        "--problems", action="append", required=True, help="e.g. livecodebench:PATH?since=2024-08-01"
    )
    build.add_argument(
        "--method",
        choices=["natural", "od"],
        default="natural",
        help="natural (default): sample k traces per problem, run them, pair a passing trace's reasoning "
        "(chosen) with a failing one's (rejected); od: optimized/degraded rewrites of one trace, kept when "
        "the better trace's code passes",
    )
    build.add_argument("--model", required=True, help="the LLM that writes reasoning and code")
    build.add_argument("--backend", default="auto")
    build.add_argument("--generator-options", help="backend options as JSON")
    build.add_argument("--cache-dir", help="LLM response cache: a rerun resumes without paying twice")
    build.add_argument("--out", required=True, help="pairs JSONL (natural also writes OUT.report.json)")
    build.add_argument("--max-tokens", type=int, default=2048)
    build.add_argument("--samples", type=int, default=8, help="natural: completions per problem (k)")
    build.add_argument("--temperature", type=float, default=0.8, help="natural: sampling temperature (> 0)")
    build.add_argument("--pairs-per-problem", type=int, default=1, help="natural: at most this many pairs")
    build.add_argument("--workers", type=int, default=2, help="natural: sandbox workers")
    build.add_argument(
        "--no-chat",
        action="store_true",
        help="natural: prompt with plain text (a model without a chat template), unless the model's "
        "pgrpo train record says how it was prompted",
    )
    build.add_argument("--limit", type=int)
    build.add_argument("--seed", type=int, default=0)
    build.set_defaults(func=build_bench_command)

    split = rm_sub.add_parser("split", help="split pairs by problem into train and held-out sets")
    split.add_argument("--pairs", required=True)
    split.add_argument("--train", required=True, help="training pairs JSONL to write")
    split.add_argument(
        "--test", required=True, help="held-out pairs JSONL to write (problems unseen in training)"
    )
    split.add_argument("--test-fraction", type=float, default=0.2)
    split.add_argument("--max-train", type=int, help="subsample evenly over dimension and kind")
    split.add_argument("--max-test", type=int)
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(func=split_command)

    train = rm_sub.add_parser("train", help="Bradley-Terry reward model with TRL's RewardTrainer")
    train.add_argument("--pairs", required=True, help="training pairs JSONL")
    train.add_argument("--eval-pairs", help="held-out pairs JSONL, evaluated every epoch")
    train.add_argument("--backbone", required=True, help="model directory: any causal LM or encoder")
    train.add_argument("--out", required=True, help="output model directory")
    train.add_argument("--epochs", type=float, default=1.0)
    train.add_argument("--max-steps", type=int, default=-1)
    train.add_argument("--learning-rate", type=float, default=1e-5)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument(
        "--max-length",
        type=int,
        default=DEFAULT_MAX_LENGTH,
        help=f"tokens per text, problem + reasoning (default {DEFAULT_MAX_LENGTH}: {MAX_LENGTH_BASIS}; "
        "capped by the backbone's positions, 512 for MiniLM)",
    )
    train.add_argument("--margin", help="per-kind margins as JSON, e.g. '{\"optimized>degraded\": 1.0}'")
    train.add_argument("--lora", action="store_true")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--allow-overlap",
        action="store_true",
        help="evaluate on --eval-pairs even if some share a problem with the training pairs",
    )
    train.set_defaults(func=train_command)

    bench = rm_sub.add_parser("bench", help="pairwise accuracy of a reward model on preference pairs")
    bench.add_argument("--pairs", required=True)
    bench.add_argument("--model", required=True, help="trained model directory, or http(s):// scoring server")
    bench.add_argument(
        "--baselines", action="store_true", help="also score length-only (and --backbone untrained)"
    )
    bench.add_argument("--backbone", help="the untrained backbone to compare against")
    bench.add_argument("--out", help="write OUT.json and OUT.md")
    bench.add_argument(
        "--allow-overlap",
        action="store_true",
        help="benchmark even if some pairs' problems were in the model's training pairs (said in the report)",
    )
    bench.set_defaults(func=bench_command)

    serve = rm_sub.add_parser("serve", help="serve a reward model: POST /score", add_help=False)
    serve.set_defaults(func=serve_command, rest=[])


__all__ = ["add_parser"]
