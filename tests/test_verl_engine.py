"""pgrpo.train.verl_reward driven by verl 0.9's own reward path (slow; `make verl-check`).

verl is not a dependency of pgrpo: it pins transformers < 5.11 and a CUDA torch. The tests run in a
throwaway venv, build/verl-venv, layered on the project's environment (torch, transformers and pgrpo are
shared, not reinstalled): verl 0.9.1 and tensordict without their dependencies, plus the light packages
its reward path imports. `test_in_a_verl_venv` builds it (skipped only when pip cannot install the
packages, e.g. offline) and reruns this file there, where the other tests run.

What they drive is verl's code: Hydra composes verl's own ppo_trainer.yaml with the README's overrides,
verl's loader imports the function, verl's RewardLoopManager (ray actors) or RewardLoopWorker scores a
DataProto, and verl's GRPO estimator and policy loss take what the failure policy returns.
"""

import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import re
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VERL_VENV = Path(os.environ.get("PGRPO_VERL_VENV", ROOT / "build" / "verl-venv"))
HAVE_VERL = importlib.util.find_spec("verl") is not None and importlib.metadata.version("verl").startswith(
    "0.9."
)
# The README's verl recipe, override for override (rm_url's port is replaced by the test server's).
README_OVERRIDES = [
    "algorithm.adv_estimator=grpo",
    "reward.custom_reward_function.path=pkg://pgrpo.train.verl_reward",
    "reward.custom_reward_function.name=compute_score",
    "+reward.custom_reward_function.reward_kwargs.variant=posterior",
    "+reward.custom_reward_function.reward_kwargs.rm_url=http://127.0.0.1:8100",
]
# Installed without dependencies (verl's would replace torch and transformers) ...
NO_DEPS = ["verl==0.9.1", "tensordict==0.10.0", "pyvers==0.1.0", "codetiming"]
# ... and with theirs, held to the project's versions (antlr4 excepted: omegaconf needs 4.9).
WITH_DEPS = [
    "ray",
    "aiohttp",
    "hydra-core>=1.3",
    "omegaconf>=2.3",
    "cloudpickle",
    "orjson",
    "importlib_metadata",
]
needs_verl = pytest.mark.skipif(
    not HAVE_VERL, reason="verl 0.9 is not importable here: test_in_a_verl_venv runs these"
)


# ----------------------------------------------------------------------------- the venv


def _pip(python: Path, *args: str) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *args], capture_output=True, text=True
    )
    if done.returncode:
        lines = [
            line for line in done.stderr.splitlines() if line.startswith("ERROR")
        ] or done.stderr.splitlines()
        pytest.skip(
            f"verl 0.9 could not be installed into {VERL_VENV}: {lines[-1] if lines else 'pip failed'}"
        )


def build_verl_venv() -> Path:
    """build/verl-venv on top of this interpreter's packages; built once (delete it to rebuild)."""
    python = VERL_VENV / "bin" / "python"
    stamp = VERL_VENV / ".pgrpo-installed"
    if stamp.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VERL_VENV)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    shared = sysconfig.get_paths()[
        "purelib"
    ]  # addsitedir also runs its .pth files (pgrpo's editable install)
    (VERL_VENV / "lib" / version / "site-packages" / "pgrpo-shared.pth").write_text(
        f"import site; site.addsitedir({shared!r})\n"
    )
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    constraints = VERL_VENV / "constraints.txt"
    constraints.write_text("\n".join(r for r in freeze if "==" in r and not r.startswith("antlr4")) + "\n")
    _pip(python, "--no-deps", *NO_DEPS)
    _pip(python, "-c", str(constraints), *WITH_DEPS)
    stamp.write_text(" ".join(NO_DEPS + WITH_DEPS) + "\n")
    return python


