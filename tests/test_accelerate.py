"""`pgrpo train` under accelerate with two CPU processes (gloo), the way the README shows it.

accelerate's `--cpu --num_processes 2` starts ONE process unless an MPI hostfile is given; two CPU ranks
on one machine come from its torchrun launcher (`--multi_gpu`), which with no GPU visible joins them
as CPU ranks because `pgrpo train` sets `use_cpu` when CUDA is absent. Each run takes about a minute
on two cores (two processes importing torch, TRL and building the tiny policy), hence slow.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import SHARED_DATA, needs_shared_data

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(out: Path, *overrides: str, resume: bool = False) -> subprocess.CompletedProcess:
    """The README's command, with the data from SHARED_DATA and a free rendezvous port."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        "-m", "pgrpo.cli", "train", "--config", "configs/tiny-mbpp.toml",
        f'data.dataset=["mbpp:{SHARED_DATA}/mbpp/train.jsonl"]',
        f'data.eval=["mbpp:{SHARED_DATA}/mbpp/test.jsonl"]',
        "grpo.save_steps=1", f"output.dir={out}", *overrides,
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        command + (["--resume"] if resume else []),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _steps(out: Path) -> list[int]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "loss" in r]


def _checkpoints(out: Path) -> list[str]:
    return sorted(d.name for d in out.glob("checkpoint-*"))


@pytest.mark.slow
@needs_shared_data
def test_two_processes_train_write_once_and_resume(tmp_path):
    out = tmp_path / "run"
    first = launch(out, "grpo.max_steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Traceback" not in first.stderr
    assert first.stderr.count("GRPO: 2 steps in") == 1  # the summary: main process only
    assert _steps(out) == [1, 2]  # one line per step: one writer
    assert _checkpoints(out) == ["checkpoint-1", "checkpoint-2"]
    assert sorted(p.name for p in (out / "checkpoint-2").glob("rng_state_*")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]  # both ranks were in the run and saved their state
    summary = json.loads((out / "summary.json").read_text())
    # both processes' completions, scored each by its own executor and added up: 2 ranks x 8 x 4
    assert summary["reward_stats"]["completions"] == 64
    assert json.loads((out / "reward_stats.json").read_text())["completions"] == 64

    again = launch(out, "grpo.max_steps=4", resume=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("GRPO: 2 steps in") == 1  # steps 3 and 4, from checkpoint-2
    assert _steps(out) == [1, 2, 3, 4]
    assert _checkpoints(out) == [f"checkpoint-{i}" for i in (2, 3, 4)]  # save_total_limit = 3
    assert json.loads((out / "summary.json").read_text())["steps"] == 4


class RecordingScorer:
    """Scores a reasoning by its length, and remembers which problems it was asked about."""

    name = "recording"

    def __init__(self) -> None:
        self.problems: list[str] = []

    def score(self, problems, reasonings):
        self.problems += problems
        return [len(r) / 100 - 1 for r in reasonings]


@pytest.mark.slow
@needs_shared_data
def test_two_processes_share_a_reward_model_url(tmp_path):
    from pgrpo.rm.http import serve_scorer

    scorer = RecordingScorer()
    server = serve_scorer(scorer, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    out = tmp_path / "run"
    try:
        run = launch(out, "grpo.max_steps=1", "reward.variant=additive", f"reward.model={url}")
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr[-3000:]
    stats = json.loads((out / "summary.json").read_text())["reward_stats"]
    probe = "def f(): pass"  # pgrpo.rm.score.check_reward_model's request
    assert scorer.problems.count(probe) == 2  # each process checked the URL before its policy loaded
    asked = [p for p in scorer.problems if p != probe]
    assert len(asked) == stats["scorer_calls"] > 0  # the summary adds up both processes' calls
    # one generation batch holds all 16 problems, 8 per process: the server heard from both processes
    assert len(set(asked)) > 8
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["pgrpo/rm_call_rate"] > 0


def test_the_metrics_of_a_group_split_between_processes_are_computed_over_the_whole_group(executor):
    """TRL may put one group on two processes (per-process batch not a multiple of num_generations);
    the pgrpo/* metrics are computed over the gathered batch, as TRL computes the advantages."""
    from pgrpo.train.gated import GatedReward
    from pgrpo.train.toy import reference_completion, toy_problems

    p = toy_problems(train=4, test=1, seed=0)[0][0]
    good, bad = reference_completion(p), reference_completion(p).replace("    return ", "    return 1 + ")
    rank1 = GatedReward([p], executor, variant="outcome", group_size=4)
    theirs = rank1.functions()[0](completions=[good, bad], problem_id=[p.id] * 2)
    assert theirs == [1.0, 1.0]
    logged = {}
    rank0 = GatedReward([p], executor, variant="outcome", group_size=4)
    rank0.gather = lambda mine: mine + [(rank1._breakdowns, {})]  # what gather_object returns on rank 0
    for f in rank0.functions():
        f(completions=[bad, bad], problem_id=[p.id] * 2, log_metric=logged.__setitem__)
    # alone, rank 0 would log pass rate 0 and one group of equal rewards; the group is 3 fails and a pass
    assert logged["pgrpo/pass_rate"] == 0.25
    assert logged["pgrpo/zero_std_groups"] == 0.0
    assert rank0.stats.completions == 2  # its own completions, scored by its own executor
