"""The verl adapter as verl calls it (verl itself is not needed): per response and per batch, the
problem in ground_truth, the reward model over real HTTP, and what an infrastructure failure returns."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from pgrpo.rm.http import serve_scorer
from pgrpo.train import verl_reward
from pgrpo.train.verl_reward import RewardUnavailable, compute_score, compute_score_batch
from pgrpo.types import ExecResult, Verdict

ADD = {
    "id": "demo/add",
    "prompt": "Write add(a, b) that returns the sum.",
    "entry_point": "add",
    "tests": [
        {"type": "assert", "code": "assert add(1, 2) == 3"},
        {"type": "call", "args": [2, 3], "expected": 5},
    ],
}
GT = json.dumps(ADD)
MATH = json.dumps({"id": "m/1", "prompt": "What is 1 + 1?", "tests": [{"type": "answer", "expected": "2"}]})
KEYS = {"score", "format", "outcome", "thinking", "thinking_called", "passed", "masked"}


def answer(body: str, thinking: str = "Add the two numbers.") -> str:
    return f"<think>{thinking}</think>\n<answer>\n```python\ndef add(a, b):\n    {body}\n```\n</answer>"


PASS, FAIL = answer("return a + b"), answer("return a - b")


class LengthScorer:
    """Raw score = len(reasoning) - 20 (so 'Add the two numbers.' scores 0, sigmoid 0.5)."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def score(self, problems, reasonings):
        self.calls.append(list(reasonings))
        return [len(r) - 20.0 for r in reasonings]


