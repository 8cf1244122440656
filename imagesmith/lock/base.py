"""Pinning the base image: a registry's manifest digest when its registry answers, else the
local engine's image ID (the lock says which), and the Python version found in it. Policy about
the base lives here; the engine only answers questions (``LockEngine``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine import first_line
from ..errors import EngineError, LockError
from ..platforms import PLATFORMS

if TYPE_CHECKING:  # the engine's records only when an engine answers: a no-op lock asks none
    from ..engine.protocols import LockEngine


@dataclass(frozen=True)
class BasePin:
    name: str  # as written in the spec (or --base)
    digest: str  # sha256:...
    source: str  # "registry" (manifest digest) or "local" (the engine's image ID)
    python_version: str = ""  # e.g. "3.11.2", read from the image
    index: str = ""  # the registry's image index digest, when the name is a multi-platform image
    # The same base's manifests for the other platforms its index has, with the same Python
    # version: ((platform, digest), ...). A build on one of them installs this platform's
    # Python environment there, natively (``python_env.py``).
    hosts: tuple[tuple[str, str], ...] = ()

    @property
    def ref(self) -> str:
        """What the Dockerfile's FROM uses: the name as written (tag kept for readers) pinned to
        the digest. BuildKit resolves by the digest; a local image reaches it as an OCI layout
        (see build.build_contexts)."""
        return f"{self.name.split('@', 1)[0]}@{self.digest}"

    def host_ref(self, platform: str) -> str:
        """The same base's image of ``platform`` (one of ``hosts``), pinned like ``ref``."""
        return f"{self.name.split('@', 1)[0]}@{dict(self.hosts)[platform]}"


def pin_base(engine: LockEngine, ref: str, platform: str = "linux/amd64") -> BasePin:
    """Pin a base image reference to a digest for ``platform``: a registry's manifest digest when
    the registry answers (for a multi-platform image, the manifest of ``platform`` in its index,
    whose digest is kept too), else the local engine's image ID (the lock says which), which
    must be an image of ``platform``."""
    if "@sha256:" in ref:
        name, digest = ref.split("@", 1)
        source, index = "registry", ""
        if not engine.has_image(ref):
            try:
                digest, index = engine.registry_platform_digest(ref, platform)
            except EngineError as exc:
                raise LockError(
                    f"base image {ref} is neither local nor in its registry", hint="check the digest"
                ) from exc
        else:
            source = "local" if not any(d.endswith(digest) for d in engine.image(ref).repo_digests) else "registry"
            if source == "local":
                _check_platform(engine, ref, platform)
        pinned = f"{name}@{digest}"
        if source == "registry" and not engine.has_image(pinned):
            engine.pull(pinned)
        version = python_version(engine, pinned)
        return BasePin(name, digest, source, version, index, _hosts(engine, ref, platform, index, version))
    try:
        digest, index = engine.registry_platform_digest(ref, platform)
        source = "registry"
    except EngineError as exc:
        if not engine.has_image(ref):
            raise LockError(
                f"base image {ref} was found neither in its registry ({first_line(exc)}) nor in the local engine",
                hint="check the name, build or import the image into this engine, or pass --base with one that exists",
            ) from exc
        digest, index = _check_platform(engine, ref, platform).id, ""
        source = "local"
    pinned = f"{ref}@{digest}"
    if source == "registry" and not engine.has_image(pinned):
        engine.pull(pinned)
    version = python_version(engine, pinned if source == "registry" else ref)
    return BasePin(ref, digest, source, version, index, _hosts(engine, ref, platform, index, version))


def _hosts(engine: LockEngine, ref: str, platform: str, index: str, version: str) -> tuple[tuple[str, str], ...]:
    """The base's manifests for the other platforms imagesmith builds for, from the same image
    index (``index``; none for a one-platform image or a local one), that have the same Python
    version ``version`` (read by running each: the bytecode a build compiles there must be the
    bytecode the target's Python would compile)."""
    if not index or not version:
        return ()
    name = ref.split("@", 1)[0]
    found = []
    for other in PLATFORMS:
        if other == platform:
            continue
        try:
            digest, other_index = engine.registry_platform_digest(f"{name}@{index}", other)
        except EngineError:
            continue
        if other_index != index:
            continue
        pinned = f"{name}@{digest}"
        try:
            if not engine.has_image(pinned):
                engine.pull(pinned)
            same = python_version(engine, pinned) == version
        except EngineError:
            continue
        if same:
            found.append((other, digest))
    return tuple(found)


def _check_platform(engine: LockEngine, ref: str, platform: str):
    """The local image ``ref``, which must be of ``platform`` (its config's os/architecture)."""
    info = engine.image(ref)
    if info.platform and info.platform != platform:
        raise LockError(
            f"the local base image {ref} is a {info.platform} image, but the spec builds for {platform}",
            hint=f"use a base of {platform} (import one, or name a registry image whose index has it); "
            "a spec with several platforms needs a base that has each of them",
        )
    return info


def python_version(engine: LockEngine, image: str) -> str:
    """The Python version in ``image`` (e.g. 3.11.2), read by running its python3."""
    out = engine.run(image, ["-c", "import platform; print(platform.python_version())"], entrypoint=["python3"])
    return out.strip()
