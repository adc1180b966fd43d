"""`pgrpo train --config FILE.toml`: build everything a config names and hand it to `run_grpo`.

Under `accelerate launch` or `torchrun` every process runs this: each checks the config, the data, the
overlap, the output directory and the reward model itself (the checks only read, and creating the
directory is `mkdir -p`), so a refusal ends every process at once; the main process says it in one
line, the others leave with the same exit status without repeating it. Each process starts its own
sandbox executor and scores its own completions; a reward-model URL is the same server for all of
them. config.json and summary.json are written by the main process only."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

from pgrpo.train.config import TrainConfig


def load_training_problems(cfg: TrainConfig) -> list:
    from pgrpo.problems import load_problems

    problems = [p for spec in cfg.data.dataset for p in load_problems(spec) if not p.metadata.get("canary")]
    random.Random(cfg.data.seed).shuffle(problems)
    if cfg.data.limit:
        problems = problems[: cfg.data.limit]
    if not problems:
        raise ValueError(f"{cfg.where('data.dataset')}: data.dataset names no problems")
    return problems


def check_no_overlap(cfg: TrainConfig, problems: list) -> list[str]:
    """Refuse (OverlapError) to train on a problem of an evaluation set named in `data.eval`, unless
    `data.allow_overlap`. Returns the training problem ids found in those sets (empty when refused)."""
    from pgrpo.overlap import check_disjoint, problem_keys, shared_problems
    from pgrpo.problems import load_problems

    shared: list[str] = []
    for spec in cfg.data.eval:
        evaluation = problem_keys(load_problems(spec))
        if cfg.data.allow_overlap:
            shared += [a for a, _ in shared_problems(problem_keys(problems), evaluation)]
            continue
        check_disjoint(
            problem_keys(problems),
            evaluation,
            f"data.dataset ({', '.join(cfg.data.dataset)})",
            f"the evaluation set {spec} (data.eval)",
            hint=f"{cfg.source}: train on disjoint problems, or set data.allow_overlap = true",
        )
    return shared


def warm_start_completion(problem: Any, spec: Any) -> str:
    """A reference answer in the training format, for the tiny policy's warm start."""
    think, answer = spec.think_tag, spec.answer_tag
    code = (problem.reference or "").strip()
    return (
        f"<{think}>I write {problem.entry_point}.</{think}>\n<{answer}>\n```python\n{code}\n```\n</{answer}>"
    )


