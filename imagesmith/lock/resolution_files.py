"""The files a resolution reads: a requirements file and its ``-r``/``-c`` includes, the files
a backend reads dynamic dependencies from, and staging them for a container (``stage_inputs``)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Sequence

from .. import fsutil
from ..credentials import redact, strip_userinfo
from ..errors import LockError, ResolutionError
from ..spec.pyproject import pyproject_project
from .requirement_lines import EDITABLE, INCLUDE, INDEX, LOCAL, URL, requirement_lines


def requirement_files(path: Path, seen: set[Path] | None = None) -> list[Path]:
    """A requirements file and every file it includes with -r / -c, recursively (resolved paths;
    includes are relative to the including file, as pip reads them; URLs are left to the resolver)."""
    return list(read_requirement_files(path, seen))


def read_requirement_files(path: Path, seen: set[Path] | None = None) -> dict[Path, str]:
    """``requirement_files`` with each file's text, each file read once: ``{resolved path: text}``."""
    seen = seen if seen is not None else set()
    try:
        path = Path(path).resolve(strict=True)
    except FileNotFoundError:
        return {}  # a missing include: the resolver names it
    except (OSError, RuntimeError) as exc:
        raise ResolutionError(f"{Path(path).name} cannot be followed: a symlink loop ({exc})") from exc
    if path in seen:
        return {}
    if not path.is_file():
        raise ResolutionError(
            f"{path.name} (a requirements include) is not a regular file", hint="-r and -c name requirements files"
        )
    seen.add(path)
    text = fsutil.read_user_text(path, ResolutionError, shown=path.name, hint="save the requirements file as UTF-8")
    out = {path: text}
    for line in requirement_lines(text):
        if line.kind == INCLUDE and "://" not in line.value:
            out.update(read_requirement_files(path.parent / line.value, seen))
    return out


def named_indexes(text: str) -> list[tuple[str, str]]:
    """The (option, URL) of each index a requirements file's text names (``-i URL``, ``-iURL``,
    ``--index-url=URL``, ``--extra-index-url``, ``--find-links``), as the lock reads them."""
    return [(line.option, line.value) for line in requirement_lines(text) if line.kind == INDEX]


def _same_index(url: str) -> str:
    """The index ``url`` names, as compared: no credentials, no trailing slash, the scheme and host
    in lower case (``https://Mirror.Example/simple/`` is the spec's ``https://mirror.example/simple``)."""
    plain = strip_userinfo(url).rstrip("/")
    scheme, sep, rest = plain.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}{sep}{host.lower()}{slash}{path}" if sep else plain


def index_hint(option: str, url: str) -> str:
    """What to do about an index a requirements file names and the spec does not."""
    if "$" in url:  # pip expands ${VAR} in a requirements file; the spec names an index as it is
        return (
            "name the index itself in the spec (index_url: or extra_index_urls:, without credentials), not the variable"
        )
    if "://" not in url or url.startswith("file:"):
        return "publish those files to a package index and name it in the spec (extra_index_urls:)"
    if option in ("-f", "--find-links"):  # a page of links (torch_stable.html), which no index setting reads
        return (
            "a --find-links page is not a package index: name the index that serves those files in the spec's "
            "extra_index_urls: (PyTorch's wheels: https://download.pytorch.org/whl/cpu, or /whl/cu121 ...)"
        )
    key = "index_url" if option in ("-i", "--index-url") else "extra_index_urls"
    return (
        f"name it in the spec too ({key}: in imagesmith.yaml, without credentials: see docs/guides/private-indexes.md)"
    )


def _the_project(target: str, root: Path) -> bool:
    """Whether a local requirement (``.``, ``./``, ``.[train]``) is the project itself: pip and uv
    read its path from the working directory, where the lock runs them (the project's root), so
    ``-e .`` in requirements/prod.txt is the project too, and ``-e ..`` there is its parent."""
    where = re.sub(r"\[[^\]]*\]$", "", target).strip() or "."
    return (root / where).resolve() == root.resolve()


