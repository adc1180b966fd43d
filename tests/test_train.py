"""P-GRPO training: config, the gated reward as TRL reward functions, the hacking monitor, a real TRL run
on a tiny model (parameters change, resume continues at the right step), the CLI and the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA, needs_shared_data
from pgrpo.rewards import RewardWeights
from pgrpo.train.config import ConfigError, load_config
from pgrpo.train.gated import BatchMetrics, GatedReward, hacking_signal
from pgrpo.train.toy import reference_completion, toy_problems
from pgrpo.types import ExecResult, Problem, TestResult, Verdict

ROOT = Path(__file__).resolve().parents[1]
TRAIN, HELD_OUT = toy_problems(train=24, test=8, seed=0)
# one-operation problems: a policy warm-started for seconds passes some of them, so rewards vary in a group
SIMPLE = [p for p in toy_problems(train=160, test=8, seed=0)[0] if len(p.metadata["toy"]["ops"]) == 1][:24]


def _completion(problem: Problem, body: str | None = None, think: str = "I add.") -> str:
    body = body or problem.reference.splitlines()[1].strip()
    return f"<think>{think}</think>\n<answer>\n```python\ndef {problem.entry_point}(x):\n    {body}\n```\n</answer>"


class FixedScorer:
    """A reward model answering a fixed raw score; counts the texts it was asked about."""

    def __init__(self, raw: float = 0.0) -> None:
        self.raw, self.texts = raw, 0

    def score(self, problems, reasonings):
        self.texts += len(reasonings)
        return [self.raw] * len(reasonings)


class BrokenSandbox:
    """An executor whose sandbox fails on every program (an infrastructure fault)."""

    def map(self, jobs):
        for _ in jobs:
            yield ExecResult(
                Verdict.SANDBOX_ERROR, [TestResult(Verdict.SANDBOX_ERROR)], message="worker died"
            )


# ----------------------------------------------------------------------------- config


def test_config_file_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[data]\ndataset = "mbpp:x.jsonl"\n[grpo]\nlearning_rate = 2e-6\n[reward]\nvariant = "outcome"\n'
    )
    cfg = load_config(
        path, ["grpo.num_generations=4", "reward.weights={format=0.5, outcome=1.0, thinking=1.0}"]
    )
    assert cfg.data.dataset == ["mbpp:x.jsonl"]
    args = cfg.grpo_args()
    assert args["learning_rate"] == 2e-6 and args["num_generations"] == 4
    assert args["epsilon_high"] == 0.28 and args["beta"] == 0.0  # the paper's clip-higher, no KL
    assert cfg.reward.weights["format"] == 0.5


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("[grpo]\nnot_a_field = 1\n", [], "grpo.not_a_field is not a field of trl.GRPOConfig"),
        ("[reward]\nvariant = 'outcome'\ncolour = 1\n", [], "unknown key reward.colour"),
        ("[nope]\na = 1\n", [], "unknown section [nope]"),
        ("[reward]\nvariant = 'posterior'\n", [], "needs reward.model"),
        ("[reward]\nvariant = 'outcome'\nmonitor_score_all = 3\n", [], "expected true or false"),
        ("[reward]\nvariant = 'outcome'\n", ["grpo.learning_rate"], "expected section.key=value"),
    ],
)
def test_config_errors_name_the_file_and_key(tmp_path, text, overrides, message):
    path = tmp_path / "bad.toml"
    path.write_text('[data]\ndataset = "mbpp:x"\n' + text)
    with pytest.raises(ConfigError, match="bad.toml|override") as info:
        load_config(path, overrides)
    assert message in str(info.value)


def test_shipped_configs_load():
    for path in sorted((ROOT / "configs").glob("*.toml")):
        cfg = load_config(path)
        assert cfg.data.dataset, path


def test_shipped_configs_train_on_problems_they_do_not_evaluate_on():
    for path in sorted((ROOT / "configs").glob("*.toml")):
        cfg = load_config(path)
        assert all("/dev.jsonl" not in d and "/test.jsonl" not in d for d in cfg.data.dataset), path
        assert cfg.data.eval and not cfg.data.allow_overlap, path


def test_defaults_feed_several_optimizer_steps_per_generation_batch():
    """With one step per batch TRL's old policy is the current one, the ratio is 1 and the clip inert."""
    from pgrpo.train.config import OPTIMIZER_STEPS_PER_GENERATION, grpo_defaults

    assert OPTIMIZER_STEPS_PER_GENERATION > 1
    args = load_config(None, ["data.dataset=x", "reward.variant=outcome"]).grpo_args()
    assert (
        args["steps_per_generation"] == OPTIMIZER_STEPS_PER_GENERATION * args["gradient_accumulation_steps"]
    )
    assert grpo_defaults({"gradient_accumulation_steps": 3})["steps_per_generation"] == 3 * 4
    assert "steps_per_generation" not in grpo_defaults({"generation_batch_size": 64})  # the user's choice
    for path in sorted((ROOT / "configs").glob("*.toml")):
        args = load_config(path).grpo_args()
        assert args["steps_per_generation"] > args["gradient_accumulation_steps"], path


