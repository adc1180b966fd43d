"""`pgrpo demo`: the whole P-GRPO pipeline on a toy domain, on a CPU, in a few minutes.

The pipeline is four stages, shared with `pgrpo ablate` (which runs stage 4 once per variant from the
same stage 2 policy and stage 3 reward model):

1. `toy_setup`: toy problems with tests (`pgrpo.train.toy`; the held-out split is harder on purpose) and a
   byte-level tokenizer built on their text;
2. `warm_start_policy`: a tiny Llama policy trained by supervised learning on the reference reasoning and
   code until its smoothed loss reaches a target (a rule, so it stops at the same quality on any machine),
   leaving reinforcement learning work to do;
3. `train_thinking_rm`: a tiny thinking reward model trained on synthetic OD pairs over the toy reasoning
   (`pgrpo.rm.train`, Bradley–Terry), measured on pairs from the held-out problems;
4. `grpo_variant`: greedy pass@1 on the held-out problems, GRPO with one reward variant
   (`pgrpo.train.grpo`, the GRPO defaults of `pgrpo train`: clip-higher 0.2/0.28, no KL, four optimizer
   steps per generation batch), pass@1 again; writes summary.json, held_out.jsonl and grpo/.

Runs are deterministic for a seed on one machine: one thread, torch's deterministic kernels, seeded
sampling (`deterministic`). Other machines may differ in the last bits of float arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pgrpo.options import (
    AT_LEAST_ONE,
    FRACTION,
    POSITIVE,
    SEED,
    check_options,
    option,
)
from pgrpo.rewards import FormatSpec, RewardWeights, get_variant
from pgrpo.rewards.compose import VARIANTS
from pgrpo.types import Problem


@dataclass
class DemoConfig:
    out_dir: str = option("runs/demo", "output directory", flag="--out")
    variant: str = option("posterior", "reward variant", choices=VARIANTS)
    seed: int = option(0, "seed for problems, models and sampling", range=SEED)
    grpo_steps: int = option(40, "GRPO steps", range=AT_LEAST_ONE, flag="--steps")
    train_problems: int = 160
    test_problems: int = 100
    # The warm start stops at the first step whose loss, averaged over the last 10 steps, is at or below
    # this (chosen once so that held-out pass@1 starts around 0.2-0.4; see the README), or at the cap.
    warm_start_target_loss: float = option(
        0.12, "warm start: stop when the 10-step mean training loss reaches this", range=POSITIVE
    )
    warm_start_max_steps: int = 400
    warm_start_lr: float = 3e-3
    # A share of the warm-start references carry the flawed arm's cue sentence (`pgrpo.train.flawed`), so
    # the policy can write it; the same data for every arm and variant.
    cue_fraction: float = option(0.1, "share of warm-start references holding the cue", range=FRACTION)
    rm_epochs: float = 2.0
    num_generations: int = 8
    prompts_per_step: int = 4
    learning_rate: float = 1e-4
    temperature: float = 0.7
    max_completion_length: int = 96

    def __post_init__(self) -> None:
        check_options(self)


Say = Callable[[str], None]


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def deterministic(seed: int) -> None:
    """One thread, torch's deterministic kernels and `seed`: the same figures run to run on one machine."""
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    random.seed(seed)


def prompt(problem: Problem) -> str:
    """Exactly what GRPO shows (the demo has no system prompt and no chat template)."""
    from pgrpo.prompting import training_prompt

    return training_prompt(problem, chat=False, system_prompt="")


# ----------------------------------------------------------------------------- 1. problems, tokenizer


@dataclass
class ToySetup:
    train: list[Problem]
    held_out: list[Problem]
    tokenizer: Any


def toy_setup(cfg: DemoConfig, say: Say = _say) -> ToySetup:
    from pgrpo.overlap import check_disjoint, problem_keys
    from pgrpo.train.tiny import build_tokenizer
    from pgrpo.train.toy import reference_completion, toy_pairs, toy_problems

    train, held_out = toy_problems(cfg.train_problems, cfg.test_problems, cfg.seed)
    check_disjoint(
        problem_keys(train), problem_keys(held_out), "the demo's training split", "its held-out split"
    )
    say(
        f"{len(train)} training and {len(held_out)} held-out toy problems (disjoint by id and prompt; "
        "held-out chains use steps no training problem has)"
    )
    corpus = [prompt(p) + reference_completion(p) for p in train + held_out]
    corpus += [p.chosen for p in toy_pairs(train, cfg.seed)]
    return ToySetup(train, held_out, build_tokenizer(corpus))


