"""`pgrpo check`: run samples against their problems' tests and write one result row per sample.

Rows are streamed to `OUT.partial` as results arrive (an interrupted run keeps what it judged) and
the file is renamed to OUT only when every row is written: OUT is never a truncated file, and a
rerun that stops early leaves the previous complete OUT in place.
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass, field

from pgrpo.jsonl import dumps_row, open_rows, read_jsonl
from pgrpo.prompting import program_for
from pgrpo.types import ExecResult, Problem, ProblemFormatError, Sample, Verdict


@dataclass
class CheckReport:
    total: int = 0
    passed: int = 0
    verdicts: collections.Counter = field(default_factory=collections.Counter)
    seconds: float = 0.0
    layers: dict = field(default_factory=dict)
    sandbox_errors: collections.Counter = field(default_factory=collections.Counter)  # by message

    def add(self, result: ExecResult) -> None:
        self.total += 1
        self.passed += result.passed
        self.verdicts[result.verdict.value] += 1
        if result.verdict is Verdict.SANDBOX_ERROR:
            self.sandbox_errors[result.message[:300]] += 1

    def render(self) -> str:
        rate = self.total / self.seconds if self.seconds else 0.0
        lines = [
            f"{self.passed}/{self.total} samples passed all their tests "
            f"({self.seconds:.2f} s, {rate:.0f} samples/s)"
        ]
        for verdict in Verdict:
            if self.verdicts[verdict.value]:
                lines.append(f"  {verdict.value:<16} {self.verdicts[verdict.value]}")
        if self.verdicts[Verdict.SANDBOX_ERROR.value]:
            lines.append("  sandbox_error counts infrastructure faults, not wrong programs:")
            for message, n in self.sandbox_errors.most_common(3):
                lines.append(f"    {n} × {message or '(no message)'}")
        off = [name for name, on in self.layers.items() if not on]
        if off:
            lines.append(f"  isolation layers not active here: {', '.join(off)} (see `pgrpo sandbox info`)")
        return "\n".join(lines)


def read_samples(path: str, problems: dict[str, Problem]) -> list[tuple[Sample, Problem]]:
    out = []
    for where, row in read_jsonl(path):
        sample = Sample.from_dict(row, where)
        if sample.id not in problems:
            raise ProblemFormatError(
                f"{where}: field 'id': no problem with id {sample.id!r} in the problem set"
            )
        out.append((sample, problems[sample.id]))
    return out


def reference_samples(problems: list[Problem]) -> list[tuple[Sample, Problem]]:
    missing = [p.id for p in problems if p.reference is None]
    if missing:
        raise ProblemFormatError(f"problems without a reference solution: {', '.join(missing[:5])}")
    return [(Sample(id=p.id, solution=p.reference, fields={"id": p.id}), p) for p in problems]


def run_check(
    pairs: list[tuple[Sample, Problem]],
    out_path: str | None,
    workers: int = 2,
    time_limit_s: float | None = None,
    progress: bool = True,
) -> tuple[CheckReport, list[ExecResult]]:
    from pgrpo.sandbox import Executor

    report = CheckReport()
    results: list[ExecResult] = []
    started = time.monotonic()
    bar = None
    if progress:
        from pgrpo.log import progress as progress_bar

        bar = progress_bar(len(pairs), "executing", "sample")
    partial = f"{out_path}.partial" if out_path else None
    if partial:
        os.makedirs(os.path.dirname(partial) or ".", exist_ok=True)
    out = open_rows(partial) if partial else None
    try:
        with Executor(workers=workers, time_limit_s=time_limit_s) as executor:
            report.layers = dict(executor.layers.active)
            jobs = [(problem, program_for(problem, sample)) for sample, problem in pairs]
            for (sample, _), result in zip(pairs, executor.map(jobs, progress=bar), strict=True):
                report.add(result)
                results.append(result)
                if out:
                    out.write(dumps_row({**sample.fields, **result.to_dict()}))
                    out.flush()
        if out:
            out.close()
            os.replace(partial, out_path)
    finally:
        if out:
            out.close()
        if bar:
            bar.close()
    report.seconds = time.monotonic() - started
    return report, results
