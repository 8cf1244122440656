"""The requirements files ``imagesmith init`` looks for (the usual name, a production one in
``requirements/``), and, when it finds none it can take, the error that names what the project
has instead (a Pipfile, setup.py/setup.cfg, a conda file, a Poetry project without its lock,
requirements files of other names, a monorepo's folders) and how to give it."""

from __future__ import annotations

import shlex
from pathlib import Path

from ..errors import UsageError
from .project_files import CONDA_FILES, projects_below, read_text

# The requirements file init takes, the first found: the usual name, then a production one in
# a requirements/ folder or beside it (requirements/dev.txt, test.txt are for the developer).
REQUIREMENTS_FILES = (
    "requirements.txt",
    "requirements.in",
    *(
        f"requirements/{n}.{x}"
        for n in ("prod", "production", "base", "common", "main", "requirements")
        for x in ("txt", "in")
    ),
    *(f"requirements{s}{n}.txt" for n in ("prod", "production", "base") for s in "-_"),
)


def requirements_files(root: Path) -> list[str]:
    """The project's requirements files (at the root and in requirements/), by name."""
    found = [*root.glob("requirements*.txt"), *root.glob("requirements*.in"), *root.glob("requirements/*.txt")]
    found += root.glob("requirements/*.in")
    return sorted(p.relative_to(root).as_posix() for p in found if p.is_file())


# Files that declare dependencies in a form init does not read, and how to give them instead.
_UNREAD = (  # (file, a text it must hold, what it is, how to give it instead)
    ("Pipfile", "", "Pipenv's Pipfile", "`pipenv requirements > requirements.txt` writes them as a requirements.txt"),
    ("setup.cfg", "install_requires", "setup.cfg's install_requires", None),
    ("setup.py", "", "setup.py's install_requires", None),
    *(
        (
            name,
            "",
            f"conda's {name}",
            "list its packages (its pip: ones, and the conda ones by their PyPI names) in a requirements.txt",
        )
        for name in CONDA_FILES
    ),
)
_SETUPTOOLS_HOW = (
    'list them in a requirements.txt, or add a pyproject.toml with [project] (name, version, dynamic = ["dependencies"]) '
    "and [build-system] (setuptools), so its build backend reads them"
)


def no_requirements(root: Path, pyproject: dict) -> UsageError:
    """The error for a project whose requirements init cannot find, naming what it found instead."""
    tool = pyproject.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("poetry"), dict):
        return UsageError(
            f"{root} is a Poetry project without a poetry.lock: imagesmith reads Poetry's dependencies from its lock",
            hint="run `poetry lock`, then `imagesmith init` again",
        )
    for name, holds, what, how in _UNREAD:
        if (root / name).is_file() and holds in read_text(root / name):
            how = how or _SETUPTOOLS_HOW
            return UsageError(
                f"found no requirements in {root} that imagesmith reads: {what} is not read "
                "(it reads requirements.txt, [project].dependencies, uv.lock, pylock.toml or poetry.lock)",
                hint=f"{how}, then run `imagesmith init` again",
            )
    others = requirements_files(root)
    if others:
        return UsageError(
            f"found no requirements in {root} that init can choose: {', '.join(others)} (none is requirements.txt "
            "or a production one such as requirements/prod.txt)",
            hint=f"write the spec's requirements: by hand (e.g. requirements: {others[0]}), or name the file the "
            "images need requirements.txt",
        )
    below = projects_below(root)
    if below:
        shown = ", ".join(f"{rel}/ ({name})" for rel, name in below[:4]) + (
            f" and {len(below) - 4} more" if len(below) > 4 else ""
        )
        return UsageError(
            f"found no requirements in {root}: no requirements.txt and no [project].dependencies at its root; "
            f"its folders declare their own: {shown}",
            hint=f"a spec is one project's: run `imagesmith init -p {shlex.quote(below[0][0])}` "
            "in each folder that makes images",
        )
    return UsageError(
        f"found no requirements in {root}: no requirements.txt and no [project].dependencies",
        hint="add a requirements.txt (or [project].dependencies), then run `imagesmith init` again",
    )
