"""Heavy distributions moved out of the venv into folders of their own, one layer each.

Standard library only (part of the ``imagesmith-runtime`` wheel). The install step of the
``python-env`` stage runs it from that wheel with the base image's Python, after the install and
the bytecode, before the venv is moved to the stage's output::

    python3 -m imagesmith_runtime.heavy SITE_PACKAGES OUT NAME...

For each NAME (a distribution's canonical name, the image plan's heavy groups: ``plan.heavy_groups``)
every file its ``*.dist-info/RECORD`` lists (paths relative to SITE_PACKAGES, some under the venv's
``bin/``), the ``__pycache__`` bytecode of its ``.py`` files and whatever is left in its dist-info
folder are moved to ``OUT/NAME/<the same absolute path>`` (a file two of them list, such as a
namespace package's ``__init__.py``, goes with the first); folders the move empties are removed.
The shared stage copies each ``OUT/NAME`` as a layer of its own before the rest of the venv, so a
change to any other distribution leaves those layers as they were. A RECORD path that leaves the
venv, or a NAME with no distribution, is refused before anything moves.
"""

from __future__ import annotations

import csv
import os
import re
import sys

from .errors import ImagesmithError

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")


class HeavyError(ImagesmithError):
    """A heavy distribution that is not installed, or whose RECORD points outside the venv."""


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_info(site: str, name: str) -> str:
    """The path of ``name``'s ``.dist-info`` folder in ``site``."""
    for entry in sorted(os.listdir(site)):
        if entry.endswith(".dist-info") and canonical(entry[: -len(".dist-info")].rsplit("-", 1)[0]) == name:
            return os.path.join(site, entry)
    raise HeavyError(f"the heavy distribution {name} is not installed in {site}")


def files_of(site: str, name: str) -> list[str]:
    """The absolute paths that belong to ``name``: its RECORD's files that exist, the bytecode of
    its ``.py`` files, and everything in its dist-info folder. Sorted."""
    info = dist_info(site, name)
    venv = os.path.normpath(os.path.join(site, "..", "..", ".."))
    out: set[str] = set()
    with open(os.path.join(info, "RECORD"), encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            if not row or not row[0]:
                continue
            path = os.path.normpath(os.path.join(site, row[0]))
            if not path.startswith(venv + os.sep):
                raise HeavyError(f"{name}'s RECORD lists {row[0]!r}, outside the venv")
            if os.path.lexists(path) and not os.path.isdir(path):
                out.add(path)
            if path.endswith(".py"):
                cache = os.path.join(os.path.dirname(path), "__pycache__")
                stem = os.path.basename(path)[:-3] + "."
                if os.path.isdir(cache):
                    out.update(
                        os.path.join(cache, f) for f in os.listdir(cache) if f.startswith(stem) and f.endswith(".pyc")
                    )
    for root, _dirs, files in os.walk(info):
        out.update(os.path.join(root, f) for f in files)
    return sorted(out)


def move(site: str, out: str, names: list[str]) -> dict[str, int]:
    """Move each of ``names``' files under ``out/<name>`` (see the module's docstring); returns
    ``{name: files moved}``. Every name is checked before anything moves."""
    for name in names:
        if not _NAME.match(name):
            raise HeavyError(f"{name!r} is not a canonical distribution name")
    plans: dict[str, list[str]] = {}
    claimed: set[str] = set()
    for name in names:  # a file several RECORDs list (a namespace's __init__.py) goes with the first
        plans[name] = [path for path in files_of(site, name) if path not in claimed]
        claimed.update(plans[name])
    emptied: set[str] = set()
    for name, paths in plans.items():
        for path in paths:
            dest = os.path.join(out, name) + path
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.rename(path, dest)
            emptied.add(os.path.dirname(path))
    stop = os.path.normpath(site)
    for folder in sorted(emptied, key=len, reverse=True):
        while folder.startswith(stop + os.sep) and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
            folder = os.path.dirname(folder)
    return {name: len(paths) for name, paths in plans.items()}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: python -m imagesmith_runtime.heavy SITE_PACKAGES OUT NAME...\n")
        return 2
    try:
        moved = move(argv[0], argv[1], argv[2:])
    except (HeavyError, OSError) as exc:
        sys.stderr.write(f"imagesmith: {exc}\n")
        return 1
    for name, count in moved.items():
        sys.stdout.write(f"imagesmith: {name}: {count} files in a layer of their own\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
