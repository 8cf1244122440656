"""The lock's inputs: one digest for each thing a lock is made from (``INPUT_NAMES``), so that
``lock`` with unchanged inputs does nothing and ``lock --check`` can say which input changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from .. import runtime_wheel
from ..errors import LockError
from ..fsutil import sha256_bytes
from ..runtime import preprocessing
from ..spec import PYPROJECT, Spec
from ..spec.problems import show
from ..statcache import StatCache
from . import Lock, preprocessing_digest
from .existing import SOURCES
from .pins import Pin
from .resolution_files import (
    dependency_sources,
    dynamic_dependencies,
    read_requirement_files,
    refuse_direct_references,
)

INPUT_NAMES = (
    "resolver",
    "target",
    "requirements",
    "base",
    "system_packages",
    "preprocessing",
    "environment",
    "runtime",
    "installer",
)
# The tool that installs the locked wheels inside the build (template python_env): one exact
# version, whose command line the template is written for. A new version here makes every lock
# stale (input ``installer``) until ``imagesmith lock`` re-pins it.
INSTALLER = "uv==0.13.9"


def _digest_json(value) -> str:
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def preprocessing_files(spec: Spec, stat: StatCache | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` of the preprocessing files (``stat``: digests of unchanged
    files from the stat cache; the same result as ``preprocessing.file_digests``)."""
    if stat is None:
        return preprocessing.file_digests(str(spec.root), spec.preprocessing)
    found = {
        f: stat.sha256(spec.root / f)
        for rel in spec.preprocessing
        for f in preprocessing.files_under(str(spec.root), rel)
    }
    return dict(sorted(found.items()))


def requirement_texts(spec: Spec) -> dict[Path, str]:
    """The spec's requirements file and the files it includes, each read once (``{}`` when the
    spec names none): what ``compute_inputs`` checks, read once for all of a command's platforms."""
    return read_requirement_files(spec.root / spec.requirements.file) if spec.requirements.file else {}


def compute_inputs(spec: Spec, base: str, texts: Mapping[Path, str] | None = None) -> dict[str, str]:
    """A digest for each input of the lock. Pure function of the spec and the files it names
    (their digests come from the stat cache when a file is unchanged: statcache.py). ``texts``:
    ``requirement_texts(spec)`` when the caller has read them (else read here)."""
    stat = StatCache.for_project(spec.root)
    req = spec.requirements
    req_material: dict = {"inline": list(req.inline), "extras": list(req.extras), "files": {}}
    if spec.index_url or spec.extra_index_urls or spec.package_indexes:  # only when set: older locks keep their digest
        req_material["indexes"] = {"index_url": spec.index_url, "extra_index_urls": list(spec.extra_index_urls)}
        if spec.package_indexes:
            req_material["indexes"]["package_indexes"] = dict(spec.package_indexes)
    if req.file:
        for f, text in (requirement_texts(spec) if texts is None else texts).items():
            if not _inside(spec.root, f):
                raise LockError(
                    f"{req.file} includes {show(f.name)}, which is outside the project directory",
                    hint="keep every -r/-c file inside the project (symlinks too)",
                )
            # no index_url: the default one, PyPI, which a file may name too (-i https://pypi.org/simple)
            indexes = [spec.index_url or "https://pypi.org/simple", *spec.extra_index_urls]
            refuse_direct_references(
                text, spec.root, _rel(spec.root, f), [*indexes, *(u for _, u in spec.package_indexes)]
            )
            req_material["files"][_rel(spec.root, f)] = stat.sha256(f)
    if req.groups:  # only when set, like indexes: other locks keep their digest
        req_material["groups"] = list(req.groups)
    if req.lock:
        req_material["lock"] = req.lock
    for name, used in ((PYPROJECT, req.pyproject or bool(req.lock)), (SOURCES.get(req.lock or "", ""), bool(req.lock))):
        if not used or not (spec.root / name).exists():
            continue
        if not _inside(spec.root, spec.root / name):
            raise LockError(
                f"{name} is a symlink out of the project directory", hint="keep the project's files inside it"
            )
        req_material["files"][name] = stat.sha256(spec.root / name)
    if spec.project is not None:  # only when installed, like indexes: other locks keep their digest
        req_material["build_system"] = list(spec.project.requires)
        if (spec.root / PYPROJECT).is_file() and _inside(spec.root, spec.root / PYPROJECT):
            req_material["files"].setdefault(PYPROJECT, stat.sha256(spec.root / PYPROJECT))
    if req.pyproject and dynamic_dependencies(spec.root / PYPROJECT):
        # the backend reads the dependencies from the project's files (see dependency_sources)
        for f in dependency_sources(spec.root):
            req_material["files"].setdefault(_rel(spec.root, f), stat.sha256(f))
    inputs = {
        "resolver": _digest_json(spec.resolver),
        "target": _digest_json({"python": spec.python, "platform": spec.platform}),
        "requirements": _digest_json(req_material),
        "base": _digest_json(base),
        "system_packages": _digest_json(list(spec.system_packages)),
        "preprocessing": preprocessing_digest(preprocessing_files(spec, stat)),
        "environment": _digest_json({"seed": spec.seed, "determinism": spec.determinism, "env": spec.env_dict}),
        "runtime": runtime_wheel.build().sha256,
        "installer": _digest_json(INSTALLER),
    }
    stat.save()
    return inputs


def _inside(root: Path, f: Path) -> bool:
    try:
        Path(f).resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def runtime_pin() -> Pin:
    """This imagesmith's runtime wheel as the lock pins it."""
    built = runtime_wheel.build()
    return Pin(built.name, built.version, (built.sha256,))


def _rel(root: Path, f: Path) -> str:
    try:
        return f.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return f.as_posix()


def changed_inputs(lock: Lock, inputs: dict[str, str]) -> list[str]:
    return [name for name in INPUT_NAMES if lock.inputs.get(name) != inputs.get(name)]
