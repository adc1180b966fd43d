"""The nouns of pgrpo: problems and their tests, samples, and what executing a sample produced.

Data flows one way: Problem -> Sample -> ExecResult -> (rewards, pass@k, search scores).
Everything here is plain data with a `to_dict`/`from_dict` pair matching the JSONL formats of
docs/formats.md; nothing here imports anything heavy.
"""

from __future__ import annotations

import enum
import keyword
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Union

DEFAULT_TIME_LIMIT_S = 10.0
DEFAULT_MEMORY_LIMIT_MB = 1024
MAX_TIME_LIMIT_S = 3600.0  # per test; beyond it the sandbox's timers are not meaningful
MAX_MEMORY_LIMIT_MB = 1024 * 1024
MAX_VALUE_DEPTH = 100  # nesting of a call test's JSON values (the channel carries 200 levels)


class Verdict(enum.StrEnum):
    """How one test (or a whole sample) ended. Only `sandbox_error` is ever the executor's fault."""

    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    RUNTIME_ERROR = "runtime_error"
    COMPILE_ERROR = "compile_error"
    MEMORY_EXCEEDED = "memory_exceeded"
    OUTPUT_EXCEEDED = "output_exceeded"
    SANDBOX_ERROR = "sandbox_error"


class ProblemFormatError(ValueError):
    """A problem, test or sample that does not follow the documented format."""


