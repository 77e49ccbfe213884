"""A tiny Python source emitter: literals, calls, dicts and tuples, wrapped at 100 columns.

An expression is printed flat when it fits; otherwise one item per line with a trailing
comma, which `ruff format` leaves as it is (the "magic trailing comma").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

LINE_LENGTH = 100
INDENT = "    "


@dataclass(frozen=True)
class Atom:
    """Source text that is never split."""

    text: str


@dataclass(frozen=True)
class Call:
    """`func(name=value, ...)`; a None name makes a positional argument."""

    func: str
    args: Sequence[tuple[str | None, Expr]]


@dataclass(frozen=True)
class Dict:
    """A dict display with expression keys and values."""

    items: Sequence[tuple[Expr, Expr]]


@dataclass(frozen=True)
class Tuple:
    """A tuple display; a single item keeps its comma."""

    items: Sequence[Expr]


Expr = Atom | Call | Dict | Tuple


def string(value: str) -> Atom:
    """A double-quoted string literal (JSON escapes are valid Python escapes)."""
    return Atom(json.dumps(value, ensure_ascii=False))


def literal(value: object) -> Atom:
    """A literal for None, bool, int, float or str."""
    if isinstance(value, str):
        return string(value)
    if value is None or isinstance(value, (bool, int, float)):
        return Atom(repr(value))
    raise TypeError(f"no literal for {type(value).__name__}")


def flat(expr: Expr) -> str:
    """The expression on one line."""
    if isinstance(expr, Atom):
        return expr.text
    if isinstance(expr, Call):
        args = ", ".join(flat(v) if k is None else f"{k}={flat(v)}" for k, v in expr.args)
        return f"{expr.func}({args})"
    if isinstance(expr, Dict):
        return "{" + ", ".join(f"{flat(k)}: {flat(v)}" for k, v in expr.items) + "}"
    if len(expr.items) == 1:
        return f"({flat(expr.items[0])},)"
    return "(" + ", ".join(flat(item) for item in expr.items) + ")"


def _parts(expr: Call | Dict | Tuple) -> tuple[str, list[tuple[str, Expr]], str]:
    if isinstance(expr, Call):
        return f"{expr.func}(", [("" if k is None else f"{k}=", v) for k, v in expr.args], ")"
    if isinstance(expr, Dict):
        return "{", [(f"{flat(k)}: ", v) for k, v in expr.items], "}"
    return "(", [("", item) for item in expr.items], ")"


def render(expr: Expr, level: int = 0, prefix: str = "", suffix: str = "") -> str:
    """`prefix + expr + suffix` indented `level` times, split over lines when too long."""
    pad = INDENT * level
    line = f"{pad}{prefix}{flat(expr)}{suffix}"
    if isinstance(expr, Atom) or len(line) <= LINE_LENGTH:
        return line
    opening, items, closing = _parts(expr)
    if not items:
        return line
    body = [render(value, level + 1, label, ",") for label, value in items]
    return "\n".join([f"{pad}{prefix}{opening}", *body, f"{pad}{closing}{suffix}"])
