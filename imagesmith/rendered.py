"""What ``imagesmith render`` leaves in a project, and whether it is current: the Dockerfile, the
ignore file beside it and the runtime wheel in ``.imagesmith/``. ``render.render`` makes the
Dockerfile's text; this module compares that text and its companions with the files on disk
(``stale``, for ``render --check``) and writes them (``write``)."""

from __future__ import annotations

from pathlib import Path

from .errors import FileWriteError
from .fsutil import atomic_write
from .render import check_replaceable, dockerignore, dockerignore_path
from .runtime_wheel import stale_beside, write_beside
from .spec import Spec


def stale(spec: Spec, text: str, target: Path) -> list[str]:
    """One line per file render writes that differs from a fresh render of ``text`` to
    ``target`` (the Dockerfile, its ignore file, the runtime wheel); [] when all are current."""
    problems = []
    current = target.read_bytes() if target.is_file() else None
    if current != text.encode("utf-8"):
        problems.append(f"{target} is {'stale' if current is not None else 'missing'}: it differs from a fresh render")
    ignore = dockerignore_path(target)
    if not (ignore.is_file() and ignore.read_bytes() == dockerignore(spec).encode("utf-8")):
        problems.append(f"{ignore} is stale or missing")
    wheel = stale_beside(spec.root)
    if wheel:
        problems.append(wheel)
    return problems


def write(spec: Spec, text: str, target: Path) -> Path:
    """Write ``text`` to ``target``, its ignore file beside it and the runtime wheel; returns the
    wheel's path. The Dockerfile first: where the user points -o is what fails (no folder, a
    folder in the way, read-only, a file imagesmith did not write); then nothing else is written."""
    if target.is_dir():
        raise FileWriteError(f"cannot write {target}: it is a folder", hint="give the path of a file to write")
    check_replaceable(target, origin=spec.origin, output_option=True)
    atomic_write(target, text)
    atomic_write(dockerignore_path(target), dockerignore(spec))
    return write_beside(spec.root)
