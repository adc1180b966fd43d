"""Small readings of Python syntax trees as text, for the synthetic reasoning traces."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Any

from pgrpo.pysource import parse


def _parse(source: str) -> ast.Module | None:
    return parse(source) if source.strip() else None


def _code(node: ast.AST, limit: int = 70) -> str:
    text = ast.unparse(node).replace("`", "'").replace("\n", "; ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, RecursionError):
        return False
    return True


def _literal_text(value: Any) -> str | None:
    text = repr(value)
    try:
        return ast.unparse(ast.parse(text, mode="eval").body)
    except SyntaxError:
        return None


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _defines_name(node: ast.stmt, name: str | None) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name


def _params(fn: ast.AST) -> list[str]:
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return []
    a = fn.args
    names = [x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]]
    names += [f"*{a.vararg.arg}"] if a.vararg else []
    return [n for n in names if n not in ("self", "cls")]


def _names(names: Iterable[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return " and ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted) or "none"


def _call_name(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _call_names(node: ast.AST) -> list[str]:
    return [name for n in ast.walk(node) if (name := _call_name(n))]


def _calls(name: str, node: ast.AST) -> bool:
    return name in _call_names(node)


def _used(node: ast.AST, params: list[str]) -> list[str]:
    """The parameters a node mentions, in order of first mention."""
    names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in params]
    return list(dict.fromkeys(names))
