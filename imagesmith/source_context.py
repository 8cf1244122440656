"""The spec's ``source`` files, staged on the host as the named build context that replaces the
Dockerfile's ``source`` stage (issue #17: a one-line edit -> both images).

The rendered Dockerfile's ``source`` stage copies each source path from the build context into
/app and then sets every time there to 0 with a ``RUN find ... touch`` (a container start on every
edit), so that the app layer's bytes do not depend on the checkout's file times; ``shared`` then
takes ``COPY --from=source /app/ /app/``. ``imagesmith build`` hands BuildKit that same tree made
on the host instead (``--build-context source=DIR``): a folder in the cache directory holding
``app/...`` as the stage's /app would, kept up to date file by file from the files' stat. An edit
then costs one file's transfer and one copy step, and the images stay byte-identical to a plain
``docker buildx build`` of the Dockerfile (tests/engine/test_source_context.py builds both ways).
The Dockerfile keeps its own stage: nothing changes for plain BuildKit.

What the stage's COPY lines take, and so what is staged (checked against the engine):

- the build context minus the generated ``Dockerfile.dockerignore`` (imagesmith's rules, then the
  project's ``.dockerignore``), matched with Docker's semantics (moby/patternmatcher: a path is
  left out when a pattern matches it or one of its parent folders, and a folder left out is not
  walked). Only the pattern forms matched here exactly are accepted: literal text with ``*`` and
  ``?``, optionally after a leading ``**/`` (every rule imagesmith writes has this form). An
  exclusion (``!``), a character class, an escape or any other ``**`` means no staging;
- the folder a COPY copies into, and the folders above it, made with mode 0755; inside a copied
  folder every entry keeps its mode; symlinks are copied as symlinks (never followed, so no path
  outside the project is read); empty folders are kept; owners are 0:0 either way (COPY's);
- times: 0 for folders and symlinks; files get 0 s plus a nanosecond part derived from their
  content digest. BuildKit's transfer of a local context decides whether a file changed by its
  size and time (to the nanosecond) only: with every time exactly 0, an edit that kept the size
  would not be sent. Layer archives keep whole seconds only (containerd truncates the time), so
  the layer bytes are those of time 0.

Anything this module does not reproduce exactly makes ``plan`` answer None, and the build uses
the Dockerfile's own stage as before: a source path that is or goes through a symlink, one that
the ignore rules leave out, source paths inside one another, a hard-linked file, a FIFO, socket
or device, a folder its owner cannot write to, a file with extended attributes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import layout, statcache
from .cache import project_key

FORMAT = 1
APP = layout.APP_DIR.strip("/")  # the staged tree's top folder: the stage's /app
NS_RANGE = 999_999_999  # the nanosecond part of a staged file's time: 1..NS_RANGE


# -- Docker's ignore rules (the subset matched exactly) ------------------------------------------


def ignore_patterns(text: str) -> list[str] | None:
    """The patterns of an ignore file as Docker reads it (moby/patternmatcher/ignorefile: a BOM
    and lines starting with ``#`` dropped, the rest trimmed, cleaned like a path, a leading ``/``
    removed); None when one of them is not a form ``ignored`` matches exactly."""
    patterns = []
    for number, raw in enumerate(text.splitlines()):
        line = raw.removeprefix("\ufeff") if number == 0 else raw
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        if line.startswith("!") or any(c in line for c in "[]\\"):
            return None
        cleaned = posixpath.normpath(line)
        if cleaned.startswith("//"):
            cleaned = "/" + cleaned.lstrip("/")
        if len(cleaned) > 1 and cleaned.startswith("/"):
            cleaned = cleaned[1:]
        rest = cleaned.removeprefix("**/")
        if "**" in rest or cleaned in (".", "/") or rest.startswith("../") or rest == "..":
            return None
        patterns.append(cleaned)
    return patterns


def _regex(pattern: str) -> str:
    """moby/patternmatcher's translation, for the accepted forms: ``*`` is any run of characters
    but ``/``, ``?`` one such character, a leading ``**/`` any number of leading folders."""
    prefix = ""
    if pattern.startswith("**/"):
        prefix, pattern = "(.*/)?", pattern[3:]
    body = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern)
    return f"^{prefix}{body}$"


@dataclass(frozen=True)
class IgnoreRules:
    regex: re.Pattern[str] | None  # every pattern in one alternation; None: no pattern

    @classmethod
    def parse(cls, text: str) -> IgnoreRules | None:
        patterns = ignore_patterns(text)
        if patterns is None:
            return None
        return cls(re.compile("|".join(f"(?:{_regex(p)})" for p in patterns)) if patterns else None)

    def matches(self, rel: str) -> bool:
        """Whether a pattern matches ``rel`` itself (a path relative to the project, ``/``-separated)."""
        return self.regex is not None and self.regex.match(rel) is not None

    def ignored(self, rel: str) -> bool:
        """Whether the context leaves out ``rel``: a pattern matches it or one of its parent folders."""
        parts = rel.split("/")
        return any(self.matches("/".join(parts[: i + 1])) for i in range(len(parts)))


# -- What the source stage holds ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One path of the staged tree (relative to it, ``/``-separated): a folder, a file copied
    from ``origin`` (a path in the project) or a symlink to ``target``; ``mode``: permission bits."""

    kind: str  # "dir" | "file" | "link"
    mode: int = 0o755
    origin: str = ""
    target: str = ""


