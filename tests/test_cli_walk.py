"""A careful user's walk through every subcommand, off the happy path.

Each subcommand meets (a) a missing input file, (b) a malformed input file (not JSON, or a wrong field),
(c) an out-of-range number and (d) an output it cannot write (a path under a regular file, or an existing
directory where a file is expected: we run as root, so permission bits would not stop a write). Each
must exit 2 with exactly one line on stderr naming the culprit (the flag, the file or the key), and no
traceback. Where a case does not apply, the table says why, and the parser is checked to agree (a
command said to take no number must have no numeric flag). The table is checked against the real
parser, so a new subcommand cannot be left out. The errors must come before any model loads: the
model directories here are fakes that no loader can read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgrpo.cli import build_parser, main

FIXTURES = Path(__file__).parent / "fixtures"
CASES = ("missing", "malformed", "range", "unwritable")
PROGRESS_BAR = re.compile(r"^[\w ./-]*: +\d+%\|")  # `executing:  25%|██▌  | 1/4 [...]`


@dataclass(frozen=True)
class Cell:
    """One run: its argv and the words any of which the one line must contain to name the culprit."""

    argv: list[str]
    culprits: tuple[str, ...]


@dataclass(frozen=True)
class NotApplicable:
    """Why a case does not apply; `kind` is checked against the parser ('input', 'number', 'output')."""

    kind: str
    why: str


class Paths:
    """The files of the walk, made once: good inputs (so that only the culprit is wrong) and bad ones."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.native = self._write("native.jsonl", (FIXTURES / "native_small.jsonl").read_text())
        self.mbpp_file = self._write("mbpp.jsonl", (FIXTURES / "mbpp_small.jsonl").read_text())
        self.mbpp = f"mbpp:{self.mbpp_file}"  # copies: some cells name an input as the output too
        self.missing = str(root / "missing.jsonl")
        self.missing_dir = str(root / "missing_dir")
        self.not_json = self._write("not_json.jsonl", "this is not JSON\n")
        self.regular = self._write("a_file", "a regular file, not a directory\n")
        self.under_file = str(Path(self.regular) / "out")  # a path whose parent is a regular file
        self.a_dir = str(root / "a_dir")
        os.makedirs(self.a_dir)
        rows = [json.loads(line) for line in open(self.native)]
        self.samples = self._jsonl("samples.jsonl", [{"id": r["id"], "solution": "pass"} for r in rows])
        self.samples_bad_field = self._jsonl("samples_bad.jsonl", [{"id": rows[0]["id"], "soluton": "pass"}])
        self.pairs = str(root / "pairs.jsonl")
        assert main(["rm", "pairs", "--synthetic", "--problems", self.mbpp, "--out", self.pairs]) == 0
        self.pairs_bad_field = self._jsonl("pairs_bad.jsonl", [{"id": "p", "problem": "x", "chosen": "y"}])
        # fake model directories: they look like models, and no loader can read them
        self.model = self._dir("model", {"config.json": '{"model_type": "llama"}', "pgrpo_rm.json": "{}"})
        self.model_bad = self._dir("model_bad", {"config.json": "{not json", "pgrpo_rm.json": "{not json"})
        self.orps = self._orps("orps", json.dumps)
        self.orps_bad = self._orps("orps_bad", lambda row: "not JSON")
        self.toml_bad = self._write("bad.toml", "this is [not TOML\n")
        self.ablation_bad = self._dir("ablation_bad", {"config.json": "{not json"})  # an earlier --out
        train_out = str(root / "outputs" / "train")
        self.toml_bad_type = self._toml("bad_type.toml", train_out, 'max_steps = "four"')
        self.toml = self._toml("good.toml", train_out)
        self.toml_under_file = self._toml("out_under_file.toml", self.under_file)

    def _write(self, name: str, text: str) -> str:
        path = self.root / name
        path.write_text(text)
        return str(path)

    def _toml(self, name: str, out: str, grpo: str = "") -> str:
        """A train config that is right but for `out` (output.dir) and `grpo` (a line of [grpo])."""
        return self._write(
            name,
            f'[data]\ndataset = ["{self.native}"]\n[reward]\nvariant = "outcome"\n'
            f"[grpo]\nper_device_train_batch_size = 2\nnum_generations = 2\nsteps_per_generation = 1\n{grpo}\n"
            f'[output]\ndir = "{out}"\nreport_to = []\n',
        )

    def _jsonl(self, name: str, rows: list[dict]) -> str:
        return self._write(name, "".join(json.dumps(r) + "\n" for r in rows))

    def _dir(self, name: str, files: dict[str, str]) -> str:
        folder = self.root / name
        folder.mkdir()
        for file, text in files.items():
            (folder / file).write_text(text)
        return str(folder)

    def _orps(self, name: str, line) -> str:
        rows = [
            {
                "task_id": f"toy/{i}",
                "instruction": "Write add(a, b).",
                "completion": "def add(a, b):\n    return a + b\n",
                "test_setup": "",
            }
            for i in range(2)
        ]
        dev = [{**r, "test_list": ["assert add(1, 2) == 3"]} for r in rows]
        test = [{**r, "test_list": ["assert add(2, 2) == 4"]} for r in rows]
        return self._dir(
            name,
            {
                f: "".join(line(r) + "\n" for r in data)
                for f, data in (("dev.jsonl", dev), ("test.jsonl", test))
            },
        )


