"""The spec's ``source`` files, staged on the host as the image that replaces the Dockerfile's
``source`` stage, so that a one-line edit rebuilds both images fast.

The rendered Dockerfile's ``source`` stage copies each source path from the build context into
/app and then sets every time there to 0 with a ``RUN find ... touch`` (a container start on every
edit), so that the app layer's bytes do not depend on the checkout's file times; ``shared`` then
takes ``COPY --from=source /app/ /app/``. ``imagesmith build`` hands BuildKit that same tree made
on the host instead: an OCI image layout (``layout/``) whose one layer is an uncompressed archive
holding ``app/...`` as the stage's /app would, which the bake file names as the ``source`` context
(``oci-layout://DIR@DIGEST``, one manifest per platform, the same layer). It is part of the
images' own solve: no stage of its own to build, unpack and export first. The layer is written
again only when a file's stat or the tree's shape changed; BuildKit fetches a layer it does not
have yet by its digest. The images stay byte-identical to a plain ``docker buildx build`` of the
Dockerfile (tests/engine/test_source_context.py builds both ways, the app layer never from
BuildKit's cache). The Dockerfile keeps its own stage: nothing changes for plain BuildKit. (Not a
folder as the named context: BuildKit's receiver leaves folder times wrong after an incremental
upload, see ``Stager``.)

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
- imagesmith's own folder (``layout.GENERATED_DIR``) left out of a source of ``.`` (the stage
  removes it after its COPY);
- times: 0 for every entry (the ``touch`` of the Dockerfile's stage).

Anything this module does not reproduce exactly makes ``plan`` answer None (or ``sync`` False),
and the build uses the Dockerfile's own stage as before: a source path that is or goes through a
symlink, one that the ignore rules leave out, source paths inside one another, a hard-linked file,
a FIFO, socket or device, a folder its owner cannot write to, a file with extended attributes, a
name that is not UTF-8, a file that changes while it is read, a relative symlink that climbs above
the stage's root, a name starting with ``.wh.`` (a layer's whiteout: unpacking the layer would
delete a file instead of writing one), more than MAX_ARCHIVE_BYTES of files (the layer is written
and sent whole after an edit, where the stage's COPY sends only what changed).
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
from .cache import KEY_NAME, PRUNE_AFTER_S, project_key, prune_due
from .errors import FileWriteError
from .fsutil import atomic_write, holds, sha256_bytes

FORMAT = 3  # state.json's; 1 was a staged folder, 2 an archive unpacked by a stage of its own
WHITEOUT = ".wh."  # a layer entry's name that deletes instead of writing (the OCI image spec)
APP = layout.APP_DIR.strip("/")  # the staged tree's top folder: the stage's /app


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
    if any(path.rsplit("/", 1)[-1].startswith(WHITEOUT) for path in tree):
        return None
    return dict(sorted(tree.items(), key=lambda kv: kv[0].split("/")))


def _entry(st: os.stat_result, origin: str) -> Entry | None:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        return Entry("file", mode, origin) if st.st_nlink == 1 else None
    if stat.S_ISDIR(st.st_mode):
        return Entry("dir", mode) if mode & 0o700 == 0o700 else None
    return None


def _climbs_out(dest: str, target: str) -> bool:
    """Whether a relative link target climbs above the stage's root: moby's archive.Untar
    refuses such a link (a breakout), where COPY copies it as it is."""
    if target.startswith("/"):
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(dest), target))
    return resolved == ".." or resolved.startswith("../")


def _walk(folder: Path, rel: str, dest: str, rules: IgnoreRules, tree: dict[str, Entry]) -> bool:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return False
    for name in names:
        child_rel = f"{rel}/{name}" if rel else name
        if rules.matches(child_rel):  # its parents were not left out: walked
            continue
        if child_rel == layout.GENERATED_DIR:  # imagesmith's own folder: the stage removes it
            continue
        path = folder / name
        child_dest = f"{dest}/{name}"
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(path)
            if _climbs_out(child_dest, target):
                return False
            tree[child_dest] = Entry("link", target=target)
            continue
        entry = _entry(st, child_rel)
        if entry is None:
            return False
        tree[child_dest] = entry
        if entry.kind == "dir" and not _walk(path, child_rel, child_dest, rules, tree):
            return False
    return True


# -- The staged image ---------------------------------------------------------------------------------

# Above this the Dockerfile's own stage is cheaper: the layer is written and sent whole on an edit.
MAX_ARCHIVE_BYTES = 64 << 20
LAYOUT = "layout"  # the OCI image layout's folder, in the project's staging folder
_LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
_CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"


def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def image_of(layer: str, size: int, platform: str) -> tuple[bytes, bytes]:
    """The (config, manifest) of the one-layer image for ``platform`` (``os/arch[/variant]``):
    canonical JSON, so the same layer gives the same manifest digest on every machine."""
    parts = platform.split("/")
    config: dict = {"architecture": parts[1], "os": parts[0], "rootfs": {"type": "layers", "diff_ids": [layer]}}
    if len(parts) > 2:
        config["variant"] = parts[2]
    config_bytes = _canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": _MANIFEST_TYPE,
        "config": {"mediaType": _CONFIG_TYPE, "digest": sha256_bytes(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": _LAYER_TYPE, "digest": layer, "size": size}],
    }
    return config_bytes, _canonical(manifest)


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, stat.S_IMODE(st.st_mode)]


def _plan_key(wanted: dict[str, Entry]) -> str:
    rows = [[rel, e.kind, e.mode, e.origin, e.target] for rel, e in wanted.items()]
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode("utf-8")).hexdigest()


class _Hashing:
    """A write-only file that hashes what goes through it (tarfile needs write and tell)."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.offset += len(data)
        return self.raw.write(data)

    def tell(self) -> int:
        return self.offset


