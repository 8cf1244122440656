"""Small file-system helpers: atomic writes (and ``holds``: whether one would change anything),
whether a file is imagesmith's to replace (``check_replaceable``, ``generated``), a
user's text file read with one error (``read_user_text``), content digests, and the TOML parser (``tomllib``, or
``tomli`` on Python 3.10) that every module reading pyproject.toml or a lock takes from here, as
``fsutil.tomllib``: imported when first asked for, since most commands read no TOML (its regular
expressions are a few percent of a no-op lock's start-up)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from .errors import FileWriteError, ImagesmithError, UserFileError
from .runtime import files, untrusted


def __getattr__(name: str) -> Any:
    if name != "tomllib":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:  # Python 3.11+
        import tomllib as module
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as module  # type: ignore[no-redef]
    globals()["tomllib"] = module
    return module


def atomic_write(path: Path, data: str | bytes, *, new_only: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.
    ``new_only``: ``path`` must not exist (``init``'s spec); one that appears meanwhile (another
    run, an editor) is kept and this write refused, in the same step as the rename.

    The bytes go to a temporary file in the same directory, are flushed to disk, then renamed
    over ``path`` (the runtime's ``files.write_atomic``: the one implementation, since the runtime
    wheel may import nothing of the host's). A symbolic link at ``path`` (dangling or not) is
    refused: it is neither replaced nor written through. On any failure the temporary file is
    removed and ``path`` is untouched; an ``OSError`` (no such folder, a folder in the way,
    read-only, disk full) becomes one ``FileWriteError`` naming the file.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    _check_file_target(path, "give the path of a file to write")
    try:
        files.write_atomic(str(path), raw, new_only=new_only)
    except FileExistsError as exc:
        raise FileWriteError(
            f"cannot write {path}: it appeared while imagesmith was writing it (another run, or an editor)",
            hint="nothing was overwritten; look at that file, then run the command again if it is still needed",
        ) from exc
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno == errno.ENOENT and not path.parent.is_dir():
            reason = f"the folder {path.parent} does not exist"
        raise FileWriteError(
            f"cannot write {path}: {reason}", hint="nothing was written; choose another place or free some space"
        ) from exc


def check_not_link(path: Path, *, hint: str | None = None) -> None:
    """Refuse (``FileWriteError``) a symbolic link (dangling or not) where a file is to be written,
    or a folder imagesmith writes into: replacing it would lose the user's link, writing through it
    would change another file. ``hint``: the caller's, for a folder (a file's by default)."""
    if path.is_symlink():
        raise FileWriteError(
            f"cannot write {path}: it is a symbolic link (to {os.readlink(path)})",
            hint=hint
            or "imagesmith neither replaces a link nor writes through it: remove the link "
            "(or put a copy of the file in its place), then run the command again",
        )


def check_replaceable(path: Path, *, what: str, hint: str) -> None:
    """Refuse what imagesmith may not replace at ``path``, where it would write its ``what`` (for
    the error: "Dockerfile", "pylock.toml"): a file of the user's, one without imagesmith's header
    (``generated``), or a link to one (``UserFileError``, with ``hint``); any other symbolic link
    (``check_not_link``: to a file of imagesmith's, dangling, to a folder); a folder, a FIFO or a
    device (``FileWriteError``, with ``hint``). Nothing is written here; a missing file passes."""
    path = Path(path)
    if path.is_file() and not generated(path):  # the user's content, through a link or not
        raise UserFileError(str(path), what=what, hint=hint)
    check_not_link(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}", hint=hint) from exc
    if not stat.S_ISREG(mode):
        raise FileWriteError(f"cannot write {path}: it is {untrusted.kind(mode)}, not a file", hint=hint)


def check_output_file(path: Path, option: str) -> None:
    """Refuse (``FileWriteError``), before a long command runs, an output file ``atomic_write``
    would refuse at its end: a symbolic link, a folder, a folder that does not exist. ``option``
    names the command-line option in the hint."""
    path = Path(path)
    _check_file_target(path, f"give {option} the path of a file to write")
    if not path.parent.is_dir():
        raise FileWriteError(
            f"cannot write {path}: the folder {path.parent} does not exist",
            hint=f"make the folder, or give {option} another path",
        )


def _check_file_target(path: Path, folder_hint: str) -> None:
    """What ``atomic_write`` refuses before it writes, and ``check_output_file`` before a long
    command runs: a symbolic link, a folder (``folder_hint``)."""
    check_not_link(path)
    if path.is_dir():
        raise FileWriteError(f"cannot write {path}: it is a folder", hint=folder_hint)


def holds(path: Path, text: str) -> bool:
    """Whether ``path`` is a regular file (not a link) holding exactly ``text``'s UTF-8 bytes, so
    that writing ``text`` there would change nothing (line ends compared as they are; a file that
    cannot be read holds nothing)."""
    try:
        return path.is_file() and not path.is_symlink() and path.read_bytes() == text.encode("utf-8")
    except OSError:
        return False


# The most a user's text file (a requirements file, a pyproject.toml, a uv.lock, the signoff
# samples) is read to: a larger one (a 2 GB sparse file, a link to a disk image) is refused before
# it is read, instead of filling the memory.
MAX_USER_FILE = 64 << 20


class FileTooLarge(OSError):
    """A file larger than a reader takes (an ``OSError``, so every ``except OSError`` that reports
    "cannot be read: <strerror>" reports it too); ``size`` is its size in bytes."""

    def __init__(self, path: Path, size: int, limit: int) -> None:
        super().__init__(errno.EFBIG, f"it is {size} bytes, more than the {limit} read", str(path))
        self.size = size


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (a symbolic link is followed), read only when there
    are at most ``limit`` of them: ``FileTooLarge`` otherwise (also when it grows while read). A FIFO,
    a device or a folder is an ``OSError`` ("not a regular file"), opened without blocking and never
    read: ``/dev/zero`` does not fill the memory, a FIFO with no writer does not hang."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if st.st_size > limit:
            raise FileTooLarge(path, st.st_size, limit)
        data = files.read_fd(fd, limit + 1)
        if len(data) > limit:
            raise FileTooLarge(path, len(data), limit)
        return data
    finally:
        os.close(fd)


GENERATED_HEADER = "# Generated by imagesmith "  # the first line of every file imagesmith writes for a user


def read_head(path: Path, limit: int) -> bytes:
    """The first ``limit`` bytes of the regular file ``path`` (a link is followed); an ``OSError``
    for a FIFO, a device or a folder, opened without blocking and never read (a FIFO named
    ``train.py`` hung ``imagesmith init``)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return files.read_fd(fd, limit)
    finally:
        os.close(fd)


def generated(path: Path) -> bool:
    """Whether the file at ``path`` is one imagesmith wrote: a regular file (a link is followed)
    whose first line starts with ``GENERATED_HEADER`` (the Dockerfile's, its ignore file's and
    requirements.lock's first line). A file that cannot be read is not ours, and neither is a FIFO
    or a device (``read_head``: never read; a FIFO named Dockerfile hung render)."""
    header = GENERATED_HEADER.encode()
    try:
        return read_head(path, len(header)) == header
    except OSError:
        return False


def read_toml(path: Path, limit: int = MAX_USER_FILE) -> dict:
    """A user's TOML file, parsed; every way that fails is an ``OSError`` (unreadable, not a
    regular file, larger than ``limit``), a ``UnicodeDecodeError`` or a ``tomllib.TOMLDecodeError``
    (also for nesting too deep for the parser, its ``RecursionError``, and an integer too long to
    convert, its ``ValueError``)."""
    return read_toml_text(path, limit)[1]


def read_toml_text(path: Path, limit: int = MAX_USER_FILE) -> tuple[str, dict]:
    """``read_toml`` with the file's text: (text, parsed), for a caller that writes the file back."""
    toml = __getattr__("tomllib")
    text = read_bounded(path, limit).decode("utf-8")
    try:
        return text, toml.loads(text)
    except RecursionError:
        raise toml.TOMLDecodeError("nested too deeply to read") from None
    except toml.TOMLDecodeError:
        raise
    except ValueError as exc:  # an integer of more than 4300 digits
        raise toml.TOMLDecodeError(f"holds a value that cannot be read: {str(exc)[:80]}") from None


def read_user_text(
    path: Path, error: type[ImagesmithError], *, shown: str, hint: str, limit: int = MAX_USER_FILE
) -> str:
    """The UTF-8 text of a user's file, or one ``error`` naming it as ``shown``: ``… is not UTF-8
    text (byte N)`` with ``hint``, or ``… cannot be read: <reason>`` (also when it is not a regular
    file or is larger than ``limit`` bytes)."""
    try:
        return read_bounded(path, limit).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{shown} is not UTF-8 text (byte {exc.start})", hint=hint) from exc
    except OSError as exc:
        raise error(f"{shown} cannot be read: {exc.strerror or exc}") from exc


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """``sha256:<hex>`` of a file (the runtime's digest: the same in images and on the host)."""
    return files.sha256_file(str(path))
