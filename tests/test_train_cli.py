"""`pgrpo train` and `pgrpo demo` as a careful user meets them: a bad config value, file, model path or
output directory is one line naming the file and key (exit 2, no traceback) before any model is loaded;
Ctrl-C says what was saved and how to resume. Config-level checks here load no model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pgrpo.cli import main
from pgrpo.train.toy import toy_problems

ROOT = Path(__file__).resolve().parents[1]
GOOD = '[data]\ndataset = "mbpp:x.jsonl"\n[reward]\nvariant = "outcome"\n'


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _one_line_error(code: int, err: str, *names: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pgrpo: error: "), err
    for name in names:
        assert name in lines[0], (name, err)


def _config(tmp_path: Path, extra: str = "", base: str = GOOD) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(base + extra)
    return path


@pytest.mark.parametrize(
    "section, line, key, said",
    [
        ("data", "limit = 0", "data.limit", "integer >= 1"),
        ("data", "limit = -1", "data.limit", "integer >= 1"),
        ("policy", "tiny_layers = 0", "policy.tiny_layers", ">= 1"),
        ("lora", "dropout = 1.5", "lora.dropout", "[0, 1)"),
        ("lora", "r = 2.5", "lora.r", "expected an integer"),
        ("grpo", "num_generations = 0", "grpo.num_generations", ">= 2"),
        ("grpo", "num_generations = 1", "grpo.num_generations", "advantage"),
        ("grpo", "max_steps = 0", "grpo.max_steps", "-1 or an integer >= 1"),
        ("grpo", "learning_rate = 0", "grpo.learning_rate", "> 0"),
        ("grpo", 'learning_rate = "fast"', "grpo.learning_rate", "expected a number"),
        ("grpo", "num_generations = 2.5", "grpo.num_generations", "expected an integer"),
        ("grpo", "epsilon_high = -0.1", "grpo.epsilon_high", ">= 0"),
        ("grpo", "temperature = 0.0", "grpo.temperature", "> 0"),
        ("grpo", "num_train_epochs = 0", "grpo.num_train_epochs", "> 0"),
        ("grpo", 'gradient_checkpointing = "yes"', "grpo.gradient_checkpointing", "true or false"),
        ("grpo", "report_to = 3", "grpo.report_to", "expected"),
    ],
)
def test_out_of_range_or_mistyped_config_values_are_one_line(tmp_path, capsys, section, line, key, said):
    text = (
        GOOD.replace("[data]\n", f"[data]\n{line}\n") if section == "data" else f"{GOOD}[{section}]\n{line}\n"
    )
    path = _config(tmp_path, base=text)
    code, err = _run(capsys, ["train", "--config", str(path)])
    _one_line_error(code, err, "run.toml", key, said)


@pytest.mark.parametrize(
    "extra, key",
    [
        ("executor_workers = 0\n", "reward.executor_workers"),
        ("time_limit_s = -1\n", "reward.time_limit_s"),
        ("weights = { format = 1.0, outcome = nan, thinking = 1.0 }\n", "reward.weights['outcome']"),
    ],
)
def test_reward_values_are_checked(tmp_path, capsys, extra, key):
    path = _config(tmp_path, extra)  # appended to the [reward] section
    code, err = _run(capsys, ["train", "--config", str(path)])
    _one_line_error(code, err, "run.toml", key)


def test_group_minmax_is_refused_across_processes(tmp_path, capsys, monkeypatch):
    """TRL may split a group across processes; min-max over a part of a group is not the group's."""
    path = _config(tmp_path, base=GOOD.replace('"outcome"', '"outcome"\nunit = "minmax"'))
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, err = _run(capsys, ["train", "--config", str(path)])
    _one_line_error(code, err, "run.toml", "reward.unit = minmax", "2 processes", "sigmoid")
    monkeypatch.setenv("WORLD_SIZE", "1")
    from pgrpo.train.config import load_config

    assert load_config(str(path)).reward.unit == "minmax"  # one process: accepted


def test_an_override_out_of_range_names_the_override(tmp_path, capsys):
    code, err = _run(capsys, ["train", "--config", str(_config(tmp_path)), "grpo.beta=-1"])
    _one_line_error(code, err, "override 'grpo.beta=-1'", "grpo.beta")


def test_max_steps_minus_one_means_epochs_and_is_accepted():
    from pgrpo.train.config import load_config

    cfg = load_config(None, ["data.dataset=x", "reward.variant=outcome", "grpo.max_steps=-1"])
    assert cfg.grpo_args()["max_steps"] == -1


def test_shipped_configs_pass_the_checks():
    from pgrpo.train.config import load_config

    for path in sorted((ROOT / "configs").glob("*.toml")):
        load_config(path)


