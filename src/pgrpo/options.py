"""Options defined once, checked once.

A command's settings are one dataclass whose fields are made with `option(...)`: the field carries its
help text, its numeric range and its choices. `add_options(parser, Config)` turns the fields into flags
(`max_tokens` -> `--max-tokens`), `from_args(Config, args)` builds the config back, and
`check_options(config)` (call it from `__post_init__`) applies the same ranges to a config built in
Python. A config file's value is checked with the same `Range.check(value, where)`.

Bad input from a user raises `UsageError` (a `ValueError`); `pgrpo`'s main prints it as one line,
`pgrpo: error: ...`, and exits 2. `Parser` is an `ArgumentParser` whose own errors (an unknown flag, a
value out of range) are one line too, without the usage dump.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn


class UsageError(ValueError):
    """Bad input from the user (a flag, a path, a file's content): one line naming the culprit, exit 2."""


@dataclass(frozen=True)
class Range:
    """A numeric range: [low, high] with either end open or absent; `integer` refuses fractions.
    NaN and infinities are always refused."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        kind, low, high = "an integer" if self.integer else "a number", _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {left}{low}, {high}{right}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {high}"
        return f"a finite {'integer' if self.integer else 'number'}"

    def check(self, value: Any, where: str) -> Any:
        """`value` if it is in range, else UsageError naming `where` (a flag, or `file: section.key`)."""
        ok_type = int if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type):
            raise UsageError(f"{where}: expected {self.describe()}, got {value!r}")
        if not math.isfinite(value):
            raise UsageError(f"{where}: expected {self.describe()}, got {value!r}")
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise UsageError(f"{where}: expected {self.describe()}, got {value!r}")
        return value

    def parse(self, text: str) -> int | float:
        """A flag's text as a number of this range (argparse `type=`)."""
        try:
            value = int(text) if self.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}") from None
        try:
            return self.check(value, "value")
        except UsageError:
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}") from None


