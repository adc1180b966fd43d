"""`pgrpo search`: flags come from `SearchConfig`'s fields, so each option is documented once."""

from __future__ import annotations

import argparse

from pgrpo.options import add_options, from_args
from pgrpo.search.config import SearchConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "search",
        help="ORPS tree search and its baselines (CoT, best-of-n, refine), scored on hidden tests",
        description="Search with visible tests, score on hidden ones. Example: pgrpo search "
        "--dataset lbpp:/work/shared/data/lbpp --model M.gguf --method cot,best-of-n,refine,orps "
        "--budget-calls 8 --out runs/search",
    )
    add_options(parser, SearchConfig)
    parser.set_defaults(func=search_command)


def search_command(args: argparse.Namespace) -> int:
    from pgrpo.search.run import markdown, run_search

    cfg = from_args(SearchConfig, args)
    report = run_search(cfg)
    print(markdown(report))
    print(f"run directory: {cfg.out}")
    return 0


__all__ = ["add_parser", "search_command"]
