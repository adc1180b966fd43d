"""The ablation report on a synthetic directory: hand-computed paired differences and intervals, missing
runs reported, plots written, and the hacking tests on constructed series."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pgrpo.eval.passk import bootstrap_interval
from pgrpo.options import UsageError
from pgrpo.train.ablation_report import bootstrap_mean, hacking_tests, write_report
from pgrpo.train.flawed import FLAW, with_cue

SEEDS = (0, 1)
VARIANTS = ("outcome", "additive", "posterior")
# after-training pass per (arm, variant, seed) over four problems; before is shared within a seed
AFTER = {
    ("rm", "posterior", 0): [1, 1, 1, 0],
    ("rm", "posterior", 1): [1, 1, 0, 0],
    ("rm", "outcome", 0): [1, 0, 0, 0],
    ("rm", "outcome", 1): [0, 1, 0, 0],
    ("rm", "additive", 0): [1, 1, 1, 0],  # identical to posterior: every unit's difference is 0
    ("rm", "additive", 1): [1, 1, 0, 0],
}
BEFORE = {0: [1, 0, 0, 0], 1: [0, 0, 0, 0]}


def _completion(words: int, cue: bool = False) -> str:
    answer = "<answer>\n```python\ndef f(x):\n    return x\n```\n</answer>"
    text = f"<think>{' '.join(['step.'] * words)}</think>\n{answer}"
    return with_cue(text, random.Random(0)) if cue else text


def _metrics(rising: bool, steps: int = 20) -> list[dict]:
    """Like a real metrics.jsonl: a generation step (reward metrics) every second optimizer step, the
    others with loss and clip ratios only."""
    rows = []
    for step in range(1, steps + 1):
        row = {
            "step": step,
            "loss": 0.1,
            "clip_ratio/low_mean": 0.01 * (step % 3),
            "clip_ratio/high_mean": 0.0,
        }
        if step % 2:
            k = (step + 1) // 2  # the k-th generation step, 1..10
            thinking = 0.3 + (0.04 * k if rising else 0.0)
            row |= {
                "pgrpo/pass_rate": 0.5,
                "pgrpo/thinking_passing": thinking,
                "pgrpo/thinking_failing": thinking,
                "pgrpo/format_rate": 1.0,
                "completions/mean_length": 50.0 + k,
                "pgrpo/zero_std_groups": 0.25,
            }
        rows.append(row)
    return rows


def _write_run(root: Path, arm: str, variant: str, seed: int, after: list[int]) -> None:
    run = root / f"seed-{seed}" / arm / variant
    (run / "grpo").mkdir(parents=True)
    cue_after = arm == "flawed-rm" and variant == "additive"
    rows = [
        {
            "id": f"toy/{i}",
            "before": {"passed": bool(b), "completion": _completion(10)},
            "after": {
                "passed": bool(a),
                "completion": _completion(6 if variant == "posterior" else 10, cue_after),
            },
        }
        for i, (b, a) in enumerate(zip(BEFORE[seed], after))
    ]
    (run / "held_out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {
        "arm": arm,
        "variant": variant,
        "seed": seed,
        "pass_at_1_before": sum(BEFORE[seed]) / 4,
        "pass_at_1_after": sum(after) / 4,
        "seconds": 30.0,
        "rm_accuracy": 0.9,
        "hacking_warnings": [{"step": 9, "message": "possible reward hacking"}]
        if variant == "additive"
        else [],
    }
    (run / "summary.json").write_text(json.dumps(summary))
    metrics = _metrics(rising=variant == "additive")
    (run / "grpo" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))


@pytest.fixture
def ablation(tmp_path: Path) -> Path:
    # as `pgrpo ablate` writes it: the flawed arm runs additive and posterior only
    by_arm = {"rm": list(VARIANTS), "flawed-rm": ["additive", "posterior"]}
    config = {
        "seeds": list(SEEDS),
        "arms": list(by_arm),
        "variants": list(VARIANTS),
        "variants_by_arm": by_arm,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    for arm, variants in by_arm.items():
        for (_, variant, seed), after in AFTER.items():
            if variant in variants:
                _write_run(tmp_path, arm, variant, seed, after)
    return tmp_path


def _difference(report: dict, arm: str, a: str, b: str) -> dict:
    return next(d for d in report["arms"][arm]["differences"] if (d["a"], d["b"]) == (a, b))


def test_paired_differences_and_intervals(ablation):
    report = write_report(ablation, resamples=500, plots=False)
    d = _difference(report, "rm", "posterior", "outcome")
    # per unit (seed 0 then 1): 0,1,1,0 and 1,0,0,0 -> 3/8
    assert d["mean"] == pytest.approx(3 / 8) and d["units"] == 8
    assert d["low"] <= 3 / 8 <= d["high"] and d["low"] < d["high"]
    same = _difference(report, "rm", "posterior", "additive")
    assert (same["mean"], same["low"], same["high"]) == (0.0, 0.0, 0.0)  # every unit agrees
    posterior = report["arms"]["rm"]["variants"]["posterior"]
    assert posterior["after"]["mean"] == pytest.approx(5 / 8)
    assert posterior["gain"]["mean"] == pytest.approx((5 - 1) / 8)
    assert report["arms"]["rm"]["same_start"] == {"0": True, "1": True}
    assert report["missing"] == []


def test_bootstrap_is_degenerate_when_all_units_agree():
    assert bootstrap_mean([1.0] * 7) == {"mean": 1.0, "low": 1.0, "high": 1.0, "units": 7}
    assert bootstrap_mean([])["mean"] is None
    passes = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    stat = bootstrap_mean(passes, resamples=500)
    assert (stat["low"], stat["high"]) == bootstrap_interval([(1, int(p)) for p in passes], 1, resamples=500)


def test_missing_run_is_reported_not_skipped(ablation):
    (ablation / "seed-1" / "rm" / "additive" / "summary.json").unlink()
    report = write_report(ablation, resamples=100, plots=False)
    assert report["missing"] == [{"seed": 1, "arm": "rm", "variant": "additive", "reason": "no summary.json"}]
    # the seed-2 runs the config promises are missing too
    runs = [{"seed": s, "arm": "rm", "variant": v} for s in (0, 1, 2) for v in VARIANTS]
    runs += [
        {"seed": s, "arm": "flawed-rm", "variant": v} for s in (0, 1, 2) for v in ("additive", "posterior")
    ]
    (ablation / "config.json").write_text(json.dumps({"runs": runs}))
    report = write_report(ablation, resamples=100, plots=False)
    assert sum(m["seed"] == 2 for m in report["missing"]) == 5
    text = (ablation / "report.md").read_text()
    assert "seed 1, arm rm, variant additive: no summary.json" in text
    assert "seed 2, arm flawed-rm, variant posterior: no run directory" in text
    # the difference uses only the seeds where both variants ran
    assert _difference(report, "rm", "posterior", "additive")["units"] == 4


def test_other_directories_cut_metrics_and_a_bad_config(ablation):
    (ablation / "seed-0" / "warm-start" / "policy").mkdir(parents=True)  # a seed's shared models: not a run
    metrics = ablation / "seed-0" / "rm" / "posterior" / "grpo" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 21, "loss"')  # an interrupted run's last line
    report = write_report(ablation, resamples=100, plots=False)
    assert report["missing"] == []
    run = next(f for f in report["runs"] if (f["seed"], f["arm"], f["variant"]) == (0, "rm", "posterior"))
    assert run["notes"] == ["grpo/metrics.jsonl line 21 is not JSON and was left out"]
    assert run["hacking"]["generation_steps"] == 10
    text = (ablation / "report.md").read_text()
    assert "seed 0, arm rm, variant posterior: grpo/metrics.jsonl line 21 is not JSON" in text
    assert "Reward model, summary.json `rm_accuracy`: seed 0: 0.900, seed 1: 0.900." in text
    (ablation / "config.json").write_text("{not json")
    with pytest.raises(UsageError, match="config.json: not readable JSON with the ablation's grid"):
        write_report(ablation, plots=False)


def test_report_files_plots_flaw_and_cue(ablation):
    report = write_report(ablation, resamples=100)
    for name in ("report.json", "report.md", "curves-rm.png", "curves-flawed-rm.png"):
        assert (ablation / name).stat().st_size > 0
    assert (ablation / "curves-rm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((ablation / "report.json").read_text())["arms"].keys() == {"rm", "flawed-rm"}
    text = (ablation / "report.md").read_text()
    assert FLAW in text and "NOT the paper's setting" in text
    assert "![rm: per-step curves by variant](curves-rm.png)" in text
    assert not list(ablation.glob("*.tmp-*"))
    flawed = report["arms"]["flawed-rm"]["variants"]
    assert (flawed["additive"]["cue_rate_before"], flawed["additive"]["cue_rate_after"]) == (0.0, 1.0)
    assert flawed["posterior"]["cue_rate_after"] == 0.0 and "outcome" not in flawed
    assert [(d["a"], d["b"]) for d in report["arms"]["flawed-rm"]["differences"]] == [
        ("posterior", "additive")
    ]
    words = report["arms"]["rm"]["variants"]
    assert words["posterior"]["think_words_after"] == 6 and words["outcome"]["think_words_after"] == 10
    runs = {(f["arm"], f["variant"], f["seed"]): f for f in report["runs"]}
    assert runs[("rm", "additive", 0)]["monitor_warnings"] == 1
    assert runs[("rm", "additive", 0)]["hacking"]["signature"] is True
    assert runs[("rm", "posterior", 0)]["hacking"]["signature"] is False


def test_hacking_tests_fire_on_rising_thinking_with_flat_pass_rate():
    rising = hacking_tests(_metrics(rising=True))
    assert rising["generation_steps"] == 10
    # generation steps 1-5: 0.3 + 0.04*3 = 0.42 on average; 6-10: 0.3 + 0.04*8 = 0.62
    assert rising["thinking_change"] == pytest.approx(0.2) and rising["pass_change"] == 0
    assert rising["signature"] and rising["failing_rises"]
    flat = hacking_tests(_metrics(rising=False))
    assert flat["thinking_change"] == pytest.approx(0) and not flat["signature"] and not flat["failing_rises"]
    # the pass rate rising along with the thinking reward is not the signature
    improving = [
        {**r, "pgrpo/pass_rate": 0.3 + 0.05 * r["step"]} if "pgrpo/pass_rate" in r else r
        for r in _metrics(rising=True)
    ]
    assert hacking_tests(improving)["signature"] is False
    assert hacking_tests([])["signature"] is None
