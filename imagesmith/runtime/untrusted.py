"""Reading what someone else wrote: bounded files and bounded, shape-checked JSON.

Every value verify reads from an image, a registry or a folder it is handed (labels, the
image-facts file, the probe's report, a model stamp, a signoff record) may have been written to
hurt the reader. Three rules hold for all of them:

1. **Bounded bytes.** ``read_regular`` opens a path with ``O_NOFOLLOW | O_NONBLOCK`` (a symbolic
   link is refused, a FIFO does not block the open), checks with ``fstat`` that it is a regular
   file (a device, a FIFO or a socket is refused before one byte is read) and reads at most
   ``max_bytes``; more is an error, not a truncation.
2. **Bounded structure.** ``loads`` refuses text over ``max_bytes``, with more than ``max_items``
   values (an upper bound counted on the raw text: every ``,``, ``[`` and ``{``), or nested deeper
   than ``max_depth``, before ``json.loads`` sees it; the depth is counted on the text with its
   strings taken out (C-speed string operations, no recursion), so a document nested 20,000 deep
   is one error line, never a ``RecursionError``.
3. **Checked shape.** ``shape_problem`` says, with the path of the first value of the wrong type,
   why a parsed document is not what the reader is about to index into: no ``KeyError`` or
   ``TypeError`` later.

Failures are ``UntrustedInput`` (a ``ValueError``), whose text names ``what`` was read.
Standard library only (part of the ``imagesmith-runtime`` wheel: the stamp is read with it in
images and on the host).
"""

from __future__ import annotations

import json
import os
import re
import stat
from typing import Any

from .files import read_fd

__all__ = [
    "MAX_DEPTH",
    "MapOf",
    "Opt",
    "UntrustedInput",
    "loads",
    "open_regular",
    "read_regular",
    "shape_problem",
]

MAX_DEPTH = 32  # nothing imagesmith writes nests deeper than about 8
_STRINGS = re.compile(r'"[^"]*"')  # after escapes are taken out, a string is quote, no quote, quote
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_RUNS = re.compile(r"[\[{]+|[\]}]+")


class UntrustedInput(ValueError):
    """A value read from outside that is too large, too deep, not JSON or of the wrong shape."""


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


def read_regular(path: str, *, max_bytes: int, what: str = "") -> bytes:
    """The bytes of the regular file ``path`` (not following a final symbolic link), at most
    ``max_bytes`` of them. FileNotFoundError when it does not exist; UntrustedInput when it is a
    link, a FIFO, a device, a socket or a folder, or larger than ``max_bytes``."""
    what = what or path
    fd = open_regular(path, what)
    try:
        st = os.fstat(fd)
        if st.st_size > max_bytes:
            raise UntrustedInput(f"{what} is {_size(st.st_size)}, more than the {_size(max_bytes)} it may be")
        data = read_fd(fd, max_bytes + 1)
        if len(data) > max_bytes:  # it grew while read
            raise UntrustedInput(f"{what} is more than the {_size(max_bytes)} it may be")
        return data
    finally:
        os.close(fd)


def open_regular(path: str, what: str = "") -> int:
    """A file descriptor of the regular file ``path``, opened with ``O_NOFOLLOW | O_NONBLOCK``
    (a final symbolic link is refused, a FIFO does not block) and checked with ``fstat``.
    FileNotFoundError when it does not exist; UntrustedInput when it is not a regular file."""
    what = what or path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode):
            raise UntrustedInput(f"{what} is a symbolic link, not a regular file") from exc
        raise UntrustedInput(f"{what} cannot be opened ({exc.strerror or exc})") from exc
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UntrustedInput(f"{what} is {kind(mode)}, not a regular file")
    return fd


def printable(name: str) -> str:
    """``name`` (a file name from a folder or a stamp: anyone's) as one line of plain text: each
    character that is not printable written as its escape (a newline as ``\\n``, an escape character
    as ``\\x1b``, an undecodable byte of a name as ``\\xff``), so that a name can neither start
    a line of its own ("ok: ...") nor move the terminal's cursor, and always encodes as UTF-8."""
    if name.isprintable():
        return name
    out = []
    for c in name:
        if c.isprintable():
            out.append(c)
        elif 0xDC80 <= ord(c) <= 0xDCFF:  # a byte os.fsdecode could not decode (surrogateescape)
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        else:
            out.append(repr(c)[1:-1])
    return "".join(out)


