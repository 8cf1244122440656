"""What ``imagesmith render`` leaves in a project, and whether it is current: the Dockerfile, the
ignore file beside it and what the Dockerfile copies from ``.imagesmith/`` (the runtime wheel,
the image facts and the lock's data files: ``render.write_context``). ``render.render`` makes the
Dockerfile's text; this module compares that text and its companions with the files on disk
(``stale``, for ``render --check``) and writes them (``write``)."""

from __future__ import annotations

from pathlib import Path

from .fsutil import atomic_write
from .lock import Lock
from .render import (
    check_replaceable,
    dockerignore,
    dockerignore_path,
    stale_context,
    write_context,
)
from .runtime_wheel import check_folder
from .spec import Spec


def stale(spec: Spec, locks: dict[str, Lock], text: str, target: Path) -> list[str]:
    """One line per file render writes that differs from a fresh render of ``text`` to
    ``target`` (the Dockerfile, its ignore file, ``.imagesmith/``); [] when all are current."""
    problems = []
    current = target.read_bytes() if target.is_file() else None
    if current != text.encode("utf-8"):
        problems.append(f"{target} is {'stale' if current is not None else 'missing'}: it differs from a fresh render")
    ignore = dockerignore_path(target)
    if not (ignore.is_file() and ignore.read_bytes() == dockerignore(spec).encode("utf-8")):
        problems.append(f"{ignore} is stale or missing")
    return problems + stale_context(spec, locks)


def write(spec: Spec, locks: dict[str, Lock], text: str, target: Path) -> Path:
    """Write ``text`` to ``target``, its ignore file beside it and ``.imagesmith/``; returns the
    runtime wheel's path. The Dockerfile first: where the user points -o is what fails (no folder, a
    folder in the way, read-only, a file imagesmith did not write); then nothing else is written."""
    check_replaceable(target, origin=spec.origin, output_option=True)
    check_folder(spec.root)
    atomic_write(target, text)
    atomic_write(dockerignore_path(target), dockerignore(spec))
    return write_context(spec, locks)
