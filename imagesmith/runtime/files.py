"""File helpers of the in-image code, standard library only: content digests and atomic writes.
(The host's ``imagesmith/fsutil.py`` uses the same digest.)"""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str) -> str:
    """``sha256:<hex>`` of a file's bytes, read in chunks."""
    with open(path, "rb") as fh:
        return sha256_fd(fh.fileno())


def sha256_fd(fd: int) -> str:
    """``sha256:<hex>`` of what is left to read from the open file descriptor ``fd``."""
    h = hashlib.sha256()
    for chunk in iter(lambda: os.read(fd, 1 << 20), b""):
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
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half
    (a temporary file beside it, flushed to disk, then renamed); returns ``path``."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