def kind(mode: int) -> str:
    """What a file that is not regular is, in words (for refusals)."""
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def structure_problem(text: str, *, max_depth: int = MAX_DEPTH, max_items: int = 100_000) -> str | None:
    """Why the JSON ``text`` is too large a structure to parse (None: it is not): more than
    ``max_items`` values, or nested deeper than ``max_depth``. Counted on the raw text, without
    recursion; for valid JSON the depth is exact (backslashes only occur inside strings, so
    removing escaped backslashes, then escaped quotes, leaves strings as quote-to-quote runs)."""
    items = text.count(",") + text.count("[") + text.count("{")
    if items > max_items:
        return f"more than {max_items:,} values"
    if text.count("[") + text.count("{") <= max_depth:
        return None
    bare = _STRINGS.sub("", text.replace("\\\\", "").replace('\\"', ""))
    depth = 0
    for run in _RUNS.finditer(_NOT_BRACKETS.sub("", bare)):
        n = run.end() - run.start()
        if run.group()[0] in "[{":
            depth += n
            if depth > max_depth:
                return f"nested more than {max_depth} deep"
        else:
            depth -= n
    return None


def loads(data: str | bytes, *, what: str, max_bytes: int, max_depth: int = MAX_DEPTH, max_items: int = 100_000) -> Any:
    """``json.loads`` of text read from outside, bounded (see the module docstring)."""
    if len(data) > max_bytes:
        raise UntrustedInput(f"{what} is {_size(len(data))}, more than the {_size(max_bytes)} it may be")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UntrustedInput(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    else:
        text = data
    problem = structure_problem(text, max_depth=max_depth, max_items=max_items)
    if problem:
        raise UntrustedInput(f"{what} is not JSON imagesmith reads: {problem}")
    try:
        return json.loads(text)
    except RecursionError as exc:  # not reached for valid JSON (structure_problem counted it)
        raise UntrustedInput(f"{what} is not JSON imagesmith reads: nested too deep") from exc
    except ValueError as exc:
        raise UntrustedInput(f"{what} is not JSON ({str(exc)[:120]})") from exc


# ------------------------------------------------------------------------------------------------
# shapes: a type, None, a tuple (any of), [spec] (a list of), MapOf(spec) (string keys), a dict
# (these keys, each of its spec; Opt(spec): the key may be missing; other keys are allowed)


class MapOf:
    def __init__(self, spec: Any) -> None:
        self.spec = spec


class Opt:
    def __init__(self, spec: Any) -> None:
        self.spec = spec


def _name(spec: Any) -> str:
    if spec is None:
        return "null"
    if isinstance(spec, type):
        return {str: "a string", int: "an integer", bool: "true or false", float: "a number", dict: "an object"}.get(
            spec, spec.__name__
        )
    if isinstance(spec, tuple):
        return " or ".join(_name(s) for s in spec)
    if isinstance(spec, list):
        return "a list"
    return "an object"


def shape_problem(value: Any, spec: Any, where: str = "") -> str | None:
    """The first place ``value`` is not of ``spec`` ("KEY.PATH: not X"), or None. Iterative in
    the depth of ``spec`` only (the value is at most as deep as its spec before this returns)."""
    here = (where[:120] + "…" if len(where) > 120 else where) or "the document"
    if spec is None:
        return None if value is None else f"{here}: not null"
    if isinstance(spec, tuple):
        if any(shape_problem(value, s, where) is None for s in spec):
            return None
        return f"{here}: not {_name(spec)}"
    if isinstance(spec, type):
        ok = isinstance(value, spec) and not (spec in (int, float) and isinstance(value, bool))
        if spec is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"{here}: not {_name(spec)}"
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"{here}: not a list"
        for i, item in enumerate(value):
            problem = shape_problem(item, spec[0], f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(spec, MapOf):
        if not isinstance(value, dict):
            return f"{here}: not an object"
        for key, item in value.items():
            problem = shape_problem(item, spec.spec, f"{where}.{key}" if where else str(key))
            if problem:
                return problem
        return None
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"{here}: not an object"
        for key, sub in spec.items():
            path = f"{where}.{key}" if where else key
            if key not in value:
                if isinstance(sub, Opt):
                    continue
                return f"{path[:120]}: missing"
            problem = shape_problem(value[key], sub.spec if isinstance(sub, Opt) else sub, path)
            if problem:
                return problem
        return None
    raise TypeError(f"not a shape: {spec!r}")
