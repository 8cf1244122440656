"""Checks of the plain values a spec holds in several places: a path inside the project, a list
of strings, a command, a number. Each adds to ``Problems`` and returns None for a bad value."""

from __future__ import annotations

import math
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

from .problems import Problems, show, type_name
from .schema import MAX_PATH, PATH_RE


def relative_path(root: Path, key: str, value: Any, problems: Problems, *, file: bool = False) -> str | None:
    """A relative path that exists and stays inside ``root`` after resolving symlinks; with
    ``file``, a regular file (not a folder, FIFO or device)."""
    if not isinstance(value, str) or not value:
        problems.add(key, f"expected a relative path, got {type_name(value)}")
        return None
    if len(value) > MAX_PATH:
        problems.add(key, f"a path of {len(value)} characters (at most {MAX_PATH})")
        return None
    if not PATH_RE.fullmatch(value):
        problems.add(
            key,
            f"{show(value)} is not a plain relative path (letters, digits, . _ - + @ / and spaces; no globs or quotes)",
        )
        return None
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts:
        problems.add(key, f"{show(value)} leaves the project directory; paths must be relative and inside it")
        return None
    normal = pure.as_posix().rstrip("/") or "."
    try:
        full = (root / normal).resolve(strict=True)
    except FileNotFoundError:
        problems.add(
            key,
            f"{show(value)} does not exist in {root}"
            + (" (a dangling symlink)" if (root / normal).is_symlink() else ""),
        )
        return None
    except (OSError, RuntimeError) as exc:  # a symlink loop, a permission problem
        problems.add(key, f"{show(value)} cannot be followed: {getattr(exc, 'strerror', None) or 'a symlink loop'}")
        return None
    try:
        full.relative_to(root.resolve())
    except ValueError:
        problems.add(key, f"{show(value)} resolves outside the project directory (through a symlink)")
        return None
    if file and not full.is_file():
        what = "a folder" if full.is_dir() else "not a regular file"
        problems.add(key, f"{show(value)} is {what}; name a file")
        return None
    if not (full.is_file() or full.is_dir()):
        problems.add(key, f"{show(value)} is neither a regular file nor a folder")
        return None
    return normal


def string_list(value: Any, key: str, problems: Problems) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(key, f"expected a list of strings, got {type_name(value)}")
        return None
    return list(value)


def command_args(value: Any, key: str, problems: Problems) -> tuple[str, ...] | None:
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            problems.add(key, f"cannot split command: {exc}")
            return None
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        problems.add(key, f"expected a command (string or list of strings), got {type_name(value)}")
        return None
    if not parts:
        problems.add(key, "the command is empty")
        return None
    if any(("\n" in p or "\r" in p or "\0" in p) for p in parts):
        problems.add(key, "a command argument contains a line break or NUL")
        return None
    return tuple(parts)


def finite_number(value: Any, key: str, problems: Problems, *, minimum: float = 0.0) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        problems.add(key, f"expected a finite number >= {minimum:g}, got {show(value)}")
        return None
    return float(value)
