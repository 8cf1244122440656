"""pip's requirements-file syntax, known in this one place: ``requirement_lines(text)`` turns a
requirements file's text into classified logical lines. Every reader of such a file goes through
it: the includes the lock follows, the indexes and direct references it refuses, the indexes
``imagesmith init`` proposes, an exported lock's pins, a resolver's output.

It reads a file as pip does (``pip/_internal/req/req_file.py``):

- **Lines.** A line ending in ``\\`` continues on the next (the backslash dropped, the two joined
  as they are); a comment is ``#`` at the start of a line or after whitespace, to the end of the
  line, and a comment line never continues; blank lines go. ``${VAR}`` is left as written.
- **Options.** A line whose first space-separated word starts with ``-`` is a line of options,
  read by pip's option names with ``optparse`` as pip does: ``-rFILE``, ``-r FILE``,
  ``--requirement=FILE`` and a long option's unique prefix (``--extra-index``) all count, and one
  line may hold several. Otherwise the words up to the first option are a requirement, and the
  options after it are its own (``--hash``).
- **Requirements.** A URL (a scheme pip knows: ``https:``, ``file:``, ``git+https:`` …), a local
  path (an archive such as ``dist/x.whl``, or what looks like a path and is no ``name @ url``:
  ``.``, ``./libs/x``, ``libs/x``; and ``~/x``), or a PEP 508 requirement (``name[extra]>=1``,
  ``name @ url``, read with ``packaging``); a marker follows ``;`` (``"; "`` after a URL).
"""

from __future__ import annotations

import functools
import optparse
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from packaging.requirements import Requirement

# The kinds of line (``Line.kind``).
INCLUDE = "include"  # -r / --requirement, -c / --constraint: another requirements file (``value``)
INDEX = "index"  # -i / --index-url, --extra-index-url, -f / --find-links: where packages come from
EDITABLE = "editable"  # -e / --editable: the editable's target (a path or a VCS URL)
OPTION = "option"  # any other option (--pre, --no-binary, --trusted-host ...), or an unreadable options line
URL = "url"  # a requirement from a URL: ``name @ https://…``, ``git+https://…``, ``https://…/x.whl``
LOCAL = "local"  # a requirement from a local path: a folder (``.``, ``./libs/x``) or an archive (``x.whl``)
REQUIREMENT = "requirement"  # a name, extras and a version specifier: what an index serves
OPTION_KINDS = (INCLUDE, INDEX, EDITABLE, OPTION)


@dataclass(frozen=True)
class Line:
    """One entry of a requirements file: a requirement, or one option of a line of options."""

    kind: str
    text: str  # the logical line, as written (continuations joined, its comment gone): what a message quotes
    option: str = ""  # an option as written (``-r``, ``--index-url``; a unique prefix is spelled out)
    value: str = ""  # the option's argument, or the requirement without its marker and options
    marker: str = ""  # a requirement's environment marker ("" when none)
    hashes: tuple[str, ...] = ()  # a requirement's ``--hash`` values, as written

    @functools.cached_property
    def requirement(self) -> Requirement | None:
        """A requirement's ``value`` read by ``packaging`` (None when it is none it can read),
        parsed on first use: a lock that only checks its inputs never loads packaging."""
        return _parsed(self.value)


# pip's options in a requirements file (req_file.SUPPORTED_OPTIONS and SUPPORTED_OPTIONS_REQ)
_VALUED = (
    (INCLUDE, ("-r", "--requirement")),
    (INCLUDE, ("-c", "--constraint")),
    (EDITABLE, ("-e", "--editable")),
    (INDEX, ("-i", "--index-url")),
    (INDEX, ("--extra-index-url",)),
    (INDEX, ("-f", "--find-links")),
    ("hash", ("--hash",)),
    *((OPTION, (name,)) for name in ("--no-binary", "--only-binary", "--trusted-host", "--use-feature")),
    *((OPTION, (name,)) for name in ("--config-settings", "--global-option")),
)
_FLAGS = ("--no-index", "--pre", "--prefer-binary", "--require-hashes")
_COMMENT = re.compile(r"(^|\s+)#.*$")  # pip's COMMENT_RE
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar", ".tlz", ".tar.lz")
_URL_SCHEMES = {"http", "https", "file", "ftp"}
_VCS = {"git", "hg", "svn", "bzr"}  # git+https:, hg+ssh: ... and the bare VCS schemes


class _Unreadable(Exception):
    pass