def write_problems(setup: ToySetup, out: Path) -> None:
    from pgrpo.jsonl import write_jsonl

    write_jsonl(out / "train.jsonl", (p.to_dict() for p in setup.train))
    write_jsonl(out / "held_out.jsonl", (p.to_dict() for p in setup.held_out))


# ----------------------------------------------------------------------------- 2. warm start


def warm_start_references(cfg: DemoConfig, problems: Sequence[Problem]) -> list[str]:
    """The reference completions the warm start imitates; `cue_fraction` of them hold the cue."""
    from pgrpo.train.flawed import with_cue
    from pgrpo.train.toy import reference_completion

    rng = random.Random(f"cue:{cfg.seed}")
    return [
        with_cue(reference_completion(p), rng) if rng.random() < cfg.cue_fraction else reference_completion(p)
        for p in problems
    ]


def warm_start_policy(cfg: DemoConfig, setup: ToySetup, say: Say = _say) -> tuple[Any, dict]:
    """(policy, facts): a tiny policy trained on the references until the loss rule stops it."""
    from pgrpo.train.tiny import build_policy, warm_start

    deterministic(cfg.seed)
    policy = build_policy(setup.tokenizer, seed=cfg.seed)
    start = time.perf_counter()
    losses = warm_start(
        policy,
        setup.tokenizer,
        [prompt(p) for p in setup.train],
        warm_start_references(cfg, setup.train),
        steps=cfg.warm_start_max_steps,
        learning_rate=cfg.warm_start_lr,
        seed=cfg.seed,
        target_loss=cfg.warm_start_target_loss,
    )
    facts = {
        "steps": len(losses),
        "reached_target": sum(losses[-10:]) / len(losses[-10:]) <= cfg.warm_start_target_loss,
        "first_loss": losses[0],
        "last_loss_mean_10": sum(losses[-10:]) / len(losses[-10:]),
        "seconds": round(time.perf_counter() - start, 1),
    }
    stop = "target reached" if facts["reached_target"] else f"cap of {cfg.warm_start_max_steps} steps"
    say(
        f"warm start: {facts['steps']} steps ({stop}), loss {losses[0]:.2f} -> "
        f"{facts['last_loss_mean_10']:.3f} (10-step mean) ({facts['seconds']:.0f} s)"
    )
    return policy, facts


def save_policy(policy: Any, tokenizer: Any, directory: str | Path) -> None:
    """The policy and its tokenizer in `directory`, atomically."""
    from pgrpo.outputs import atomic_dir

    with atomic_dir(directory) as tmp:
        policy.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def load_policy(directory: str | Path) -> tuple[Any, Any]:
    """(policy, tokenizer) saved by `save_policy`: a fresh copy of the same weights each call."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    policy = LlamaForCausalLM.from_pretrained(directory)
    policy.eval()
    return policy, AutoTokenizer.from_pretrained(directory)


def weights_sha256(model: Any) -> str:
    """A hash of every parameter and buffer (name, shape, bytes): equal hashes, equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- 3. reward model


def build_backbone(cfg: DemoConfig, tokenizer: Any, directory: str | Path) -> Path:
    """The reward models' randomly initialised encoder (one per seed: every reward model starts from it)."""
    from pgrpo.train.tiny import build_reward_backbone

    return build_reward_backbone(tokenizer, directory, seed=cfg.seed)