def table(p: Paths) -> dict[str, dict[str, Cell | list[Cell] | NotApplicable]]:
    """command -> case -> the run (or runs), or why the case does not apply."""
    out = p.root / "outputs"
    return {
        "check": {
            "missing": Cell(["check", "--problems", p.missing, "--references"], (p.missing, "--problems")),
            "malformed": [
                Cell(["check", "--problems", p.native, "--samples", p.not_json], (p.not_json, "--samples")),
                Cell(["check", "--problems", p.not_json, "--references"], (p.not_json, "--problems")),
                Cell(
                    ["check", "--problems", p.native, "--samples", p.samples_bad_field],
                    (p.samples_bad_field, "--samples"),
                ),
            ],
            "range": [
                Cell(
                    ["check", "--problems", p.native, "--samples", p.samples, "--workers", "0"],
                    ("--workers",),
                ),
                Cell(
                    ["check", "--problems", p.native, "--samples", p.samples, "--timeout", "-1"],
                    ("--timeout",),
                ),
            ],
            "unwritable": [
                Cell(
                    ["check", "--problems", p.native, "--samples", p.samples, "--out", p.under_file],
                    ("--out",),
                ),
                Cell(["check", "--problems", p.native, "--samples", p.samples, "--out", p.a_dir], ("--out",)),
                Cell(  # the output is the input: writing it would destroy the samples
                    ["check", "--problems", p.native, "--samples", p.samples, "--out", p.samples],
                    ("--out", "--samples"),
                ),
            ],
        },
        "eval": {
            "missing": Cell(
                ["eval", "--dataset", p.missing, "--samples", p.samples, "--out", str(out / "eval_a")],
                (p.missing, "--dataset"),
            ),
            "malformed": [
                Cell(
                    ["eval", "--dataset", p.native, "--samples", p.not_json, "--out", str(out / "eval_b")],
                    (p.not_json, "--samples"),
                ),
                Cell(
                    [
                        "eval",
                        "--dataset",
                        p.native,
                        "--samples",
                        p.samples_bad_field,
                        "--out",
                        str(out / "e"),
                    ],
                    (p.samples_bad_field, "--samples"),
                ),
                # a model directory with a config.json and nothing else: no weights, no tokenizer
                Cell(
                    ["eval", "--dataset", p.native, "--model", p.model, "--out", str(out / "e_m")],
                    (p.model, "--model"),
                ),
            ],
            "range": [
                Cell(
                    [
                        "eval",
                        "--dataset",
                        p.native,
                        "--samples",
                        p.samples,
                        "--out",
                        str(out / "e"),
                        "--n",
                        "0",
                    ],
                    ("--n",),
                ),
                Cell(
                    [
                        "eval",
                        "--dataset",
                        p.native,
                        "--model",
                        p.model,
                        "--out",
                        str(out / "e"),
                        "--top-p",
                        "1.5",
                    ],
                    ("--top-p",),
                ),
            ],
            "unwritable": [
                Cell(
                    ["eval", "--dataset", p.native, "--samples", p.samples, "--out", p.under_file], ("--out",)
                ),
                Cell(["eval", "--dataset", p.native, "--samples", p.samples, "--out", p.regular], ("--out",)),
            ],
        },
        "serve": {
            "missing": Cell(["serve", "--model", p.missing_dir], (p.missing_dir, "--model")),
            "malformed": Cell(["serve", "--model", p.model_bad], (p.model_bad, "--model")),
            "range": Cell(["serve", "--model", p.model, "--port", "70000"], ("--port",)),
            "unwritable": NotApplicable("output", "serves over HTTP, writes no file"),
        },
        "rm pairs": {
            "missing": Cell(
                ["rm", "pairs", "--synthetic", "--problems", p.missing, "--out", str(out / "rp.jsonl")],
                (p.missing, "--problems"),
            ),
            "malformed": Cell(
                ["rm", "pairs", "--synthetic", "--problems", p.not_json, "--out", str(out / "rp.jsonl")],
                (p.not_json, "--problems"),
            ),
            "range": Cell(
                [
                    "rm",
                    "pairs",
                    "--synthetic",
                    "--problems",
                    p.mbpp,
                    "--out",
                    str(out / "rp.jsonl"),
                    "--limit",
                    "0",
                ],
                ("--limit",),
            ),
            "unwritable": [
                Cell(["rm", "pairs", "--synthetic", "--problems", p.mbpp, "--out", p.under_file], ("--out",)),
                Cell(["rm", "pairs", "--synthetic", "--problems", p.mbpp, "--out", p.a_dir], ("--out",)),
                Cell(
                    ["rm", "pairs", "--synthetic", "--problems", p.mbpp, "--out", p.mbpp_file],
                    ("--out", "--problems"),
                ),
            ],
        },
        "rm build-bench": {
            "missing": Cell(
                [
                    "rm",
                    "build-bench",
                    "--problems",
                    p.missing,
                    "--model",
                    p.model,
                    "--out",
                    str(out / "bb.jsonl"),
                ],
                (p.missing, "--problems"),
            ),
            "malformed": [
                Cell(
                    [
                        "rm",
                        "build-bench",
                        "--problems",
                        p.not_json,
                        "--model",
                        p.model,
                        "--out",
                        str(out / "bb.jsonl"),
                    ],
                    (p.not_json, "--problems"),
                ),
                # a model directory with a config.json and nothing else: no weights, no tokenizer
                Cell(
                    [
                        "rm",
                        "build-bench",
                        "--problems",
                        p.native,
                        "--model",
                        p.model,
                        "--out",
                        str(out / "bb_m.jsonl"),
                    ],
                    (p.model, "--model"),
                ),
            ],
            "range": [
                Cell(
                    [
                        "rm",
                        "build-bench",
                        "--problems",
                        p.native,
                        "--model",
                        p.model,
                        "--out",
                        str(out / "bb.jsonl"),
                    ]
                    + ["--samples", "0"],
                    ("--samples",),
                ),
                Cell(
                    [
                        "rm",
                        "build-bench",
                        "--problems",
                        p.native,
                        "--model",
                        p.model,
                        "--out",
                        str(out / "bb.jsonl"),
                    ]
                    + ["--temperature", "-1"],
                    ("--temperature",),
                ),
            ],
            "unwritable": Cell(
                ["rm", "build-bench", "--problems", p.native, "--model", p.model, "--out", p.under_file],
                ("--out",),
            ),
        },
        "rm split": {
            "missing": Cell(
                [
                    "rm",
                    "split",
                    "--pairs",
                    p.missing,
                    "--train",
                    str(out / "tr.jsonl"),
                    "--test",
                    str(out / "te.jsonl"),
                ],
                (p.missing, "--pairs"),
            ),
            "malformed": [
                Cell(
                    ["rm", "split", "--pairs", p.not_json, "--train", str(out / "tr.jsonl")]
                    + ["--test", str(out / "te.jsonl")],
                    (p.not_json, "--pairs"),
                ),
                Cell(
                    ["rm", "split", "--pairs", p.pairs_bad_field, "--train", str(out / "tr.jsonl")]
                    + ["--test", str(out / "te.jsonl")],
                    (p.pairs_bad_field, "--pairs"),
                ),
            ],
            "range": Cell(
                [
                    "rm",
                    "split",
                    "--pairs",
                    p.pairs,
                    "--train",
                    str(out / "tr.jsonl"),
                    "--test",
                    str(out / "te.jsonl"),
                ]
                + ["--test-fraction", "1.5"],
                ("--test-fraction",),
            ),
            "unwritable": [
                Cell(
                    [
                        "rm",
                        "split",
                        "--pairs",
                        p.pairs,
                        "--train",
                        p.under_file,
                        "--test",
                        str(out / "te.jsonl"),
                    ],
                    ("--train",),
                ),
                Cell(
                    ["rm", "split", "--pairs", p.pairs, "--train", p.pairs, "--test", str(out / "te.jsonl")],
                    ("--train",),
                ),
            ],
        },
        "rm train": {
            "missing": [
                Cell(
                    ["rm", "train", "--pairs", p.missing, "--backbone", p.model, "--out", str(out / "rm")],
                    (p.missing, "--pairs"),
                ),
                Cell(
                    [
                        "rm",
                        "train",
                        "--pairs",
                        p.pairs,
                        "--backbone",
                        p.missing_dir,
                        "--out",
                        str(out / "rm"),
                    ],
                    (p.missing_dir, "--backbone"),
                ),
            ],
            "malformed": [
                Cell(
                    ["rm", "train", "--pairs", p.not_json, "--backbone", p.model, "--out", str(out / "rm")],
                    (p.not_json, "--pairs"),
                ),
                Cell(
                    [
                        "rm",
                        "train",
                        "--pairs",
                        p.pairs_bad_field,
                        "--backbone",
                        p.model,
                        "--out",
                        str(out / "rm"),
                    ],
                    (p.pairs_bad_field, "--pairs"),
                ),
                # a model directory with a config.json and nothing else: no weights, no tokenizer
                Cell(
                    ["rm", "train", "--pairs", p.pairs, "--backbone", p.model, "--out", str(out / "rm_m")],
                    (p.model, "--backbone"),
                ),
            ],
            "range": [
                Cell(
                    ["rm", "train", "--pairs", p.pairs, "--backbone", p.model, "--out", str(out / "rm")]
                    + ["--epochs", "0"],
                    ("--epochs",),
                ),
                Cell(
                    ["rm", "train", "--pairs", p.pairs, "--backbone", p.model, "--out", str(out / "rm")]
                    + ["--learning-rate", "-1"],
                    ("--learning-rate",),
                ),
            ],
            "unwritable": Cell(
                ["rm", "train", "--pairs", p.pairs, "--backbone", p.model, "--out", p.under_file], ("--out",)
            ),
        },
        "rm bench": {
            "missing": Cell(
                ["rm", "bench", "--pairs", p.missing, "--model", p.model], (p.missing, "--pairs")
            ),
            "malformed": Cell(
                ["rm", "bench", "--pairs", p.not_json, "--model", p.model], (p.not_json, "--pairs")
            ),
            "range": NotApplicable("number", "takes no number"),
            "unwritable": Cell(
                ["rm", "bench", "--pairs", p.pairs, "--model", p.model, "--out", p.under_file], ("--out",)
            ),
        },
        "rm serve": {
            "missing": Cell(["rm", "serve", "--model", p.missing_dir], (p.missing_dir, "--model")),
            "malformed": Cell(
                ["rm", "serve", "--model", p.model_bad], (p.model_bad, "pgrpo_rm.json", "--model")
            ),
            "range": Cell(["rm", "serve", "--model", p.model, "--port", "70000"], ("--port",)),
            "unwritable": NotApplicable("output", "serves over HTTP, writes no file"),
        },
        "train": {
            "missing": Cell(["train", "--config", p.missing], (p.missing, "--config")),
            "malformed": [
                Cell(["train", "--config", p.toml_bad], (p.toml_bad,)),
                Cell(["train", "--config", p.toml_bad_type], ("max_steps",)),
            ],
            "range": Cell(["train", "--config", p.toml, "grpo.num_generations=0"], ("num_generations",)),
            "unwritable": Cell(["train", "--config", p.toml_under_file], ("output.dir", p.under_file)),
        },
        "demo": {
            "missing": NotApplicable("input", "reads no file: its problems and models are built in"),
            "malformed": NotApplicable("input", "reads no file: its problems and models are built in"),
            "range": Cell(["demo", "--out", str(out / "demo"), "--steps", "-3"], ("--steps",)),
            "unwritable": Cell(["demo", "--out", p.regular], ("--out",)),
        },
        "search": {
            "missing": [
                Cell(
                    [
                        "search",
                        "--dataset",
                        f"lbpp:{p.missing_dir}",
                        "--model",
                        p.model,
                        "--out",
                        str(out / "s"),
                    ],
                    (p.missing_dir, "--dataset"),
                ),
                Cell(
                    ["search", "--dataset", f"mbpp:{p.orps}", "--model", p.model, "--out", str(out / "s_c")]
                    + ["--critic-model", p.missing_dir],
                    (p.missing_dir, "--critic-model"),
                ),
            ],
            "malformed": [
                Cell(
                    [
                        "search",
                        "--dataset",
                        f"mbpp:{p.orps_bad}",
                        "--model",
                        p.model,
                        "--out",
                        str(out / "s"),
                    ],
                    (p.orps_bad, "--dataset"),
                ),
                # a model directory with a config.json and nothing else: no weights, no tokenizer
                Cell(
                    ["search", "--dataset", f"mbpp:{p.orps}", "--model", p.model, "--out", str(out / "s_m")],
                    (p.model, "--model"),
                ),
            ],
            "range": Cell(
                [
                    "search",
                    "--dataset",
                    f"mbpp:{p.orps}",
                    "--model",
                    p.model,
                    "--out",
                    str(out / "s"),
                    "--children",
                    "0",
                ],
                ("--children",),
            ),
            "unwritable": [
                Cell(
                    ["search", "--dataset", f"mbpp:{p.orps}", "--model", p.model, "--out", p.under_file],
                    ("--out",),
                ),
                Cell(
                    ["search", "--dataset", f"mbpp:{p.orps}", "--model", p.model, "--out", p.regular],
                    ("--out",),
                ),
            ],
        },
        "problems export": {
            "missing": Cell(["problems", "export", p.missing, "--out", str(out / "x.jsonl")], (p.missing,)),
            "malformed": Cell(
                ["problems", "export", p.not_json, "--out", str(out / "x.jsonl")], (p.not_json,)
            ),
            "range": NotApplicable("number", "takes no number"),
            "unwritable": [
                Cell(["problems", "export", p.native, "--out", p.under_file], ("--out",)),
                Cell(["problems", "export", p.native, "--out", p.a_dir], ("--out",)),
                Cell(["problems", "export", p.mbpp, "--out", p.mbpp_file], ("--out",)),
            ],
        },
        "ablate": {
            "missing": NotApplicable("input", "reads no file but an earlier ablation's config.json in --out"),
            "malformed": Cell(["ablate", "--out", p.ablation_bad], (p.ablation_bad, "config.json")),
            "range": [
                Cell(["ablate", "--out", str(out / "ablate"), "--steps", "0"], ("--steps",)),
                Cell(["ablate", "--out", str(out / "ablate"), "--seeds", "1,x"], ("--seeds",)),
            ],
            "unwritable": [
                Cell(["ablate", "--out", p.regular], ("--out",)),
                Cell(["ablate", "--out", p.under_file], ("--out",)),
            ],
        },
        "sandbox info": {
            case: NotApplicable("anything", "takes no input, number or output") for case in CASES
        },
    }


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every leaf subcommand of the real parser, by its name after `pgrpo`."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found |= subcommands(child) or {child.prog.removeprefix("pgrpo "): child}
    return found