@pytest.mark.skipif(HAVE_VERL, reason="verl 0.9 is importable here: the tests below run directly")
def test_in_a_verl_venv():
    python = build_verl_venv()
    import torch
    import transformers

    shared = subprocess.run(
        [str(python), "-c", "import torch, transformers; print(torch.__version__, transformers.__version__)"],
        capture_output=True,
        text=True,
    )
    assert shared.stdout.split() == [torch.__version__, transformers.__version__], (
        shared.stderr
    )  # not replaced
    run = subprocess.run(
        [str(python), "-m", "pytest", __file__, "-m", "slow", "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert re.search(r"\b6 passed, 1 skipped\b", summary), run.stdout[-3000:]  # skipped: this test
    print(f"\n{VERL_VENV}: {summary}")  # shown under `make verl-check` (pytest -s)


# ----------------------------------------------------------------------------- fixtures (in the verl venv)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    """A byte-level tokenizer (every text round-trips): verl's worker loads it from the model path."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer

    tokenizer = Qwen2Tokenizer(
        vocab={c: i for i, c in enumerate(ByteLevel.alphabet())}, merges=[], pad_token=None
    )
    tokenizer.pad_token = tokenizer.eos_token = tokenizer.convert_ids_to_tokens(0)
    path = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(path)
    return str(path)


class ConfidentScorer:
    """Raw score 30 for every reasoning: sigmoid(30) = 1 - 1e-13, so a passing answer earns 3."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def score(self, problems, reasonings):
        self.calls.append(list(reasonings))
        return [30.0] * len(reasonings)


@pytest.fixture
def rm_server():
    from pgrpo.rm.http import serve_scorer

    scorer = ConfidentScorer()
    server = serve_scorer(scorer, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", scorer
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local cluster: no token written to ~/.ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("VARIANT", "RM_URL", "ON_FAILURE", "UNIT"):
        monkeypatch.delenv(f"PGRPO_{name}", raising=False)


def verl_config(tokenizer_dir: str, rm_url: str, *extra: str, recipe: list[str] = README_OVERRIDES):
    """verl's ppo_trainer.yaml composed as `python -m verl.trainer.main_ppo` does, with the README's overrides."""
    import verl
    from hydra import compose, initialize_config_dir

    overrides = [o.replace("http://127.0.0.1:8100", rm_url) for o in recipe]
    overrides += [f"actor_rollout_ref.model.path={tokenizer_dir}", "reward.num_workers=1", *extra]
    with initialize_config_dir(
        config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None
    ):
        return compose("ppo_trainer", overrides=overrides)


def humaneval_0_batch(tokenizer_dir: str):
    """Two correct and two wrong answers to HumanEval/0, as verl's rollout hands them to the reward loop."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer
    from verl import DataProto

    from pgrpo.problems import load_problems

    problem = load_problems("humaneval")[0]
    wrong = "def has_close_elements(numbers, threshold):\n    return False"
    texts = [
        f"<think>Compare every pair.</think>\n<answer>\n```python\n{code}\n```\n</answer>"
        for code in (problem.reference, problem.reference, wrong, wrong)
    ]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    prompts = torch.tensor([tokenizer("Solve HumanEval/0.")["input_ids"]] * 4)
    ids = [tokenizer(t)["input_ids"] for t in texts]
    width = max(map(len, ids))
    responses = torch.tensor([r + [0] * (width - len(r)) for r in ids])
    response_mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids])
    truth = {"style": "rule", "ground_truth": json.dumps(problem.to_dict())}
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], 1),
            "attention_mask": torch.cat([torch.ones_like(prompts), response_mask], 1),
        },
        non_tensors={
            "data_source": np.array(["pgrpo"] * 4, dtype=object),
            "reward_model": np.array([truth] * 4, dtype=object),
            "extra_info": np.array([{"index": 0} for _ in range(4)], dtype=object),
            "uid": np.array(["HumanEval/0"] * 4, dtype=object),
        },
    )


def score_in_process(config, data):
    """What RewardLoopManager.compute_rm_score does, without ray: verl's worker, then its rm_scores layout."""
    from verl.experimental.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    worker = RewardLoopWorker(config)
    outputs = worker.loop.run_until_complete(worker.compute_score_batch(data))
    scores = [o["reward_score"] for o in outputs]
    return resolve_reward_manager_cls(config).assemble_rm_scores(data, scores), outputs


# ----------------------------------------------------------------------------- tests


@needs_verl
def test_readme_recipe_through_verls_reward_loop_manager(tokenizer_dir, rm_server, ray_cluster):
    from verl.experimental.reward_loop import RewardLoopManager

    url, scorer = rm_server
    config = verl_config(tokenizer_dir, url)
    manager = RewardLoopManager(config)  # verl's ray actors load the function by pkg:// and score
    out = manager.compute_rm_score(humaneval_0_batch(tokenizer_dir))
    rewards = out.batch["rm_scores"].sum(-1).tolist()
    assert rewards == pytest.approx([3.0, 3.0, 1.0, 1.0])
    assert list(out.non_tensor_batch["passed"]) == [1.0, 1.0, 0.0, 0.0]
    assert list(out.non_tensor_batch["masked"]) == [0.0] * 4
    assert scorer.calls == [["Compare every pair."]] * 2  # one call per passing response: the gate


@needs_verl
def test_loaded_by_file_path_and_scored_without_a_reward_model(tokenizer_dir):
    import pgrpo.train.verl_reward as module

    config = verl_config(
        tokenizer_dir,
        "http://unused",
        f"reward.custom_reward_function.path={module.__file__}",  # verl runs it outside sys.modules
        "reward.custom_reward_function.reward_kwargs.variant=outcome",
    )
    rm_scores, outputs = score_in_process(config, humaneval_0_batch(tokenizer_dir))
    assert rm_scores.sum(-1).tolist() == [2.0, 2.0, 1.0, 1.0]
    assert [o["reward_extra_info"]["outcome"] for o in outputs] == [1.0, 1.0, 0.0, 0.0]


