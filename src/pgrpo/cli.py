"""The `pgrpo` command. Thin: each subcommand parses its flags and calls one function."""

from __future__ import annotations

import argparse
import sys

from pgrpo.options import UsageError


def _check(args: argparse.Namespace) -> int:
    from pgrpo.check import read_samples, reference_samples, run_check
    from pgrpo.options import on_interrupt
    from pgrpo.outputs import Output, check_outputs
    from pgrpo.problems import load_problems

    check_outputs(
        [Output("--out", args.out)], inputs={"--problems": args.problems, "--samples": args.samples}
    )
    problems = load_problems(args.problems)
    if args.references:
        pairs = reference_samples(problems)
    else:
        pairs = read_samples(args.samples, {p.id: p for p in problems})
        if not pairs:
            raise UsageError(f"--samples {args.samples}: the file holds no samples")
    if args.out:
        on_interrupt(f"the rows judged so far are in {args.out}.partial (a rerun starts it over)")
    report, _ = run_check(pairs, args.out, workers=args.workers, time_limit_s=args.timeout)
    print(report.render())
    if args.out:
        print(f"results: {args.out}")
    else:
        print("no results file written (give --out FILE for one row per sample)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pgrpo.eval.run import EvalConfig, markdown, run_eval
    from pgrpo.options import from_args

    cfg = from_args(EvalConfig, args)
    report = run_eval(cfg)
    print(markdown(report))
    print(f"run directory: {cfg.out}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from pgrpo.llm.serve import main as serve_main

    serve_main(args.rest)
    return 0


def _export(args: argparse.Namespace) -> int:
    from pgrpo.outputs import Output, check_outputs
    from pgrpo.problems import export_problems

    check_outputs([Output("--out", args.out)], inputs={"NAME": args.name})
    n = export_problems(args.name, args.out)
    print(f"wrote {n} problems to {args.out}")
    return 0


def _sandbox_info(args: argparse.Namespace) -> int:
    from pgrpo.sandbox import LAYER_HELP, LAYER_NAMES, Executor

    with Executor(workers=1) as executor:
        layers = executor.layers
    width = max(map(len, LAYER_NAMES))
    for name in LAYER_NAMES:
        state = "active" if layers.active.get(name) else "OFF"
        why = LAYER_HELP[name] if layers.active.get(name) else layers.reasons.get(name, "unavailable")
        print(f"{name:<{width}}  {state:<6}  {why}")
    if layers.uid is not None:
        print(f"runs as uid {layers.uid}")
    from pgrpo.sandbox.perf import perf_available

    print(
        f"{'perf_counters':<{width}}  {'active' if perf_available() else 'OFF':<6}  "
        + (
            "instruction counts per test"
            if perf_available()
            else "instruction counts unavailable here; results omit them rather than estimate"
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pgrpo import __version__
    from pgrpo.options import Parser

    parser = Parser(prog="pgrpo", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pgrpo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from pgrpo.options import AT_LEAST_ONE, SECONDS, add_options

    check = sub.add_parser("check", help="run samples against their problems' tests")
    check.add_argument("--problems", required=True, help="humaneval, mbpp:PATH, lbpp:PATH or native JSONL")
    given = check.add_mutually_exclusive_group(required=True)
    given.add_argument("--samples", help="samples JSONL ({id, solution} or {id, completion} per line)")
    given.add_argument("--references", action="store_true", help="check the problems' reference solutions")
    check.add_argument(
        "--out",
        help="results JSONL, one row per sample line, in order (without --out, only the summary is printed: "
        "nothing is written)",
    )
    check.add_argument(
        "--workers", type=AT_LEAST_ONE.parse, default=2, help="parallel sandbox workers (default 2)"
    )
    check.add_argument(
        "--timeout", type=SECONDS.parse, help="per-test time limit in seconds (default: the problem's)"
    )
    check.set_defaults(func=_check)

    from pgrpo.eval.run import EvalConfig

    ev = sub.add_parser("eval", help="pass@k of a model (or of a samples file) on a benchmark")
    add_options(ev, EvalConfig)
    ev.set_defaults(func=_eval)

    serve = sub.add_parser(
        "serve", help="serve a local model over an OpenAI-compatible HTTP API", add_help=False
    )
    serve.set_defaults(func=_serve)

    from pgrpo.rm.cli import add_parser as add_rm_parser

    add_rm_parser(sub)

    from pgrpo.train.cli import add_parser as add_train_parser

    add_train_parser(sub)

    from pgrpo.search.cli import add_parser as add_search_parser

    add_search_parser(sub)

    problems = sub.add_parser("problems", help="problem sets")
    problems_sub = problems.add_subparsers(dest="problems_command", required=True)
    export = problems_sub.add_parser("export", help="write a problem set as native JSONL")
    export.add_argument("name", help="humaneval, mbpp:PATH, lbpp:PATH, ...")
    export.add_argument("--out", required=True, help="the native JSONL file to write")
    export.set_defaults(func=_export)

    sandbox = sub.add_parser("sandbox", help="the executor")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    info = sandbox_sub.add_parser("info", help="which isolation layers are active on this machine")
    info.set_defaults(func=_sandbox_info)
    return parser


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """`--verbose` on every subcommand (after the subcommand's name, where users type it)."""
    if not any("--verbose" in a.option_strings for a in parser._actions):
        parser.add_argument(
            "--verbose", action="store_true", default=argparse.SUPPRESS, help="library logs, per-step dicts"
        )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose(child)


def _parse(argv: list[str]) -> argparse.Namespace:
    if argv[:1] == ["serve"]:  # its flags belong to pgrpo.llm.serve
        return argparse.Namespace(func=_serve, rest=[a for a in argv[1:] if a != "--verbose"])
    if argv[:2] == ["rm", "serve"]:  # and these to pgrpo.rm.http
        from pgrpo.rm.cli import serve_command

        return argparse.Namespace(func=serve_command, rest=[a for a in argv[2:] if a != "--verbose"])
    parser = build_parser()
    _add_verbose(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from pgrpo import log
    from pgrpo.options import run_command

    argv = sys.argv[1:] if argv is None else argv

    def body() -> int:  # parsing inside: Ctrl-C while the libraries import is an interruption too
        args = _parse(argv)
        log.setup("--verbose" in argv)
        return args.func(args)

    return run_command("pgrpo", body)


if __name__ == "__main__":
    sys.exit(main())
