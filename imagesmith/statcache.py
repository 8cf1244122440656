"""Content digests of a project's files, remembered by their stat, so that ``imagesmith lock``
with nothing changed (and ``build``'s lock check) answers without reading every file again.

Key: the file's real path and ``(size, mtime_ns, ctime_ns, inode, device)``. A file whose bytes
change gets a new ``ctime_ns`` (the kernel sets it on every write, rename over it or ``utime``;
no user can set it back), so its entry no longer matches and it is hashed again, even when the
edit keeps its size and restores its mtime. What this can miss: a change that leaves size,
mtime_ns, ctime_ns, inode and device all equal, which takes a clock set backwards or writing the
block device directly. "Racily clean" entries (git's term) are not kept: a file modified less
than ``SETTLE_NS`` before it was hashed could change again within the same timestamp tick on a
file system with coarse timestamps, so its digest is used for this run only.

The cache lives in the user's cache directory (``cache.default_cache_dir()/stat/``), one JSON
file per project directory; it is written atomically and only when an entry changed; an
unreadable or unwritable cache is ignored (it is never needed for a correct answer).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .cache import default_cache_dir, project_key, prune_gone
from .errors import FileWriteError
from .fsutil import atomic_write, sha256_file

FORMAT = 1
SETTLE_NS = 2_000_000_000  # 2 s: coarser than any file system's timestamp granularity (FAT: 2 s)
MAX_ENTRIES = 100_000


def settled(st: os.stat_result) -> bool:
    """Neither written nor changed in the last SETTLE_NS: not "racily clean", safe to remember by
    its stat (also the staged source's rule, source_context.py)."""
    return time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) >= SETTLE_NS


def _key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class StatCache:
    """``sha256(path)``: the digest of a file's bytes (``fsutil.sha256_file``), from the cache when
    the file's stat is the one it was hashed with. ``save()`` writes what changed."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.root = ""  # the project's path, saved with the entries (for_project)
        self._entries: dict[str, list] = {}
        self._dirty = False
        if path is not None:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("files"), dict):
                self._entries = data["files"]

    @classmethod
    def for_project(cls, root: Path) -> StatCache:
        cache = cls(default_cache_dir() / "stat" / f"{project_key(root)}.json")
        cache.root = str(Path(root).resolve())
        return cache

    def sha256(self, path: Path | str) -> str:
        real = os.path.realpath(path)
        st = os.stat(real)
        entry = self._entries.get(real)
        key = _key(st)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == key and isinstance(entry[1], str):
            return entry[1]
        digest = sha256_file(Path(real))
        after = os.stat(real)
        if _key(after) == key and settled(after):  # unchanged while it was read, and not racily clean
            self._entries[real] = [key, digest]
            self._dirty = True
        elif real in self._entries:
            del self._entries[real]
            self._dirty = True
        return digest

    def save(self) -> None:
        if not self._dirty or self.path is None:
            return
        entries = self._entries
        if len(entries) > MAX_ENTRIES:  # a cache, not an archive: start again
            entries = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data: dict = {"format": FORMAT, "files": entries}
            if self.root:
                data["root"] = self.root  # what cache.prune_gone checks
            atomic_write(self.path, json.dumps(data, sort_keys=True))
        except (OSError, FileWriteError):
            pass
        else:
            prune_gone(self.path.parent)
        self._dirty = False
