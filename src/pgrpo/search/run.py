"""`pgrpo search`: run search methods, score their answers on the hidden tests, compare them.

Stages, each timed: load (visible/hidden split, `tasks`) -> for each method: search on the search
tests (`engine.drive`; hidden tests are not reachable there) -> run the selected answers on the hidden
tests -> efficiency of the solved ones against the reference -> write:

    OUT/<method>/tree.jsonl      every node of every problem's tree (id, parent, round, hint, reasoning,
                                 code, visible verdict and pass rate, ρ, ω and its parts, selected)
    OUT/<method>/problems.jsonl  per problem: LLM calls, tokens, executions, the selected node, its
                                 hidden-test verdict, efficiency
    OUT/report.json, report.md   all methods side by side, labelled oracle or not

Efficiency (ORPS paper): candidate runtime / reference runtime on the hidden tests, capped at 10x,
measured here on this machine for problems solved with a reference that passes its own tests; each
program is run `efficiency_repeats` times and its fastest run kept. Lower is better.
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import time
from dataclasses import asdict, replace

from pgrpo.jsonl import write_jsonl
from pgrpo.log import logger, progress
from pgrpo.options import on_interrupt
from pgrpo.outputs import Output, check_outputs, write_text
from pgrpo.prompting import TrainedPrompt
from pgrpo.search.config import SearchConfig
from pgrpo.search.engine import Backends, Ledger, MethodResult, PromptForm, drive
from pgrpo.search.methods import METHODS
from pgrpo.search.prompts import strategies
from pgrpo.search.tasks import SearchTask, load_tasks
from pgrpo.types import ExecResult, Problem

EFFICIENCY_CAP = 10.0


def load_backends(cfg: SearchConfig) -> Backends:
    """The generator and the critic. Both models are checked before either loads (loading one may
    take minutes), and a wrong critic is blamed on --critic-model."""
    from pgrpo.llm import check_model, load_generator

    own_critic = bool(cfg.critic_model) and cfg.critic_model != cfg.model
    check_model(cfg.model, "--model", cfg.backend)
    if own_critic:
        check_model(cfg.critic_model, "--critic-model", cfg.critic_backend)
    generator = load_generator(cfg.model, cfg.backend, cache_dir=cfg.cache_dir, **cfg.backend_options())
    critic = generator
    if own_critic:
        critic = load_generator(
            cfg.critic_model,
            cfg.critic_backend,
            cache_dir=cfg.cache_dir,
            model_flag="--critic-model",
            **cfg.backend_options(),
        )
    return Backends(generator, critic)


def prompt_forms(cfg: SearchConfig, backends: Backends, trained: TrainedPrompt) -> dict[str, PromptForm]:
    """How each role is prompted: chat messages where the model has a chat template (as training did,
    in the pgrpo style), else their plain-text form; the training system prompt for the generator only."""
    from pgrpo.llm import has_chat_template

    generator = PromptForm(
        chat=trained.chat_for(cfg.prompt_style, has_chat_template(backends.generator)),
        system_prompt=trained.system_prompt if cfg.prompt_style == "pgrpo" else None,
    )
    critic_chat = has_chat_template(backends.critic) and cfg.prompt_style != "completion"
    return {"generator": generator, "critic": PromptForm(chat=critic_chat)}


# ----------------------------------------------------------------------------- scoring on hidden tests


def _time(result: ExecResult, source: str) -> float:
    return sum((t.cpu_s if source == "cpu" else t.wall_s) for t in result.tests)


class Efficiency:
    """Runtime ratios against the reference; reference timings are measured once per problem."""

    def __init__(self, executor, repeats: int) -> None:
        self.executor = executor
        self.repeats = repeats
        self.references: dict[str, list[ExecResult] | None] = {}

    def _reference_runs(self, problem: Problem) -> list[ExecResult] | None:
        if problem.id not in self.references:
            runs = None
            if problem.reference is not None:
                runs = list(self.executor.map([(problem, problem.reference)] * self.repeats))
                runs = runs if all(r.passed for r in runs) else None
            self.references[problem.id] = runs
        return self.references[problem.id]

    def ratios(self, solved: dict[str, tuple[Problem, str, ExecResult]]) -> dict[str, dict]:
        """{problem id: {"ratio", "candidate_s", "reference_s", "time_source"} or {"skipped": why}}."""
        extra = list(
            self.executor.map([(p, code) for p, code, _ in solved.values() for _ in range(self.repeats - 1)])
        )
        out: dict[str, dict] = {}
        for i, (pid, (problem, _, first)) in enumerate(solved.items()):
            runs = [first, *extra[i * (self.repeats - 1) : (i + 1) * (self.repeats - 1)]]
            refs = self._reference_runs(problem)
            if problem.reference is None:
                out[pid] = {"skipped": "no reference solution"}
                continue
            if refs is None:
                out[pid] = {"skipped": "the reference does not pass the hidden tests"}
                continue
            if not all(r.passed for r in runs):
                out[pid] = {"skipped": "the answer did not pass every timing run"}
                continue
            every = [t for r in runs + refs for t in r.tests]
            source = "cpu" if all(t.cpu_s is not None for t in every) else "wall"
            cand = min(_time(r, source) for r in runs)
            ref = min(_time(r, source) for r in refs)
            if ref <= 0:
                out[pid] = {"skipped": "reference time measured as 0"}
                continue
            out[pid] = {
                "ratio": min(cand / ref, EFFICIENCY_CAP),
                "candidate_s": cand,
                "reference_s": ref,
                "time_source": source,
            }
        return out


def score_hidden(
    outcomes: dict[str, tuple[MethodResult, Ledger]], hidden: dict[str, Problem], executor
) -> dict[str, ExecResult | None]:
    """The selected answer of each problem run on its hidden tests (None: search produced no answer)."""
    jobs = [(pid, out.selected.code) for pid, (out, _) in outcomes.items() if out.selected is not None]
    results = executor.map([(hidden[pid], code) for pid, code in jobs])
    scored: dict[str, ExecResult | None] = {pid: None for pid in outcomes}
    scored.update({pid: r for (pid, _), r in zip(jobs, results, strict=True)})
    return scored


# ----------------------------------------------------------------------------- one method


def run_method(
    name: str,
    cfg: SearchConfig,
    tasks: list[SearchTask],
    hidden: dict[str, Problem],
    backends: Backends,
    executor,
    efficiency: Efficiency,
) -> tuple[dict, list[dict], list[dict]]:
    """(summary, per-problem rows, tree rows) of one method."""
    t0 = time.monotonic()
    # closed before an interruption is reported, so that line starts a line of its own
    with progress(total=len(tasks), desc=name, unit="problem") as bar:
        outcomes = drive(tasks, METHODS[name], cfg, backends, executor, cfg.resolved_budget(), progress=bar)
    search_s = time.monotonic() - t0
    t0 = time.monotonic()
    scored = score_hidden(outcomes, hidden, executor)
    solved = {
        pid: (hidden[pid], outcomes[pid][0].selected.code, result)
        for pid, result in scored.items()
        if result is not None and result.passed
    }
    timing = efficiency.ratios(solved)
    score_s = time.monotonic() - t0

    rows, tree_rows = [], []
    by_id = {task.id: task for task in tasks}
    for pid, (outcome, ledger) in outcomes.items():
        result, node = scored[pid], outcome.selected
        rows.append(
            {
                "id": pid,
                "method": name,
                "visible_tests": len(by_id[pid].problem.tests),
                "visible_repeats_dropped": by_id[pid].repeats_dropped,
                **ledger.to_dict(),
                "nodes": len(outcome.nodes),
                "stop": outcome.stop,
                "selected": None if node is None else node.id,
                "visible_pass_rate": None if node is None else round(node.pass_rate, 6),
                "hidden": None
                if result is None
                else {
                    "verdict": result.verdict.value,
                    "passed": result.passed,
                    "pass_rate": round(result.pass_rate, 6),
                },
                "efficiency": timing.get(pid),
            }
        )
        tree_rows += [{"problem": pid, "method": name, **n.to_dict()} for n in outcome.nodes]
    summary = summarise(name, rows, outcomes, scored, search_s, score_s)
    summary["intervals"] = intervals(rows)
    blind = [row for row in rows if row["visible_tests"] == 0]
    summary["no_visible_tests"] = {
        "problems": len(blind),
        "solved": sum(1 for row in blind if row["hidden"] and row["hidden"]["passed"]),
    }
    return summary, rows, tree_rows


def intervals(rows: list[dict]) -> dict:
    """95% bootstrap intervals over problems (one answer each) for hidden pass@1 and for the share of
    problems whose chosen answer passed every visible test, from the rows of problems.jsonl."""
    from pgrpo.eval.passk import bootstrap_interval

    hidden = [(1, int(bool(r["hidden"] and r["hidden"]["passed"]))) for r in rows]
    visible = [(1, int(r["visible_pass_rate"] == 1.0 and r["visible_tests"] > 0)) for r in rows]
    return {
        "pass@1_ci95": list(bootstrap_interval(hidden, 1)),
        "visible_solved_rate": sum(c for _, c in visible) / len(visible) if visible else 0.0,
        "visible_solved_ci95": list(bootstrap_interval(visible, 1)),
    }


def summarise(name, rows, outcomes, scored, search_s: float, score_s: float) -> dict:
    n = len(rows)
    total = collections.Counter()
    for row in rows:
        for key in (
            "llm_calls",
            "generator_calls",
            "critic_calls",
            "prompt_tokens",
            "completion_tokens",
            "tokens",
            "executions",
            "critic_retries",
            "critic_failures",
        ):
            total[key] += row[key]
    ratios = [
        row["efficiency"]["ratio"] for row in rows if row["efficiency"] and "ratio" in row["efficiency"]
    ]
    solved = sum(1 for r in scored.values() if r is not None and r.passed)
    terms = collections.Counter(
        ",".join(node.omega.dynamic_terms)
        for out, _ in outcomes.values()
        for node in out.nodes
        if node.omega and node.omega.dynamic_terms
    )
    return {
        "method": name,
        "problems": n,
        "pass@1": solved / n if n else 0.0,
        "solved": solved,
        "visible_solved": sum(
            1 for out, _ in outcomes.values() if out.selected is not None and out.selected.passes_all
        ),
        **dict(total),
        "per_problem": {k: total[k] / n if n else 0.0 for k in ("llm_calls", "tokens", "executions")},
        "efficiency": {
            "mean_ratio": statistics.mean(ratios) if ratios else None,
            "problems": len(ratios),
            "cap": EFFICIENCY_CAP,
        },
        "infrastructure_failures": sum(
            1 for r in scored.values() if r is not None and r.is_infrastructure_failure
        ),
        "stops": dict(collections.Counter(out.stop.split(" in round")[0] for out, _ in outcomes.values())),
        "omega_dynamic_terms": dict(terms),
        "seconds": {"search": round(search_s, 2), "score": round(score_s, 2)},
    }


# ----------------------------------------------------------------------------- the whole run


RANKING_TEXT = {
    "weighted": "q = 0.5·(ρ-1)/4 + 0.5·ω/2 (ρ in 1..5 and ω in 0..2 both put on [0, 1])",
    "critic-then-omega": "ρ, then ω",
}
SELECTION_TEXT = (
    "visible pass rate, then code that ran before code that did not (compile error, no code), then "
    "runtime over the passing visible tests (unknown, when none passes, after known), then ω, then ρ"
)


def visible_summary(tasks: list[SearchTask]) -> dict:
    """How many visible tests search had, how many were dropped as repeats of hidden ones, and which
    problems were left with none."""
    blind = [task for task in tasks if not task.problem.tests]
    return {
        "kept": sum(len(task.problem.tests) for task in tasks),
        "dropped_hidden_repeats": sum(task.repeats_dropped for task in tasks),
        "problems_with_repeats": sum(1 for task in tasks if task.repeats_dropped),
        "problems_without_visible_tests": len(blind),
        "without_from_the_start": sum(1 for task in blind if not task.repeats_dropped),
        "ids_without_visible_tests": [task.id for task in blind],
    }


def run_search(cfg: SearchConfig, backends: Backends | None = None, executor=None) -> dict:
    """Run every method of `cfg` and write the run directory; returns the report. `backends` and
    `executor` are for tests (default: load the models, start a sandbox pool)."""
    cfg.validate(list(METHODS), len(strategies()))
    t0 = time.monotonic()
    trained = TrainedPrompt.find(cfg.model)
    pairs = load_tasks(cfg.dataset, oracle=cfg.oracle)[: cfg.limit]
    tasks = [task for task, _ in pairs]
    if cfg.prompt_style == "pgrpo":  # replies are read as the training reward reads them
        tasks = [replace(task, answer_format=trained.spec()) for task in tasks]
    hidden = {task.id: problem for task, problem in pairs}
    # the inputs read, the outputs checked: nothing is created for a run refused over its input
    check_outputs(
        [Output("--out", cfg.out, directory=True), Output("--cache-dir", cfg.cache_dir, directory=True)],
        inputs={"--dataset": cfg.dataset, "--model": cfg.model},
    )
    on_interrupt(
        f"the methods finished so far are in {cfg.out}/METHOD; every LLM answer so far is cached in "
        f"{cfg.cache_dir}, so the same command resumes without paying for them again"
        if cfg.cache_dir
        else f"the methods finished so far are in {cfg.out}/METHOD; with --cache-dir a rerun would resume"
    )
    load_s = time.monotonic() - t0
    t0 = time.monotonic()
    backends = backends or load_backends(cfg)
    backends.forms = backends.forms or prompt_forms(cfg, backends, trained)
    model_s = time.monotonic() - t0
    own_executor = executor is None
    if own_executor:
        from pgrpo.sandbox import Executor

        # ORPS ranks and scores by the share of visible tests passed: every test needs its own verdict
        executor = Executor(workers=cfg.workers, time_limit_s=cfg.timeout, every_test=True)
    summaries = []
    try:
        efficiency = Efficiency(executor, cfg.efficiency_repeats)
        for name in cfg.methods:
            summary, rows, tree_rows = run_method(name, cfg, tasks, hidden, backends, executor, efficiency)
            os.makedirs(os.path.join(cfg.out, name), exist_ok=True)
            write_jsonl(os.path.join(cfg.out, name, "problems.jsonl"), rows)
            write_jsonl(os.path.join(cfg.out, name, "tree.jsonl"), tree_rows)
            summaries.append(summary)
            logger.info(f"search: {name}: pass@1 {summary['pass@1']:.3f} on {summary['problems']} problems")
    finally:
        if own_executor:
            executor.close()
    report = {
        "dataset": cfg.dataset,
        "model": cfg.model,
        "critic_model": cfg.critic_model or cfg.model,
        "oracle": cfg.oracle,
        "search_tests": "HIDDEN tests (oracle run: not a fair comparison)"
        if cfg.oracle
        else "visible tests only",
        "problems": len(tasks),
        "budget_calls": cfg.resolved_budget(),
        "orps": {
            "rounds": f"round 0 (N answers to the bare problem) + T = {cfg.rounds} refinement rounds",
            "budget_formula": "2·N·(1 + T·K): each child one generation and one critique",
            "retired": "a node passing every visible test (no visible tests: ρ = 5) is not expanded",
            "stop_on_pass": cfg.stop_on_pass,
            "ranking": RANKING_TEXT[cfg.ranking],
            "selection": SELECTION_TEXT,
        },
        "visible_tests": visible_summary(tasks),
        "max_tokens": cfg.resolved_max_tokens(),
        "prompt": {
            "style": cfg.prompt_style,
            "chat": {role: form.chat for role, form in backends.forms.items()},
            "system_prompt": trained.system_prompt if cfg.prompt_style == "pgrpo" else None,
            "from": trained.source if cfg.prompt_style == "pgrpo" else None,
        },
        "token_count": {role: c.method for role, c in backends.counters.items()},
        "cache": {
            role: {"hits": getattr(g, "hits", None), "misses": getattr(g, "misses", None)}
            for role, g in (("generator", backends.generator), ("critic", backends.critic))
        },
        "methods": summaries,
        "seconds": {"load": round(load_s, 2), "models": round(model_s, 2)},
        "config": asdict(cfg),
    }
    write_text(os.path.join(cfg.out, "report.json"), json.dumps(report, indent=2))
    write_text(os.path.join(cfg.out, "report.md"), markdown(report))
    return report


def _ci_text(interval: list | None) -> str:
    return f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""


def markdown(report: dict) -> str:
    cfg = report["config"]
    label = (
        "**ORACLE run: search and selection saw the hidden tests.**"
        if report["oracle"]
        else "Search and selection used the visible tests only; pass@1 is on the hidden tests."
    )
    lines = [
        f"# search on {report['dataset']}",
        "",
        label,
        "",
        f"model `{report['model']}`, critic `{report['critic_model']}`; {report['problems']} problems; "
        f"budget {report['budget_calls']} LLM calls per problem (CoT: 1); ORPS N={cfg['children']}, "
        f"K={cfg['beam']}, T={cfg['rounds']}, temperature {cfg['temperature']}, ranking {cfg['ranking']}; "
        f"{'stop at the first visible pass' if cfg.get('stop_on_pass') else 'no stop at a visible pass'}; "
        f"tokens: {report['token_count']['generator']}; prompt style {report['prompt']['style']} ("
        + ", ".join(
            f"{role}: {'chat' if c else 'plain text'}" for role, c in report["prompt"]["chat"].items()
        )
        + f"), up to {report['max_tokens']} new tokens per solution",
        "",
        "| method | pass@1 (hidden) [95% CI] | solved visible [95% CI] | LLM calls (per problem) "
        "| tokens (per problem) "
        "| executions (per problem) | critic failures | efficiency (× ref, n) | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in report["methods"]:
        eff, per = m["efficiency"], m["per_problem"]
        eff_text = (
            f"{eff['mean_ratio']:.2f} ({eff['problems']})" if eff["mean_ratio"] is not None else "– (0)"
        )
        ci = m.get("intervals") or {}
        hidden_ci = _ci_text(ci.get("pass@1_ci95"))
        visible_ci = _ci_text(ci.get("visible_solved_ci95"))
        lines.append(
            f"| {m['method']} | {m['pass@1']:.3f} ({m['solved']}/{m['problems']}){hidden_ci} "
            f"| {m['visible_solved']}{visible_ci} "
            f"| {m['llm_calls']} ({per['llm_calls']:.1f}) | {m['tokens']} ({per['tokens']:.0f}) "
            f"| {m['executions']} ({per['executions']:.1f}) | {m['critic_failures']} | {eff_text} "
            f"| {m['seconds']['search']:.0f} |"
        )
    terms = sorted({t for m in report["methods"] for key in m["omega_dynamic_terms"] for t in key.split(",")})
    lines += [
        "",
        "LLM calls, tokens and executions: totals over all problems, means per problem in brackets "
        "(search only; scoring on hidden tests is not counted). Efficiency: mean of candidate/reference "
        "runtime on hidden tests over solved problems, capped at 10×. Seconds: wall time of the search, "
        "generation included (cached completions cost nothing).",
        f"ω dynamic terms used: {', '.join(terms) or 'none'} (terms the executor does not measure here are left out).",
        f"ORPS: {report['orps']['rounds']}; default budget {report['orps']['budget_formula']}; "
        f"{report['orps']['retired']}. Beam ranking: {report['orps']['ranking']}. "
        f"Final selection: {report['orps']['selection']}.",
    ]
    seen = report["visible_tests"]
    lines.append(
        f"Visible tests: {seen['kept']} kept; {seen['dropped_hidden_repeats']} dropped because they are "
        f"also hidden tests (in {seen['problems_with_repeats']} problems). "
        f"{seen['problems_without_visible_tests']} problems have no visible test left "
        f"({seen['without_from_the_start']} had none to begin with): they are searched without test "
        "feedback and their answer is chosen by whether it compiles, then ρ."
    )
    if seen["problems_without_visible_tests"]:
        lines.append(
            "Pass@1 on them: "
            + ", ".join(
                f"{m['method']} {m['no_visible_tests']['solved']}/{m['no_visible_tests']['problems']}"
                for m in report["methods"]
            )
            + "."
        )
    return "\n".join(lines) + "\n"
