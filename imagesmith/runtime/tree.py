"""Files for a layer of ``shared``, made in a stage of their own instead of by a RUN in ``shared``.

Standard library only (part of the ``imagesmith-runtime`` wheel). The stages that make the images'
user and the project-setup layer run it from that wheel with the Python of the build platform's
image of the base (or the target's: ``python_env.py``), with the target's base mounted read-only
at ROOT, and write what the layer adds under OUT, laid out from ``/``; ``shared`` copies OUT. A
COPY gives every folder it writes the mode, owner and time the folder has under OUT, even a folder
the image has already (``/etc``, ``/tmp``), so each folder is made with the mode and owner of the
same folder in the target (``0o755`` and root where the target has none) and the time 0::

    python3 -m imagesmith_runtime.tree dirs ROOT OUT [--owner UID:GID] PATH...
    python3 -m imagesmith_runtime.tree user ROOT OUT NAME PASSWD GROUP SHADOW GSHADOW

``dirs`` makes each PATH (absolute) and its parents under OUT, PATH itself owned by ``--owner``
when given. ``user`` writes, when the target's ``/etc/passwd`` has no line for NAME, copies of
its ``/etc/passwd`` and ``/etc/group`` (and ``/etc/shadow``, ``/etc/gshadow`` where it has them)
with the line given for each appended (as ``echo LINE >> FILE`` would), each with the original's
mode and owner; ``/etc`` itself is made either way. Everything made gets the time 0, so the layer
is the same on every build. A PATH that is relative, has ``..`` in it or goes through a symbolic
link of the target is refused: a COPY would replace the link with a folder.
"""

from __future__ import annotations

import os
import stat
import sys

from .errors import ImagesmithError


class TreeError(ImagesmithError):
    """A path a layer cannot make as asked."""


def _parts(path: str) -> list[str]:
    if not path.startswith("/") or ".." in path.split("/") or "\0" in path:
        raise TreeError(f"{path!r} is not an absolute path without '..'")
    parts = [p for p in path.split("/") if p and p != "."]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _zero(path: str) -> None:
    os.utime(path, (0, 0), follow_symlinks=False)


def dirs(root: str, out: str, path: str, owner: tuple[int, int] | None = None) -> list[str]:
    """Make ``path`` and its parents under ``out``, each with the mode and owner of the same
    folder under ``root`` (``0o755``, root, where ``root`` has none), ``path`` itself owned by
    ``owner`` when given, every one with the time 0. Returns the paths made, parents first."""
    made = []
    chain = _parts(path)
    for folder in chain:
        there = root.rstrip("/") + folder
        mode, uid, gid = 0o755, 0, 0
        if os.path.lexists(there):
            st = os.lstat(there)
            if stat.S_ISLNK(st.st_mode):
                raise TreeError(
                    f"{path} goes through the symbolic link {folder} in the base image; name the folder it points to"
                )
            if not stat.S_ISDIR(st.st_mode):
                raise TreeError(f"{path} needs a folder where the base image has the file {folder}")
            mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        if folder == chain[-1] and owner is not None:
            uid, gid = owner
        here = out.rstrip("/") + folder
        os.makedirs(here, exist_ok=True)
        os.chown(here, uid, gid, follow_symlinks=False)
        os.chmod(here, mode)
        made.append(here)
    for here in [*reversed(made), out]:  # children first: making one never moves a parent's time again
        _zero(here)
    return made


USER_FILES = ("passwd", "group", "shadow", "gshadow")


def user(root: str, out: str, name: str, lines: dict[str, str]) -> list[str]:
    """The target's account files with the images' user appended (see the module's docstring);
    ``lines``: ``{file name in /etc: the line}``. Returns the files written ([]: the user exists)."""
    etc = root.rstrip("/") + "/etc"
    dirs(root, out, "/etc")
    with open(etc + "/passwd", "rb") as fh:
        if any(line.split(b":", 1)[0] == name.encode() for line in fh.read().splitlines()):
            return []
    written = []
    for file in USER_FILES:
        source = f"{etc}/{file}"
        if not os.path.isfile(source):
            if file in ("passwd", "group"):
                raise TreeError(f"the base image has no /etc/{file}")
            continue
        st = os.stat(source)
        with open(source, "rb") as fh:
            data = fh.read()
        dest = f"{out.rstrip('/')}/etc/{file}"
        with open(dest, "wb") as fh:
            fh.write(data + lines[file].encode() + b"\n")
        os.chown(dest, st.st_uid, st.st_gid)
        os.chmod(dest, stat.S_IMODE(st.st_mode))
        _zero(dest)
        written.append(dest)
    _zero(out.rstrip("/") + "/etc")
    return written


def _owner(text: str) -> tuple[int, int]:
    uid, sep, gid = text.partition(":")
    if not (sep and uid.isdigit() and gid.isdigit()):
        raise TreeError(f"--owner takes UID:GID, not {text!r}")
    return int(uid), int(gid)


def main(argv: list[str]) -> int:
    usage = (
        "usage: python -m imagesmith_runtime.tree dirs ROOT OUT [--owner UID:GID] PATH...\n"
        "       python -m imagesmith_runtime.tree user ROOT OUT NAME PASSWD GROUP SHADOW GSHADOW\n"
    )
    try:
        if len(argv) >= 4 and argv[0] == "dirs":
            rest, owner = argv[3:], None
            if rest[0] == "--owner" and len(rest) >= 3:
                owner, rest = _owner(rest[1]), rest[2:]
            for path in rest:
                dirs(argv[1], argv[2], path, owner)
            return 0
        if len(argv) == 8 and argv[0] == "user":
            user(argv[1], argv[2], argv[3], dict(zip(USER_FILES, argv[4:])))
            return 0
    except (TreeError, OSError) as exc:
        sys.stderr.write(f"imagesmith: {exc}\n")
        return 1
    sys.stderr.write(usage)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
