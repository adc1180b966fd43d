"""`pgrpo ablate`: the flags, and a reduced ablation through the real command — the runs of a seed start
from identical warm-start weights and score with the same reward model, the layout the report reads, and
a rerun that skips what is done."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pgrpo.cli import main
from pgrpo.options import UsageError
from pgrpo.train.demo import DemoConfig


@dataclasses.dataclass
class SmallDemo(DemoConfig):
    """The demo's pipeline at test size (what `pgrpo ablate` runs when it stands in for DemoConfig)."""

    train_problems: int = 24
    test_problems: int = 8
    warm_start_max_steps: int = 20
    rm_epochs: float = 0.3
    num_generations: int = 4
    prompts_per_step: int = 2


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "flags, said",
    [
        (["--variants", "outcome,best"], "--variants"),
        (["--variants", ""], "--variants"),
        (["--variants", "outcome,outcome"], "--variants"),
        (["--seeds", "0,x"], "--seeds"),
        (["--seeds", "1,1"], "--seeds"),
        (["--steps", "0"], "--steps"),
        (["--steps", "many"], "--steps"),
    ],
)
def test_flags_out_of_range_are_one_line(capsys, flags, said):
    with pytest.raises(SystemExit) as info:
        main(["ablate", *flags])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and said in err, err


def test_config_built_in_python_is_checked_too():
    from pgrpo.train.ablate import AblateConfig

    with pytest.raises(UsageError, match="--steps"):
        AblateConfig(grpo_steps=0)
    with pytest.raises(UsageError, match="--variants"):
        AblateConfig(variants=("best",))


def test_the_grid_runs_the_flawed_arm_for_additive_and_posterior_only():
    from pgrpo.train.ablate import AblateConfig

    grid = AblateConfig(seeds=(0, 1)).runs()
    assert len(grid) == 2 * (3 + 2) and (0, "flawed-rm", "outcome") not in grid
    assert AblateConfig(seeds=(0,), flawed_rm=False).runs() == [
        (0, "rm", "outcome"),
        (0, "rm", "additive"),
        (0, "rm", "posterior"),
    ]


def test_out_that_is_a_file_is_refused_before_the_work(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("x")
    code, _, err = _run(capsys, ["ablate", "--out", str(taken), "--steps", "1"])
    assert code == 2 and "--out" in err and str(taken) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def _hash_saved_policy(directory: Path) -> str:
    from pgrpo.train.demo import load_policy, weights_sha256

    return weights_sha256(load_policy(directory)[0])


def _ablate(tmp_path, capsys, monkeypatch, flawed: bool, steps: int):
    """A reduced ablation (1 seed, outcome and posterior) through `pgrpo ablate`; checks the layout the
    report reads and the pairing; returns (out, argv, runs, saved policy hash)."""
    from pgrpo.train import demo

    monkeypatch.setattr(demo, "DemoConfig", SmallDemo)
    out = tmp_path / "abl"
    argv = ["ablate", "--out", str(out), "--variants", "outcome,posterior", "--seeds", "0"]
    argv += ["--flawed-rm" if flawed else "--no-flawed-rm", "--steps", str(steps)]
    code, stdout, _ = _run(capsys, argv)
    assert code == 0
    runs = {("rm", "outcome"), ("rm", "posterior")} | ({("flawed-rm", "posterior")} if flawed else set())
    config = json.loads((out / "config.json").read_text())
    assert config["seeds"] == [0] and config["steps"] == steps
    assert config["arms"] == (["rm", "flawed-rm"] if flawed else ["rm"])
    summaries = {}
    for arm, variant in runs:
        where = out / "seed-0" / arm / variant
        summary = json.loads((where / "summary.json").read_text())
        keys = ("arm", "variant", "seed", "pass_at_1_before", "pass_at_1_after", "seconds", "rm_accuracy")
        assert set(keys) <= set(summary), (arm, variant)
        assert (summary["arm"], summary["variant"], summary["seed"]) == (arm, variant, 0)
        rows = [json.loads(line) for line in (where / "held_out.jsonl").read_text().splitlines()]
        assert len(rows) == 8 and {"passed", "completion"} <= set(rows[0]["before"])
        assert (where / "grpo" / "metrics.jsonl").exists()
        summaries[arm, variant] = (summary, rows)
        assert f"seed 0, {arm}/{variant}: started" in stdout
        assert f"seed 0, {arm}/{variant}: finished" in stdout

    # paired: every run of the seed started from the saved warm-start weights (same greedy outputs)...
    shared = out / "seed-0" / "shared"
    start = _hash_saved_policy(shared / "policy")
    assert {s["start_weights_sha256"] for s, _ in summaries.values()} == {start}
    assert len({tuple(r["before"]["completion"] for r in rows) for _, rows in summaries.values()}) == 1
    # ...and scored with the seed's one reward model of its arm
    for (arm, _), (summary, _) in summaries.items():
        rm = shared / ("rm" if arm == "rm" else "rm-flawed")
        assert summary["reward_model_dir"] == str(rm.resolve())
    assert (out / "report.md").exists() and (out / "report.json").exists()
    return out, argv, summaries, start


def test_reduced_ablation_is_paired_and_a_rerun_skips_it(tmp_path, capsys, monkeypatch):
    out, argv, summaries, _ = _ablate(tmp_path, capsys, monkeypatch, flawed=False, steps=1)
    kept = {k: (out / "seed-0" / k[0] / k[1] / "summary.json").stat().st_mtime_ns for k in summaries}
    code, stdout, _ = _run(capsys, argv)
    assert code == 0 and "started" not in stdout
    for arm, variant in summaries:
        assert f"seed 0, {arm}/{variant}: done in an earlier run, skipped" in stdout
        assert (out / "seed-0" / arm / variant / "summary.json").stat().st_mtime_ns == kept[arm, variant]
    # the same directory with other pipeline settings is refused in one line, before any work
    code, _, err = _run(capsys, [*argv[:-1], "3"])
    assert code == 2 and "--out" in err and "grpo_steps 1 -> 3" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_flawed_arm_is_paired_and_a_run_cut_short_is_redone_alone(tmp_path, capsys, monkeypatch):
    out, argv, summaries, start = _ablate(tmp_path, capsys, monkeypatch, flawed=True, steps=2)
    kept = {k: (out / "seed-0" / k[0] / k[1] / "summary.json").stat().st_mtime_ns for k in summaries}
    (out / "seed-0" / "rm" / "outcome" / "summary.json").unlink()
    code, stdout, _ = _run(capsys, argv)
    assert code == 0
    assert "rm/posterior: done in an earlier run, skipped" in stdout
    assert "flawed-rm/posterior: done in an earlier run, skipped" in stdout
    assert "rm/outcome: started" in stdout and "warm start: kept from an earlier run" in stdout
    for arm, variant in set(summaries) - {("rm", "outcome")}:
        assert (out / "seed-0" / arm / variant / "summary.json").stat().st_mtime_ns == kept[arm, variant]
    redone = json.loads((out / "seed-0" / "rm" / "outcome" / "summary.json").read_text())
    assert redone["start_weights_sha256"] == start
    first = summaries["rm", "outcome"][0]
    assert (redone["pass_at_1_before"], redone["pass_at_1_after"]) == (
        first["pass_at_1_before"],
        first["pass_at_1_after"],
    )
