"""An image reference resolved once, by digest: the ``Target`` every check of a verify run reads
(``deploy.resolve`` makes it), and ``registry_target``, the one place a registry reference is
pinned to ``REPO@sha256:…`` (the deploy gate, the signature gate and signing all take it).
Below both ``deploy`` and ``gate``: it imports neither."""

from __future__ import annotations

from dataclasses import dataclass

from .engine import Engine, ImageInfo


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
