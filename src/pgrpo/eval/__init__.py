"""Evaluation: pass@k on code benchmarks and accuracy on math sets (`pgrpo eval`).

Names are imported on first use, so building the command line (which reads `EvalConfig`) does not
import numpy."""

import importlib

_WHERE = {
    "EvalConfig": "pgrpo.eval.run",
    "run_eval": "pgrpo.eval.run",
    "pass_at_k": "pgrpo.eval.passk",
    "mean_pass_at_k": "pgrpo.eval.passk",
    "bootstrap_interval": "pgrpo.eval.passk",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'pgrpo.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = ["EvalConfig", "run_eval", "pass_at_k", "mean_pass_at_k", "bootstrap_interval"]
