"""`pgrpo train`, `pgrpo demo` and `pgrpo ablate`."""

from __future__ import annotations

import argparse
import json
import shlex


def train_command(args: argparse.Namespace) -> int:
    from pgrpo import log
    from pgrpo.train.config import load_config
    from pgrpo.train.progress import quiet_library_bars
    from pgrpo.train.run import train_from_config

    cfg = load_config(args.config, args.overrides)
    quiet_library_bars()
    from pgrpo.train.grpo import is_main_process

    main = is_main_process()  # under a launcher, the other processes say nothing
    try:
        summary = train_from_config(cfg, resume=args.resume)
    except KeyboardInterrupt:
        if main:
            _say_what_was_kept(cfg, args)
        raise
    if main and log.verbose():
        print(json.dumps(summary, indent=2))
    if main:
        print(f"summary: {summary['output_dir']}/summary.json")
    return 0


def _say_what_was_kept(cfg, args: argparse.Namespace) -> None:
    """The Ctrl-C note: the last checkpoint and the command that resumes from it."""
    from pgrpo.options import on_interrupt
    from pgrpo.train.grpo import last_checkpoint

    checkpoint = last_checkpoint(cfg.output.dir)
    if checkpoint is None:
        every = cfg.grpo_args().get("save_steps")
        on_interrupt(f"no checkpoint was saved yet in {cfg.output.dir} (one every {every} steps)")
        return
    command = ["pgrpo", "train"] + (["--config", args.config] if args.config else []) + args.overrides
    on_interrupt(f"the last checkpoint is {checkpoint}; resume with: {shlex.join(command + ['--resume'])}")


def demo_command(args: argparse.Namespace) -> int:
    from pgrpo.options import from_args, on_interrupt
    from pgrpo.outputs import Output, check_outputs
    from pgrpo.train.demo import DemoConfig, run_demo
    from pgrpo.train.progress import quiet_library_bars

    cfg = from_args(DemoConfig, args)
    check_outputs([Output("--out", cfg.out_dir, directory=True)])
    quiet_library_bars()
    try:
        summary = run_demo(cfg)
    except KeyboardInterrupt:
        on_interrupt(f"the demo does not resume; what it finished is in {cfg.out_dir}; rerun to start over")
        raise
    keys = ("variant", "pass_at_1_before", "interval_before", "pass_at_1_after", "interval_after", "seconds")
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    return 0


def ablate_command(args: argparse.Namespace) -> int:
    from pgrpo.options import from_args, on_interrupt
    from pgrpo.outputs import Output, check_outputs
    from pgrpo.train.ablate import AblateConfig, run_ablation
    from pgrpo.train.progress import quiet_library_bars

    cfg = from_args(AblateConfig, args, flawed_rm=args.flawed_rm)
    check_outputs([Output("--out", cfg.out_dir, directory=True)])
    quiet_library_bars()
    on_interrupt(
        f"finished runs are kept in {cfg.out_dir} (each with its summary.json); the same command "
        "continues from them (the run that was cut short starts over)"
    )
    run_ablation(cfg)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from pgrpo.options import add_options
    from pgrpo.train.ablate import AblateConfig
    from pgrpo.train.demo import DemoConfig

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
    add_options(demo, DemoConfig)
    demo.set_defaults(func=demo_command)

    ablate = sub.add_parser(
        "ablate",
        help="the demo's pipeline for reward variants x seeds, paired (one warm start and one reward model "
        "per seed), and a report with intervals and curves",
    )
    add_options(ablate, AblateConfig)
    ablate.add_argument(
        "--flawed-rm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run additive and posterior with a reward model that has a known flaw (default: on)",
    )
    ablate.set_defaults(func=ablate_command)
