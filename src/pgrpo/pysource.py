"""Reading Python text that may come from a model or a dataset: a syntax tree, or None.

One place for what such text can do to the parser: a SyntaxError or a NUL byte (ValueError), and
text that is valid Python but nests deeper than CPython's parser goes (`not not … 0`, a long chain of
`lambda:`), which raises MemoryError or RecursionError rather than SyntaxError. Warnings the text
would print (invalid escapes like '\\w') are not ours to report."""

from __future__ import annotations

import ast
import warnings

_UNREADABLE = (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError)


def parse(source: str, mode: str = "exec") -> ast.AST | None:
    """The syntax tree of `source`, or None when CPython cannot read it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source, mode=mode)
        except _UNREADABLE:
            return None