def test_a_config_that_is_a_directory_or_not_text_is_one_line(tmp_path, capsys):
    code, err = _run(capsys, ["train", "--config", str(tmp_path)])
    _one_line_error(code, err, str(tmp_path), "directory")
    binary = tmp_path / "run.toml"
    binary.write_bytes(b"[data]\ndataset = '\xff\xfe'\n")
    code, err = _run(capsys, ["train", "--config", str(binary)])
    _one_line_error(code, err, "run.toml", "UTF-8")
    code, err = _run(capsys, ["train", "--config", str(tmp_path / "missing.toml")])
    _one_line_error(code, err, "missing.toml", "no such config file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_config_is_one_line(tmp_path, capsys):
    path = _config(tmp_path)
    path.chmod(0)
    code, err = _run(capsys, ["train", "--config", str(path)])
    _one_line_error(code, err, "run.toml", "cannot read")


def test_a_missing_policy_model_is_one_line_before_anything_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = _config(tmp_path, f'[policy]\nmodel = "{tmp_path}/no-such-model"\n')
    code, err = _run(capsys, ["train", "--config", str(path)])
    _one_line_error(code, err, "run.toml", "policy.model", "no such path")
    path = _config(tmp_path, '[policy]\nmodel = "./no-such-model"\n')
    code, err = _run(capsys, ["train", "--config", str(path)])
    _one_line_error(code, err, "run.toml", "policy.model", "no such path")
    path = _config(tmp_path, '[policy]\nmodel = "nobody/not-a-cached-model"\n')
    code, err = _run(capsys, ["train", "--config", str(path)])
    _one_line_error(code, err, "run.toml", "policy.model", "not in the local Hugging Face cache")


def _toy_dataset(tmp_path: Path) -> str:
    path = tmp_path / "toy.jsonl"
    train, _ = toy_problems(train=8, test=2, seed=0)
    path.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in train))
    return str(path)


def test_an_output_dir_that_is_a_file_is_refused_before_the_work(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    base = f'[data]\ndataset = ["{_toy_dataset(tmp_path)}"]\n[reward]\nvariant = "outcome"\n'
    path = _config(tmp_path, f'[output]\ndir = "{taken}"\n', base=base)
    code, err = _run(capsys, ["train", "--config", str(path)])
    _one_line_error(code, err, "run.toml", "output.dir", "not a directory")


def test_what_grpo_config_refuses_is_one_line_naming_the_file(tmp_path, capsys):
    """A generation batch of 3 completions cannot hold groups of 2: TRL's own check, named."""
    base = f'[data]\ndataset = ["{_toy_dataset(tmp_path)}"]\n[reward]\nvariant = "outcome"\n'
    grpo = "[grpo]\nnum_generations = 2\nper_device_train_batch_size = 3\nsteps_per_generation = 1\n"
    path = _config(tmp_path, grpo + f'[output]\ndir = "{tmp_path / "out"}"\n', base=base)
    code, err = _run(capsys, ["train", "--config", str(path)])
    _one_line_error(code, err, "run.toml", "[grpo]", "GRPOConfig")


# ----------------------------------------------------------------------------- demo


@pytest.mark.parametrize(
    "flags, said",
    [
        (["--steps", "-3"], "--steps"),
        (["--steps", "0"], "--steps"),
        (["--steps", "many"], "--steps"),
        (["--seed", "1.5"], "--seed"),
        (["--variant", "best"], "--variant"),
    ],
)
def test_demo_flags_out_of_range_are_one_line(capsys, flags, said):
    with pytest.raises(SystemExit) as info:
        main(["demo", *flags])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and said in err, err


def test_demo_out_that_is_a_file_is_refused_before_the_work(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("x")
    code, err = _run(capsys, ["demo", "--out", str(taken), "--steps", "1"])
    _one_line_error(code, err, "--out", str(taken))


def test_demo_config_built_in_python_is_checked_too():
    from pgrpo.options import UsageError
    from pgrpo.train.demo import DemoConfig

    with pytest.raises(UsageError, match="--steps"):
        DemoConfig(grpo_steps=-3)


# ----------------------------------------------------------------------------- curves


def test_curves_have_axis_labels_and_the_run_in_the_title(tmp_path, monkeypatch):
    import matplotlib.figure

    from pgrpo.train.plots import plot_metrics

    rows = [{"step": s, "loss": 0.1, "reward": 0.5 + s / 10, "pgrpo/pass_rate": s / 10} for s in (1, 2, 3)]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen = {}
    save = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        seen["title"] = fig._suptitle.get_text()
        seen["labels"] = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.axison]
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    assert plot_metrics(metrics, tmp_path, title="run-7: P-GRPO, posterior variant")
    assert seen["title"] == "run-7: P-GRPO, posterior variant"
    assert len(seen["labels"]) == 2 and all(x and y for x, y in seen["labels"])


# ----------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_during_training_says_what_was_saved_and_how_to_resume(tmp_path):
    """SIGINT to the whole process group (what Ctrl-C does: the executor's workers get it too) once a
    checkpoint exists: exit 130, no traceback from us, TRL, accelerate or the workers, and the note."""
    out = tmp_path / "run"
    data = [f'data.dataset=["{_toy_dataset(tmp_path)}"]', "data.eval=[]"]
    command = [
        sys.executable,
        "-m",
        "pgrpo.cli",
        "train",
        "--config",
        str(ROOT / "configs" / "tiny-mbpp.toml"),
    ]
    command += data + ["policy.warm_start_steps=0", "grpo.max_steps=200", "grpo.save_steps=1"]
    command += ["grpo.max_completion_length=24", f"output.dir={out}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not (out / "checkpoint-1" / "trainer_state.json").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert "pgrpo: interrupted; the last checkpoint is " + str(out / "checkpoint-") in err
    assert "--resume" in err and "tiny-mbpp.toml" in err
