"""An image reference resolved once, by digest: the ``Target`` every check of a verify run reads
(``deploy.resolve`` makes it), and ``registry_target``, the one place a registry reference is
pinned to ``REPO@sha256:…`` (the deploy gate, the signature gate and signing all take it), and
``local_of_platform``, the one check that a local image is of the platform asked for. Below both
``deploy`` and ``gate``: it imports neither."""

from __future__ import annotations

from dataclasses import dataclass

from .engine import Engine, ImageInfo
from .errors import UsageError
from .platforms import same_platform


@dataclass(frozen=True)
class Target:
    """One image, resolved once: what every check of a verify run reads."""

    ref: str  # as the user gave it
    info: ImageInfo  # read by digest

    @property
    def pinned(self) -> str:
        """``REPO@sha256:…`` for a registry image, else the engine's image ID: what a deploy runs."""
        return self.info.repo_digests[0] if self.info.source == "registry" else self.info.id

    @property
    def digest(self) -> str:
        return self.info.id


def registry_target(engine: Engine, ref: str, platform: str | None = None) -> Target:
    """The registry reference ``ref`` read from its registry by digest (``Target.pinned`` is
    ``REPO@sha256:…``): ``platform``'s image when ``ref`` names an index (None: the registry
    reader's default). The one place a registry reference is pinned: the gate and the signing
    take it too."""
    return Target(ref=ref, info=engine.registry_image(ref, platform))


def local_of_platform(engine: Engine, ref: str, platform: str | None = None) -> ImageInfo:
    """The engine's image ``ref``, refused (``UsageError``) when ``platform`` is given and the
    image is of another: compared as containerd compares them (``platforms.same_platform``:
    ``linux/arm64/v8`` is ``linux/arm64``), and an image whose config names no platform is taken
    as it is. The one check verify, diff, inspect, signoff and the deploy gate make."""
    info = engine.image(ref)
    if platform and info.platform and not same_platform(info.platform, platform):
        raise UsageError(
            f"the engine's image {ref} is its {info.platform} image, not {platform}",
            hint=f"give the image's registry reference to read its {platform} image without pulling",
        )
    return info
