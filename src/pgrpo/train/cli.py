"""`pgrpo train` and `pgrpo demo`."""

from __future__ import annotations

import argparse
import json


def train_command(args: argparse.Namespace) -> int:
    from pgrpo.train.config import load_config
    from pgrpo.train.run import train_from_config

    cfg = load_config(args.config, args.overrides)
    summary = train_from_config(cfg, resume=args.resume)
    print(json.dumps(summary, indent=2))
    return 0


def demo_command(args: argparse.Namespace) -> int:
    from pgrpo.train.demo import DemoConfig, run_demo

    cfg = DemoConfig(out_dir=args.out, variant=args.variant, seed=args.seed)
    if args.steps is not None:
        cfg.grpo_steps = args.steps
    summary = run_demo(cfg)
    keys = ("variant", "pass_at_1_before", "pass_at_1_after", "seconds")
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from pgrpo.rewards.compose import VARIANTS

    train = sub.add_parser(
        "train",
        help="P-GRPO (or GRPO) training on TRL from a TOML config",
        description="Train a policy with R = R_format + R_outcome [+ R_outcome·R_thinking]. "
        "Overrides are section.key=value, e.g. grpo.learning_rate=1e-5 reward.variant=additive.",
    )
    train.add_argument("--config", help="TOML config (see configs/); omitted: defaults plus overrides")
    train.add_argument("overrides", nargs="*", help="section.key=value settings applied after the file")
    train.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in output.dir"
    )
    train.set_defaults(func=train_command)

    demo = sub.add_parser(
        "demo",
        help="the embedded demo: toy problems, tiny policy and reward model, P-GRPO, pass@1 before/after",
    )
    demo.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    demo.add_argument("--variant", default="posterior", choices=VARIANTS)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--steps", type=int, help="GRPO steps (default: the demo's)")
    demo.set_defaults(func=demo_command)