class _Parser(optparse.OptionParser):
    def error(self, msg: str) -> Any:  # pip raises too; optparse would exit
        raise _Unreadable(msg)


def _record(option: optparse.Option, opt_str: str, value: str | None, parser: optparse.OptionParser, kind: str) -> None:
    assert parser.values is not None  # set by parse_args
    parser.values.found.append((kind, opt_str, value or ""))


def _make_parser() -> _Parser:
    parser = _Parser(add_help_option=False)
    for kind, names in _VALUED:
        parser.add_option(*names, action="callback", callback=_record, callback_args=(kind,), type="string")
    for name in _FLAGS:
        parser.add_option(name, action="callback", callback=_record, callback_args=(OPTION,))
    return parser


_PARSER = _make_parser()


def logical_lines(text: str) -> list[str]:
    """A requirements file's logical lines, as pip joins them: continuations joined, comments and
    blank lines dropped."""
    out, pending = [], []
    for raw in text.splitlines():
        comment = "#" in raw and _COMMENT.match(raw) is not None
        if raw.endswith("\\") and not comment:
            pending.append(raw.strip("\\"))
            continue
        line = _uncommented("".join(pending) + (" " + raw if comment else raw))
        pending = []
        if line:
            out.append(line)
    if pending and (line := _uncommented("".join(pending))):
        out.append(line)
    return out


def _uncommented(line: str) -> str:
    return (_COMMENT.sub("", line) if "#" in line else line).strip()


def requirement_lines(text: str) -> list[Line]:
    """A requirements file's text as classified lines, in order: one ``Line`` for a requirement,
    one for each option of a line of options."""
    out: list[Line] = []
    for line in logical_lines(text):
        words = line.split(" ")
        first = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
        head, options = " ".join(words[:first]).strip(), " ".join(words[first:])
        found = _options(options)
        if head:
            out.append(_requirement(line, head, found or []))
        elif found is None:
            out.append(Line(OPTION, line, option=words[0]))
        else:
            out += [
                Line(OPTION if kind == "hash" else kind, line, option=opt, value=value) for kind, opt, value in found
            ]
    return out


def _options(text: str) -> list[tuple[str, str, str]] | None:
    """(kind, option as written, value) of each option in ``text``; None when pip could not read them."""
    if not text:
        return []
    try:
        # shlex as pip splits; plain whitespace splits a text without quotes or escapes alike, faster
        args = shlex.split(text) if any(c in text for c in "'\"\\") else text.split()
        if all(arg.startswith("--hash=") for arg in args):  # a requirement's usual options, hundreds in a lock
            return [("hash", "--hash", arg[len("--hash=") :]) for arg in args]
        values = optparse.Values({"found": []})
        _PARSER.parse_args(args, values)
    except (ValueError, _Unreadable):
        return None
    return values.found


def _requirement(line: str, head: str, found: list[tuple[str, str, str]]) -> Line:
    hashes = tuple(value for kind, _, value in found if kind == "hash")
    name, _, marker = head.partition("; " if _is_url(head) else ";")
    name, marker = name.strip(), marker.strip()
    path = re.sub(r"\[[^\]]*\]$", "", name)  # pip strips a path's [extras] (``.[train]``)
    kind = REQUIREMENT
    if _is_url(name):
        kind = URL
    elif path.lower().endswith(_ARCHIVES) and ("@" not in name or _looks_like_path(name.split("@", 1)[0])):
        kind = LOCAL
    elif name.startswith((".", "~")):  # a path; no requirement starts so
        kind = LOCAL
    elif "@" in name or "/" in name:  # ``name @ url``, or a path (packaging is loaded only for these)
        req = _parsed(name)
        kind = LOCAL if req is None and "/" in name else URL if req is not None and req.url else REQUIREMENT
    return Line(kind, line, value=name, marker=marker, hashes=hashes)


def _parsed(text: str) -> Requirement | None:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def _is_url(text: str) -> bool:
    """pip's ``is_url``: a scheme it fetches from (``https:``, ``file:``) or a VCS one (``git+https:``)."""
    scheme, colon, _ = text.partition(":")
    scheme = scheme.lower()
    return bool(colon) and (scheme in _URL_SCHEMES or scheme.split("+", 1)[0] in _VCS)


def _looks_like_path(text: str) -> bool:
    """pip's ``_looks_like_path``: a ``/`` in it, or a leading ``.``."""
    return "/" in text or text.startswith(".")
