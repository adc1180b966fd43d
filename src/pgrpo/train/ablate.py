"""`pgrpo ablate`: reward variants × seeds on the demo pipeline, paired, then the report.

Per seed, the demo's stages 1-3 run once (`pgrpo.train.demo`): one warm-start policy, saved in
DIR/seed-S/shared/policy and loaded afresh by every run, and one thinking reward model
(DIR/seed-S/shared/rm), so that the variants of a seed differ only in their reward. Each run is stage 4
(GRPO under one variant) into DIR/seed-S/ARM/VARIANT.

Arms: `rm` scores with the reward model trained as the demo trains it (the paper's setting, in miniature);
`flawed-rm` (additive and posterior only) scores with a reward model trained on pairs whose label a
surface cue predicts (`pgrpo.train.flawed`, a stress test of the gate, not the paper's setting). Both arms
of a seed start from the same policy and the same reward-model backbone.

A run whose summary.json exists is skipped on a rerun, as are the shared stages already done; a run cut
short is redone from its start. Then `pgrpo.train.ablation_report.write_report` writes DIR/report.md,
report.json and the curves.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pgrpo.options import AT_LEAST_ONE, SEED, UsageError, check_options, option
from pgrpo.rewards.compose import VARIANTS
from pgrpo.train.demo import DemoConfig

ARMS = ("rm", "flawed-rm")
FLAWED_ARM_VARIANTS = ("additive", "posterior")  # outcome never reads a reward model: nothing to flaw
# the demo's: a run of the ablation is the demo for its seed and variant (3 variants × 3 seeds + the flawed
# arm at 40 steps fit `make ablation`'s 30 minutes on 2 cores)
DEFAULT_STEPS = DemoConfig.grpo_steps


def parse_variants(text: str) -> tuple[str, ...]:
    """ "outcome,posterior" -> ("outcome", "posterior"); unknown or repeated names are refused."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in VARIANTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated variants among {', '.join(VARIANTS)}, got {text!r}"
        )
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"a variant is named twice in {text!r}")
    return names


def parse_seeds(text: str) -> tuple[int, ...]:
    """ "0,1,2" -> (0, 1, 2); repeated seeds are refused."""
    try:
        seeds = tuple(SEED.parse(s) for s in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated seeds, each {SEED.describe()}, got {text!r}"
        ) from None
    if len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError(f"a seed is named twice in {text!r}")
    return seeds


@dataclass
class AblateConfig:
    out_dir: str = option("runs/ablation", "output directory", flag="--out")
    variants: tuple[str, ...] = option(
        VARIANTS, "comma-separated reward variants (default: all three)", parse=parse_variants
    )
    seeds: tuple[int, ...] = option(
        (0, 1, 2), "comma-separated seeds (default: 0,1,2)", range=SEED, parse=parse_seeds
    )
    grpo_steps: int = option(DEFAULT_STEPS, "GRPO steps per run", range=AT_LEAST_ONE, flag="--steps")
    flawed_rm: bool = True  # --flawed-rm/--no-flawed-rm (cli.py): the flawed reward model's arm

    def __post_init__(self) -> None:
        check_options(self)
        for name in self.variants:
            if name not in VARIANTS:
                raise UsageError(f"--variants: expected some of {', '.join(VARIANTS)}, got {name!r}")
        if not self.variants or not self.seeds:
            raise UsageError("--variants and --seeds each need at least one value")

    def runs(self) -> list[tuple[int, str, str]]:
        """(seed, arm, variant) in the order they run: seed by seed, the rm arm first."""
        grid = []
        for seed in self.seeds:
            grid += [(seed, "rm", v) for v in self.variants]
            if self.flawed_rm:
                grid += [(seed, "flawed-rm", v) for v in self.variants if v in FLAWED_ARM_VARIANTS]
        return grid


def _say(message: str) -> None:
    print(f"[ablate] {message}", flush=True)


def _pipeline(base: Any) -> dict:
    """The settings every run of an ablation must share (what a rerun into the same DIR must match)."""
    return {k: v for k, v in asdict(base).items() if k not in ("out_dir", "variant", "seed")}


