"""``imagesmith build``: lock when needed, render, build train and serve with BuildKit, tag, push.

Both targets are built in one ``docker buildx bake`` solve from a bake definition made here
(``bake_definition``, pure). Where the images go depends on the builder: the engine's own
BuildKit (driver ``docker``) puts them straight into its image store; any other builder
(``docker-container``, ``remote``, ...) keeps them in its cache unless ``--load`` (into the
engine) or ``--push`` (straight to the registry, from the build) says otherwise. Digests always
come from BuildKit's metadata. Images are reproducible because the rendered Dockerfile sets
every file time itself and SOURCE_DATE_EPOCH (the project's last commit time) sets the
config's; the wheels come from a host cache keyed by hash (``wheels.py``); a local base image is
handed to the builder as an OCI layout bound to its digest.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import parity
from .engine import Engine
from .engine._common import redact
from .errors import LockError, UsageError
from .fsutil import atomic_write
from .gitinfo import git_epoch, git_revision, git_source
from .layout import ROLES, image_ref
from .lock import Lock, ensure_fresh, lock_project
from .render import render
from .runtime_wheel import write_beside
from .spec import Spec
from .wheels import WheelCache, default_cache_dir


@dataclass
class BuiltImage:
    role: str
    ref: str | None  # the engine's tag REPO:ROLE; None when the builder kept the image to itself
    id: str  # the image's manifest digest from BuildKit (the engine's image ID with the containerd store)
    pushed: str | None = None  # REGISTRY/REPO@sha256:... when pushed


@dataclass
class BuildResult:
    parity: str
    images: dict[str, BuiltImage] = field(default_factory=dict)
    dockerfile: Path | None = None

    def as_json(self) -> dict:
        images: dict[str, dict[str, str | None]] = {}
        out = {"parity": self.parity, "images": images}
        for role, img in self.images.items():
            entry = {"ref": img.ref, "id": img.id, "digest": img.id}
            if img.pushed:
                entry["pushed"] = img.pushed
            images[role] = entry
        return out


@dataclass
class BuildOptions:
    base: str | None = None
    locked: bool = False
    tag: str | None = None  # repository for the tags; default: the spec's name
    no_cache: bool = False
    builder: str | None = None
    cache_from: tuple[str, ...] = ()  # per target: see cache_refs
    cache_to: tuple[str, ...] = ()
    push: str | None = None  # REGISTRY/REPO: push REPO:train and REPO:serve from the build
    load: bool = False  # put the images into the engine even when the builder is not the engine's
    epoch: int | None = None
    targets: tuple[str, ...] = ROLES
    install: str | None = None  # hermetic | online; default: the spec's
    cache_dir: Path | None = None  # the wheel cache; default ~/.cache/imagesmith


def source_date_epoch(root: Path) -> int:
    """The project's last commit time, or 0 outside git: never the build's own clock."""
    epoch = git_epoch(root)
    return epoch if epoch is not None else 0


def describe_failure(spec: Spec) -> Callable[[str], tuple[str, bool]]:
    """Map BuildKit's failing step back to the part of the spec it came from:
    (description, True) when a spec key is to blame, (the failing step, False) otherwise."""

    def describe(log: str) -> tuple[str, bool]:
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
            return f"system_packages ({named})", True
        if "pip" in failing:
            m = re.search(r"(?:for|of|match) (?:the )?(?:package |requirement )?([A-Za-z0-9_.-]+==[^\s:]+)", log)
            dist = m.group(1) if m else "one of the locked distributions"
            if "THESE PACKAGES DO NOT MATCH THE HASHES" in log:
                m = re.search(r"([A-Za-z0-9_.-]+==[^\s:]+) from ", log)
                dist = m.group(1) if m else dist
                return f"requirements ({dist}: a wheel does not match its locked hash)", True
            return f"requirements ({dist})", True
        for key, paths in (("preprocessing", spec.preprocessing), ("source", spec.source)):
            for path in paths:
                if path in failing:
                    return f"{key} ({path})", True
        return failing[:120], False

    return describe


def build_project(spec: Spec, engine: Engine, options: BuildOptions, *, progress=lambda msg: None,
                  echo: Callable[[str], None] | None = None) -> BuildResult:
    unknown = [t for t in options.targets if t not in ROLES]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}; imagesmith builds train and serve")
    base = options.base or spec.base
    engine.ping()
    engine.buildx_available()
    driver = engine.builder_driver(options.builder)
    if driver != "docker" and not (options.load or options.push):
        raise UsageError(f"the builder {options.builder or '(current)'} (driver {driver}) keeps images in its own cache",
                         hint="add --load to put them into the engine, or --push REGISTRY/REPO to push them")
    if options.locked:
        lock = ensure_fresh(spec, base)
    else:
        locked = lock_project(spec, engine, base=base, progress=progress)
        if locked.changed:
            progress(f"locked ({', '.join(locked.changed)} changed)")
        lock = locked.lock
    text = render(spec, lock)
    write_beside(spec.root)  # the runtime wheel the Dockerfile copies from .imagesmith/
    dockerfile = spec.dockerfile_path
    if not dockerfile.is_file() or dockerfile.read_text(encoding="utf-8") != text:
        atomic_write(dockerfile, text)
        progress(f"rendered {dockerfile.name}")
    digest = parity.digest(parity.manifest_from_lock(lock))
    epoch = options.epoch if options.epoch is not None else source_date_epoch(spec.root)
    repo = options.tag or spec.name
    result = BuildResult(parity=digest, dockerfile=dockerfile)
    contexts = build_contexts(spec, lock, options, engine, progress)
    refs = {role: image_ref(repo, role) for role in options.targets}
    pushed = {role: f"{options.push}:{role}" for role in options.targets} if options.push else {}
    definition = bake_definition(
        context=spec.root, dockerfile=dockerfile, targets=options.targets, refs=refs, push=pushed,
        load=options.load, driver=driver, build_args=build_args(spec.root, epoch), contexts=contexts,
        cache_from=options.cache_from, cache_to=options.cache_to, no_cache=options.no_cache)
    progress(f"building {' and '.join(options.targets)}" + (f", pushing to {options.push}" if options.push else ""))
    metadata = engine.bake(definition, cwd=spec.root, epoch=epoch, builder=options.builder, echo=echo,
                           describe_failure=describe_failure(spec))
    in_engine = driver == "docker" or options.load
    for role in options.targets:
        image_digest = metadata[role]["containerimage.digest"]
        if driver == "docker" and options.push:
            engine.tag(image_digest, refs[role])  # the build named it REGISTRY/REPO:ROLE only
        result.images[role] = BuiltImage(role=role, ref=refs[role] if in_engine else None, id=image_digest,
                                         pushed=f"{options.push}@{image_digest}" if options.push else None)
    return result


def _csv(fields: dict[str, str]) -> str:
    """A buildx output/cache attribute string; values with a comma or quote are quoted (CSV)."""
    parts = []
    for key, value in fields.items():
        field_text = f"{key}={value}"
        parts.append('"' + field_text.replace('"', '""') + '"' if ("," in field_text or '"' in field_text) else field_text)
    return ",".join(parts)


def _parse_csv(text: str) -> dict[str, str]:
    import csv

    row = next(csv.reader([text]), [])
    return {key: value for key, _, value in (item.partition("=") for item in row)}


def cache_refs(spec_text: str, role: str) -> str:
    """One cache per target from one ``--cache-to``/``--cache-from`` value, so the targets do not
    overwrite each other's cache: a registry ``ref=R:TAG`` becomes ``R:TAG-ROLE`` (``R:ROLE`` with
    no tag), a local ``dest``/``src`` folder gets a ``ROLE`` subfolder, a GitHub Actions ``scope``
    a ``-ROLE`` suffix. Anything else is passed as it is."""
    fields = _parse_csv(spec_text) if "=" in spec_text else {"type": "registry", "ref": spec_text}
    kind = fields.get("type", "registry")  # buildx's default type too
    if kind == "registry" and fields.get("ref"):
        ref = fields["ref"]
        name, at, digest = ref.partition("@")
        last = name.rsplit("/", 1)[-1]
        fields["ref"] = (f"{name}-{role}" if ":" in last else f"{name}:{role}") + (at + digest if at else "")
    elif kind == "local":
        for key in ("dest", "src"):
            if fields.get(key):
                fields[key] = fields[key].rstrip("/") + f"/{role}"
    elif kind == "gha":
        fields["scope"] = f"{fields.get('scope') or 'imagesmith'}-{role}"
    return _csv(fields)


def bake_definition(*, context: Path, dockerfile: Path, targets: tuple[str, ...], refs: dict[str, str],
                    push: dict[str, str], load: bool, driver: str, build_args: dict[str, str],
                    contexts: dict[str, str], cache_from: tuple[str, ...] = (), cache_to: tuple[str, ...] = (),
                    no_cache: bool = False) -> dict:
    """The bake file (as a dict) that builds ``targets`` in one solve. Pure.

    Outputs: with the engine's own BuildKit (driver ``docker``) an image goes straight into the
    engine's store, named ``refs[role]``, or ``push[role]`` and pushed from the build (a local
    tag is added afterwards: pushing every name would push the local one too). With any other
    builder: ``push`` pushes from the build and ``load`` exports into the engine (type=docker).
    Each target writes its own cache (``cache_refs``) and reads every target's."""
    common: dict = {"context": str(context), "dockerfile": str(dockerfile),
                    "args": dict(sorted(build_args.items())), "contexts": dict(sorted(contexts.items()))}
    if no_cache:
        common["no-cache"] = True
    reads = [cache_refs(c, role) for c in cache_from for role in targets]
    definition: dict = {"group": {"default": {"targets": list(targets)}}, "target": {}}
    for role in targets:
        outputs = []
        if driver == "docker":
            outputs.append(_csv({"type": "image", "name": push[role], "push": "true"}) if role in push
                           else _csv({"type": "image", "name": refs[role]}))
        else:
            if role in push:
                outputs.append(_csv({"type": "image", "name": push[role], "push": "true"}))
            if load:
                outputs.append(_csv({"type": "docker", "name": refs[role]}))
        entry = dict(common, target=role, output=outputs)
        if reads:
            entry["cache-from"] = list(dict.fromkeys(reads))
        if cache_to:
            entry["cache-to"] = [cache_refs(c, role) for c in cache_to]
        definition["target"][role] = entry
    return definition


