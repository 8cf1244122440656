"""The installer inside the build (uv): its wheel found, hash-checked and unpacked.

Standard library only (part of the ``imagesmith-runtime`` wheel): the install step of the
``shared`` stage runs it from that wheel with the base image's Python, with no network::

    python3 -m imagesmith_runtime.installer LOCK WHEELS OUT

LOCK is the installer's pin in pip's format (one ``name==version`` block with its
``--hash=sha256:`` lines: imagesmith.lock's ``installer`` section, a data file the Dockerfile
copies from .imagesmith/ in the build context); WHEELS the mounted wheelhouse. The wheel of that name and version whose sha256 is
one of the locked hashes is opened (one with another hash is refused, naming it, before anything
of it runs), and the executable it ships as ``<name>-<version>.data/scripts/<name>`` is written
to OUT with mode 0755. OUT is on the step's tmpfs: the installer never reaches a layer.
"""

from __future__ import annotations

import os
import re
import sys
import zipfile

from .errors import ImagesmithError
from .files import sha256_file
from .sdists import blocks, normalise

_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


class InstallerError(ImagesmithError):
    """The installer's wheel is missing, or is not the one the lock pins."""


def locked_pin(text: str) -> tuple[str, str, set[str]]:
    """(name, version, hashes) of the one pin in an installer lock."""
    pins = [(name, version, set(_HASH.findall(" ".join(lines)))) for name, version, lines in blocks(text) if name]
    if len(pins) != 1 or not pins[0][2]:
        raise InstallerError("the installer lock must pin exactly one distribution, with its hashes")
    return pins[0]


def find_wheel(name: str, version: str, hashes: set[str], folder: str) -> str:
    """The path of the wheel of ``name==version`` in ``folder`` with a locked hash."""
    seen = []
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        parts = entry[:-4].split("-") if entry.endswith(".whl") else []
        if len(parts) >= 5 and normalise(parts[0]) == name and parts[1] == version:
            path = os.path.join(folder, entry)
            if sha256_file(path) in hashes:
                return path
            seen.append(entry)
    if seen:
        raise InstallerError(
            f"the installer wheel {', '.join(seen)} does not match its locked hash ({name}=={version})"
        )
    raise InstallerError(f"no wheel of the installer {name}=={version} in {folder}")


def unpack(wheel: str, name: str, version: str, out: str) -> str:
    """Write the wheel's ``<name>`` script (the installer's executable) to ``out``, mode 0755."""
    member = f"{name.replace('-', '_')}-{version}.data/scripts/{name}"
    with zipfile.ZipFile(wheel) as archive:
        try:
            data = archive.read(member)
        except KeyError:
            raise InstallerError(f"{os.path.basename(wheel)} holds no {member}") from None
    with open(out, "wb") as fh:
        fh.write(data)
    os.chmod(out, 0o755)
    return out


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: python -m imagesmith_runtime.installer LOCK WHEELS OUT\n")
        return 2
    try:
        with open(argv[0], encoding="utf-8") as fh:
            name, version, hashes = locked_pin(fh.read())
        unpack(find_wheel(name, version, hashes, argv[1]), name, version, argv[2])
    except (InstallerError, OSError, zipfile.BadZipFile) as exc:
        sys.stderr.write(f"imagesmith: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