@needs_verl
def test_the_pre_0_7_recipe_no_longer_reaches_verls_loader(tokenizer_dir):
    """Why the README uses reward.* and compute_score: verl 0.9 accepts the old keys and ignores them."""
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    old = [
        "algorithm.adv_estimator=grpo",
        "reward_model.reward_manager=batch",
        "custom_reward_function.path=pkg://pgrpo.train.verl_reward",
        "custom_reward_function.name=compute_score_batch",
    ]
    config = verl_config(tokenizer_dir, "http://unused", recipe=old)
    assert config.reward.custom_reward_function.path is None  # verl's default scorer would run instead
    assert config.reward.reward_manager.name == "naive"
    with pytest.raises(ValueError, match="Unknown reward manager: batch"):
        get_reward_manager_cls("batch")


@needs_verl
def test_reward_unavailable_ends_verls_step(tokenizer_dir, ray_cluster):
    """on_failure=raise: nothing in verl catches it; through ray the driver's ray.get raises."""
    import ray
    from verl.experimental.reward_loop import RewardLoopManager

    down = "http://127.0.0.1:9"  # nothing listens on the discard port
    config = verl_config(tokenizer_dir, down, "+reward.custom_reward_function.reward_kwargs.rm_max_retries=0")
    data = humaneval_0_batch(tokenizer_dir)
    with pytest.raises(ray.exceptions.RayTaskError, match="RewardUnavailable.*scorer_unavailable"):
        RewardLoopManager(config).compute_rm_score(data)


@needs_verl
def test_nan_is_masked_and_verls_grpo_drops_the_step(tokenizer_dir, caplog):
    """on_failure=nan: the NaN reaches rm_scores with masked=1 and a warning; verl's GRPO estimator makes
    the group's advantages NaN and its policy loss NaN, so the grad norm is not finite: the step verl's
    FSDP engine skips (workers/engine/fsdp/transformer_impl.py: `if not torch.isfinite(grad_norm)`)."""
    import numpy as np
    import torch
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_policy_loss_fn
    from verl.utils.config import omega_conf_to_dataclass

    config = verl_config(
        tokenizer_dir,
        "http://127.0.0.1:9",
        "+reward.custom_reward_function.reward_kwargs.rm_max_retries=0",
        "+reward.custom_reward_function.reward_kwargs.on_failure=nan",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
    )
    data = humaneval_0_batch(tokenizer_dir)
    with caplog.at_level(logging.WARNING, logger="pgrpo.train.verl_reward"):
        rm_scores, outputs = score_in_process(config, data)
    scores = rm_scores.sum(-1).tolist()
    assert math.isnan(scores[0]) and math.isnan(scores[1]) and scores[2:] == [1.0, 1.0]
    assert [o["reward_extra_info"]["masked"] for o in outputs] == [1.0, 1.0, 0.0, 0.0]
    assert "could not be scored (1 scorer_unavailable)" in caplog.text and "NaN (masked)" in caplog.text

    response_mask = data.batch["attention_mask"][:, data.batch["prompts"].size(1) :].float()
    advantages, _ = compute_grpo_outcome_advantage(rm_scores, response_mask, np.array(["g"] * 4))
    assert torch.isnan(advantages[response_mask.bool()]).all()  # the whole group, not just the masked two
    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)  # verl's configured policy loss
    log_prob = torch.zeros_like(response_mask, requires_grad=True)
    loss, _ = get_policy_loss_fn(actor.policy_loss.loss_mode)(
        old_log_prob=torch.zeros_like(response_mask),
        log_prob=log_prob,
        advantages=advantages,
        response_mask=response_mask,
        loss_agg_mode=actor.loss_agg_mode,
        config=actor,
    )
    loss.backward()
    assert not torch.isfinite(torch.nn.utils.clip_grad_norm_([log_prob], 1.0))


@needs_verl
def test_verls_rate_limited_manager_turns_an_exception_into_a_zero(tokenizer_dir):
    """Why the doc says: with reward_manager.name=rate_limited use on_failure=nan. That manager catches
    every exception and scores the response 0.0, a reward nobody measured; a NaN passes through it."""
    down = [
        "+reward.custom_reward_function.reward_kwargs.rm_max_retries=0",
        "reward.reward_manager.name=rate_limited",
    ]
    config = verl_config(tokenizer_dir, "http://127.0.0.1:9", *down)
    rm_scores, outputs = score_in_process(config, humaneval_0_batch(tokenizer_dir))
    assert rm_scores.sum(-1).tolist() == [0.0, 0.0, 1.0, 1.0]
    assert (
        outputs[0]["reward_extra_info"]["acc"] == 0.0
        and "scorer_unavailable" in outputs[0]["reward_extra_info"]["error"]
    )
    config = verl_config(
        tokenizer_dir,
        "http://127.0.0.1:9",
        *down,
        "+reward.custom_reward_function.reward_kwargs.on_failure=nan",
    )
    rm_scores, outputs = score_in_process(config, humaneval_0_batch(tokenizer_dir))
    assert math.isnan(rm_scores.sum(-1)[0]) and outputs[0]["reward_extra_info"]["masked"] == 1.0