class Stager:
    """The staged tree as the one layer of an OCI image layout, ``folder/layout`` (the named
    context that replaces the Dockerfile's ``source`` stage), with the plan and the stat of each
    project file it was made from in ``folder/state.json``: ``sync`` writes the layer again only
    when one of them changed, ``images`` adds a manifest per platform.

    Why an archive and not the tree itself as a folder context: BuildKit keeps the last upload of
    a named context and updates it in place, and its receiver (tonistiigi/fsutil's DiskWriter)
    restores the time of a folder only when it creates the folder. A file added, changed or
    removed in a folder it already had leaves that folder with the time of the upload, and
    ``COPY --from=source`` puts that time in the app layer. The upload is shared by every build
    whose project folder has the same name (buildx's shared key), so the layer depended on what
    was built before. An archive's entries carry their own times, and unpacking sets them; a
    layer is fetched by its digest, never updated in place."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.layout = folder / LAYOUT
        self.blobs = self.layout / "blobs" / "sha256"
        self.state_path = folder / "state.json"

    def _load(self) -> dict:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("format") == FORMAT else {}

    def _layer(self, state: dict) -> tuple[str, int] | None:
        """The layer ``sync`` wrote last (digest, size), when its blob is there whole (``state``:
        state.json's, ``_load``)."""
        found = state.get("layer")
        if not (isinstance(found, list) and len(found) == 2 and isinstance(found[0], str)):
            return None
        try:
            size = os.lstat(self.blobs / found[0].removeprefix("sha256:")).st_size
        except OSError:
            return None
        return (found[0], size) if size == found[1] else None

    def sync(self, root: Path, wanted: dict[str, Entry]) -> tuple[str, int] | None:
        """Make the layer hold exactly ``wanted`` (files read from ``root``): its (digest, size),
        or None when a file cannot be staged exactly (then the Dockerfile's own stage is used)."""
        files: dict[str, list[int]] = {}
        for rel, entry in wanted.items():
            if entry.kind == "file":
                try:
                    files[rel] = _stat_key(os.lstat(root / entry.origin))
                except OSError:
                    return None
        if sum(key[0] for key in files.values()) > MAX_ARCHIVE_BYTES:
            return None  # the Dockerfile's stage: its COPY sends only the files that changed
        state = {"format": FORMAT, "plan": _plan_key(wanted), "files": files}
        old = self._load()
        have = self._layer(old)
        if have is not None and old == dict(state, layer=list(have)):
            return have
        self.blobs.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.state_path.unlink()  # stale from here on, until written again below
        written = self._write(root, wanted, files)
        if written is None:
            return None
        settled, layer = written
        if settled:  # remembered only when no file was "racily clean" (statcache.py)
            with contextlib.suppress(FileWriteError):  # then written again next time
                atomic_write(self.state_path, json.dumps(dict(state, layer=list(layer)), sort_keys=True))
        return layer

    def images(self, layer: tuple[str, int], platforms: tuple[str, ...] | list[str]) -> dict[str, str]:
        """Each platform's manifest of the one-layer image, written into the layout with its
        config and listed in index.json; blobs of earlier layers are removed. {platform: digest}."""
        keep = {layer[0]}
        listed = []
        out: dict[str, str] = {}
        for platform in sorted(set(platforms)):
            config, manifest = image_of(layer[0], layer[1], platform)
            for blob in (config, manifest):
                digest = sha256_bytes(blob)
                keep.add(digest)
                path = self.blobs / digest.removeprefix("sha256:")
                if not path.is_file():
                    atomic_write(path, blob)
            out[platform] = sha256_bytes(manifest)
            os_name, arch, *variant = platform.split("/")
            where = {"architecture": arch, "os": os_name, **({"variant": variant[0]} if variant else {})}
            listed.append(
                {"mediaType": _MANIFEST_TYPE, "digest": out[platform], "size": len(manifest), "platform": where}
            )
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": listed},
            sort_keys=True,
        )
        for name, text in (("index.json", index), ("oci-layout", '{"imageLayoutVersion":"1.0.0"}')):
            if not holds(self.layout / name, text):
                atomic_write(self.layout / name, text)
        for entry in os.scandir(self.blobs):
            if "sha256:" + entry.name not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
        return out

    def _write(
        self, root: Path, wanted: dict[str, Entry], files: dict[str, list[int]]
    ) -> tuple[bool, tuple[str, int]] | None:
        """Write the layer (entries in the plan's order, every time 0, owner 0:0) under its
        digest; (whether every file had settled, (digest, size)), or None when a file cannot be
        staged exactly."""
        import tarfile

        tmp = self.blobs / ".layer.imagesmith-tmp"
        settled = True
        try:
            with open(tmp, "wb") as raw:
                out = _Hashing(raw)
                with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                    for rel, entry in wanted.items():
                        rel.encode("utf-8")  # a name that is not UTF-8 cannot be written as Docker reads it
                        info = tarfile.TarInfo(rel)
                        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                        info.mode = entry.mode
                        if entry.kind == "dir":
                            info.type = tarfile.DIRTYPE
                            tar.addfile(info)
                        elif entry.kind == "link":
                            info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
                            tar.addfile(info)
                        else:
                            origin = root / entry.origin
                            if os.listxattr(origin, follow_symlinks=False):
                                raise _CannotStage(rel)
                            info.size = files[rel][0]
                            with open(origin, "rb") as src:
                                tar.addfile(info, src)
                            after = os.lstat(origin)
                            if _stat_key(after) != files[rel]:
                                raise _CannotStage(rel)  # changed while read: not what the plan saw
                            settled = settled and statcache.settled(after)
                os.fsync(raw.fileno())
            digest = "sha256:" + out.digest.hexdigest()
            os.replace(tmp, self.blobs / digest.removeprefix("sha256:"))
            return settled, (digest, out.offset)
        except (OSError, UnicodeError, tarfile.TarError, _CannotStage):
            with contextlib.suppress(OSError):
                tmp.unlink()
            return None