def build_args(root: Path, epoch: int) -> dict[str, str]:
    created = dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "IMAGESMITH_CREATED": created,
        "IMAGESMITH_REVISION": git_revision(root) or "unknown",
        "IMAGESMITH_SOURCE": git_source(root, redact) or "unknown",
    }


def build_contexts(spec: Spec, lock: Lock, options: BuildOptions, engine: Engine,
                   progress=lambda msg: None) -> dict[str, str]:
    """Named build contexts that replace stages of the rendered Dockerfile:

    - ``base``, for a base that exists only in the local engine: the image exported once as an
      OCI layout (cached by digest) and passed as ``oci-layout://DIR@DIGEST``. Bound to the
      locked digest, works on an engine that never built from it and with any builder. A tag
      that now names another image is refused: the lock pins what was resolved against.
    - ``wheels``, for hermetic installs (the default): a wheelhouse prepared on the host."""
    contexts: dict[str, str] = {}
    cache_dir = options.cache_dir or default_cache_dir()
    if lock.base.source == "local":
        name = lock.base.name.split("@", 1)[0]
        if "@" not in lock.base.name and engine.has_image(name):
            current = engine.image(name).id
            if current != lock.base.digest:
                raise LockError(
                    f"the base image {name} now names {current[:19]}, but {spec.lock_path.name} pins {lock.base.digest[:19]}",
                    hint=f"run `imagesmith lock --upgrade-base` to pin what {name} names now, "
                         f"or `docker tag {lock.base.digest} {name}` to go back")
        layout = engine.save_oci_layout(lock.base.digest, cache_dir / "bases" / lock.base.digest.split(":", 1)[-1])
        contexts["base"] = f"oci-layout://{layout}@{lock.base.digest}"
    install = options.install or spec.install
    if install != "online":
        cache = WheelCache(cache_dir)
        contexts["wheels"] = str(cache.wheelhouse(lock, progress=progress))
    return contexts
