"""The package's one logger, and the console policy: quiet by default, everything with `--verbose`.

`logger` (the `pgrpo` logger) writes `pgrpo: message` lines to stderr. `setup(verbose)` is called once
by the `pgrpo` command: without `--verbose` the libraries under us (transformers, TRL, datasets,
accelerate) say only errors, their FutureWarnings and weight-loading tables are off, and long work shows
progress bars; with it, their logs and our per-step metric dicts come back.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

logger = logging.getLogger("pgrpo")

_state = {"verbose": False}


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever `sys.stderr` is when a line is written (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def progress(total: int | None = None, desc: str = "", unit: str = "it", **options):
    """The package's progress bar (tqdm on stderr): redrawn twice a second on a terminal, and at most
    every 30 s when stderr is a file or a pipe, so a log stays short and still shows progress."""
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    options.setdefault("mininterval", 0.5 if tty else 30.0)
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, **options)


def verbose() -> bool:
    return _state["verbose"]


def setup(verbose: bool = False) -> None:
    _state["verbose"] = verbose
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("pgrpo: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DATASETS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for module in ("transformers", "trl", "datasets", "accelerate", "peft", "torch"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        logging.getLogger(module).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    if "transformers" in sys.modules:  # already imported: its own setting, not the environment's
        import transformers

        transformers.logging.set_verbosity_error()


__all__ = ["logger", "progress", "setup", "verbose"]