@pytest.fixture
def rm_server():
    scorer = LengthScorer()
    server = serve_scorer(scorer, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", scorer
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("VARIANT", "RM_URL", "ON_FAILURE", "UNIT", "OUTCOME_MODE", "WORKERS"):
        monkeypatch.delenv(f"PGRPO_{name}", raising=False)


class BrokenSandbox:
    def map(self, jobs):
        for _ in jobs:
            yield ExecResult(Verdict.SANDBOX_ERROR, [], message="sandbox worker died 2 times on this job")


def test_outcome_variant_per_response(executor):
    right = compute_score("demo", PASS, GT, None, variant="outcome", executor=executor)
    wrong = compute_score("demo", FAIL + "\ntrailing text", GT, None, variant="outcome", executor=executor)
    assert set(right) == KEYS == set(wrong)
    assert (right["score"], right["passed"], right["format"]) == (2.0, 1.0, 1.0)
    assert (wrong["score"], wrong["passed"], wrong["format"]) == (0.0, 0.0, 0.0)
    assert all(isinstance(v, float) for v in right.values())  # verl averages these metrics


def test_posterior_over_http_with_the_url_from_the_environment(executor, rm_server, monkeypatch):
    url, scorer = rm_server
    monkeypatch.setenv("PGRPO_RM_URL", url)
    right = compute_score("demo", PASS, GT, {"index": 0}, executor=executor)  # posterior by default
    wrong = compute_score("demo", FAIL, GT, {"index": 1}, executor=executor)
    assert right["score"] == pytest.approx(2.5) and right["thinking_called"] == 1.0
    assert (wrong["score"], wrong["thinking_called"]) == (1.0, 0.0)
    assert scorer.calls == [["Add the two numbers."]]  # the gate: the failing response cost no call
    # extra_info overrides the environment, keyword arguments override both
    row = compute_score("demo", PASS, GT, {"variant": "additive"}, executor=executor)
    assert row["score"] == pytest.approx(2.5)
    row = compute_score("demo", FAIL, GT, {"variant": "additive"}, executor=executor, variant="outcome")
    assert row["score"] == 1.0


def test_a_reward_model_that_is_down_raises_or_gives_nan(executor):
    down = "http://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(RewardUnavailable, match="1 scorer_unavailable"):
        compute_score("demo", PASS, GT, None, rm_url=down, rm_max_retries=0, executor=executor)
    row = compute_score(
        "demo", PASS, GT, None, rm_url=down, rm_max_retries=0, on_failure="nan", executor=executor
    )
    assert math.isnan(row["score"]) and row["masked"] == 1.0 and row["outcome"] == 1.0
    # a failing response needs no reward model under the gate: scored normally even with the model down
    row = compute_score("demo", FAIL, GT, None, rm_url=down, rm_max_retries=0, executor=executor)
    assert (row["score"], row["masked"]) == (1.0, 0.0)


def test_a_sandbox_error_is_never_a_zero():
    with pytest.raises(RewardUnavailable, match="1 sandbox_error.*worker died"):
        compute_score("demo", PASS, GT, None, variant="outcome", executor=BrokenSandbox())
    row = compute_score("demo", PASS, GT, None, variant="outcome", on_failure="nan", executor=BrokenSandbox())
    assert math.isnan(row["score"]) and math.isnan(row["outcome"]) and row["masked"] == 1.0


def test_batch_runs_once_and_maps_minmax_within_groups(executor, rm_server):
    url, scorer = rm_server
    other = json.dumps({**ADD, "id": "demo/add2"})
    texts = [answer("return a + b", "x" * n) for n in (20, 22, 24)] + [FAIL, PASS]
    truths = [GT, GT, GT, other, other]
    rows = compute_score_batch(
        ["demo"] * 5, texts, truths, [{}] * 5, rm_url=url, unit="minmax", executor=executor
    )
    assert [r["thinking"] for r in rows] == [0.0, 0.5, 1.0, 0.0, 0.5]  # a lone passing response: 0.5
    assert [r["score"] for r in rows] == [2.0, 2.5, 3.0, 1.0, 2.5]
    assert len(scorer.calls) == 1 and len(scorer.calls[0]) == 4
    with pytest.raises(ValueError, match="compute_score_batch"):
        compute_score("demo", PASS, GT, None, rm_url=url, unit="minmax", executor=executor)


def test_math_problems_and_dict_ground_truth(executor):
    right = compute_score(
        "math", "<think>1+1</think><answer>\\boxed{2}</answer>", MATH, None, variant="outcome"
    )
    assert (right["score"], right["format"]) == (2.0, 1.0)
    # parquet-style: a dict whose absent optional fields are None, numbers as numpy scalars, lists as arrays
    np = pytest.importorskip("numpy")
    row = {
        **ADD,
        "setup": None,
        "reference": None,
        "time_limit_s": np.float64(5),
        "memory_limit_mb": np.int64(512),
    }
    row["tests"] = np.array(ADD["tests"], dtype=object)
    assert compute_score("demo", PASS, row, None, variant="outcome", executor=executor)["score"] == 2.0
    with pytest.raises(TypeError, match="native JSON"):
        compute_score("demo", PASS, 42, None, variant="outcome", executor=executor)
    with pytest.raises(ValueError, match="not JSON"):
        compute_score("demo", PASS, "{oops", None, variant="outcome", executor=executor)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="outcome, additive, posterior"):
        compute_score("demo", PASS, GT, None, variant="gated")
    with pytest.raises(ValueError, match="needs a reward model"):
        compute_score("demo", PASS, GT, None, executor=BrokenSandbox())
    with pytest.raises(ValueError, match="'format_weight' must be a float"):
        compute_score("demo", PASS, GT, None, variant="outcome", format_weight="heavy")


def test_loaded_by_path_as_verl_does_with_its_own_executor_from_threads(monkeypatch):
    """verl 0.9's load_module executes the file under a made-up name and does not put it in sys.modules
    (a dataclass under `from __future__ import annotations` then fails); its reward loop calls the
    function from a thread pool. tests/test_verl_engine.py does this through verl itself."""
    spec = importlib.util.spec_from_file_location("custom_module_1234", verl_reward.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "custom_module_1234" not in sys.modules
    monkeypatch.setenv("PGRPO_VARIANT", "outcome")
    try:
        with ThreadPoolExecutor(4) as pool:
            texts = [PASS, FAIL] * 4
            rows = list(pool.map(lambda t: module.compute_score("demo", t, GT, None, workers=1), texts))
        assert [r["score"] for r in rows] == [2.0, 1.0] * 4
        assert len(module._executors) == 1  # created once, shared by the threads
        assert module.stats()["executed"] == 8
    finally:
        module.close()