def _source_rel(path: str) -> str:
    return "" if path in (".", "./") else posixpath.normpath(path)


def _overlap(a: str, b: str) -> bool:
    return a == b or not a or not b or a.startswith(b + "/") or b.startswith(a + "/")


def plan(root: Path, sources: tuple[str, ...] | list[str], rules: IgnoreRules) -> dict[str, Entry] | None:
    """The tree the Dockerfile's ``source`` stage holds under /app, read from the project (lstat
    only, no file is opened); None when it cannot be reproduced exactly (see the module's
    docstring). Keys are sorted parents first."""
    rels = [_source_rel(s) for s in sources]
    if any(_overlap(a, b) for i, a in enumerate(rels) for b in rels[i + 1 :]):
        return None
    tree: dict[str, Entry] = {APP: Entry("dir")}
    for rel in rels:
        parts = rel.split("/") if rel else []
        for i in range(len(parts)):  # the source path itself and every folder to it: no symlink
            try:
                st = os.lstat(root.joinpath(*parts[: i + 1]))
            except OSError:
                return None
            if stat.S_ISLNK(st.st_mode):
                return None
        if rel and rules.ignored(rel):
            return None
        dest = f"{APP}/{rel}" if rel else APP
        for i in range(1, len(parts)):  # COPY makes the folders above its destination: 0755
            tree.setdefault(f"{APP}/{'/'.join(parts[:i])}", Entry("dir"))
        full = root / rel if rel else root
        st = os.lstat(full)
        if stat.S_ISDIR(st.st_mode):
            tree[dest] = Entry("dir")  # the folder COPY copies into: 0755 whatever the source's
            if not _walk(full, rel, dest, rules, tree):
                return None
        else:
            entry = _entry(st, rel)
            if entry is None:
                return None
            tree[dest] = entry
    return dict(sorted(tree.items(), key=lambda kv: kv[0].split("/")))


def _entry(st: os.stat_result, origin: str) -> Entry | None:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        return Entry("file", mode, origin) if st.st_nlink == 1 else None
    if stat.S_ISDIR(st.st_mode):
        return Entry("dir", mode) if mode & 0o700 == 0o700 else None
    return None


def _walk(folder: Path, rel: str, dest: str, rules: IgnoreRules, tree: dict[str, Entry]) -> bool:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return False
    for name in names:
        child_rel = f"{rel}/{name}" if rel else name
        if rules.matches(child_rel):  # its parents were not left out: walked
            continue
        path = folder / name
        child_dest = f"{dest}/{name}"
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if stat.S_ISLNK(st.st_mode):
            tree[child_dest] = Entry("link", target=os.readlink(path))
            continue
        entry = _entry(st, child_rel)
        if entry is None:
            return False
        tree[child_dest] = entry
        if entry.kind == "dir" and not _walk(path, child_rel, child_dest, rules, tree):
            return False
    return True


# -- The staged folder -------------------------------------------------------------------------------


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, stat.S_IMODE(st.st_mode)]


def content_ns(digest: bytes) -> int:
    """The nanosecond part of a staged file's time: from its content digest, never 0 (1..NS_RANGE)."""
    return int.from_bytes(digest[:8], "big") % NS_RANGE + 1


