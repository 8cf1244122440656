"""File helpers of the in-image code, standard library only: content digests and atomic writes.
(The host's ``imagesmith/fsutil.py`` uses the same digest and the same atomic write.)"""

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


# link(2) failing with these means the file system has no hard links: a new-only write then
# checks, then renames (not in one step)
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def write_atomic(path: str, data: bytes, *, new_only: bool = False) -> str:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half: a
    temporary file of a new name beside it (``mkstemp``: never a name that exists, nor a link
    someone left there), flushed to disk, given the old file's permissions (0644 for a new one),
    then renamed over ``path``; removed on any failure. Returns ``path``. ``new_only``: ``path``
    must not exist; one that appears meanwhile is kept and ``FileExistsError`` raised, in the same
    step as the rename (``link(2)``). The one atomic write: the host's ``fsutil.atomic_write``
    (which also refuses a link at ``path``) calls it."""
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
        if new_only:
            _link_new(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _link_new(tmp: str, path: str) -> None:
    """Give ``tmp``'s file the name ``path`` only if no file has it (``FileExistsError`` else)."""
    try:
        os.link(tmp, path)  # refused (EEXIST) when path exists, links included: atomic
    except OSError as exc:
        if exc.errno not in _NO_LINKS:  # EEXIST is not among them: raised as it is
            raise
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)
