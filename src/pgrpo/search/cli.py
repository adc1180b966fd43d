"""`pgrpo search`: flags come from `SearchConfig`'s fields, so each option is documented once."""

from __future__ import annotations

import argparse
import dataclasses

from pgrpo.search.config import SearchConfig

FLAG_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _flag_type(annotation: str) -> type:
    """`int | None` -> int (the config module uses postponed annotations, so these are strings)."""
    return FLAG_TYPES[annotation.split("|")[0].strip()]


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "search",
        help="ORPS tree search and its baselines (CoT, best-of-n, refine), scored on hidden tests",
        description="Search with visible tests, score on hidden ones. Example: pgrpo search "
        "--dataset lbpp:/work/shared/data/lbpp --model M.gguf --method cot,best-of-n,refine,orps "
        "--budget-calls 8 --out runs/search",
    )
    for f in dataclasses.fields(SearchConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = _flag_type(f.type)
        help_text = f.metadata["help"]
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action="store_true", help=help_text)
        elif f.metadata.get("required"):
            parser.add_argument(flag, dest=f.name, type=kind, required=True, help=help_text)
        else:
            parser.add_argument(
                flag, dest=f.name, type=kind, default=f.default, help=f"{help_text} (default: {f.default})"
            )
    parser.set_defaults(func=search_command)


def search_command(args: argparse.Namespace) -> int:
    from pgrpo.search.run import markdown, run_search

    cfg = SearchConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SearchConfig)})
    report = run_search(cfg)
    print(markdown(report))
    print(f"run directory: {cfg.out}")
    return 0


__all__ = ["add_parser", "search_command"]