def _numeric(action: argparse.Action) -> bool:
    """int, float, a `Range`'s parse, or a function of seconds."""
    from pgrpo.options import Range

    kind = action.type
    return (
        kind in (int, float)
        or isinstance(getattr(kind, "__self__", None), Range)
        or "second" in getattr(kind, "__name__", "")
    )


def _rejects_what_it_should_not_take(parser: argparse.ArgumentParser, na: NotApplicable) -> str | None:
    """None if the parser agrees the case does not apply, else what contradicts the table."""
    flags = [a for a in parser._actions if a.option_strings and a.dest not in ("help", "verbose")]
    if na.kind == "number":
        numeric = [a.option_strings[0] for a in flags if _numeric(a)]
        return f"the table says it takes no number, but it has {numeric}" if numeric else None
    if na.kind == "anything":
        given = [a.option_strings[0] for a in flags] + [
            a.dest for a in parser._actions if not a.option_strings
        ]
        return f"the table says it takes nothing, but it has {given}" if given else None
    return None  # inputs and outputs are not typed in the parser: the table's word is taken


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> Paths:
    return Paths(tmp_path_factory.mktemp("walk"))


class _Hung(BaseException):
    """Raised in a command that runs past its time: the error did not come before the work."""


def run_in_process(argv: list[str], capsys, seconds: float = 15) -> tuple[object, str]:
    """(exit code, or 'escaped: ...' for an exception out of main; stderr)."""

    def hung(signum, frame):
        raise _Hung(f"still running after {seconds:g} s")

    capsys.readouterr()
    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        code: object = main(list(argv))
    except SystemExit as e:
        code = e.code
    except BaseException as e:  # a traceback the user would see (or a hang)
        code = f"escaped: {type(e).__name__}: {e} at {traceback.extract_tb(e.__traceback__)[-1].filename}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return code, capsys.readouterr().err


