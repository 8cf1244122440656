"""Where imagesmith keeps what it downloads on the host (one place, read by the lock and the
wheel cache): ``$XDG_CACHE_HOME/imagesmith`` or ``~/.cache/imagesmith``."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

PRUNE_AFTER_S = 86_400  # a day
# A per-project entry's file name (``project_key`` and ``.json``): the only files ``prune_gone``
# removes, so a cache folder that is a link to, or an XDG_CACHE_HOME that is, a folder of the
# user's own JSON files loses none of them
KEY_NAME = re.compile(r"[0-9a-f]{24}")  # what project_key names a project's entry by
ENTRY_NAME = re.compile(KEY_NAME.pattern + r"\.json")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "imagesmith"


def project_key(root: Path | str) -> str:
    """The name of a project directory's own entries in the cache (the stat cache, the staged
    source, the last render): its resolved path, hashed."""
    import hashlib

    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:24]


def container_pip_cache() -> Path:
    """pip's cache for pip-compile in containers: beside the wheel cache, shared by all projects."""
    return default_cache_dir() / "pip-in-container"


def prune_due(folder: Path) -> bool:
    """Whether ``folder``'s entries are to be pruned now: at most once a day per folder (its
    ``.pruned`` stamp, touched here when the answer is yes), so a call costs one stat."""
    stamp = folder / ".pruned"
    try:
        if time.time() - os.stat(stamp).st_mtime < PRUNE_AFTER_S:
            return False
    except FileNotFoundError:
        pass
    except OSError:
        return False
    try:
        with open(stamp, "a"):
            pass
        os.utime(stamp)
    except OSError:
        return False
    return True


def prune_gone(folder: Path) -> None:
    """Remove the per-project entries in ``folder`` (``<project_key>.json``, holding the
    project's path as ``"root"``) of projects that are gone and were not written for a day, and
    entries that name no project: a cache, not an archive (test suites and throwaway clones would
    otherwise leave one each). At most once a day (``prune_due``); never raises."""
    import json

    if not prune_due(folder):
        return
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not ENTRY_NAME.fullmatch(entry.name):  # only what project_key names: never anyone else's file
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < PRUNE_AFTER_S:
                continue
            with open(entry.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            continue
        root = data.get("root") if isinstance(data, dict) else None
        if not isinstance(root, str) or not root or not os.path.exists(root):
            try:
                os.unlink(entry.path)
            except OSError:
                pass
