"""`pgrpo demo`: the whole P-GRPO pipeline on a toy domain, on a CPU, in a few minutes.

1. toy problems with tests (`pgrpo.train.toy`): training problems and held-out ones;
2. a tokenizer and a tiny Llama policy built on the spot, warm-started by supervised learning on the
   reference reasoning and code — stopped early on purpose, so that reinforcement learning has work left;
3. synthetic OD pairs over the toy reasoning and a tiny thinking reward model trained on them
   (`pgrpo.rm.train`, Bradley–Terry), measured on pairs from the held-out problems;
4. GRPO with the chosen reward variant (`pgrpo.train.grpo`), from the same GRPO defaults as `pgrpo train`
   (clip-higher 0.2/0.28, no KL, four optimizer steps per generation batch so that the clip acts);
5. greedy pass@1 on the held-out problems before and after, plots, and summary.json.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pgrpo.options import ANY_INT, AT_LEAST_ONE, check_options, option
from pgrpo.rewards import FormatSpec, RewardWeights, get_variant
from pgrpo.rewards.compose import VARIANTS


@dataclass
class DemoConfig:
    out_dir: str = option("runs/demo", "output directory", flag="--out")
    variant: str = option("posterior", "reward variant", choices=VARIANTS)
    seed: int = option(0, "seed for problems, models and sampling", range=ANY_INT)
    grpo_steps: int = option(40, "GRPO steps", range=AT_LEAST_ONE, flag="--steps")
    train_problems: int = 160
    test_problems: int = 40
    warm_start_steps: int = 150
    warm_start_lr: float = 3e-3
    rm_epochs: float = 2.0
    num_generations: int = 8
    prompts_per_step: int = 4
    learning_rate: float = 1e-4
    temperature: float = 0.7
    max_completion_length: int = 72

    def __post_init__(self) -> None:
        check_options(self)


def _pass_at_1(model, tokenizer, problems, executor, prompt) -> tuple[float, list[dict]]:
    from pgrpo.rewards import answer_code
    from pgrpo.train.tiny import greedy_completions

    texts = greedy_completions(model, tokenizer, [prompt(p) for p in problems], max_new_tokens=96)
    results = list(executor.map([(p, answer_code(t)) for p, t in zip(problems, texts)]))
    rows = [
        {"id": p.id, "passed": r.passed, "verdict": str(r.verdict), "completion": t}
        for p, r, t in zip(problems, results, texts)
    ]
    return sum(r.passed for r in results) / len(problems), rows


def _log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    start = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from pgrpo.jsonl import write_jsonl
    from pgrpo.overlap import check_disjoint, problem_keys
    from pgrpo.prompting import training_prompt
    from pgrpo.rm.bench import LengthScorer, run_bench
    from pgrpo.rm.score import LocalScorer
    from pgrpo.rm.train import RMTrainConfig, train_reward_model
    from pgrpo.sandbox.pool import Executor
    from pgrpo.train.config import grpo_defaults
    from pgrpo.train.grpo import GatedReward, run_grpo
    from pgrpo.train.tiny import build_policy, build_reward_backbone, build_tokenizer, warm_start
    from pgrpo.train.toy import reference_completion, toy_pairs, toy_problems

    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, held_out = toy_problems(cfg.train_problems, cfg.test_problems, cfg.seed)
    check_disjoint(
        problem_keys(train), problem_keys(held_out), "the demo's training split", "its held-out split"
    )
    _log(f"{len(train)} training and {len(held_out)} held-out toy problems (disjoint by id and prompt)")

    def prompt(p):  # exactly what GRPO shows (the demo has no system prompt and no chat template)
        return training_prompt(p, chat=False, system_prompt="")

    train_pairs, test_pairs = toy_pairs(train, cfg.seed), toy_pairs(held_out, cfg.seed)
    corpus = [prompt(p) + reference_completion(p) for p in train + held_out]
    corpus += [p.chosen for p in train_pairs]
    tokenizer = build_tokenizer(corpus)
    policy = build_policy(tokenizer, seed=cfg.seed)

    t = time.perf_counter()
    losses = warm_start(
        policy,
        tokenizer,
        [prompt(p) for p in train],
        [reference_completion(p) for p in train],
        steps=cfg.warm_start_steps,
        learning_rate=cfg.warm_start_lr,
        seed=cfg.seed,
    )
    warm_seconds = time.perf_counter() - t
    _log(
        f"warm start: {cfg.warm_start_steps} steps, loss {losses[0]:.2f} -> {losses[-1]:.2f} ({warm_seconds:.0f} s)"
    )

    t = time.perf_counter()
    backbone = build_reward_backbone(tokenizer, out / "rm-backbone", seed=cfg.seed)
    rm_metrics = train_reward_model(
        RMTrainConfig(
            backbone=str(backbone),
            output_dir=str(out / "rm"),
            epochs=cfg.rm_epochs,
            learning_rate=1e-3,
            batch_size=16,
            max_length=128,
            seed=cfg.seed,
        ),
        train_pairs,
    )
    scorer = LocalScorer(out / "rm", batch_size=64)
    rm_bench = run_bench(test_pairs, scorer, name="toy RM")
    length_bench = run_bench(test_pairs, LengthScorer())
    rm_seconds = time.perf_counter() - t
    _log(
        f"thinking RM: {len(train_pairs)} pairs, held-out accuracy {rm_bench['overall']['accuracy']:.3f} "
        f"(length only {length_bench['overall']['accuracy']:.3f}) ({rm_seconds:.0f} s)"
    )

    with Executor(workers=2) as executor:
        before, before_rows = _pass_at_1(policy, tokenizer, held_out, executor, prompt)
        _log(f"pass@1 before GRPO: {before:.3f}")
        reward = GatedReward(
            train,
            executor,
            scorer if get_variant(cfg.variant).uses_reward_model else None,
            variant=cfg.variant,
            weights=RewardWeights(),
            spec=FormatSpec(),
            group_size=cfg.num_generations,
            monitor_score_all=True,
        )
        result = run_grpo(
            model=policy,
            tokenizer=tokenizer,
            problems=train,
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
        after, after_rows = _pass_at_1(policy, tokenizer, held_out, executor, prompt)
        _log(f"pass@1 after GRPO: {after:.3f} ({result.seconds:.0f} s of GRPO, {result.steps} steps)")

    write_jsonl(out / "problems" / "train.jsonl", (p.to_dict() for p in train))
    write_jsonl(out / "problems" / "held_out.jsonl", (p.to_dict() for p in held_out))
    with (out / "held_out.jsonl").open("w") as f:
        for b, a in zip(before_rows, after_rows):
            f.write(json.dumps({"id": b["id"], "before": b, "after": a}) + "\n")
    summary = {
        "variant": cfg.variant,
        "pass_at_1_before": before,
        "pass_at_1_after": after,
        "held_out_problems": len(held_out),
        "train_problems": len(train),
        "seconds": round(time.perf_counter() - start, 1),
        "seconds_by_stage": {
            "warm_start": round(warm_seconds, 1),
            "reward_model": round(rm_seconds, 1),
            "grpo": round(result.seconds, 1),
        },
        "grpo_steps": result.steps,
        "reward_model": {
            "train_pairs": len(train_pairs),
            "held_out_accuracy": rm_bench["overall"]["accuracy"],
            "length_only_accuracy": length_bench["overall"]["accuracy"],
            "train_seconds": rm_metrics.get("train_seconds"),
        },
        "reward_stats": result.reward_stats,
        "hacking_warnings": result.hacking_warnings,
        "plots": result.plots,
        "config": asdict(cfg),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _log(f"wrote {out / 'summary.json'} ({summary['seconds']:.0f} s in all)")
    return summary
