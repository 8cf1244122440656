"""What verify, diff and inspect read: a lock, a local image or a registry image (read without
pulling), with its claim: the manifest in its facts (``facts.py``) or the lock's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import parity
from .engine import Engine, ImageInfo, registry_host
from .errors import NotALockError, UsageError
from .facts import manifest_of, read_facts
from .pinned import local_of_platform
from .platforms import machine_platform

if TYPE_CHECKING:
    from .lock import Lock

EXPECTED = "give an image, a registry reference or an imagesmith.lock (the file `imagesmith lock` writes)"


@dataclass
class Source:
    ref: str
    kind: str  # "image" or "lock"
    info: ImageInfo | None = None
    lock: Lock | None = None
    manifest: dict | None = None  # the claim: the image's manifest (its facts'), or the lock's
    problems: list[str] = field(default_factory=list)  # why the image's manifest is not a usable claim
    facts: dict | None = None  # the image's facts (``facts.read_facts``)

    @property
    def name(self) -> str:
        if self.kind == "lock":
            return f"lock {self.ref}"
        return f"{'registry image' if self.info and self.info.source == 'registry' else 'image'} {self.ref}"


def open_source(engine: Engine, ref: str, platform: str | None = None) -> Source:
    """An existing file (or a folder holding imagesmith.lock) is a lock; a reference naming a
    registry host is read from that registry without pulling; anything else is a local image.
    ``platform`` picks a multi-platform lock's section and a registry index's image (default:
    this machine's); a local image must be of it."""
    return lock_source(ref, platform) or open_image(engine, ref, platform)


def open_image(engine: Engine, ref: str, platform: str | None = None) -> Source:
    """``open_source`` of a reference ``lock_source`` found no file for: a registry image
    (read without pulling) or a local one."""
    if registry_host(ref):
        info = engine.registry_image(ref, platform or machine_platform())
    else:
        info = local_of_platform(engine, ref, platform)
    return image_source(engine, ref, info)


def lock_source(ref: str, platform: str | None = None) -> Source | None:
    """The Source of ``ref`` when it names a file (or a folder holding imagesmith.lock), read
    without the engine; None when it names an image. A file that is no imagesmith lock at all
    (``NotALockError``: /etc/passwd, a package.json) and a path that does not exist are usage
    errors: the user named the wrong file, which `imagesmith lock` would not mend."""
    from .lock import LOCK_FILE

    path = Path(ref)
    if path.is_dir() and (path / LOCK_FILE).is_file():
        path = path / LOCK_FILE
    if path.is_file():
        from .lock.lockfile import read_lock

        try:
            lock = read_lock(path, platform)
        except NotALockError as exc:
            if path.name == LOCK_FILE:  # the project's own lock, broken: rewriting it is the way
                raise
            raise UsageError(f"{ref} is not an imagesmith lock", hint=EXPECTED) from exc
        return Source(ref=str(path), kind="lock", lock=lock, manifest=parity.manifest_from_lock(lock))
    if ref.endswith((".lock", ".json")) or "/" in ref and ref.startswith((".", "/")):
        raise UsageError(f"{ref} does not exist", hint=EXPECTED)
    return None


def image_source(engine: Engine, ref: str, info: ImageInfo) -> Source:
    """The Source of an image already read: its facts (read from outside it, or from its
    registry without pulling) and their manifest, which must hash to its parity label."""
    facts, problem = read_facts(engine, info)
    manifest, problems = manifest_of(info, facts, problem)
    if facts is not None and problem:  # read, but not from where imagesmith puts them
        problems.append(problem)
    return Source(ref=ref, kind="image", info=info, manifest=manifest, problems=problems, facts=facts)


def local_image(engine: Engine, source: Source, notes: list[str]) -> ImageInfo:
    """The image in the local engine, pulled by digest when it was read from a registry."""
    info = source.info
    assert info is not None
    if info.source != "registry":
        return info
    pinned = info.repo_digests[0]
    local = engine.pull(pinned)
    notes.append(f"pulled {pinned} to look inside it")
    return local