def write_config(cfg: AblateConfig, base: Any) -> None:
    """DIR/config.json: the grid and the pipeline's settings; a DIR holding an ablation with other
    pipeline settings is refused (its finished runs would be mixed with new ones)."""
    from pgrpo.outputs import write_text
    from pgrpo.train.flawed import FLAW

    path = Path(cfg.out_dir) / "config.json"
    pipeline = _pipeline(base)
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8")).get("pipeline")
        except (OSError, ValueError) as e:
            raise UsageError(f"--out {cfg.out_dir}: config.json is unreadable ({e})") from None
        changed = sorted(k for k in pipeline if old is not None and old.get(k) != pipeline[k])
        if changed:
            said = ", ".join(f"{k} {old.get(k)!r} -> {pipeline[k]!r}" for k in changed)
            raise UsageError(
                f"--out {cfg.out_dir} holds an ablation with other settings ({said}); "
                "use another --out, or delete that directory to start over"
            )
    arms = ["rm"] + (["flawed-rm"] if cfg.flawed_rm else [])
    config = {
        "seeds": list(cfg.seeds),
        "arms": arms,
        "variants": list(cfg.variants),
        "variants_by_arm": {
            "rm": list(cfg.variants),
            **({"flawed-rm": [v for v in cfg.variants if v in FLAWED_ARM_VARIANTS]} if cfg.flawed_rm else {}),
        },
        "runs": [{"seed": s, "arm": a, "variant": v} for s, a, v in cfg.runs()],
        "steps": cfg.grpo_steps,
        "flaw": FLAW if cfg.flawed_rm else None,
        "pipeline": pipeline,
    }
    write_text(path, json.dumps(config, indent=2) + "\n")


# ----------------------------------------------------------------------------- one seed's shared stages


@dataclass
class Shared:
    """A seed's shared stages: problems, the saved warm-start policy, the reward models."""

    root: Path
    setup: Any
    warm_start: dict
    rm: dict
    flawed_rm: dict | None

    @property
    def policy_dir(self) -> Path:
        return self.root / "policy"


def shared_stages(cfg: Any, root: Path, flawed: bool, say: Any) -> Shared:
    """Stages 1-3 for one seed into `root` (DIR/seed-S/shared), each skipped when already there."""
    from pgrpo.outputs import atomic_dir, write_text
    from pgrpo.train import demo
    from pgrpo.train.flawed import flawed_pairs
    from pgrpo.train.toy import toy_pairs

    demo.deterministic(cfg.seed)
    setup = demo.toy_setup(cfg, say)
    demo.write_problems(setup, root / "problems")
    if (root / "policy" / "warm_start.json").exists():
        warm = json.loads((root / "policy" / "warm_start.json").read_text())
        say(f"warm start: kept from an earlier run ({root / 'policy'})")
    else:
        policy, warm = demo.warm_start_policy(cfg, setup, say)
        demo.save_policy(policy, setup.tokenizer, root / "policy")
        write_text(root / "policy" / "warm_start.json", json.dumps(warm, indent=2))
    if not (root / "rm-backbone" / "config.json").exists():
        with atomic_dir(root / "rm-backbone") as tmp:
            demo.build_backbone(cfg, setup.tokenizer, tmp)
    toy_test = toy_pairs(setup.held_out, cfg.seed)
    models = {"rm": (toy_pairs(setup.train, cfg.seed), {"toy": toy_test}, "thinking RM")}
    if flawed:
        models["rm-flawed"] = (
            flawed_pairs(setup.train, cfg.seed),
            {"flawed": flawed_pairs(setup.held_out, cfg.seed), "toy": toy_test},
            "flawed thinking RM",
        )
    facts = {}
    for name, (train_pairs, test_pairs, title) in models.items():
        kept = root / name / "demo_rm.json"
        if kept.exists():
            facts[name] = json.loads(kept.read_text())
            say(f"{title}: kept from an earlier run ({root / name})")
        else:
            facts[name] = demo.train_thinking_rm(
                cfg, root / "rm-backbone", train_pairs, test_pairs, root / name, say, title
            )
    return Shared(root, setup, warm, facts["rm"], facts.get("rm-flawed"))


