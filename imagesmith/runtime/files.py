"""File helpers of the in-image code, standard library only: content digests and atomic writes.
(The host's ``imagesmith/fsutil.py`` uses the same digest.)"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile


def sha256_file(path: str) -> str:
    """``sha256:<hex>`` of a file's bytes, read in chunks."""
    with open(path, "rb") as fh:
        return sha256_fd(fh.fileno())


def sha256_fd(fd: int, size: int | None = None) -> str:
    """``sha256:<hex>`` of what is left to read from the open file descriptor ``fd``. ``size``: the
    bytes there were when it was opened; no more is read, and a file that has more (it grew while
    it was hashed: a writer could keep it growing for ever) is an ``OSError`` (EFBIG)."""
    h = hashlib.sha256()
    left = -1 if size is None else size + 1
    while left:
        chunk = os.read(fd, 1 << 20 if left < 0 else min(left, 1 << 20))
        if not chunk:
            break
        if left > 0:
            left -= len(chunk)
            if not left:
                raise OSError(errno.EFBIG, "it grew while it was read")
        h.update(chunk)
    return "sha256:" + h.hexdigest()


def read_fd(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes read from the open file descriptor ``fd`` (fewer at its end): a
    reader that must refuse a file larger than N asks for N + 1 and compares."""
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_atomic(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half: a
    temporary file of a new name beside it (``mkstemp``: never a name that exists, nor a link
    someone left there), flushed to disk, given the old file's permissions (0644 for a new one),
    then renamed over ``path``; removed on any failure. Returns ``path``."""
    folder, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
