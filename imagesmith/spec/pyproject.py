"""What a project's pyproject.toml tells the spec: its ``[project]`` table, whether it is an
installable package (``project_package``, which ``imagesmith init`` asks too) and, when the spec
names no requirements, where they come from."""

from __future__ import annotations

import re
from pathlib import Path

from .. import fsutil
from . import PYPROJECT, ProjectPackage, Requirements
from .problems import Problems
from .schema import LOCK_SOURCES, NAME_GROUP_RE


def read_pyproject(root: Path) -> dict:
    """The parsed pyproject.toml of ``root``: empty when it is absent, a symlink or unreadable."""
    pyproject = root / PYPROJECT
    if pyproject.is_file() and not pyproject.is_symlink():
        try:
            return fsutil.read_toml(pyproject)
        except (OSError, UnicodeDecodeError, fsutil.tomllib.TOMLDecodeError):
            return {}
    return {}


# PEP 517/518's fallback for a pyproject.toml without [build-system], as pip applies it.
FALLBACK_BUILD_SYSTEM = {"requires": ["setuptools>=40.8.0"], "build-backend": "setuptools.build_meta:__legacy__"}


def src_layout(root: Path) -> bool:
    """``src/`` holds the project's packages (``src/<pkg>/__init__.py``), and is not itself a
    package (``src/__init__.py``: code that imports ``src.x`` from the project's folder)."""
    src = root / "src"
    return src.is_dir() and not (src / "__init__.py").exists() and any(src.glob("*/__init__.py"))


def project_package(pyproject: dict, *, src_layout: bool = False) -> tuple[ProjectPackage | None, list[str]]:
    """The installable project a parsed pyproject.toml describes, or None and what it lacks:
    ``[project]`` with a static ``name``, ``[build-system]`` with a ``build-backend`` and a
    non-empty ``requires`` list. Pure (``imagesmith init`` asks the same question).

    A src layout (``src_layout``) without any ``[build-system]`` is installable the way the
    packaging standards say and pip does: setuptools' legacy backend (``FALLBACK_BUILD_SYSTEM``),
    since its packages are importable only installed. A flat layout without one is not: its code
    is importable from the working folder as it is, and uv treats such a project as virtual
    (never installed); so is any project whose ``[tool.uv] package = false``."""
    project, system = pyproject.get("project"), pyproject.get("build-system")
    tool = pyproject.get("tool")
    uv = tool.get("uv") if isinstance(tool, dict) else None
    virtual = isinstance(uv, dict) and uv.get("package") is False
    if system is None and src_layout and not virtual:
        system = FALLBACK_BUILD_SYSTEM
    missing = []
    name = project.get("name") if isinstance(project, dict) else None
    if not isinstance(project, dict):
        missing.append("a [project] table")
    elif not (isinstance(name, str) and NAME_GROUP_RE.fullmatch(name)):
        missing.append("a static [project].name")
    backend = system.get("build-backend") if isinstance(system, dict) else None
    requires = system.get("requires") if isinstance(system, dict) else None
    if not (isinstance(backend, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:]{0,200}", backend)):
        missing.append("[build-system].build-backend")
    if not (isinstance(requires, list) and requires and all(isinstance(r, str) for r in requires)):
        missing.append("[build-system].requires")
    if missing:
        return None, missing
    assert isinstance(name, str) and isinstance(backend, str) and isinstance(requires, list)
    from packaging.utils import canonicalize_name  # here: most projects have no installable package

    return ProjectPackage(canonicalize_name(name), tuple(requires), backend), []


def project_requirements(root: Path, p: Problems) -> Requirements:
    """No ``requirements`` key: the project's own, as a modern project keeps them. Its lock when
    it has one (uv.lock, then pylock.toml, then poetry.lock, beside a pyproject.toml), else
    ``[project].dependencies`` of its pyproject.toml."""
    pyproject = root / PYPROJECT
    if pyproject.is_file() and not pyproject.is_symlink():
        for key, name in LOCK_SOURCES.items():
            if (root / name).is_file() and not (root / name).is_symlink():
                return Requirements(lock=key)
        project = pyproject_project(pyproject)
        if project is not None:
            return Requirements(pyproject=True)
    p.add(
        "requirements",
        f"missing: give a requirements file, or declare [project] dependencies in {PYPROJECT} "
        "(or bring a uv.lock, pylock.toml or poetry.lock beside it)",
    )
    return Requirements()


def pyproject_project(path: Path) -> dict | None:
    """``[project]`` of a pyproject.toml (None: absent or unreadable; the spec reader reports the latter)."""
    try:
        data = fsutil.read_toml(path)
    except (OSError, UnicodeDecodeError, fsutil.tomllib.TOMLDecodeError):
        return None
    project = data.get("project")
    return project if isinstance(project, dict) else None
