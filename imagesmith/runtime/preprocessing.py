"""Preprocessing as a versioned artifact: the spec's preprocessing files built into a wheel.

The wheel holds the files named by the spec's ``preprocessing`` list at their project-relative
paths (``preprocessing/features.py`` is imported as ``preprocessing.features``, as it is from
the project directory). Its version carries the content digest of those files::

    version = "0+sha256." + the first 12 hex digits of the preprocessing digest

where the preprocessing digest is the one the lock records: ``sha256`` of the JSON object
``{relative posix path: "sha256:<hex of the file's bytes>"}`` (keys sorted, separators ``,`` and
``:``), over every file under each named path except ``__pycache__`` folders and ``*.pyc``.
The distribution is named ``<project name>-preprocessing``.

The wheel's bytes are a pure function of the name and the files: entries sorted, stored
uncompressed, dated 1980-01-01, mode 0644, so the wheel ``imagesmith export preprocessing``
writes on a host is byte-identical to the one the image build makes and installs.

Standard library only (part of the ``imagesmith-runtime`` wheel): the Dockerfile's
``preprocessing-build`` stage runs it from that wheel with the base image's Python
(``python3 -m imagesmith_runtime.preprocessing --root /src --name N --version V --out /wheel --
PATH...``) and fails the build when the files no longer give the locked version. The host's
``imagesmith/preprocessing.py`` adds ``export`` (``imagesmith export preprocessing``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import stat
import sys
from typing import Iterable

from . import wheel
from .errors import ImagesmithError

DIST_SUFFIX = "-preprocessing"


class PreprocessingError(ImagesmithError):
    """The preprocessing wheel cannot be built as asked (files changed since the lock, bad paths)."""


# --------------------------------------------------------------------------------------------
# Names and versions


def distribution_name(project: str) -> str:
    """``iris`` -> ``iris-preprocessing``."""
    return project + DIST_SUFFIX


def version_for(digest: str) -> str:
    """The wheel version for a preprocessing digest (``sha256:<hex>``)."""
    hexdigits = digest.split(":", 1)[-1]
    if not re.fullmatch(r"[0-9a-f]{64}", hexdigits):
        raise PreprocessingError(f"{digest!r} is not a sha256 digest")
    return wheel.content_version(hexdigits)


def wheel_filename(name: str, version: str) -> str:
    """The wheel's file name (PEP 427, with the name normalised as PEP 491 asks)."""
    return wheel.filename(name, version)


# --------------------------------------------------------------------------------------------
# Files and digests (the same rules as the lock: see the module docstring)


def files_under(root: str, rel: str) -> list[str]:
    """The files named by ``rel`` (a file or a folder) as sorted POSIX paths relative to root.

    Only regular files and folders, looked at with ``lstat``: a symlink (dangling, looping, or
    pointing out of the project), a FIFO, socket or device is refused, never followed or opened.
    The image build copies the same paths and runs this same code, so host and image agree."""
    target = os.path.join(root, rel)
    kind = _kind(target)
    if kind == "file":
        return [rel.replace(os.sep, "/").strip("/")]
    if kind != "dir":
        raise _refused(rel, kind)
    out = []

    def fail(exc: OSError) -> None:
        raise PreprocessingError(f"preprocessing folder {rel!r} cannot be read: {exc.strerror or exc}")

    for dirpath, dirnames, filenames in os.walk(target, onerror=fail):
        for name in sorted(dirnames):
            if name != "__pycache__" and _kind(os.path.join(dirpath, name)) != "dir":
                raise _refused(os.path.relpath(os.path.join(dirpath, name), root), _kind(os.path.join(dirpath, name)))
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in filenames:
            if name.endswith(".pyc"):
                continue
            path = os.path.join(dirpath, name)
            kind = _kind(path)
            if kind != "file":
                raise _refused(os.path.relpath(path, root), kind)
            out.append(os.path.relpath(path, root).replace(os.sep, "/"))
    return sorted(out)


def _kind(path: str) -> str:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "special"