# ----------------------------------------------------------------------------- the ablation


def run_one(cfg: Any, shared: Shared, arm: str, variant: str, out: Path, say: Any) -> dict:
    """Stage 4 for one (arm, variant) from a fresh copy of the seed's warm-start policy."""
    from pgrpo.train import demo
    from pgrpo.train.flawed import FLAW

    start = time.perf_counter()
    if out.exists():  # a run cut short: GRPO here does not resume, so it starts over
        shutil.rmtree(out)
    policy, tokenizer = demo.load_policy(shared.policy_dir)
    setup = replace(shared.setup, tokenizer=tokenizer)
    rm_name = "rm" if arm == "rm" else "rm-flawed"
    rm = shared.rm if arm == "rm" else shared.flawed_rm
    summary = demo.grpo_variant(cfg, setup, policy, variant, shared.root / rm_name, out, say)
    accuracy = rm["held_out_accuracy"]
    summary.update(
        arm=arm,
        rm_accuracy=accuracy["toy" if arm == "rm" else "flawed"],
        rm_accuracy_on_toy_pairs=accuracy["toy"],
        reward_model=rm,
        flaw=FLAW if arm == "flawed-rm" else None,
        warm_start=shared.warm_start,
        seconds=round(time.perf_counter() - start, 1),
    )
    demo.write_summary(out, summary)
    return summary


def run_ablation(cfg: AblateConfig, base: Any = None) -> dict:
    """Every (seed, arm, variant) of `cfg` not done yet, then the report; `base` is the DemoConfig whose
    sizes the runs use (default: the demo's). Returns {"runs": [summaries], "report": ... or None}."""
    from pgrpo.train import demo
    from pgrpo.train.demo import before_after_line

    start = time.perf_counter()
    base = base or demo.DemoConfig()  # looked up at call time: tests run the pipeline at a smaller size
    base = replace(base, grpo_steps=cfg.grpo_steps)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_config(cfg, base)
    grid = cfg.runs()
    summaries = []
    for seed in cfg.seeds:
        seed_cfg = replace(base, seed=seed)
        runs = [(a, v) for s, a, v in grid if s == seed]
        todo = [(a, v) for a, v in runs if not (out / f"seed-{seed}" / a / v / "summary.json").exists()]
        for arm, variant in runs:
            if (arm, variant) not in todo:
                _say(f"seed {seed}, {arm}/{variant}: done in an earlier run, skipped")
                where = out / f"seed-{seed}" / arm / variant / "summary.json"
                summaries.append(json.loads(where.read_text()))
        if not todo:
            continue

        def say(message: str, seed: int = seed) -> None:
            _say(f"seed {seed}: {message}")

        shared = shared_stages(seed_cfg, out / f"seed-{seed}" / "shared", cfg.flawed_rm, say)
        for arm, variant in todo:
            number = grid.index((seed, arm, variant)) + 1
            _say(f"seed {seed}, {arm}/{variant}: started (run {number} of {len(grid)})")
            summary = run_one(seed_cfg, shared, arm, variant, out / f"seed-{seed}" / arm / variant, say)
            _say(
                f"seed {seed}, {arm}/{variant}: finished, {before_after_line(summary)} "
                f"({summary['seconds']:.0f} s)"
            )
            summaries.append(summary)
    _say(f"{len(grid)} runs in {out} ({time.perf_counter() - start:.0f} s)")
    return {"runs": summaries, "report": report(out)}


def report(out: Path) -> dict | None:
    """The ablation report (`pgrpo.train.ablation_report.write_report`), if that module is installed."""
    try:
        from pgrpo.train.ablation_report import write_report
    except ImportError as e:
        _say(f"no report: pgrpo.train.ablation_report.write_report is not available ({e})")
        return None
    result = write_report(out)
    _say(f"report: {out / 'report.md'}")
    return result
