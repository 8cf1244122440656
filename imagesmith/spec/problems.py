"""Collecting a spec's problems and naming values in them: every problem is reported at once,
each with its key path, a bounded view of the value and, for a typo, the closest valid key."""

from __future__ import annotations

import difflib
from typing import Any

from .schema import MAX_PROBLEMS


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.secret = False  # a value looked like a credential: the hint says where credentials go

    def add(self, key: str, message: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(f"{key}: {message}" if key else message)
        elif len(self.items) == MAX_PROBLEMS:
            self.items.append("(more problems not shown)")


def unknown_keys(data: dict, allowed: tuple[str, ...], prefix: str, problems: Problems) -> None:
    for key in sorted(data, key=str):
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(allowed)})"
        problems.add(f"{prefix}{show_key(key)}", f"unknown key{hint}")


def type_name(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


def show(value: Any, limit: int = 60) -> str:
    """A value for a message, bounded: a short string quoted (a long one cut, with its length),
    anything else as its type. Never a full ``repr``: a value can be gigabytes once expanded."""
    if isinstance(value, str):
        text = value if len(value) <= limit else value[:limit] + "…"
        quoted = repr(text.encode("utf-8", "backslashreplace").decode("utf-8"))
        return quoted + (f" ({len(value)} characters)" if len(value) > limit else "")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else "a very large integer"
    return type_name(value)


def show_key(key: Any) -> str:
    """A mapping key for a key path in a message, bounded."""
    return show(key, 40)[1:-1] if isinstance(key, str) else show(key, 40)


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