def named_paths(run: Cell, case: str) -> tuple[str, ...]:
    """A file's path names the culprit as well as its flag does (not so for a number)."""
    if case == "range":
        return ()
    return tuple(v for a, v in zip(run.argv, run.argv[1:]) if a in run.culprits and a.startswith("--"))


def verdict(code: object, err: str, culprits: tuple[str, ...]) -> str | None:
    """None if the run is what a user should get, else what went wrong, in one line."""
    lines = [line for line in err.splitlines() if line.strip()]
    problems = []
    if code != 2:
        problems.append(f"exit {code}")
    if "Traceback" in err:
        problems.append("a traceback")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr")
    if not any(c in err for c in culprits):
        problems.append(f"the message names none of {culprits}")
    if not problems:
        return None
    shown = lines[-1][:300] if lines else ""
    return f"{', '.join(problems)}; stderr ends: {shown!r}"


def test_the_table_covers_every_subcommand(paths):
    parsers = subcommands(build_parser())
    assert set(table(paths)) == set(parsers), "add the new subcommand's cells to the walk's table"
    for command, cells in table(paths).items():
        assert set(cells) == set(CASES), command
        for case, cell in cells.items():
            if isinstance(cell, NotApplicable):
                assert _rejects_what_it_should_not_take(parsers[command], cell) is None, (command, case)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", sorted(subcommands(build_parser())))
