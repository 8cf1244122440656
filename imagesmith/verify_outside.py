"""Files read from outside an image (a container created and never started: nothing in the image
runs): ``/etc/ld.so.preload`` and the interpreter the venv's ``python`` resolves to, each compared
with the base image's."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .engine import Engine, FileEntry, first_line
from .errors import EngineError
from .facts import cache_load, cache_store
from .layout import (
    VENV_PYTHON,
)
from .verify_base import BaseCheck
from .verify_report import Report

PRELOAD = "/etc/ld.so.preload"


@dataclass
class Outside:
    """Files read from outside an image (``Engine.reading``)."""

    preload: str | None = None  # the content of /etc/ld.so.preload (None: absent)
    interpreter: str = ""  # the file the venv's python resolves to, inside the image
    interpreter_sha256: str = ""
    interpreter_problem: str = ""  # why the venv's python is not a link to a file


def _resolve(read, path: str, limit: int = 16) -> tuple[str, tuple]:
    """Follow symbolic links from ``path`` inside an image, as the kernel would: the final path
    and its entries (empty: it does not exist, or the links loop)."""
    for _ in range(limit):
        entries = read(path, 1)
        if not entries:
            return path, ()
        top = entries[0]
        if top.kind != "symlink":
            return path, entries
        target = top.target
        path = target if target.startswith("/") else f"{path.rsplit('/', 1)[0]}/{target}"
        parts: list[str] = []
        for part in path.split("/"):
            if part == "..":
                parts = parts[:-1]
            elif part not in ("", "."):
                parts.append(part)
        path = "/" + "/".join(parts)
    return path, ()


def read_outside(engine: Engine, image: str) -> Outside:
    """/etc/ld.so.preload and the interpreter the venv's python is, read from outside ``image``
    (an image ID), or what an earlier read of the same image found."""
    cached = cache_load("outside", image).get(VENV_PYTHON)
    if isinstance(cached, dict):
        try:
            return Outside(**cached)
        except TypeError:
            pass
    out = _read_outside(engine, image)
    cache_store("outside", image, {VENV_PYTHON: dataclasses.asdict(out)})
    return out


def _read_outside(engine: Engine, image: str) -> Outside:
    out = Outside()
    with engine.reading(image) as read:
        preload = read(PRELOAD, 1)  # a folder in its place is refused by its first entry alone
        if preload:
            if preload[0].kind != "file":
                out.preload = f"? ({PRELOAD} is a {preload[0].kind}, not a file)"
            elif preload[0].data is None:
                out.preload = f"? ({PRELOAD} is a file too large to read)"
            else:
                out.preload = preload[0].data.decode("utf-8", "replace")
        first = read(VENV_PYTHON, 1)
        if first and first[0].kind != "symlink":
            out.interpreter_problem = (
                f"{VENV_PYTHON} is a {first[0].kind}, not the link to the base's Python a venv makes"
            )
        path, final = _resolve(read, VENV_PYTHON)
        if final and final[0].kind == "file":
            out.interpreter, out.interpreter_sha256 = path, final[0].sha256
        elif not out.interpreter_problem:
            out.interpreter_problem = f"{VENV_PYTHON} leads to no file ({path})"
    return out


def _base_files(engine: Engine, image_id: str, paths: list[str]) -> dict[str, tuple[FileEntry, ...] | None]:
    """The first entry of each path in a base image (``read_outside``'s way), kept in the host's
    cache by image ID, so that verify does not create a container of the base every time."""
    from base64 import b64decode, b64encode

    cached = cache_load("base-files", image_id)
    missing = [p for p in paths if p not in cached]
    if missing:
        for p, entries in engine.read_paths(image_id, missing).items():
            e = entries[0] if entries else None
            cached[p] = None if e is None else [e.path, e.kind, e.mode, e.uid, e.target, e.sha256]
            if e is not None and e.data is not None and len(e.data) <= 4096:
                cached[p].append(b64encode(e.data).decode())
        cache_store("base-files", image_id, cached)
    out: dict[str, tuple[FileEntry, ...] | None] = {}
    for p in paths:
        row = cached.get(p)
        try:
            if row is None:
                out[p] = None
            else:
                path_, kind, mode, uid, target, sha256 = row[:6]
                data = b64decode(row[6]) if len(row) > 6 else None
                out[p] = (FileEntry(path_, kind, int(mode), int(uid), target, sha256, data),)
        except (TypeError, ValueError):
            out[p] = engine.read_paths(image_id, [p])[p]
    return out


def outside_checks(engine: Engine, report: Report, outside: Outside, base: BaseCheck) -> None:
    """/etc/ld.so.preload and the interpreter, against the base image's (when it is in the engine)."""
    base_files: dict[str, tuple | None] = {}
    if base.image is not None and base.image.source != "registry":
        wanted = [PRELOAD] + ([outside.interpreter] if outside.interpreter else [])
        try:
            base_files = _base_files(engine, base.image.id, wanted)
        except EngineError as exc:
            report.notes.append(f"the base image's files could not be read ({first_line(exc)})")
    base_preload = base_files.get(PRELOAD)
    if outside.preload is not None:
        same = base_preload and (base_preload[0].data or b"").decode("utf-8", "replace") == outside.preload
        if same:
            report.notes.append(f"{PRELOAD} is the base image's")
        else:
            if outside.preload.startswith("? ("):  # not a small regular file: said, never read
                what = outside.preload[3:-1]
            else:
                what = f"{PRELOAD} loads {', '.join(outside.preload.split())[:200] or '(empty)'} into every process"
            report.problems.append(
                f"{what} (not in the base): nothing the image runs, the probe included, can be trusted"
            )
    elif base_files:
        report.checks.append(f"no {PRELOAD} (read from outside the image)")
    if outside.interpreter_problem:
        report.problems.append(outside.interpreter_problem)
    elif outside.interpreter and base_files:
        theirs = base_files.get(outside.interpreter)
        if not theirs or theirs[0].kind != "file":
            report.problems.append(f"the venv's python is {outside.interpreter}, which the base image does not have")
        elif theirs[0].sha256 != outside.interpreter_sha256:
            report.problems.append(
                f"the interpreter {outside.interpreter} differs from the base image's (replaced: "
                f"{outside.interpreter_sha256[:19]}…, the base has {theirs[0].sha256[:19]}…)"
            )
        else:
            report.checks.append(f"the interpreter {outside.interpreter} is the base image's (read from outside)")
    elif outside.interpreter:
        report.notes.append(f"the interpreter {outside.interpreter} was not compared: the base is not in the engine")