def time_limit(value: Any, where: str) -> float:
    """A time limit in seconds, from a problem file or a flag: a finite positive number up to
    MAX_TIME_LIMIT_S (NaN, infinities, 1e308, booleans and strings are refused, naming `where`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProblemFormatError(f"{where} must be a number of seconds, got {type(value).__name__}")
    if not (math.isfinite(value) and 0 < value <= MAX_TIME_LIMIT_S):
        raise ProblemFormatError(
            f"{where} must be more than 0 and at most {MAX_TIME_LIMIT_S:g} seconds, got {value}"
        )
    return float(value)


def safe_text(text: str) -> str:
    """Text a program produced (messages, output excerpts), safe to write as UTF-8 and JSON: lone
    surrogates (`raise ValueError('\\ud800')`) become visible `\\udxxx` escapes."""
    if type(text) is not str or text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _depth(value: Any, limit: int) -> bool:
    """Whether a JSON value nests no deeper than `limit` (iteratively: no recursion to exhaust)."""
    stack = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            return False
        if isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
        elif isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
    return True


def _check_code(text: str, what: str, where: str) -> None:
    """Test code the trusted side will run must compile: a problem whose test does not parse is
    the problem's fault, refused once here rather than failing every sample."""
    try:
        compile(text, f"<{what}>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        line = f" (line {e.lineno})" if getattr(e, "lineno", None) else ""
        msg = getattr(e, "msg", None) or str(e) or f"{type(e).__name__} (nested too deeply to compile)"
        raise ProblemFormatError(f"{where}: field '{what}' is not valid Python: {msg}{line}") from None


# ----------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class AssertTest:
    """Python statements that raise on failure; they see the entry point and the problem's `setup`."""

    code: str
    type: Literal["assert"] = "assert"

    def to_dict(self) -> dict:
        return {"type": "assert", "code": self.code}


@dataclass(frozen=True)
class CallTest:
    """Call the entry point with JSON arguments and compare the result with `expected`."""

    args: list
    expected: Any
    kwargs: dict = field(default_factory=dict)
    type: Literal["call"] = "call"

    def to_dict(self) -> dict:
        return {"type": "call", "args": self.args, "kwargs": self.kwargs, "expected": self.expected}


@dataclass(frozen=True)
class StdioTest:
    """Run the program on `stdin`; its stdout must match `stdout` line by line (trailing space ignored)."""

    stdin: str
    stdout: str
    type: Literal["stdio"] = "stdio"

    def to_dict(self) -> dict:
        return {"type": "stdio", "stdin": self.stdin, "stdout": self.stdout}


@dataclass(frozen=True)
class AnswerTest:
    """A final answer (math sets): the completion's answer must equal `expected` (checked with
    math-verify, in `pgrpo.answers`; nothing is executed)."""

    expected: str
    type: Literal["answer"] = "answer"

    def to_dict(self) -> dict:
        return {"type": "answer", "expected": self.expected}


Test = Union[AssertTest, CallTest, StdioTest, AnswerTest]


def _require(d: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise ProblemFormatError(f"{where}: missing field '{key}'")
    value = d[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ProblemFormatError(f"{where}: field '{key}' must be {names}, got {type(value).__name__}")
    return value


def test_from_dict(d: Any, where: str = "test") -> Test:
    if not isinstance(d, dict):
        raise ProblemFormatError(f"{where}: a test must be an object, got {type(d).__name__}")
    kind = d.get("type")
    if kind == "assert":
        code = _require(d, "code", str, where)
        _check_code(code, "code", where)
        return AssertTest(code=code)
    if kind == "call":
        if "expected" not in d:
            raise ProblemFormatError(f"{where}: missing field 'expected'")
        kwargs = d.get("kwargs")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ProblemFormatError(
                f"{where}: field 'kwargs' must be an object, got {type(kwargs).__name__}"
            )
        args = _require(d, "args", list, where)
        for key, value in (("args", args), ("kwargs", kwargs), ("expected", d["expected"])):
            if not _depth(value, MAX_VALUE_DEPTH):
                raise ProblemFormatError(f"{where}: field '{key}' nests deeper than {MAX_VALUE_DEPTH} levels")
        return CallTest(args=args, kwargs=kwargs or {}, expected=d["expected"])
    if kind == "stdio":
        return StdioTest(stdin=_require(d, "stdin", str, where), stdout=_require(d, "stdout", str, where))
    if kind == "answer":
        return AnswerTest(expected=str(_require(d, "expected", (str, int, float), where)))
    raise ProblemFormatError(
        f"{where}: field 'type' must be one of assert, call, stdio, answer; got {kind!r}"
    )


# ----------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One task: what the model is asked, how its answer is judged, and a reference answer if known.

    `metadata` carries loader facts the executor honours as data, never as dataset names:
    `candidate_module` (tests import the solution under this module name, e.g. LBPP's `code`).
    """

    id: str
    prompt: str
    tests: tuple[Test, ...]
    entry_point: str | None = None
    setup: str = ""
    reference: str | None = None
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB
    metadata: dict = field(default_factory=dict)

    @property
    def candidate_module(self) -> str:
        return self.metadata.get("candidate_module", "solution")

    def with_tests(self, tests: list[Test] | tuple[Test, ...]) -> Problem:
        return Problem(**{**self.__dict__, "tests": tuple(tests)})

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "prompt": self.prompt}
        if self.entry_point is not None:
            d["entry_point"] = self.entry_point
        if self.setup:
            d["setup"] = self.setup
        d["tests"] = [t.to_dict() for t in self.tests]
        if self.reference is not None:
            d["reference"] = self.reference
        d["time_limit_s"] = self.time_limit_s
        d["memory_limit_mb"] = self.memory_limit_mb
        if self.metadata:
            d["metadata"] = self.metadata
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "problem") -> Problem:
        if not isinstance(d, dict):
            raise ProblemFormatError(f"{where}: a problem must be a JSON object, got {type(d).__name__}")
        pid = _require(d, "id", str, where)
        tests_raw = _require(d, "tests", list, where)
        tests = tuple(test_from_dict(t, f"{where}: tests[{i}]") for i, t in enumerate(tests_raw))
        entry_point = d.get("entry_point")
        if entry_point is not None and not (
            isinstance(entry_point, str) and entry_point.isidentifier() and not keyword.iskeyword(entry_point)
        ):
            raise ProblemFormatError(
                f"{where}: field 'entry_point' must be a Python function name, got {entry_point!r:.80}"
            )
        if entry_point is None and any(isinstance(t, CallTest) for t in tests):
            raise ProblemFormatError(f"{where}: call tests need an 'entry_point'")
        limit = time_limit(d.get("time_limit_s", DEFAULT_TIME_LIMIT_S), f"{where}: field 'time_limit_s'")
        memory_limit = d.get("memory_limit_mb", DEFAULT_MEMORY_LIMIT_MB)
        if isinstance(memory_limit, bool) or not isinstance(memory_limit, int):
            raise ProblemFormatError(
                f"{where}: field 'memory_limit_mb' must be an integer, got {type(memory_limit).__name__}"
            )
        if not 0 < memory_limit <= MAX_MEMORY_LIMIT_MB:
            raise ProblemFormatError(
                f"{where}: field 'memory_limit_mb' must be more than 0 and at most {MAX_MEMORY_LIMIT_MB}"
            )
        metadata = d.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ProblemFormatError(f"{where}: field 'metadata' must be an object")
        for key in ("prompt", "setup", "reference"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise ProblemFormatError(f"{where}: field '{key}' must be a string")
        if d.get("setup"):
            _check_code(d["setup"], "setup", where)
        return cls(
            id=pid,
            prompt=d.get("prompt", ""),
            tests=tests,
            entry_point=entry_point,
            setup=d.get("setup") or "",
            reference=d.get("reference"),
            time_limit_s=limit,
            memory_limit_mb=memory_limit,
            metadata=metadata,
        )


# ----------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    """One answer to a problem: a full program (`solution`) or raw model output (`completion`).

    `fields` keeps the whole input row so results can echo it back unchanged.
    """

    id: str
    solution: str | None = None
    completion: str | None = None
    sample_id: Any = None
    fields: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, where: str = "sample") -> Sample:
        if not isinstance(d, dict):
            raise ProblemFormatError(f"{where}: a sample must be a JSON object, got {type(d).__name__}")
        pid = d.get("id", d.get("task_id"))
        if not isinstance(pid, str):
            raise ProblemFormatError(f"{where}: missing field 'id' (the problem id, a string)")
        solution, completion = d.get("solution"), d.get("completion")
        if solution is None and completion is None:
            raise ProblemFormatError(f"{where}: needs a 'solution' or a 'completion' field")
        for key, value in (("solution", solution), ("completion", completion)):
            if value is not None and not isinstance(value, str):
                raise ProblemFormatError(f"{where}: field '{key}' must be a string")
        return cls(id=pid, solution=solution, completion=completion, sample_id=d.get("sample_id"), fields=d)


# ----------------------------------------------------------------------------- results


@dataclass
class TestResult:
    """What one test measured. Times and memory come from the trusted side, never from the sample."""

    verdict: Verdict
    wall_s: float = 0.0
    cpu_s: float | None = None
    peak_mb: float | None = None
    instructions: int | None = None  # only where perf counters exist; never estimated
    message: str = ""

    def __post_init__(self) -> None:
        self.message = safe_text(self.message)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"verdict": self.verdict.value, "wall_s": round(self.wall_s, 6)}
        if self.cpu_s is not None:
            d["cpu_s"] = round(self.cpu_s, 6)
        if self.peak_mb is not None:
            d["peak_mb"] = round(self.peak_mb, 2)
        if self.instructions is not None:
            d["instructions"] = self.instructions
        if self.message:
            d["message"] = self.message
        return d


@dataclass
class ExecResult:
    """The outcome of running one program against all tests of one problem."""

    verdict: Verdict
    tests: list[TestResult]
    wall_s: float = 0.0
    message: str = ""
    stderr: str = ""

    def __post_init__(self) -> None:
        self.message, self.stderr = safe_text(self.message), safe_text(self.stderr)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED

    @property
    def pass_rate(self) -> float:
        return sum(t.passed for t in self.tests) / len(self.tests) if self.tests else 0.0

    @property
    def is_infrastructure_failure(self) -> bool:
        return self.verdict is Verdict.SANDBOX_ERROR

    @classmethod
    def from_tests(cls, tests: list[TestResult], **kw: Any) -> ExecResult:
        """The sample's verdict is the first test's that did not pass (all passed: passed)."""
        first_bad = next((t for t in tests if not t.passed), None)
        verdict = first_bad.verdict if first_bad else Verdict.PASSED
        message = kw.pop("message", "") or (first_bad.message if first_bad else "")
        return cls(verdict=verdict, tests=tests, message=message, **kw)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {
            "verdict": self.verdict.value,
            "passed": self.passed,
            "pass_rate": round(self.pass_rate, 6),
            "wall_s": round(self.wall_s, 6),
            "tests": [t.to_dict() for t in self.tests],
        }
        if self.message:
            d["message"] = self.message
        if self.stderr:
            d["stderr"] = self.stderr
        return d
