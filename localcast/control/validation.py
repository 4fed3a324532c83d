"""Turning pydantic validation errors into one line per problem, naming the field."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("sites", 2, "tz")`` -> ``sites[2].tz``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(root)"


def describe(exc: ValidationError, where: str = "") -> str:
    """Every error of ``exc`` as ``<where><field>: <message>``, one per line."""
    lines = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"{where}{field_path(tuple(err.get('loc', ())))}: {msg}")
    return "\n".join(lines)