class Stager:
    """A staged tree in ``folder`` (``folder/tree/app/...``), with the stat of each project file
    it was copied from in ``folder/state.json``: ``sync`` copies only what changed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tree = folder / "tree"
        self.state_path = folder / "state.json"

    def _load(self) -> dict[str, list]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("files"), dict):
            return data["files"]
        return {}

    def sync(self, root: Path, wanted: dict[str, Entry]) -> bool:
        """Make the tree hold exactly ``wanted`` (files read from ``root``); False when a file
        cannot be staged exactly (it then holds whatever it held: not to be used)."""
        old = self._load()
        state: dict[str, list] = {}
        self.tree.mkdir(parents=True, exist_ok=True)
        self._remove_unwanted(wanted)
        for rel, entry in wanted.items():
            path = self.tree / rel
            try:
                have = os.lstat(path)
            except FileNotFoundError:
                have = None
            if entry.kind == "dir":
                if have is not None and not stat.S_ISDIR(have.st_mode):
                    path.unlink()
                    have = None
                if have is None:
                    path.mkdir()
            elif entry.kind == "link":
                if have is not None and (not stat.S_ISLNK(have.st_mode) or os.readlink(path) != entry.target):
                    _remove(path, have)
                    have = None
                if have is None:
                    os.symlink(entry.target, path)
                os.utime(path, ns=(0, 0), follow_symlinks=False)
            else:
                record = self._file(root, rel, entry, path, have, old.get(rel))
                if record is None:
                    return False
                if record:
                    state[rel] = record
        for rel, entry in reversed(list(wanted.items())):  # folders last: their entries changed their times
            if entry.kind == "dir":
                path = self.tree / rel
                if stat.S_IMODE(os.lstat(path).st_mode) != entry.mode:
                    os.chmod(path, entry.mode)
                os.utime(path, ns=(0, 0), follow_symlinks=False)
        if state != old:  # an fsync only when a file was copied or went away
            from .fsutil import atomic_write

            atomic_write(self.state_path, json.dumps({"format": FORMAT, "files": state}, sort_keys=True))
        return True

    def _file(
        self, root: Path, rel: str, entry: Entry, path: Path, have: os.stat_result | None, old: list | None
    ) -> list | None:
        """Stage one file; its state record ([] when it changed while read: copied again next
        time), or None when it cannot be staged exactly."""
        origin = root / entry.origin
        try:
            before = os.lstat(origin)
        except OSError:
            return None
        key = _stat_key(before)
        if (
            have is not None
            and stat.S_ISREG(have.st_mode)
            and isinstance(old, list)
            and len(old) == 2
            and old[0] == key
            and have.st_size == before.st_size
            and have.st_mtime_ns == old[1]
            and stat.S_IMODE(have.st_mode) == entry.mode
        ):
            return old
        try:
            if os.listxattr(origin, follow_symlinks=False):
                return None
        except OSError:
            pass  # no extended attributes on this file system
        if have is not None:
            _remove(path, have)
        tmp = path.with_name(f".{path.name}.imagesmith-tmp")
        digest = hashlib.sha256()
        try:
            with open(origin, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
            os.chmod(tmp, entry.mode)
            ns = content_ns(digest.digest())
            os.utime(tmp, ns=(0, ns))
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return None
        after = os.lstat(origin)
        # Remembered only when unchanged while read and not "racily clean" (statcache.py): a
        # file written within the file system's timestamp tick could change again unseen.
        return [key, ns] if _stat_key(after) == key and statcache.settled(after) else []

    def _remove_unwanted(self, wanted: dict[str, Entry]) -> None:
        for dirpath, dirnames, filenames in os.walk(self.tree, topdown=True):
            base = Path(dirpath)
            rel_base = base.relative_to(self.tree).as_posix()
            for name in list(dirnames) + filenames:
                rel = name if rel_base == "." else f"{rel_base}/{name}"
                path = base / name
                if rel not in wanted:
                    _remove(path, os.lstat(path))
                    if name in dirnames:
                        dirnames.remove(name)
                elif name in dirnames and wanted[rel].kind != "dir":
                    dirnames.remove(name)  # a folder to become a file or link: replaced in sync


def _remove(path: Path, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def stage_folder(root: Path, cache_dir: Path) -> Path:
    """Where a project's staged tree lives: one folder per project directory in the cache."""
    return cache_dir / "sources" / project_key(root)


PRUNE_AFTER_S = 86_400


def _prune(sources: Path, keep: Path) -> None:
    """Remove the staged trees of projects that are gone (the folder named in their ``root``
    file no longer exists) and were not staged for a day: a cache, not an archive (test suites
    and throwaway clones would otherwise leave a copy of their code each)."""
    now = time.time()
    try:
        entries = list(os.scandir(sources))
    except OSError:
        return
    for entry in entries:
        if entry.path == str(keep) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if now - os.stat(os.path.join(entry.path, "lock")).st_mtime < PRUNE_AFTER_S:
                continue
            project = Path(entry.path, "root").read_text(encoding="utf-8")
        except OSError:
            continue
        if project and not os.path.exists(project):
            shutil.rmtree(entry.path, ignore_errors=True)


@contextlib.contextmanager
def staged(root: Path, sources: tuple[str, ...], ignore_text: str, cache_dir: Path) -> Iterator[Path | None]:
    """The folder to pass as the ``source`` build context, up to date, or None (build with the
    Dockerfile's own stage). Held under an exclusive lock until the ``with`` block ends: BuildKit
    reads the folder during the build, and another build of the same project must not change it
    meanwhile."""
    rules = IgnoreRules.parse(ignore_text)
    wanted = plan(root, sources, rules) if rules is not None and sources else None
    if wanted is None:
        yield None
        return
    folder = stage_folder(root, cache_dir)
    if Path(root).resolve() in folder.resolve().parents:  # a cache inside the project: it would copy itself
        yield None
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / "lock", "a+")  # noqa: SIM115 (held for the block below)
    except OSError:
        yield None
        return
    import fcntl

    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        _prune(folder.parent, keep=folder)
        record, project = folder / "root", str(Path(root).resolve())
        with contextlib.suppress(OSError):
            os.utime(handle.fileno())  # staged now: _prune keeps the folder for a day at least
            if not record.is_file() or record.read_text(encoding="utf-8") != project:
                record.write_text(project, encoding="utf-8")
        stager = Stager(folder)
        try:
            ok = stager.sync(root, wanted)
        except OSError:
            ok = False
        if not ok:
            with contextlib.suppress(OSError):
                stager.state_path.unlink()
        yield stager.tree if ok else None