def _number(value: float | None) -> str:
    """A bound as written: 4294967295, not 4.29497e+09."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


AT_LEAST_ONE = Range(low=1, integer=True)  # counts: samples, workers, steps, tokens, batch size
NON_NEGATIVE_INT = Range(low=0, integer=True)  # retries, examples shown
ANY_INT = Range(integer=True)
SEED = Range(low=0, high=2**32 - 1, integer=True)  # what numpy's and torch's generators accept
POSITIVE = Range(low=0, low_open=True)  # learning rates, temperatures that must be > 0
NON_NEGATIVE = Range(low=0)  # temperatures (0 = greedy), margins
FRACTION = Range(low=0, high=1)  # shares: test fraction, weights on [0, 1]
PROBABILITY = Range(low=0, high=1, low_open=True)  # top_p
SECONDS = Range(low=0, high=3600, low_open=True)  # per-test time limits (types.MAX_TIME_LIMIT_S)
PORT = Range(low=1, high=65535, integer=True)
FINITE = Range()


def option(
    default: Any = None,
    help: str = "",
    *,
    range: Range | None = None,
    choices: tuple[str, ...] | None = None,
    required: bool = False,
    parse: Any = None,
    repeat: bool = False,
    flag: str | None = None,
) -> Any:
    """A dataclass field that is also a flag. `parse` turns the flag's text into the field's value
    (e.g. "1,10" -> (1, 10)); `repeat` makes a list flag given once per item."""
    metadata = {
        "help": help,
        "range": range,
        "choices": choices,
        "required": required,
        "parse": parse,
        "repeat": repeat,
        "flag": flag,
    }
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _kind(annotation: Any) -> type:
    """`int | None` -> int (configs use postponed annotations, so these are strings)."""
    if not isinstance(annotation, str):
        return annotation
    return _TYPES.get(annotation.split("|")[0].split("[")[0].strip(), str)


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def add_options(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """One flag per `option` field of `cls`, with its range checked at parse time."""
    for f in _fields(cls):
        if f.name in skip:
            continue
        meta, kind = f.metadata, _kind(f.type)
        kw: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
        if kind is bool:
            parser.add_argument(flag_name(f), action="store_true", **kw)
            continue
        if meta["parse"] is not None:
            kw["type"] = meta["parse"]
        elif meta["range"] is not None:
            kw["type"] = meta["range"].parse
        else:
            kw["type"] = kind
        if meta["choices"]:
            kw["choices"] = meta["choices"]
        else:
            kw["metavar"] = flag_name(f).lstrip("-").replace("-", "_").upper()
        if meta["repeat"]:
            kw["action"] = "append"
        if meta["required"]:
            kw["required"] = True
        else:
            kw["default"] = None if meta["repeat"] else f.default
            if f.default not in (None, dataclasses.MISSING) and "default" not in meta["help"]:
                kw["help"] = f"{meta['help']} (default: {f.default})"
        parser.add_argument(flag_name(f), **kw)


def from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """The config `cls` from parsed flags (and `extra` values for fields that are not flags)."""
    values = {f.name: getattr(args, f.name) for f in _fields(cls) if hasattr(args, f.name)}
    values = {k: v for k, v in values.items() if v is not None or k in extra}
    return cls(**values, **extra)


def check_options(config: Any, where: str | None = None) -> None:
    """Apply every field's range and choices to a config however it was built (flags or Python).
    `where` prefixes the message (a config file); by default the flag names the culprit."""
    for f in _fields(type(config)):
        value, meta = getattr(config, f.name), f.metadata
        if value is None:
            if meta["required"]:
                raise UsageError(f"{where or 'pgrpo'}: {flag_name(f)} is required")
            continue
        name = f"{where}: {f.name}" if where else flag_name(f)
        if meta["range"] is not None:
            items = value if isinstance(value, (list, tuple)) else [value]
            for item in items:
                meta["range"].check(item, name)
        if meta["choices"] and value not in meta["choices"]:
            raise UsageError(f"{name}: expected one of {', '.join(meta['choices'])}, got {value!r}")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, `pgrpo CMD: error: ...` (exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


# What a command has kept so far, said when it is interrupted (Ctrl-C): cleared by each run of main.
_kept: list[str] = []


def on_interrupt(note: str) -> None:
    """Say `note` (what is saved and where, how to resume) if this command is interrupted."""
    _kept.append(note)


def interrupt_notes() -> list[str]:
    return list(_kept)


def reset_interrupt_notes() -> None:
    _kept.clear()


def one_line(e: BaseException) -> str:
    """An OS error as `PATH: reason`, anything else as its message (its first line unless --verbose)."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    from pgrpo import log

    lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
    if len(lines) == 1 or log.verbose():
        return "\n".join(lines)
    return f"{lines[0]} (the whole message with --verbose)"


def run_command(prog: str, body: Callable[[], int | None]) -> int:
    """Run an entry point's body as every pgrpo command runs: bad input (ValueError, which
    UsageError is, and OSError) is one line and exit 2; Ctrl-C says what was kept and exits 130."""
    reset_interrupt_notes()
    try:
        return body() or 0
    except KeyboardInterrupt:
        notes = interrupt_notes()
        print(f"{prog}: interrupted" + ("; " + "; ".join(notes) if notes else ""), file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # UsageError, ProblemFormatError, ConfigError; unreadable paths
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 2


__all__ = [
    "ANY_INT",
    "AT_LEAST_ONE",
    "FINITE",
    "FRACTION",
    "NON_NEGATIVE",
    "NON_NEGATIVE_INT",
    "PORT",
    "POSITIVE",
    "PROBABILITY",
    "Parser",
    "Range",
    "SECONDS",
    "SEED",
    "UsageError",
    "add_options",
    "check_options",
    "from_args",
    "on_interrupt",
    "option",
]