def train_thinking_rm(
    cfg: DemoConfig,
    backbone: str | Path,
    train_pairs: Sequence[Any],
    test_pairs: dict[str, Sequence[Any]],
    out_dir: str | Path,
    say: Say = _say,
    name: str = "thinking RM",
) -> dict:
    """Train a reward model on `train_pairs` into `out_dir` (atomically) and measure its accuracy on each
    named set of `test_pairs` (and a length-only scorer's on the first); returns the facts, also written
    to `out_dir`/demo_rm.json."""
    from pgrpo.outputs import atomic_dir
    from pgrpo.rm.bench import LengthScorer, run_bench
    from pgrpo.rm.score import LocalScorer
    from pgrpo.rm.train import RMTrainConfig, train_reward_model

    deterministic(cfg.seed)
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        train_reward_model(
            RMTrainConfig(
                backbone=str(backbone),
                output_dir=tmp,
                epochs=cfg.rm_epochs,
                learning_rate=1e-3,
                batch_size=16,
                max_length=128,
                seed=cfg.seed,
            ),
            train_pairs,
        )
        scorer = LocalScorer(tmp, batch_size=64)
        accuracy = {
            key: run_bench(pairs, scorer, name=name)["overall"]["accuracy"]
            for key, pairs in test_pairs.items()
        }
        first = next(iter(test_pairs.values()))
        facts = {
            "train_pairs": len(train_pairs),
            "held_out_accuracy": accuracy,
            "length_only_accuracy": run_bench(first, LengthScorer())["overall"]["accuracy"],
            "seconds": round(time.perf_counter() - start, 1),
        }
        Path(tmp, "demo_rm.json").write_text(json.dumps(facts, indent=2))
    said = ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items())
    say(
        f"{name}: {len(train_pairs)} pairs, held-out accuracy {said} (length only "
        f"{facts['length_only_accuracy']:.3f}) ({facts['seconds']:.0f} s)"
    )
    return facts


# ----------------------------------------------------------------------------- 4. GRPO for one variant


def held_out_pass(policy: Any, setup: ToySetup, executor: Any) -> tuple[float, list[dict]]:
    """Greedy pass@1 on the held-out problems and one row per problem."""
    from pgrpo.rewards import answer_code
    from pgrpo.train.tiny import greedy_completions

    texts = greedy_completions(policy, setup.tokenizer, [prompt(p) for p in setup.held_out], 96)
    results = list(executor.map([(p, answer_code(t)) for p, t in zip(setup.held_out, texts)]))
    rows = [
        {"id": p.id, "passed": r.passed, "verdict": str(r.verdict), "completion": t}
        for p, r, t in zip(setup.held_out, results, texts)
    ]
    return sum(r.passed for r in results) / len(rows), rows


def interval(rows: Sequence[dict]) -> tuple[float, float]:
    """95% bootstrap interval of pass@1 over the held-out problems."""
    from pgrpo.eval.passk import bootstrap_interval

    return bootstrap_interval([(1, int(r["passed"])) for r in rows], k=1)


