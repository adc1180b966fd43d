"""The answer layout R_format checks, and reading a completion into (thinking, answer, code).

Well formed (strict on purpose: this reward is what teaches the layout the other rewards read):
- exactly one `<think>` block, first, then exactly one `<answer>` block; only whitespace outside them;
- both blocks non-empty, and neither holds a stray think/answer tag;
- the answer holds code: a closed fenced block (```python, ```py, ```python3 or a bare ```), or, with no
  fence at all, the whole answer when it parses as Python (`ast.parse` after dedenting, so a HumanEval
  function body counts). Prose around a fence is allowed. A syntax error inside a fence still counts as
  formatted: whether the code works is the outcome reward's question, not this one's. A fence-less answer
  such as `42` parses as Python and so counts as code; the outcome reward is what rejects it.
- `FormatSpec(require_code=False)` (math problems): the answer just has to be non-empty.

`parse_completion` also reads what it can from text that is *not* well formed, because R_outcome and
R_thinking are separate from R_format (a malformed answer loses R_format only):
- `thinking`: the first closed think block, wherever it is;
- `code`: what the outcome reward runs, by `pgrpo.prompting.extract_code`'s rules (the last answer
  block, else the whole text; in it the last fenced Python block, else all of it), with the spec's tag.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from pgrpo.prompting import extract_code
from pgrpo.pysource import parse

PYTHON_FENCE_LANGS = ("", "python", "py", "python3")  # the languages extract_code takes as Python
_CLOSED_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.S)
_TAG_NAME = re.compile(r"[A-Za-z][\w.-]*")


@dataclass(frozen=True)
class FormatSpec:
    """The tags of the answer layout. `require_code`: the answer must hold code (False for math)."""

    think_tag: str = "think"
    answer_tag: str = "answer"
    require_code: bool = True

    def __post_init__(self) -> None:
        for name in (self.think_tag, self.answer_tag):
            if not _TAG_NAME.fullmatch(name):
                raise ValueError(f"tag name {name!r} must be a letter followed by letters, digits, _ . -")
        if self.think_tag == self.answer_tag:
            raise ValueError(f"the think and answer tags must differ (both {self.think_tag!r})")

    @property
    def tags(self) -> tuple[str, str, str, str]:
        t, a = self.think_tag, self.answer_tag
        return f"<{t}>", f"</{t}>", f"<{a}>", f"</{a}>"


@dataclass(frozen=True)
class Parsed:
    """What a completion says. Every field but `well_formed` is read leniently (see the module doc)."""

    thinking: str | None  # the think block's text, stripped; None when there is none or it is empty
    answer: str | None  # the last answer block's text, stripped; None when there is none
    code: str | None  # the code the outcome reward runs; None when there is nothing to run
    well_formed: bool  # the strict layout, with code in the answer when the spec requires it


def parse_completion(text: str, spec: FormatSpec = FormatSpec()) -> Parsed:
    """Read a completion: strictly for `well_formed`, leniently for the rest."""
    strict = _strict_blocks(text, spec)
    if strict is not None:
        thinking, answer = strict
        well_formed = bool(thinking.strip()) and _has_answer_content(answer, spec.require_code)
    else:
        thinking, answer = _first_block(text, spec.think_tag), last_answer_block(text, spec)
        well_formed = False
    code = answer_code(text, spec)
    return Parsed(
        thinking=(thinking or "").strip() or None,
        answer=None if answer is None else answer.strip(),
        code=code if code.strip() else None,
        well_formed=well_formed,
    )


def format_reward(text: str, spec: FormatSpec = FormatSpec()) -> float:
    """R_format: 1.0 when the completion is well formed, else 0.0."""
    return 1.0 if parse_completion(text, spec).well_formed else 0.0


def answer_code(text: str, spec: FormatSpec = FormatSpec()) -> str:
    """The code a completion offers, by `extract_code`'s rules read with the spec's answer tag."""
    if spec.answer_tag == "answer":
        return extract_code(text)
    block = last_answer_block(text, spec)
    return extract_code(text if block is None else block)


# ----------------------------------------------------------------------------- helpers


def _strict_blocks(text: str, spec: FormatSpec) -> tuple[str, str] | None:
    """(thinking, answer) when the text is exactly `<think>…</think><answer>…</answer>`, up to spaces."""
    think_open, think_close, answer_open, answer_close = (re.escape(tag) for tag in spec.tags)
    pattern = rf"\s*{think_open}(.*?){think_close}\s*{answer_open}(.*?){answer_close}\s*"
    match = re.fullmatch(pattern, text, re.S)
    if match is None:
        return None
    thinking, answer = match.group(1), match.group(2)
    if any(tag in thinking or tag in answer for tag in spec.tags):  # a second block or a stray tag
        return None
    return thinking, answer


def _has_answer_content(answer: str, require_code: bool) -> bool:
    if not require_code:
        return bool(answer.strip())
    fenced = [body for lang, body in _CLOSED_FENCE.findall(answer) if lang.lower() in PYTHON_FENCE_LANGS]
    if fenced:
        return bool(fenced[-1].strip())
    if "```" in answer or not answer.strip():  # another language's fence, or an unclosed one
        return False
    return parse(textwrap.dedent(answer).strip()) is not None


def _first_block(text: str, tag: str) -> str | None:
    match = re.search(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", text, re.S)
    return match.group(1) if match else None


def last_answer_block(text: str, spec: FormatSpec = FormatSpec()) -> str | None:
    """The last answer block's text, read as extract_code reads `<answer>`: closed, or running to the end."""
    tag = re.escape(spec.answer_tag)
    blocks = re.findall(rf"<{tag}>(.*?)(?:</{tag}>|$)", text, re.S)
    return blocks[-1] if blocks else None
