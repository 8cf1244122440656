"""The project's files as ``imagesmith init`` sees them: its Python files minus tests, docs,
virtualenvs and hidden folders; its top-level modules and packages (the code layout, flat or
src); and lenient reading (a file that cannot be read is empty)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .. import fsutil, project_code

SKIP_DIRS = {
    "tests",
    "test",
    "docs",
    "doc",
    "examples",
    "scripts",
    "build",
    "dist",
    "artifacts",
    "notebooks",
    "node_modules",
    "venv",
    "env",
    "site-packages",
    "__pycache__",
}
PREPROCESSING_NAMES = ("preprocessing", "features", "transforms")
MINORS = [f"3.{m}" for m in range(8, 14)]  # 3.8 .. 3.13: what official python images serve


def read_toml(path: Path) -> dict:
    try:
        return fsutil.read_toml(path)
    except (OSError, ValueError):
        return {}


def read_text(path: Path, limit: int = 200_000) -> str:
    """The start of a project file (at most ``limit`` bytes) as text; empty when it cannot be
    read or is not a regular file (a FIFO is not waited on)."""
    try:
        return fsutil.read_head(path, limit).decode("utf-8", errors="replace")
    except OSError:
        return ""


def src_is_package(root: Path) -> bool:
    """``src/`` used as a package (``src/__init__.py``, or ``from src.x import …`` in the code):
    the code runs from the project's root with ``src`` importable, so it is not a src layout."""
    src = root / "src"
    if not src.is_dir():
        return False
    if (src / "__init__.py").is_file():
        return True
    for path in python_files(root, limit=500):
        text = read_text(path, 100_000)
        if re.search(r"^\s*(?:from\s+src(?:\.\w+)*\s+import|import\s+src\.)", text, re.M):
            return True
    return False


def _skipped(rel_parts: tuple[str, ...], root: Path) -> bool:
    return any(part.startswith(".") or part in SKIP_DIRS - {"scripts"} for part in rel_parts[:-1])


def python_files(root: Path, limit: int = 3000) -> list[Path]:
    """The project's Python files, minus tests, docs, virtualenvs and hidden folders (scripts/ in)."""
    found: list[Path] = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if _skipped(parts, root) or any(
            (root.joinpath(*parts[:i]) / "pyvenv.cfg").exists() for i in range(1, len(parts))
        ):
            continue
        if path.name in ("setup.py", "conftest.py", "noxfile.py") or path.name.startswith("test_"):
            continue
        if path.is_symlink():  # never copied as code (code_layout skips links): its target is found by its own name
            continue
        found.append(path)
        if len(found) >= limit:
            break
    return found


def code_layout(root: Path, src_package: bool) -> tuple[list[str], list[str], str]:
    """(source paths, preprocessing paths, layout)."""
    src = root / "src"
    top = src if not src_package and src.is_dir() and any(src.glob("*/__init__.py")) else root
    layout = "src" if top != root else "flat"
    source: list[str] = []
    prep: list[str] = []
    for entry in sorted(top.iterdir()):
        rel = entry.relative_to(root).as_posix()
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_dir():
            if entry.name in SKIP_DIRS or (entry / "pyvenv.cfg").exists():
                continue
            if entry == src and src_package:
                source.append(rel + "/")  # src/ as a package: imported as src.x from the root
                continue
            if not (entry / "__init__.py").is_file():
                continue
            (prep if entry.name in PREPROCESSING_NAMES else source).append(rel + "/")
        elif entry.suffix == ".py" and entry.name not in ("setup.py", "conftest.py", "noxfile.py"):
            source.append(rel)
    return source, prep, layout


def module_name(root: Path, path: Path, layout: str = "flat") -> str:
    base = root / "src" if layout == "src" and (root / "src") in path.parents else root
    parts = path.relative_to(base).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path, layout: str) -> dict[str, tuple[Path, ast.Module]]:
    modules: dict[str, tuple[Path, ast.Module]] = {}
    for path in python_files(root):
        tree = project_code.read(path)
        if tree is not None:
            modules.setdefault(module_name(root, path, layout), (path, tree))
    return modules


def in_package(root: Path, path: Path, code_layout: str) -> bool:
    """Whether every folder from the project's root (src/ in the src layout) down to ``path`` is
    a package."""
    folder = path.parent
    stops = (root, root / "src") if code_layout == "src" else (root,)
    if folder in stops:
        return False
    while folder not in stops and folder != folder.parent:
        if not (folder / "__init__.py").is_file():
            return False
        folder = folder.parent
    return True


def covered(rel: str, source: list[str]) -> bool:
    return any(rel == s.rstrip("/") or (s.endswith("/") and rel.startswith(s)) for s in source)


_PROJECT_FILES = ("pyproject.toml", "requirements.txt", "requirements.in")
# A conda environment file's names: its python=3.X is read, its packages named, never installed.
CONDA_FILES = ("environment.yml", "environment.yaml", "conda.yaml")


def _subfolders(parent: Path) -> list[Path]:
    """The folders in ``parent`` that may hold a project (hidden ones, virtualenvs, tests, docs
    and links left out); none when it cannot be read."""
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return []
    return [
        d
        for d in entries
        if d.is_dir()
        and not d.is_symlink()
        and not d.name.startswith(".")
        and d.name not in SKIP_DIRS - {"scripts"}
        and not (d / "pyvenv.cfg").exists()
    ]


def projects_below(root: Path) -> list[tuple[str, str]]:
    """Folders one or two levels down that declare their own dependencies (a monorepo's
    modelserver/requirements.txt, services/api/pyproject.toml): (folder, the file), by name."""
    found: list[tuple[str, str]] = []
    level = [root]
    for _ in range(2):
        below: list[Path] = []
        for folder in [d for parent in level for d in _subfolders(parent)][:200]:
            name = next((n for n in _PROJECT_FILES if (folder / n).is_file()), None)
            if name is None:
                below.append(folder)
            else:
                found.append((folder.relative_to(root).as_posix(), name))
        level = below
    return found


def conda_packages(path: Path) -> list[str]:
    """The conda packages (not its ``pip:`` ones, nor python and pip) a conda environment file
    lists, by name; none when it cannot be read (or is nested too deeply to)."""
    import yaml

    from ..spec.load import _strict_loader  # the spec's own reader: nesting stops it early, not Python's stack

    try:
        data = yaml.load(read_text(path, 200_000), Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, RecursionError):  # nested too deeply: unreadable, as a broken file is
        return []
    deps = data.get("dependencies") if isinstance(data, dict) else None
    names = (
        (re.split(r"[=<>!~ \[]", d.strip(), maxsplit=1)[0] for d in deps if isinstance(d, str))
        if isinstance(deps, list)
        else ()
    )
    return [n.split("::")[-1] for n in names if n and n.split("::")[-1] not in ("python", "pip")]