def grpo_variant(
    cfg: DemoConfig,
    setup: ToySetup,
    policy: Any,
    variant: str,
    rm_dir: str | Path | None,
    out_dir: str | Path,
    say: Say = _say,
) -> dict:
    """Held-out pass@1, GRPO under `variant` (scoring with the reward model in `rm_dir`), pass@1 again.
    Writes out_dir/{held_out.jsonl, grpo/, summary.json} (summary.json last, atomically) and returns
    the summary."""
    import torch

    from pgrpo.outputs import write_text
    from pgrpo.rm.score import LocalScorer
    from pgrpo.sandbox.pool import Executor
    from pgrpo.train.config import grpo_defaults
    from pgrpo.train.gated import GatedReward
    from pgrpo.train.grpo import run_grpo

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    deterministic(cfg.seed)
    start_weights = weights_sha256(policy)
    scorer = LocalScorer(rm_dir, batch_size=64) if rm_dir is not None else None
    with Executor(workers=2) as executor:
        before, before_rows = held_out_pass(policy, setup, executor)
        # outcome gets the reward model too, for the hacking monitor only: its reward never calls it
        reward = GatedReward(
            setup.train,
            executor,
            scorer,
            variant=variant,
            weights=RewardWeights(),
            spec=FormatSpec(),
            group_size=cfg.num_generations,
            monitor_score_all=True,
        )
        result = run_grpo(
            model=policy,
            tokenizer=setup.tokenizer,
            problems=setup.train,
            reward=reward,
            grpo_args=grpo_defaults(
                {
                    "num_generations": cfg.num_generations,
                    "per_device_train_batch_size": cfg.num_generations * cfg.prompts_per_step,
                    "max_steps": cfg.grpo_steps,
                    "learning_rate": cfg.learning_rate,
                    "lr_scheduler_type": "constant",
                    "warmup_steps": 0,
                    "temperature": cfg.temperature,
                    "max_completion_length": cfg.max_completion_length,
                    "save_steps": max(1, cfg.grpo_steps // 2),
                    "save_total_limit": 1,
                    "seed": cfg.seed,
                    "bf16": False,
                    "use_cpu": not torch.cuda.is_available(),
                    "dataloader_num_workers": 0,
                    "gradient_checkpointing": False,  # a tiny model: recomputation costs more than it saves
                    "report_to": [],
                    "disable_tqdm": False,
                }
            ),
            out_dir=out / "grpo",
            system_prompt="",
            source="pgrpo demo",
            run_name=out.resolve().name,
        )
        after, after_rows = held_out_pass(policy, setup, executor)
    rows = [{"id": b["id"], "before": b, "after": a} for b, a in zip(before_rows, after_rows)]
    write_text(out / "held_out.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    summary = {
        "variant": variant,
        "seed": cfg.seed,
        "pass_at_1_before": before,
        "pass_at_1_after": after,
        "interval_before": interval(before_rows),
        "interval_after": interval(after_rows),
        "held_out_problems": len(setup.held_out),
        "train_problems": len(setup.train),
        "grpo_seconds": round(result.seconds, 1),
        "grpo_steps": result.steps,
        "start_weights_sha256": start_weights,
        "reward_model_dir": None if rm_dir is None else str(Path(rm_dir).resolve()),
        "reward_stats": result.reward_stats,
        "monitor_calls": result.monitor_calls,
        "hacking_warnings": result.hacking_warnings,
        "plots": result.plots,
        "config": asdict(cfg),
    }
    return summary


def write_summary(out_dir: str | Path, summary: dict) -> None:
    from pgrpo.outputs import write_text

    write_text(Path(out_dir) / "summary.json", json.dumps(summary, indent=2) + "\n")


def before_after_line(summary: dict) -> str:
    (bl, bh), (al, ah) = summary["interval_before"], summary["interval_after"]
    return (
        f"pass@1 {summary['pass_at_1_before']:.3f} [{bl:.3f}, {bh:.3f}] -> "
        f"{summary['pass_at_1_after']:.3f} [{al:.3f}, {ah:.3f}] (95% bootstrap over "
        f"{summary['held_out_problems']} held-out problems)"
    )


# ----------------------------------------------------------------------------- the demo


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """The four stages for `cfg.variant` into `cfg.out_dir`; returns (and writes) summary.json."""
    start = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pgrpo.train.toy import toy_pairs

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    deterministic(cfg.seed)
    setup = toy_setup(cfg)
    write_problems(setup, out / "problems")
    policy, warm = warm_start_policy(cfg, setup)
    backbone = build_backbone(cfg, setup.tokenizer, out / "rm-backbone")
    rm = train_thinking_rm(
        cfg,
        backbone,
        toy_pairs(setup.train, cfg.seed),
        {"toy": toy_pairs(setup.held_out, cfg.seed)},
        out / "rm",
    )
    uses_rm = get_variant(cfg.variant).uses_reward_model
    summary = grpo_variant(cfg, setup, policy, cfg.variant, out / "rm", out)
    summary["rm_accuracy"] = rm["held_out_accuracy"]["toy"]
    summary["reward_model"] = rm if uses_rm else {**rm, "used_for": "the hacking monitor only"}
    summary["warm_start"] = warm
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["seconds_by_stage"] = {
        "warm_start": warm["seconds"],
        "reward_model": rm["seconds"],
        "grpo": summary["grpo_seconds"],
    }
    write_summary(out, summary)
    _say(before_after_line(summary))
    _say(f"wrote {out / 'summary.json'} ({summary['seconds']:.0f} s in all)")
    return summary
