"""Files into and out of containers through the engine's archive API, so any engine works, also
one on another machine: host files copied read-only into anonymous volumes of a created container
(``file_volumes``, ``copy_into``), and an image's files read as the archive streams
(``archive_entries``)."""

from __future__ import annotations

import tempfile

from ..errors import EngineError
from .records import FileEntry

SMALL_FILE = 1 << 20  # read_paths keeps the bytes of files up to this size
KEPT_BYTES = 8 << 20  # ... and of at most this many bytes of such files per path read
MAX_ENTRIES = 200_000  # entries of one path read (a folder and everything under it)


def volume_roots(files: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """Where copied files go: one folder per volume (a host folder's target itself, a host
    file's target folder; a folder inside another is the other's), each with its
    (host path, path inside that folder) pairs. Sorted, so the same files give the same volumes."""
    import os
    import posixpath

    wanted = {}
    for host, target in files.items():
        target = posixpath.normpath("/" + target.strip("/"))
        wanted[host] = (target if os.path.isdir(host) else posixpath.dirname(target), target)
    if any(root == "/" for root, _ in wanted.values()):
        raise EngineError(f"cannot copy files to the container's root folder ({', '.join(sorted(files.values()))})")
    roots: list[str] = []
    for root in sorted({root for root, _ in wanted.values()}):
        if not any(root == r or root.startswith(r.rstrip("/") + "/") for r in roots):
            roots.append(root)
    plan: dict[str, list[tuple[str, str]]] = {root: [] for root in roots}
    for host, (own, target) in sorted(wanted.items(), key=lambda item: item[1][1]):
        root = next(r for r in roots if own == r or own.startswith(r.rstrip("/") + "/"))
        plan[root].append((host, posixpath.relpath(target, root)))
    return plan


def file_volumes(files: dict[str, str]) -> list:
    """Anonymous volumes (removed with their container: ``remove(v=True)``) at the folders
    ``copy_into`` fills; empty, owned by root (``no_copy``: not the image's folder's owner), so
    the container's user can read the files but change nothing."""
    if not files:
        return []
    from docker.types import Mount

    return [Mount(target=root, source=None, type="volume", no_copy=True) for root in volume_roots(files)]


def copy_into(container, files: dict[str, str]) -> None:
    """Copy host files or folders (host path -> absolute container path) into a created
    container's volumes (``file_volumes``), read-only (modes a+r, no write bits), owned by root.
    Copying instead of bind mounting works with any engine, also one on another machine."""
    if not files:
        return
    import tarfile

    def readonly(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode = (info.mode | 0o444) & ~0o222
        if info.isdir():
            info.mode |= 0o111
        return info

    for root, entries in volume_roots(files).items():
        with tempfile.TemporaryFile() as buf:
            with tarfile.open(fileobj=buf, mode="w") as tar:
                made: set[str] = set()
                for host, rel in entries:
                    parts = [] if rel == "." else rel.split("/")
                    for i in range(1, len(parts)):
                        parent = "/".join(parts[:i])
                        if parent not in made:
                            made.add(parent)
                            info = tarfile.TarInfo(parent)
                            info.type, info.mode = tarfile.DIRTYPE, 0o755
                            tar.addfile(info)
                    tar.add(host, arcname="/".join(parts) or ".", filter=readonly)
            buf.seek(0)
            if not container.put_archive(root, buf):
                raise EngineError(f"could not copy {', '.join(h for h, _ in entries)} into the container")


def archive_entries(path: str, stream, first: int | None = None, small: int = SMALL_FILE) -> tuple[FileEntry, ...]:
    """The entries of an archive the engine sent for ``path`` (its top entry is named after the
    path's last part), with absolute paths; at most ``first`` of them (see ``reading``), with the
    bytes of files up to ``small`` bytes (``KEPT_BYTES`` of them at most)."""
    import hashlib
    import tarfile

    parent = path.rstrip("/").rsplit("/", 1)[0]
    kinds = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink"}
    kinds[tarfile.LNKTYPE] = "hardlink"
    entries: list[FileEntry] = []
    kept = 0
    with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            if first is not None and len(entries) >= first:
                break
            if len(entries) >= MAX_ENTRIES:
                raise EngineError(
                    f"{path} holds more than {MAX_ENTRIES:,} entries: not read",
                    hint="an image built by imagesmith has no such folder where imagesmith looks",
                )
            name = f"{parent}/{member.name}".replace("//", "/") if not member.name.startswith("/") else member.name
            kind = kinds.get(member.type, "other")
            digest, data = "", None
            if kind == "file":
                handle = tar.extractfile(member)
                h = hashlib.sha256()
                keep = (
                    bytearray() if member.size <= min(small, KEPT_BYTES) and kept + member.size <= KEPT_BYTES else None
                )
                while handle is not None and (block := handle.read(1 << 16)):
                    h.update(block)
                    if keep is not None:
                        keep += block
                digest = f"sha256:{h.hexdigest()}"
                if keep is not None:
                    data, kept = bytes(keep), kept + len(keep)
            entries.append(
                FileEntry(
                    name.rstrip("/") or "/",
                    kind,
                    member.mode & 0o7777,
                    member.uid,
                    member.linkname[:4096],
                    digest,
                    data,
                )
            )
    return tuple(entries)


class _ChunkReader:
    """A file-like ``read(n)`` over an iterator of byte chunks (the engine's archive stream), so
    that ``tarfile`` reads it as it arrives."""

    def __init__(self, chunks) -> None:
        self._chunks = iter(chunks)
        self._buf = b""
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            if self._pos >= len(self._buf):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._buf, self._pos = chunk, 0
                continue
            left = len(self._buf) - self._pos
            take = left if n < 0 else min(n - len(out), left)
            out += self._buf[self._pos : self._pos + take]
            self._pos += take
        return bytes(out)
