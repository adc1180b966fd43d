"""The P-GRPO prompt and answer format: the training system prompt, the prompt `pgrpo train` builds from
it (and records beside the model it saves), and turning model output into a program.

Nothing here imports torch: `pgrpo eval`, `pgrpo search` and the rewards read the same prompt and the same
extraction rules as training, without loading a trainer.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pgrpo.pysource import parse
from pgrpo.types import Problem, Sample, StdioTest

SYSTEM_PROMPT = (
    resources.files("pgrpo.prompts").joinpath("pgrpo_system.txt").read_text(encoding="utf-8").rstrip("\n")
)
"""The instruction `pgrpo train` puts before every problem (editable in prompts/pgrpo_system.txt)."""
PROMPT_RECORD = "pgrpo_prompt.json"
"""What `pgrpo train` writes beside the model it saves: the system prompt, chat flag and answer tags."""

ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)
FENCE_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|$)", re.S)


def extract_code(text: str) -> str:
    """The code in a completion: inside `<answer>` if present, then the last fenced block, else the text."""
    answers = ANSWER_RE.findall(text)
    if answers:
        text = answers[-1]
    blocks = [
        body for lang, body in FENCE_RE.findall(text) if lang.lower() in ("", "python", "py", "python3")
    ]
    return blocks[-1] if blocks else text


def _defines(code: str, name: str) -> bool:
    tree = parse(code)
    if tree is None:
        return False
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name
        for node in tree.body
    )


def program_for(problem: Problem, sample: Sample) -> str:
    """The full program a sample stands for (docs/formats.md, samples format), below the problem's
    `metadata["program_prefix"]` when it has one (LiveCodeBench's imports for LeetCode-style answers)."""
    prefix = problem.metadata.get("program_prefix", "")
    if sample.solution is not None:
        return prefix + sample.solution
    code = extract_code(sample.completion or "")
    if (
        problem.entry_point
        and not _defines(code, problem.entry_point)
        and _defines(problem.prompt, problem.entry_point)
    ):
        return prefix + problem.prompt + code  # HumanEval-style: the completion continues the prompt
    return prefix + code


# ----------------------------------------------------------------------------- the training prompt


def plain_text(messages: list[dict]) -> str:
    """Chat messages as one text, for a model without a chat template: the contents separated by a blank
    line, an empty system message left out, a newline at the end (`pgrpo train`'s plain-text form)."""
    kept = [m["content"] for m in messages if m["content"] or m["role"] != "system"]
    return "\n\n".join(kept) + "\n"


def is_code_prompt(problem: Problem) -> bool:
    """HumanEval-style: the prompt is the start of the program (a signature and docstring)."""
    return bool(problem.entry_point) and f"def {problem.entry_point}(" in problem.prompt


def requirements(problem: Problem) -> str:
    """What the tests need that the statement may not say: the function name they call (MBPP's
    statements do not name it), or that the program reads standard input."""
    if any(isinstance(t, StdioTest) for t in problem.tests):
        return "Read the input from standard input and write the answer to standard output."
    if problem.entry_point and not is_code_prompt(problem):
        return f"The solution must define `{problem.entry_point}`; the tests call it by that name."
    return ""


def task_text(problem: Problem) -> str:
    """The problem as the policy reads it in training: its statement, then `requirements` unless the
    statement already names the function (without them an MBPP policy is rewarded only when it guesses
    the name the tests call)."""
    extra = requirements(problem)
    named = problem.entry_point and re.search(rf"\b{re.escape(problem.entry_point)}\b", problem.prompt)
    if not extra or (named and not any(isinstance(t, StdioTest) for t in problem.tests)):
        return problem.prompt
    return f"{problem.prompt.rstrip()}\n\n{extra}"


def training_prompt(problem: Problem, chat: bool, system_prompt: str = SYSTEM_PROMPT) -> str | list[dict]:
    """The prompt `pgrpo train` shows for `problem` (and `pgrpo eval --prompt-style pgrpo`, and natural
    pairs): a system and a user message with `task_text`, or (`chat` False: no chat template) their
    plain-text form `f"{system_prompt}\\n\\n{task}\\n"`."""
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": task_text(problem)}]
    return messages if chat else plain_text(messages)


@dataclass(frozen=True)
class TrainedPrompt:
    """How a model was prompted in training. `chat` None: as its tokenizer allows (messages when it has a
    chat template). `source`: the record it was read from, or "default" (`SYSTEM_PROMPT`, default tags)."""

    system_prompt: str = SYSTEM_PROMPT
    chat: bool | None = None
    think_tag: str = "think"
    answer_tag: str = "answer"
    source: str = "default"

    def spec(self) -> Any:
        """The answer layout the reward checked (`pgrpo.rewards.FormatSpec`)."""
        from pgrpo.rewards.format import FormatSpec

        return FormatSpec(think_tag=self.think_tag, answer_tag=self.answer_tag)

    def chat_for(self, style: str, has_template: bool) -> bool:
        """Whether to prompt with chat messages: in the pgrpo style as training did (when recorded), else
        whenever the model has a chat template; never in the completion style."""
        if style == "pgrpo" and self.chat is not None:
            if self.chat and not has_template:
                raise ValueError(
                    f"{self.source} says the model was trained on chat messages, but the model has no chat "
                    "template to render them"
                )
            return self.chat
        return has_template and style != "completion"

    def write(self, *directories: str | Path) -> None:
        record = {k: v for k, v in asdict(self).items() if k != "source"}
        for directory in directories:
            Path(directory).mkdir(parents=True, exist_ok=True)
            (Path(directory) / PROMPT_RECORD).write_text(json.dumps(record, indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> TrainedPrompt:
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable prompt record ({e})") from None
        kinds = {"system_prompt": str, "chat": bool, "think_tag": str, "answer_tag": str}
        if not isinstance(record, dict):
            raise ValueError(f"{path}: a prompt record is a JSON object with fields {', '.join(kinds)}")
        for key, kind in kinds.items():
            if key in record and not isinstance(record[key], kind):
                raise ValueError(f"{path}: field {key!r} must be {kind.__name__}, got {record[key]!r}")
        unknown = sorted(set(record) - set(kinds))
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(kinds)}")
        return cls(**record, source=str(path))

    @classmethod
    def find(cls, model: str | None) -> TrainedPrompt:
        """The record of a model `pgrpo train` saved: in the model's directory (RUN/final), else in the one
        above it (RUN, for RUN/checkpoint-N); the default prompt when there is none (or a server URL)."""
        path = Path(model or "").expanduser()
        if not model or model.startswith(("http://", "https://")) or not path.exists():
            return cls()  # a server, or a hub name: nothing recorded locally
        folder = path if path.is_dir() else path.parent
        for candidate in (folder / PROMPT_RECORD, folder.parent / PROMPT_RECORD):
            if candidate.is_file():
                return cls.read(candidate)
        return cls()
