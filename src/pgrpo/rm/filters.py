"""Quality filters for rewritten reasoning: refusals, truncation, a changed approach, near-duplicates.

Each returns a reason from `pgrpo.rm.pairs.REASONS` (or None); the pair builders count them.
"""

from __future__ import annotations

import ast
import difflib
import re
from typing import TYPE_CHECKING

from pgrpo.prompting import FENCE_RE
from pgrpo.pysource import parse

if TYPE_CHECKING:
    from pgrpo.rm.pairs import PairsConfig

_REFUSAL = re.compile(
    r"\b(?:I(?:'m| am) (?:sorry|unable to|not able to)|I (?:can(?:no|')t|cannot|won't|will not) "
    r"(?:help|assist|comply|fulfil|do that|do this|rewrite (?:this|that|it)|provide (?:this|that|such))|"
    r"as an AI\b|I must decline|against (?:my|the) (?:guidelines|policy|policies))",
    re.I,
)
_TERMINAL = tuple(".!?)]}\"'`*")
_PYTHON_LANGS = ("", "python", "py", "python3")
_WORDISH = re.compile(r"\w+|[^\w\s]")
_TERM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words that name an approach; with identifiers (snake_case, camelCase) they stand in for missing code.
_ALGO_WORDS = frozenset(
    "sort sorted sorting binary search recursion recursive memo memoization dynamic programming dp greedy "
    "hash dictionary dict set stack queue deque heap heapq graph tree dfs bfs bisect two pointers window "
    "prefix suffix regex regular expression counter loop iterate iteration matrix modulo gcd lcm prime "
    "sieve backtracking union find trie".split()
)


def is_refusal(text: str) -> bool:
    """A refusal in the opening of the text (where models put them; later text may quote such words)."""
    return bool(_REFUSAL.search(text[:500]))


def is_truncated(text: str, max_tokens: int | None = None) -> bool:
    """Cut off: an unclosed code block, a last line without closing punctuation, or the token limit reached."""
    s = text.rstrip()
    if not s or s.count("```") % 2:
        return True
    if max_tokens is not None and len(_WORDISH.findall(s)) >= max_tokens:
        return True  # word pieces never outnumber model tokens, so this many means the limit was hit
    return not s.endswith("```") and not s.endswith(_TERMINAL)


def final_code(text: str) -> str | None:
    """The last fenced Python block of a text, or None."""
    blocks = [b for lang, b in FENCE_RE.findall(text) if lang.lower() in _PYTHON_LANGS]
    return blocks[-1] if blocks and blocks[-1].strip() else None


def split_final_code(text: str) -> tuple[str, str | None]:
    """(the reasoning, the final code): the text without its last fenced Python block, and that block's
    code (None when there is none; the text then comes back stripped). The reward model reads only the
    reasoning (`pgrpo.rm.score.format_input`); the code is what the execution check runs."""
    blocks = [m for m in FENCE_RE.finditer(text) if m.group(1).lower() in _PYTHON_LANGS]
    if not blocks or not blocks[-1].group(2).strip():
        return text.strip(), None
    last = blocks[-1]
    before, after = text[: last.start()].strip(), text[last.end() :].strip()
    return "\n\n".join(part for part in (before, after) if part), last.group(2)


def _terms(text: str) -> set[str]:
    words = {w.lower() for w in _TERM.findall(text)}
    identifiers = {w for w in _TERM.findall(text) if "_" in w.strip("_") or re.search(r"[a-z][A-Z]", w)}
    return (words & _ALGO_WORDS) | identifiers


def _code_terms(code: str) -> set[str]:
    """Identifiers and keywords of the code, less what every solution shares: `def`, `return`, and the
    names of the functions and parameters it defines (in a small function they would swamp the rest)."""
    shared = {"def", "return", "self"}
    tree = parse(code)
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            shared.add(node.name)
        elif isinstance(node, ast.arg):
            shared.add(node.arg)
    return set(_TERM.findall(code)) - shared


def approach_overlap(original: str, rewrite: str) -> float:
    """How much of the original's approach the rewrite keeps, in [0, 1] (1 when it cannot tell)."""
    a, b = final_code(original), final_code(rewrite)
    if a is not None and b is not None:
        ta, tb = _code_terms(a), _code_terms(b)
        return len(ta & tb) / len(ta | tb) if ta | tb else 1.0
    ta, tb = _terms(original), _terms(rewrite)
    return len(ta & tb) / len(ta) if ta else 1.0


def similarity(a: str, b: str) -> float:
    """difflib ratio of the two texts' word sequences, case-folded (words, not characters: traces are long
    and a character-level match is quadratic in their length)."""
    words_a, words_b = _WORDISH.findall(a.lower()), _WORDISH.findall(b.lower())
    return difflib.SequenceMatcher(None, words_a, words_b, autojunk=False).ratio()


def trace_problem(text: str, config: PairsConfig) -> str | None:
    """Why a generated trace is unusable on its own (a reason from `REASONS`), or None."""
    if not text.strip():
        return "empty"
    if is_refusal(text):
        return "refusal"
    if is_truncated(text, config.max_tokens):
        return "truncated"
    return None


def rewrite_problem(original: str, rewrite: str, config: PairsConfig) -> str | None:
    """Why a rewrite of `original` is unusable, or None."""
    reason = trace_problem(rewrite, config)
    if reason:
        return reason
    if len(rewrite.strip()) < config.min_length_ratio * len(original.strip()):
        return "too_short"
    if approach_overlap(original, rewrite) < config.min_approach_overlap:
        return "approach_changed"
    return None
