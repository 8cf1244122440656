"""``imagesmith build``: lock when needed, render, build train and serve with BuildKit, tag, push.

Each target goes straight into the engine's image store. Images are reproducible because the
rendered Dockerfile sets every file time itself and SOURCE_DATE_EPOCH (the project's last commit
time) sets the config's; the wheels come from a host cache keyed by hash (``wheels.py``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import parity
from .credentials import SECRET_ID, index_netrc, secret_file
from .engine import Engine, git_epoch, git_revision, git_source
from .errors import UsageError
from .fsutil import atomic_write
from .lock import Lock, ensure_fresh, lock_project
from .render import dockerignore, dockerignore_path, render
from .spec import Spec
from .wheels import WheelCache, default_cache_dir

ROLES = ("train", "serve")


@dataclass
class BuiltImage:
    role: str
    ref: str
    id: str
    pushed: str | None = None  # REGISTRY/REPO@sha256:... when pushed


@dataclass
class BuildResult:
    parity: str
    images: dict[str, BuiltImage] = field(default_factory=dict)
    dockerfile: Path | None = None

    def as_json(self) -> dict:
        out = {"parity": self.parity, "images": {}}
        for role, img in self.images.items():
            entry = {"ref": img.ref, "id": img.id}
            if img.pushed:
                entry["pushed"] = img.pushed
            out["images"][role] = entry
        return out


@dataclass
class BuildOptions:
    base: str | None = None
    locked: bool = False
    tag: str | None = None  # repository for the tags; default: the spec's name
    no_cache: bool = False
    builder: str | None = None
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    push: str | None = None
    epoch: int | None = None
    targets: tuple[str, ...] = ROLES
    install: str | None = None  # hermetic | online; default: the spec's
    cache_dir: Path | None = None  # the wheel cache; default ~/.cache/imagesmith


def source_date_epoch(root: Path) -> int:
    """The project's last commit time, or 0 outside git: never the build's own clock."""
    epoch = git_epoch(root)
    return epoch if epoch is not None else 0


def describe_failure(spec: Spec) -> Callable[[str], str]:
    """Map BuildKit's failing step back to the part of the spec it came from."""

    def describe(log: str) -> str:
        failing = ""
        for line in log.splitlines():
            m = re.search(r"\[(?:[\w-]+ )?\d+/\d+\] (.*)", line)
            if m and ("ERROR" in line or "error" in line.lower()):
                failing = m.group(1)
        if not failing:
            m = re.search(r'ERROR: failed to solve: process "(.*?)" did not complete', log, re.S)
            failing = m.group(1) if m else ""
            if not failing:
                m = re.search(r"ERROR: failed to solve: (.*)", log)
                failing = m.group(1) if m else ""
        if "apt-get" in failing:
            pkgs = re.findall(r"Unable to locate package (\S+)|E: Version '([^']+)' for '([^']+)'", log)
            named = ", ".join(sorted({p[0] or p[2] for p in pkgs})) if pkgs else ", ".join(spec.system_packages)
            return f"system_packages ({named})"
        if "pip" in failing:
            m = re.search(r"(?:for|of|match) (?:the )?(?:package |requirement )?([A-Za-z0-9_.-]+==[^\s:]+)", log)
            dist = m.group(1) if m else "one of the locked distributions"
            if "THESE PACKAGES DO NOT MATCH THE HASHES" in log:
                m = re.search(r"([A-Za-z0-9_.-]+==[^\s:]+) from ", log)
                dist = m.group(1) if m else dist
                return f"requirements ({dist}: a wheel does not match its locked hash)"
            return f"requirements ({dist})"
        for key, paths in (("preprocessing", spec.preprocessing), ("source", spec.source)):
            for path in paths:
                if path in failing:
                    return f"{key} ({path})"
        return failing[:120]

    return describe


def build_project(spec: Spec, engine: Engine, options: BuildOptions, *, progress=lambda msg: None,
                  echo: Callable[[str], None] | None = None) -> BuildResult:
    unknown = [t for t in options.targets if t not in ROLES]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}; imagesmith builds train and serve")
    base = options.base or spec.base
    engine.client  # fail early, with the engine hint, when there is no engine
    engine.buildx_available()
    if options.locked:
        lock = ensure_fresh(spec, base)
    else:
        result = lock_project(spec, engine, base=base, progress=progress)
        if result.changed:
            progress(f"locked ({', '.join(result.changed)} changed)")
        lock = result.lock
    text = render(spec, lock)
    dockerfile = spec.dockerfile_path
    ignore = dockerignore(spec)
    if not _holds(dockerignore_path(dockerfile), ignore):
        atomic_write(dockerignore_path(dockerfile), ignore)
    if not _holds(dockerfile, text):
        atomic_write(dockerfile, text)
        progress(f"rendered {dockerfile.name}")
    digest = parity.digest(parity.manifest_from_lock(lock))
    epoch = options.epoch if options.epoch is not None else source_date_epoch(spec.root)
    args = build_args(spec.root, epoch)
    repo = options.tag or spec.name
    result = BuildResult(parity=digest, dockerfile=dockerfile)
    contexts = build_contexts(spec, lock, options, progress)
    progress(f"building {' and '.join(options.targets)}")
    refs = {role: f"{repo}:{role}" for role in options.targets}
    with secret_file(index_netrc(lock.index_url, lock.extra_index_urls)) as netrc:
        ids = engine.build(
            context=spec.root, dockerfile=dockerfile, targets=refs, build_args=args, build_contexts=contexts,
            epoch=epoch, builder=options.builder, cache_from=options.cache_from, cache_to=options.cache_to,
            no_cache=options.no_cache, echo=echo, describe_failure=describe_failure(spec),
            secrets={SECRET_ID: netrc} if netrc else None,
        )
    for role in options.targets:
        result.images[role] = BuiltImage(role=role, ref=refs[role], id=ids[role])
    if options.push:
        for role, img in result.images.items():
            remote = f"{options.push}:{role}"
            engine.tag(img.id, remote)
            progress(f"pushing {remote}")
            img.pushed = f"{options.push}@{engine.push(remote)}"
    return result


def _holds(path: Path, text: str) -> bool:
    try:
        return path.is_file() and path.read_bytes() == text.encode("utf-8")
    except OSError:
        return False


def build_args(root: Path, epoch: int) -> dict[str, str]:
    created = dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "IMAGESMITH_CREATED": created,
        "IMAGESMITH_REVISION": git_revision(root) or "unknown",
        "IMAGESMITH_SOURCE": git_source(root) or "unknown",
    }


def build_contexts(spec: Spec, lock: Lock, options: BuildOptions, progress=lambda msg: None) -> dict[str, str]:
    """Named build contexts that replace stages of the rendered Dockerfile. Hermetic installs
    (the default) replace the `wheels` stage with a wheelhouse prepared on the host."""
    install = options.install or spec.install
    if install == "online":
        return {}
    cache = WheelCache(options.cache_dir or default_cache_dir())
    return {"wheels": str(cache.wheelhouse(lock, progress=progress))}