def test_walk(paths, capsys, command, case):
    cell = table(paths)[command][case]
    if isinstance(cell, NotApplicable):
        pytest.skip(f"{command}: {case} does not apply ({cell.why})")
    failures = []
    for run in cell if isinstance(cell, list) else [cell]:
        code, err = run_in_process(run.argv, capsys)
        problem = verdict(code, err, run.culprits + named_paths(run, case))
        if problem:
            failures.append(f"pgrpo {' '.join(run.argv)}\n    -> {problem}")
    assert not failures, "\n".join(failures)


def test_version(capsys):
    from pgrpo import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"pgrpo {__version__}"


def test_version_from_the_real_entry_point():
    from pgrpo import __version__

    done = subprocess.run(_entry_point() + ["--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"pgrpo {__version__}", done


def _entry_point() -> list[str]:
    script = Path(sys.executable).parent / "pgrpo"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pgrpo.cli"]


@pytest.mark.parametrize(
    "command, case",
    [("check", "missing"), ("rm split", "range"), ("train", "malformed"), ("search", "unwritable")],
)
def test_the_real_entry_point_prints_no_traceback(paths, command, case):
    cell = table(paths)[command][case]
    run = cell[0] if isinstance(cell, list) else cell
    done = subprocess.run(
        _entry_point() + run.argv,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert verdict(done.returncode, done.stderr, run.culprits) is None, done.stderr


def _descendants(pid: int) -> dict[int, str]:
    """pid -> name of every process below `pid`, from /proc."""
    parents, names = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            parents[int(entry)], names[int(entry)] = int(rest[1]), name
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = names[child]
                frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    """Running, or a process that is not yet a zombie (a zombie holds nothing; init reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("moment", ["workers starting", "programs running"])
def test_ctrl_c_during_check_is_one_line_and_leaves_no_sandbox_process(tmp_path, moment):
    """Ctrl-C reaches the whole foreground process group: the sandbox workers and fork servers must
    not print tracebacks of their own (a worker still importing has not yet set SIGINT aside); pgrpo
    says one line, keeps the rows judged so far in OUT.partial, exits 130 at once (not after the
    runs' time limit), and stops every process it started."""
    problem = {"prompt": "loop", "entry_point": "f", "tests": [{"type": "assert", "code": "assert f()"}]}
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"p{i}", **problem}) + "\n" for i in range(4)))
    samples = tmp_path / "samples.jsonl"
    endless = "def f():\n    while True:\n        pass\n"
    samples.write_text("".join(json.dumps({"id": f"p{i}", "solution": endless}) + "\n" for i in range(4)))
    out = tmp_path / "results.jsonl"
    argv = ["check", "--problems", str(problems), "--samples", str(samples), "--out", str(out)]
    proc = subprocess.Popen(
        _entry_point() + argv + ["--workers", "2", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a shell gives a foreground job
    )
    try:
        seen: dict[int, str] = {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            seen |= _descendants(proc.pid)
            if moment == "workers starting" and seen:
                break
            if moment == "programs running" and sum(n == "pgrpo-zygote" for n in seen.values()) >= 2:
                time.sleep(1.0)  # both fork servers are up: their first programs are running
                seen |= _descendants(proc.pid)
                break
            time.sleep(0.02)
        assert seen, "no worker process started"
        os.killpg(proc.pid, signal.SIGINT)
        interrupted = time.monotonic()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failed check must not leave it running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert time.monotonic() - interrupted < 8, "Ctrl-C waited for the runs in progress"
    assert proc.returncode == 130, err
    said = [line for line in err.splitlines() if line.strip() and not PROGRESS_BAR.search(line)]
    assert "Traceback" not in err and len(said) == 1, err  # besides the progress bar: one line
    assert said[0].startswith("pgrpo: interrupted") and f"{out}.partial" in said[0], err
    assert not out.exists() and Path(f"{out}.partial").exists()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [f"{pid} {name}" for pid, name in seen.items() if _alive(pid)]
