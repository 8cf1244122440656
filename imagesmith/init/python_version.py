"""The Python version ``imagesmith init`` proposes: ``--python``, else what the project runs on
(.python-version, runtime.txt, a Hugging Face Space's ``python_version`` in README.md, its conda
environment file's ``python=3.X``, its own Dockerfile's ``FROM python:X``, its CI files), else the
``--base`` image's, else the newest that ``requires-python`` allows, else 3.11."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UsageError
from ..render import generated
from ..spec import DOCKERFILE
from .project_files import CONDA_FILES, read_text

MINORS = [f"3.{m}" for m in range(8, 14)]  # 3.8 .. 3.13: what official python images serve
PYTHON_RE = re.compile(r"3\.\d{1,2}")
_FROM_PYTHON = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(?:\S*/)?python:(3\.\d{1,2})\b", re.M | re.I)
_CI_PYTHON = re.compile(r"(?:python[-_]version|python)\s*[:=]\s*\[?([^\n\]#]*)", re.I)
_CONDA_PYTHON = re.compile(r"^\s*-\s*[\"']?python\s*==?\s*(3\.\d{1,2})(?![\d])", re.M)  # - python=3.9 (.x)
_BASE_PYTHON = re.compile(r"(?:python|py)[:-]?(3)\.?(\d{1,2})(?!\d)", re.I)


def _allowed(project: dict) -> tuple[list[str], str | None]:
    """The minors ``requires-python`` allows (all when it says nothing), and its text."""
    requires = project.get("requires-python")
    if not isinstance(requires, str):
        return list(MINORS), None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return [v for v in MINORS if SpecifierSet(requires).contains(v + ".0")], requires
    except InvalidSpecifier:
        return list(MINORS), requires


def _own_dockerfiles(root: Path) -> list[Path]:
    found = [root / DOCKERFILE, *sorted(root.glob("*.Dockerfile")), *sorted(root.glob("docker/Dockerfile*"))]
    return [p for p in found if p.is_file() and not generated(p)]


def _ci_files(root: Path) -> list[Path]:
    return [
        *sorted((root / ".github" / "workflows").glob("*.y*ml")),
        *[root / n for n in (".gitlab-ci.yml", ".circleci/config.yml", "tox.ini") if (root / n).is_file()],
    ]


def _space_python(root: Path) -> tuple[str, str] | None:
    """A Hugging Face Space's Python: the YAML header of the project's readme (the Space's
    configuration) names ``python_version``; (the version, why) or None."""
    try:
        readme = next((p for p in root.iterdir() if p.name.lower() == "readme.md" and p.is_file()), None)
    except OSError:
        return None
    front = re.match(r"---\s*\n(.*?)\n---", read_text(readme, 20_000) if readme else "", re.S)
    m = re.search(r"^python_version:\s*[\"']?(3\.\d{1,2})(?!\d)", front.group(1), re.M) if front else None
    if m is None or readme is None:
        return None
    return m.group(1), f"the Space configuration at the top of {readme.name} (python_version: {m.group(1)})"


def base_python(base: str) -> str | None:
    """The Python minor a base image's name says (``python:3.12-slim``, ``…:bookworm-py311``)."""
    name = base.split("@", 1)[0].rsplit("/", 1)[-1]
    m = _BASE_PYTHON.search(name)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def choose_python(root: Path, project: dict, given: str | None, base: str | None) -> tuple[str, str, list[str]]:
    """(the images' Python, why, notes): --python, else what the project runs on (.python-version,
    runtime.txt, its conda environment file, its own Dockerfile's ``FROM python:X``, its CI files), else the --base image's, else the newest
    that requires-python allows, else 3.11."""
    allowed, requires = _allowed(project)
    found: list[tuple[str, str]] = []
    if given:
        if not PYTHON_RE.fullmatch(given):
            raise UsageError(f"--python {given!r} is not a Python version like 3.11", hint="pass --python 3.X")
        found.append((given, "given with --python"))
    pinned = root / ".python-version"
    m = re.match(r"\s*(3\.\d{1,2})", read_text(pinned)) if pinned.is_file() else None
    if m:
        found.append((m.group(1), ".python-version"))
    runtime = root / "runtime.txt"  # Heroku's (and its followers') pin: python-3.10.12
    m = re.match(r"\s*python-(3\.\d{1,2})(?!\d)", read_text(runtime, 200)) if runtime.is_file() else None
    if m:
        found.append((m.group(1), f"runtime.txt (python-{m.group(1)})"))
    space = _space_python(root)
    if space:
        found.append(space)
    for conda in (root / name for name in CONDA_FILES):
        m = _CONDA_PYTHON.search(read_text(conda)) if conda.is_file() else None
        if m:
            found.append((m.group(1), f"{conda.name} (python={m.group(1)})"))
            break
    for dockerfile in _own_dockerfiles(root):
        m = _FROM_PYTHON.search(read_text(dockerfile))
        if m:
            found.append(
                (m.group(1), f"the project's own {dockerfile.relative_to(root).as_posix()} (FROM python:{m.group(1)})")
            )
            break
    for ci in _ci_files(root):
        versions = sorted(
            {v for line in _CI_PYTHON.findall(read_text(ci)) for v in re.findall(r"3\.\d{1,2}", line)},
            key=lambda v: int(v.split(".")[1]),
        )
        usable = [v for v in versions if v in allowed] or versions
        if usable:
            found.append((usable[-1], f"{ci.relative_to(root).as_posix()} (CI runs Python {', '.join(versions)})"))
            break
    from_base = base_python(base) if base else None
    if from_base:
        found.append((from_base, f"the base {base} given with --base"))
    if allowed and requires:
        found.append((allowed[-1], f"the newest Python requires-python {requires!r} allows"))
    found.append(("3.11", "default (nothing in the project names a Python)"))
    python, why = found[0]
    notes = []
    if requires and python not in allowed:
        notes.append(f"python {python} ({why}) is not allowed by requires-python {requires!r}")
    if from_base and from_base != python:
        notes.append(f"the base {base} looks like Python {from_base}, not {python}: the lock refuses a mismatch")
    return python, why, notes