class _CannotStage(Exception):
    pass


def stage_folder(root: Path, cache_dir: Path) -> Path:
    """Where a project's staged archive lives: one folder per project directory in the cache."""
    return cache_dir / "sources" / project_key(root)


def _prune(sources: Path, keep: Path) -> None:
    """Remove the staged sources of projects that are gone (the folder named in their ``root``
    file no longer exists) and were not staged for a day: a cache, not an archive (test suites
    and throwaway clones would otherwise leave a copy of their code each). At most once a day
    (``cache.prune_due``): a build does not stat every other project's folder."""
    if not prune_due(sources):
        return
    now = time.time()
    try:
        entries = list(os.scandir(sources))
    except OSError:
        return
    for entry in entries:
        if entry.path == str(keep) or not entry.is_dir(follow_symlinks=False) or not KEY_NAME.fullmatch(entry.name):
            continue  # only the folders project_key names: never anyone else's (a cache linked to their own)
        try:
            if now - os.stat(os.path.join(entry.path, "lock")).st_mtime < PRUNE_AFTER_S:
                continue
            project = Path(entry.path, "root").read_text(encoding="utf-8")
        except OSError:
            continue
        if project and not os.path.exists(project):
            shutil.rmtree(entry.path, ignore_errors=True)


@contextlib.contextmanager
def staged(
    root: Path, sources: tuple[str, ...], ignore_text: str, cache_dir: Path, platforms: tuple[str, ...]
) -> Iterator[dict[str, str] | None]:
    """The named context that replaces the Dockerfile's ``source`` stage, for each platform
    (``oci-layout://DIR@DIGEST``, up to date), or None (build with the Dockerfile's own stage).
    Held under an exclusive lock until the ``with`` block ends: BuildKit reads the layout during
    the build, and another build of the same project must not change it meanwhile."""
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
        for older in ("tree", "context"):  # the staged folder, then the archive, of earlier versions
            if (folder / older).is_dir():
                shutil.rmtree(folder / older, ignore_errors=True)
        contexts: dict[str, str] | None = None
        try:
            layer = stager.sync(root, wanted)
            if layer is not None:
                images = stager.images(layer, platforms)
                contexts = {platform: f"oci-layout://{stager.layout}@{digest}" for platform, digest in images.items()}
        except (OSError, FileWriteError):
            contexts = None
        if contexts is None:
            with contextlib.suppress(OSError):
                stager.state_path.unlink()
        yield contexts