def _refused(rel: str, kind: str) -> PreprocessingError:
    rel = rel.replace(os.sep, "/")
    shown = repr(rel if len(rel) <= 120 else rel[:120] + "...")
    if kind == "missing":
        return PreprocessingError(
            f"preprocessing path {shown} does not exist", hint="fix the preprocessing list in the spec"
        )
    if kind == "symlink":
        return PreprocessingError(
            f"preprocessing path {shown} is a symlink: preprocessing files are read and "
            "copied as they are, so links are refused (a link could point out of the project)",
            hint="replace the link with the file it points to",
        )
    if kind == "special":
        return PreprocessingError(
            f"preprocessing path {shown} is not a regular file (a FIFO, socket or device)",
            hint="remove it from the preprocessing folder",
        )
    return PreprocessingError(f"preprocessing path {shown} cannot be read")


def file_digests(root: str, paths: Iterable[str]) -> dict[str, str]:
    files: dict[str, str] = {}
    for rel in paths:
        for f in files_under(root, rel):
            with open(os.path.join(root, f), "rb") as fh:
                files[f] = "sha256:" + hashlib.sha256(fh.read()).hexdigest()
    return dict(sorted(files.items()))


def digest_of(files: dict[str, str]) -> str:
    """The preprocessing digest of ``{path: sha256}`` (the lock's ``preprocessing.digest``)."""
    text = json.dumps(dict(sorted(files.items())), separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# The wheel


def wheel_bytes(name: str, root: str, paths: Iterable[str], version: str | None = None) -> tuple[str, bytes]:
    """Build the wheel in memory: ``(file name, bytes)``. With ``version``, refuse files that
    do not give that version (they changed since the lock was written)."""
    paths = list(paths)
    if not paths:
        raise PreprocessingError(
            "the spec names no preprocessing files",
            hint="list the preprocessing code under `preprocessing:` in the spec",
        )
    files = file_digests(root, paths)
    actual = version_for(digest_of(files))
    if version is not None and version != actual:
        raise PreprocessingError(
            f"the preprocessing files give version {actual}, but the lock records {version}: "
            "they changed since the lock was written",
            hint="run `imagesmith lock` (and rebuild) so the lock, the images and the wheel agree",
        )
    entries: list[tuple[str, bytes]] = []
    for rel in files:
        if rel.split("/", 1)[0].endswith((".dist-info", ".data")):
            raise PreprocessingError(f"preprocessing path {rel!r} would clash with the wheel's metadata")
        with open(os.path.join(root, rel), "rb") as fh:
            entries.append((rel, fh.read()))
    meta = (json.dumps({"digest": digest_of(files), "files": files}, indent=2, sort_keys=True) + "\n").encode()
    return wheel.wheel_bytes(
        name,
        actual,
        entries,
        "Preprocessing code frozen by imagesmith (version = content digest)",
        {"imagesmith.json": meta},
    )


def write_wheel(name: str, root: str, paths: Iterable[str], out_dir: str, version: str | None = None) -> str:
    """Build the wheel into ``out_dir`` (written whole or not at all); returns its path."""
    filename, data = wheel_bytes(name, root, paths, version)
    return wheel.write_file(os.path.join(out_dir, filename), data)


def top_level(paths: Iterable[str]) -> list[str]:
    """The top-level names a wheel of ``paths`` installs into site-packages (for compileall)."""
    return sorted({p.strip("/").split("/", 1)[0] for p in paths})


# --------------------------------------------------------------------------------------------
# In the image build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imagesmith_runtime.preprocessing", description="Build the preprocessing wheel."
    )
    parser.add_argument("--root", required=True, help="the folder the paths are relative to")
    parser.add_argument("--name", required=True, help="the distribution name")
    parser.add_argument("--version", help="refuse unless the files give this version (the lock's)")
    parser.add_argument("--out", required=True, help="where to write the wheel")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    try:
        path = write_wheel(args.name, args.root, args.paths, args.out, args.version)
    except PreprocessingError as exc:
        sys.stderr.write(f"error: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