def load_policy(cfg: TrainConfig, problems: list, prompts: list[str] | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for policy.model: "tiny" (built from the problems' text and warm-started on
    their references for `policy.warm_start_steps`; `prompts` are the training prompts), a directory
    or a hub id available offline (a .gguf policy is refused by the config check)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.policy.model == "tiny":
        from pgrpo.rewards import FormatSpec
        from pgrpo.train.tiny import build_policy, build_tokenizer, warm_start

        spec = FormatSpec(think_tag=cfg.reward.think_tag, answer_tag=cfg.reward.answer_tag)
        prompts = prompts or [p.prompt for p in problems]
        answers = [warm_start_completion(p, spec) for p in problems]
        tokenizer = build_tokenizer([a + "\n" + b for a, b in zip(prompts, answers)])
        seed = cfg.grpo_args()["seed"]
        model = build_policy(tokenizer, cfg.policy.tiny_hidden, cfg.policy.tiny_layers, seed=seed)
        if cfg.policy.warm_start_steps:
            with_reference = [(q, a) for q, a, p in zip(prompts, answers, problems) if p.reference]
            warm_start(
                model,
                tokenizer,
                [q for q, _ in with_reference],
                [a for _, a in with_reference],
                steps=cfg.policy.warm_start_steps,
                seed=seed,
            )
        return model, tokenizer
    from pgrpo.llm.hf import _locate

    where, gguf = _locate(cfg.policy.model, cfg.policy.gguf_file)
    options = {"gguf_file": gguf} if gguf else {}
    tokenizer = AutoTokenizer.from_pretrained(where, **options)
    model = AutoModelForCausalLM.from_pretrained(where, **options)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_scorer(cfg: TrainConfig) -> Any:
    from pgrpo.rewards import get_variant

    if not get_variant(cfg.reward.variant).uses_reward_model:
        return None
    from pgrpo.rm.http import HttpScorer
    from pgrpo.rm.score import LocalScorer, check_reward_model

    # refused before the first step: a URL that does not score, a directory without a trained score head
    model, where = cfg.reward.model, f"{cfg.where('reward.model')}: reward.model"
    if model.startswith(("http://", "https://")):
        check_reward_model(model, where)
        return HttpScorer(model)
    return LocalScorer(model, where=where)  # check_reward_model's directory check, as it loads


def lora_config(cfg: TrainConfig) -> Any:
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def train_from_config(cfg: TrainConfig, resume: bool = False) -> dict:
    """Check what the config names (policy model, problems, overlap, output directory, GRPO arguments)
    before any model is loaded, then train."""
    from pgrpo.train.grpo import is_main_process

    main = is_main_process()
    try:
        problems, overlap, grpo_args, scorer = _checked(cfg, resume)
    except (ValueError, OSError):
        if not main:  # the main process refuses the same thing in one line
            raise SystemExit(2) from None
        raise
    from pgrpo.prompting import SYSTEM_PROMPT
    from pgrpo.rewards import FormatSpec, RewardWeights
    from pgrpo.sandbox.pool import Executor
    from pgrpo.train.gated import GatedReward
    from pgrpo.train.grpo import problems_dataset, run_grpo

    out = Path(cfg.output.dir)
    if main:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
    system_prompt = cfg.policy.system_prompt if cfg.policy.system_prompt is not None else SYSTEM_PROMPT
    plain_prompts = problems_dataset(problems, chat=False, system_prompt=system_prompt)["prompt"]
    model, tokenizer = load_policy(cfg, problems, plain_prompts)
    chat = cfg.policy.chat if cfg.policy.chat is not None else bool(getattr(tokenizer, "chat_template", None))
    with Executor(
        workers=cfg.reward.executor_workers,
        time_limit_s=cfg.reward.time_limit_s,
        every_test=cfg.reward.outcome_mode == "pass_rate",  # a pass rate needs every test's own verdict
    ) as executor:
        reward = GatedReward(
            problems,
            executor,
            scorer,
            variant=cfg.reward.variant,
            weights=RewardWeights(**cfg.reward.weights),
            spec=FormatSpec(think_tag=cfg.reward.think_tag, answer_tag=cfg.reward.answer_tag),
            outcome_mode=cfg.reward.outcome_mode,
            unit=cfg.reward.unit,
            monitor_score_all=cfg.reward.monitor_score_all,
        )
        result = run_grpo(
            model=model,
            tokenizer=tokenizer,
            problems=problems,
            reward=reward,
            grpo_args=grpo_args,
            out_dir=out,
            chat=chat,
            system_prompt=system_prompt,
            peft_config=lora_config(cfg),
            resume=resume,
            plots=cfg.output.plots,
            source=cfg.source,
        )
    summary = {
        "output_dir": result.output_dir,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "variant": cfg.reward.variant,
        "eval_sets_checked": cfg.data.eval,
        "allow_overlap": cfg.data.allow_overlap,
        "overlapping_problems": overlap,
        "reward_stats": result.reward_stats,
        "monitor_calls": result.monitor_calls,
        "hacking_warnings": result.hacking_warnings,
        "plots": result.plots,
    }
    if main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _checked(cfg: TrainConfig, resume: bool = False) -> tuple[list, list[str], dict, Any]:
    """The checks before any model loads: (problems, overlapping ids, GRPO arguments, reward scorer)."""
    from pgrpo.options import UsageError
    from pgrpo.outputs import Output, check_outputs
    from pgrpo.train.config import check_policy_model
    from pgrpo.train.grpo import grpo_config, last_checkpoint

    out = Path(cfg.output.dir)
    if resume and last_checkpoint(out) is None:  # before check_outputs makes the directory
        raise UsageError(
            f"--resume: nothing to resume in {out}: no checkpoint-* there"
            + ("" if out.is_dir() else " (the directory does not exist)")
            + "; run without --resume to start afresh"
        )
    if cfg.grpo.get("use_vllm") and importlib.util.find_spec("vllm") is None:  # the machine, not the file
        raise UsageError(
            f"{cfg.where('grpo.use_vllm')}: grpo.use_vllm = true, but vLLM is not installed: `pip install "
            "vllm` on a machine with a CUDA GPU, or set grpo.use_vllm=false (TRL generates with transformers)"
        )
    check_policy_model(cfg)
    problems = load_training_problems(cfg)
    overlap = check_no_overlap(cfg, problems)
    check_outputs(
        [Output(f"{cfg.where('output.dir')}: output.dir", out, directory=True)],
        inputs={"data.dataset": cfg.data.dataset, "data.eval": cfg.data.eval},
    )
    import torch

    grpo_args = cfg.grpo_args()
    grpo_args.setdefault("report_to", cfg.output.report_to)
    if not torch.cuda.is_available():  # also what makes torchrun's processes join as CPU (gloo) ranks
        grpo_args.setdefault("use_cpu", True)
        grpo_args["bf16"] = False
    grpo_config(grpo_args, out, None, cfg.source)  # TRL's own checks, before the model is loaded
    scorer = load_scorer(cfg)  # the reward model is checked before the policy loads
    return problems, overlap, grpo_args, scorer
