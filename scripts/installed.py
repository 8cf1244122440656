"""`make install` runs pip only when this interpreter lacks something (pip's editable install takes
15 s even when nothing changed: it builds the editable wheel in an isolated environment).

    python scripts/installed.py           exit 0: nothing to install; 1: install (the reason printed)
    python scripts/installed.py --record  after a successful install: remember this pyproject.toml

Nothing is to be installed when imagesmith is installed in editable mode from THIS tree, every
requirement of pyproject.toml (dependencies and the test extra) is met by an installed
distribution, and pyproject.toml is the one recorded after the last install by this interpreter
(entry points, package data: what only pip's install applies). Standard library and packaging only.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAMP = REPO / "build" / "install-stamp.json"  # build/ is git-ignored


def _stamp() -> dict[str, str]:
    return {
        "pyproject": hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest(),
        "python": sys.executable,
    }


def missing() -> str:
    """Why an install is needed, or "" when nothing is missing."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            return "no TOML reader (tomli) yet"
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return "packaging is not installed"
    try:
        recorded = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        recorded = None
    if recorded != _stamp():
        return "pyproject.toml changed since the last install by this interpreter (or none was recorded)"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    ours = False
    for dist in metadata.distributions(name=project["name"]):
        info = json.loads(dist.read_text("direct_url.json") or "{}")
        if info.get("url") == REPO.as_uri() and info.get("dir_info", {}).get("editable"):
            ours = dist.version == project["version"]
    if not ours:
        return f"{project['name']} {project['version']} is not installed in editable mode from {REPO}"
    for line in [*project["dependencies"], *project.get("optional-dependencies", {}).get("test", [])]:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            return f"{req.name} is not installed"
        if not req.specifier.contains(version, prereleases=True):
            return f"{req.name} {version} does not meet {req}"
    return ""


def main(argv: list[str]) -> int:
    if argv == ["--record"]:
        STAMP.parent.mkdir(exist_ok=True)
        STAMP.write_text(json.dumps(_stamp()) + "\n")
        return 0
    why = missing()
    if why:
        print(f"make install: installing ({why})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