def refuse_direct_references(text: str, root: Path, shown: str, indexes: Sequence[str] = ()) -> None:
    """Refuse a requirement the lock cannot pin from a package index with hashes: an editable
    (``-e ./libs/x``, ``-e git+https://…``), a local path (a folder, a wheel or sdist file) or a
    URL (``name @ https://…``, ``git+https://…``). The resolvers pass these through and the lock
    would leave them out, so the images would lack them. The project itself (``-e .``, ``.``) is
    the exception: imagesmith copies it (``source``) or installs it (``install_project``).
    Also an index the file names (``--extra-index-url``, ``-i``, ``--find-links``) that is not
    one of the spec's ``indexes``: the resolver would read it, but the wheel download and the
    images' install use the spec's alone, so a pin found only there failed later as 'no wheel'.
    ``text`` is the requirements file's (``read_requirement_files``), ``shown`` its name."""
    known = {_same_index(u) for u in indexes}
    for line in requirement_lines(text):
        if line.kind == INDEX and _same_index(line.value) not in known:
            raise LockError(
                f"{shown} names the package index {_same_index(line.value)!r} ({line.option}): the resolver "
                "would read it, but the wheel download and the images' install read only the spec's indexes",
                hint=index_hint(line.option, line.value),
            )
        if line.kind not in (EDITABLE, LOCAL, URL):
            continue  # a name and a version (what the index serves), -r/-c (followed elsewhere), another option
        if line.kind != URL and "://" not in line.value and _the_project(line.value, root):
            continue  # the project itself
        raise LockError(
            f"{shown} asks for {redact(line.text)[:120]!r}: an editable, local-path or URL requirement, which the lock "
            "cannot pin from a package index with hashes (the images would be built without it)",
            hint="publish it to a package index, or make its code part of this project (source:); "
            "`-e .` for the project itself is fine",
        )


def dynamic_dependencies(pyproject: Path) -> bool:
    """Does ``pyproject`` leave its dependencies to its build backend (``dynamic``)?"""
    dynamic = (pyproject_project(pyproject) or {}).get("dynamic")
    return isinstance(dynamic, list) and bool({"dependencies", "optional-dependencies"} & set(dynamic))


def project_files(root: Path) -> list[Path]:
    """The project's files a build backend may read, without what never goes into an image
    (``layout.IGNORED``, at any depth) and without links (a link may leave the project)."""
    from fnmatch import fnmatch

    from ..layout import IGNORED

    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not any(fnmatch(d, pat) for pat in IGNORED))
        for name in sorted(names):
            path = Path(folder) / name
            if not path.is_symlink() and path.is_file() and not any(fnmatch(name, pat) for pat in IGNORED):
                out.append(path)
    return out


def dependency_sources(root: Path) -> list[Path]:
    """The files dynamic dependencies are read from, as far as imagesmith can tell without running
    the backend: setup.py, setup.cfg, requirements*.txt/.in at the top, and the files named by
    ``[tool.setuptools.dynamic]`` ``dependencies``/``optional-dependencies``. (Code files are left
    out on purpose: a one-line edit must not re-resolve. A backend that reads others needs an
    explicit ``imagesmith lock`` after they change.)"""
    names = {"setup.py", "setup.cfg"}
    names.update(p.name for p in root.glob("requirements*.txt"))
    names.update(p.name for p in root.glob("requirements*.in"))
    try:
        tool = fsutil.read_toml(root / "pyproject.toml").get("tool") or {}
        dynamic = (tool.get("setuptools") or {}).get("dynamic") or {}
    except (OSError, UnicodeDecodeError, fsutil.tomllib.TOMLDecodeError, AttributeError):
        dynamic = {}
    entries = [dynamic.get("dependencies")]
    optional = dynamic.get("optional-dependencies")
    entries += list(optional.values()) if isinstance(optional, dict) else []
    for entry in entries:
        files = entry.get("file") if isinstance(entry, dict) else None
        for name in [files] if isinstance(files, str) else files if isinstance(files, list) else []:
            if isinstance(name, str):
                names.add(name)
    found = []
    for name in sorted(names):
        path = root / name
        if path.is_file() and not path.is_symlink() and path.resolve().is_relative_to(root.resolve()):
            found.append(path)
    return found


def stage_inputs(inputs: Sequence[Path], dest: Path) -> list[str]:
    """Copy the inputs and every file they include into ``dest``, keeping their layout relative to
    one another (so ``-r ../base.txt`` still resolves), and return the inputs' paths relative to
    ``dest``. A container then sees exactly the files the resolution reads, and nothing else of
    the project: a pyproject.toml is copied alone (its static dependencies are all pip-compile
    reads), unless its dependencies are dynamic: then its build backend reads them from the
    project's files (``project_files``), so the project is copied without what is ignored."""
    files: set[Path] = set()
    for p in inputs:
        if Path(p).name != "pyproject.toml":
            files.update(requirement_files(p))
        elif dynamic_dependencies(Path(p)):
            files.update(f.resolve() for f in project_files(Path(p).resolve().parent))
        else:
            files.add(Path(p).resolve())
    root = Path(os.path.commonpath([str(f.parent) for f in files])) if files else Path("/")
    for f in sorted(files):
        target = dest / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    return [Path(p).resolve().relative_to(root).as_posix() for p in inputs]
