"""Distributions published only as source (an sdist, no wheel for the target), inside the build.

Standard library only (part of the ``imagesmith-runtime`` wheel): the build runs it from that
wheel as ``python3 -m imagesmith_runtime.sdists``. Two steps, both reading the pip-format
``requirements.lock``:

``sdists REQUIREMENTS WHEELS``
    prints the requirement lines (with their locked hashes) of the distributions for which
    WHEELS holds an sdist and no wheel. The ``sdist-build`` stage gives them to
    ``pip wheel --require-hashes``: the sdist is checked against the lock, then built with the
    compilers that stage installs (which never reach the images).

``rehash REQUIREMENTS BUILT``
    prints REQUIREMENTS with the hashes of each distribution built in BUILT replaced by the
    sha256 of the wheel built from its (hash-checked) sdist, so the install step still runs
    its ``uv pip install --require-hashes`` over everything.
"""

import hashlib
import os
import re
import sys

_BLOCK_HEAD = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
_SDIST = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)\.(?:tar\.gz|zip)$")


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def blocks(text):
    """[(name, version, lines)] of a requirements.lock, one block per distribution; comments
    and blank lines are kept as blocks with name None."""
    out = []
    for line in text.splitlines():
        m = _BLOCK_HEAD.match(line)
        if m:
            out.append((normalise(m.group(1)), m.group(2), [line]))
        elif line.startswith((" ", "\t")) and out and out[-1][0] is not None:
            out[-1][2].append(line)
        else:
            out.append((None, None, [line]))
    return out


def _artifacts(folder):
    wheels, sdists = set(), {}
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if entry.endswith(".whl"):
            parts = entry[:-4].split("-")
            wheels.add((normalise(parts[0]), parts[1]))
        else:
            m = _SDIST.match(entry)
            if m:
                sdists[(normalise(m.group("name")), m.group("version"))] = entry
    return wheels, sdists


def sdist_requirements(text, folder):
    wheels, sdists = _artifacts(folder)
    keep = []
    for name, version, lines in blocks(text):
        if name is not None and (name, version) in sdists and (name, version) not in wheels:
            keep.append("\n".join(lines).rstrip(" \\"))
    return "\n".join(keep) + ("\n" if keep else "")


def rehash(text, built):
    digests = {}
    for entry in sorted(os.listdir(built)) if os.path.isdir(built) else []:
        if entry.endswith(".whl"):
            parts = entry[:-4].split("-")
            with open(os.path.join(built, entry), "rb") as fh:
                digests[(normalise(parts[0]), parts[1])] = hashlib.sha256(fh.read()).hexdigest()
    out = []
    for name, version, lines in blocks(text):
        if name is not None and (name, version) in digests:
            out += [lines[0].split(" \\")[0] + " \\", "    --hash=sha256:" + digests[(name, version)]]
        else:
            out += lines
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 3 or argv[0] not in ("sdists", "rehash"):
        sys.stderr.write("usage: python -m imagesmith_runtime.sdists {sdists|rehash} REQUIREMENTS FOLDER\n")
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        text = fh.read()
    sys.stdout.write(sdist_requirements(text, argv[2]) if argv[0] == "sdists" else rehash(text, argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