def test_a_new_variant_is_one_registry_entry(monkeypatch, executor):
    """A variant registered in compose._VARIANTS is accepted by the config and gets its TRL function."""
    import importlib

    compose = importlib.import_module("pgrpo.rewards.compose")  # the module, not the function it exports
    double = compose.Variant(
        "double_gate",
        lambda f, o, t, w: None if o > 0 and t is None else f + o + (2 * o * t if o > 0 else 0.0),
        lambda o: o > 0,
        "double_thinking",
        lambda o, t: (2 * o * t if t is not None else None) if o > 0 else 0.0,
    )
    monkeypatch.setitem(compose._VARIANTS, "double_gate", double)
    cfg = load_config(None, ["data.dataset=x", "reward.variant=double_gate", "reward.model=http://x"])
    assert cfg.reward.variant == "double_gate"
    reward = GatedReward(TRAIN[:1], executor, FixedScorer(0.0), variant="double_gate")
    names, values, _ = _call(reward, [_completion(TRAIN[0])], [TRAIN[0].id])
    assert names == ["format", "outcome", "double_thinking"] and values[2] == [1.0]  # 2 · 1 · sigmoid(0)
    assert reward.weights() == [1.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- the reward for TRL


def _call(reward: GatedReward, completions, ids):
    logged = {}
    fns = reward.functions()
    values = [f(completions=completions, problem_id=ids, log_metric=logged.__setitem__) for f in fns]
    return [f.__name__ for f in fns], values, logged


def test_posterior_functions_gate_the_thinking_term(executor):
    p = TRAIN[0]
    good, bad = _completion(p), _completion(p, "return 12345")
    scorer = FixedScorer(raw=0.0)  # sigmoid(0) = 0.5
    reward = GatedReward(TRAIN, executor, scorer, variant="posterior", group_size=2)
    names, values, logged = _call(reward, [good, bad], [p.id, p.id])
    assert names == ["format", "outcome", "outcome_x_thinking"]
    assert values == [[1.0, 1.0], [1.0, 0.0], [0.5, 0.0]]
    assert scorer.texts == 1  # only the passing sample reached the reward model, once for three functions
    assert logged["pgrpo/pass_rate"] == 0.5 and logged["pgrpo/rm_call_rate"] == 0.5
    assert reward.weights() == [1.0, 1.0, 1.0]


def test_additive_scores_everyone_and_outcome_needs_no_model(executor):
    p = TRAIN[1]
    completions, ids = [_completion(p), _completion(p, "return -1")], [p.id, p.id]
    scorer = FixedScorer(raw=0.0)
    names, values, _ = _call(GatedReward(TRAIN, executor, scorer, variant="additive"), completions, ids)
    assert names[-1] == "thinking" and values[-1] == [0.5, 0.5] and scorer.texts == 2
    names, values, _ = _call(GatedReward(TRAIN, executor, None, variant="outcome"), completions, ids)
    assert names == ["format", "outcome"] and values == [[1.0, 1.0], [1.0, 0.0]]


def test_infrastructure_failures_are_none_in_every_function_so_trl_masks_them():
    p = TRAIN[0]
    reward = GatedReward(TRAIN, BrokenSandbox(), FixedScorer(), variant="posterior", group_size=2)
    _, values, logged = _call(reward, [_completion(p)] * 2, [p.id] * 2)
    assert values == [[None, None]] * 3
    assert logged["pgrpo/masked"] == 2 and logged["pgrpo/sandbox_errors"] == 2
    assert reward.stats.masked == 2 and reward.stats.sandbox_errors == 2


def test_unknown_problem_id_is_named(executor):
    reward = GatedReward(TRAIN, executor, None, variant="outcome")
    with pytest.raises(KeyError, match="toy/nope"):
        reward.functions()[0](completions=["x"], problem_id=["toy/nope"])


def test_zero_variance_groups_with_and_without_the_thinking_term():
    from pgrpo.rewards import RewardBreakdown

    def b(outcome, thinking):
        total = 1 + outcome + (outcome * thinking if thinking is not None else 0)
        return RewardBreakdown(1.0, outcome, thinking, total, "passed", outcome == 1, thinking is not None)

    # group 1: all pass with different thinking scores; group 2: all fail
    batch = [b(1.0, 0.2), b(1.0, 0.9), b(0.0, None), b(0.0, None)]
    m = BatchMetrics.of(batch, group=2, weights=RewardWeights()).values
    assert m["zero_std_groups"] == 0.5  # the thinking term still separates the all-pass group
    assert m["zero_std_groups_without_thinking"] == 1.0
    assert m["thinking_passing"] == pytest.approx(0.55) and "thinking_failing" not in m


def test_hacking_signal_fires_only_when_thinking_rises_and_passing_falls():
    def rows(passes, thinks):
        return [{"pgrpo/pass_rate": p, "pgrpo/thinking_failing": t} for p, t in zip(passes, thinks)]

    hacked = rows([0.6] * 5 + [0.3] * 5, [0.4] * 5 + [0.9] * 5)
    assert "possible reward hacking" in hacking_signal(hacked)
    assert hacking_signal(rows([0.3] * 5 + [0.6] * 5, [0.4] * 5 + [0.9] * 5)) is None  # both improve
    assert hacking_signal(hacked[:9]) is None  # too little history


# ----------------------------------------------------------------------------- a real TRL run


def _tiny_policy(warm_steps: int = 0):
    """A tiny policy, warm-started for `warm_steps` so that its samples differ in reward."""
    from pgrpo.train.tiny import build_policy, build_tokenizer, warm_start

    tokenizer = build_tokenizer([p.prompt + "\n" + reference_completion(p) for p in SIMPLE])
    model = build_policy(tokenizer, hidden=64, layers=1)
    if warm_steps:
        prompts, answers = [p.prompt + "\n" for p in SIMPLE], [reference_completion(p) for p in SIMPLE]
        warm_start(model, tokenizer, prompts, answers, steps=warm_steps, batch_size=8)
    return model, tokenizer


def _tiny_run(out: Path, executor, steps: int, resume: bool = False, model=None, tokenizer=None):
    from pgrpo.train.grpo import run_grpo

    if model is None:
        model, tokenizer = _tiny_policy()
    reward = GatedReward(SIMPLE, executor, FixedScorer(), variant="posterior", monitor_score_all=True)
    args = {
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "steps_per_generation": 2,  # two optimizer steps per batch: the clip can act
        "max_steps": steps,
        "learning_rate": 1e-2,
        "max_completion_length": 64,
        "temperature": 1.2,
        "logging_steps": 1,
        "save_steps": 1,
        "save_total_limit": 5,
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "report_to": [],
        "disable_tqdm": True,
    }
    result = run_grpo(
        model=model,
        tokenizer=tokenizer,
        problems=SIMPLE,
        reward=reward,
        grpo_args=args,
        out_dir=out,
        system_prompt="",
        resume=resume,
        plots=True,
    )
    return model, tokenizer, result


def test_two_trl_steps_change_the_parameters_then_resume_continues(tmp_path, executor):
    import torch

    from pgrpo.train.tiny import build_policy

    model, tokenizer = _tiny_policy(warm_steps=100)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model, tokenizer, result = _tiny_run(tmp_path, executor, steps=2, model=model, tokenizer=tokenizer)
    after = model.state_dict()
    assert result.steps == 2
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    first = next(r for r in rows if "loss" in r)  # rewards are logged on the steps that generate
    assert "rewards/outcome_x_thinking/mean" in first and "pgrpo/rm_call_rate" in first
    assert (tmp_path / "training_curves.png").stat().st_size > 10_000
    assert (tmp_path / "checkpoint-2").is_dir() and (tmp_path / "final" / "config.json").exists()

    # resume from checkpoint-1 (as if the run died after step 1): steps 2 and 3 follow, nothing repeats
    import shutil

    shutil.rmtree(tmp_path / "checkpoint-2")
    model2 = build_policy(tokenizer, hidden=64, layers=1)
    _, _, resumed = _tiny_run(tmp_path, executor, steps=3, resume=True, model=model2, tokenizer=tokenizer)
    assert resumed.steps == 3
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [s for s in steps]
    assert sorted(set(logged)) == [1, 2, 3] and logged == sorted(logged)


def test_resume_without_checkpoint_is_an_error(tmp_path, executor):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        _tiny_run(tmp_path, executor, steps=1, resume=True)


# ----------------------------------------------------------------------------- CLI and demo


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _shared_data_overrides() -> list[str]:
    """The tiny config's data paths, wherever the shared data lies."""
    return [
        f'data.dataset=["mbpp:{SHARED_DATA / "mbpp" / "train.jsonl"}"]',
        f'data.eval=["mbpp:{SHARED_DATA / "mbpp" / "test.jsonl"}"]',
    ]


def _train_cli(*overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pgrpo.cli", "train", "--config", str(ROOT / "configs" / "tiny-mbpp.toml")]
        + _shared_data_overrides()
        + list(overrides),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=timeout,
    )


@needs_shared_data
def test_tiny_config_clip_higher_acts(tmp_path):
    """`pgrpo train --config configs/tiny-mbpp.toml grpo.max_steps=6`: a real TRL run whose policy ratio
    moves away from 1 within a generation batch, so that the 0.2/0.28 clip clips some tokens."""
    out = tmp_path / "run"
    proc = _train_cli("grpo.max_steps=6", f"output.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert len(steps) == 6
    assert max(r["clip_ratio/region_mean"] for r in steps) > 0
    assert max(r["pgrpo/policy_ratio_dev"] for r in steps) > 0
    # the first step of each generation batch is on-policy: ratio exactly 1, nothing to clip
    assert steps[0]["pgrpo/policy_ratio_dev"] == 0 and steps[0]["clip_ratio/region_mean"] == 0
    assert (out / "training_curves.png").stat().st_size > 10_000
    # the console: one progress bar and a summary, not a dict of ~40 metrics per step
    assert "{'loss'" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert "GRPO: 100%" in proc.stderr and "reward " in proc.stderr and "pass " in proc.stderr
    assert "pgrpo: GRPO: 6 steps in" in proc.stderr and f"metrics: {out / 'metrics.jsonl'}" in proc.stderr
    assert len(proc.stdout) + len(proc.stderr) < 3000, len(proc.stdout) + len(proc.stderr)


@needs_shared_data
def test_train_refuses_problems_of_its_evaluation_sets(tmp_path):
    out = tmp_path / "run"
    train_as_eval = f'data.eval=["mbpp:{SHARED_DATA / "mbpp" / "train.jsonl"}"]'
    proc = _train_cli(train_as_eval, f"output.dir={out}", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "overlap" in proc.stderr and "train.jsonl" in proc.stderr and "mbpp/" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


@needs_shared_data
def test_overlap_is_found_by_prompt_text_and_can_be_allowed(tmp_path):
    from pgrpo.overlap import OverlapError
    from pgrpo.problems import load_problems
    from pgrpo.train.run import check_no_overlap, load_training_problems

    # the same MBPP task under another id, with other spacing and case: still the same problem
    task = load_problems(f"mbpp:{SHARED_DATA / 'mbpp' / 'test.jsonl'}")[0]
    copy = tmp_path / "copy.jsonl"
    row = {"id": "mine/1", "prompt": "  " + task.prompt.upper().replace(" ", "   "), "entry_point": "f"}
    copy.write_text(json.dumps({**row, "tests": [{"type": "assert", "code": "assert True"}]}) + "\n")
    eval_sets = f'data.eval=["mbpp:{SHARED_DATA / "mbpp" / "test.jsonl"}"]'
    cfg = load_config(None, [f'data.dataset=["{copy}"]', eval_sets, "reward.variant=outcome"])
    with pytest.raises(OverlapError, match=rf"overlap: 1 training problem.*mine/1 \(= {task.id}\)"):
        check_no_overlap(cfg, load_training_problems(cfg))
    cfg.data.allow_overlap = True
    assert check_no_overlap(cfg, load_training_problems(cfg)) == ["mine/1"]


@needs_shared_data
def test_pgrpo_train_cli_runs_a_config(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgrpo.cli",
            "train",
            "--config",
            str(ROOT / "configs" / "tiny-mbpp.toml"),
            *_shared_data_overrides(),
            "lora.enabled=true",
            "lora.target_modules=['q_proj', 'v_proj']",
            "grpo.max_steps=1",
            "data.limit=8",  # one generation batch: 8 prompts x 4 samples
            f"output.dir={out}",
            "output.plots=false",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["variant"] == "outcome"
    assert summary["reward_stats"]["completions"] == 32  # one generation batch: 4 steps of 8
    assert summary["allow_overlap"] is False and summary["eval_sets_checked"]
    assert (out / "final" / "adapter_config.json").exists()  # LoRA adapters were trained and saved


def test_pgrpo_train_cli_names_a_bad_key(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgrpo.cli",
            "train",
            "--config",
            str(ROOT / "configs" / "tiny-mbpp.toml"),
            "grpo.lr=1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=120,
    )
    assert proc.returncode == 2 and "grpo.lr is not a field of trl.GRPOConfig" in proc.stderr


def test_held_out_toy_problems_are_longer_chains_of_steps_never_trained_on():
    from pgrpo.train.toy import HELD_OUT_LENGTHS, toy_problems

    train, held_out = toy_problems(160, 100, seed=1)

    def length(p):
        return len(p.metadata["toy"]["ops"])

    def steps(p):  # adjacent operations with their constants ("add 3", "multiply by 4")
        words = p.metadata["toy"]["steps"]
        return set(zip(words, words[1:]))

    assert all(length(p) in HELD_OUT_LENGTHS for p in held_out)
    assert {length(p) for p in train} == {1, 2, 3}  # training has every length
    assert not set().union(*map(steps, train)) & set().union(*map(steps, held_out))
    with pytest.raises(ValueError, match="asked for 900"):
        toy_problems(900, 10, seed=0)


def test_warm_start_stops_by_the_loss_rule_not_the_step_count():
    from pgrpo.train.tiny import build_policy, build_tokenizer, warm_start

    tokenizer = build_tokenizer([p.prompt + "\n" + reference_completion(p) for p in TRAIN])
    prompts, answers = [p.prompt + "\n" for p in TRAIN], [reference_completion(p) for p in TRAIN]
    model = build_policy(tokenizer, hidden=32, layers=1)
    losses = warm_start(model, tokenizer, prompts, answers, steps=50, batch_size=4, target_loss=100.0)
    assert len(losses) == 10  # the first full window of 10 steps is already below the target
    model = build_policy(tokenizer, hidden=32, layers=1)
    losses = warm_start(model, tokenizer, prompts, answers, steps=12, batch_size=4, target_loss=1e-6)
    assert len(losses) == 12  # never reached: the cap


def test_demo_reduced_size_writes_its_outputs(tmp_path):
    from pgrpo.train.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        out_dir=str(tmp_path),
        train_problems=24,
        test_problems=8,
        warm_start_max_steps=20,
        rm_epochs=0.3,
        grpo_steps=2,
        num_generations=4,
        prompts_per_step=2,
    )
    summary = run_demo(cfg)
    assert {"pass_at_1_before", "pass_at_1_after", "seconds", "variant"} <= set(summary)
    assert json.loads((tmp_path / "summary.json").read_text())["variant"] == "posterior"
    assert (tmp_path / "grpo" / "training_curves.png").exists()
    assert len((tmp_path / "held_out.jsonl").read_text().splitlines()) == 8


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["posterior", "outcome", "additive"])
def test_demo_full_size_raises_pass_at_1(tmp_path, variant):
    from pgrpo.train.demo import DemoConfig, run_demo

    summary = run_demo(DemoConfig(out_dir=str(tmp_path), variant=variant))
    assert summary["pass_at_1_after"] > summary["pass_at_1_before"]


@needs_shared_data
def test_training_prompt_names_the_function_the_tests_call():
    """MBPP statements do not name the function; a policy that is never told it can pass only by luck."""
    from pgrpo.problems import load_problems
    from pgrpo.train.grpo import problems_dataset

    mbpp = load_problems(f"mbpp:{SHARED_DATA / 'mbpp' / 'train.jsonl'}")[:3]
    for chat in (False, True):
        prompts = problems_dataset(mbpp, chat=chat)["prompt"]
        for problem, prompt in zip(mbpp, prompts):
            text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
            assert f"`{problem.entry_point}`" in text and problem.prompt.strip() in text
    # a statement that names its function is left as it is (the demo's toy problems)
    assert problems_dataset(TRAIN[:1], chat=False, system_prompt="")["prompt"] == [TRAIN[0].prompt + "\n"]
