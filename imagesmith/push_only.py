"""What ``imagesmith build --push --push-only`` changes: the images go to the registry only, never
into the engine. The output attributes that do it with the engine's own BuildKit (``PUSH_ONLY``,
which ``build.bake_definition`` writes), the options it refuses, and the read-back of each pushed
tag that catches a builder that did not push."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import BuildError, EngineError, UsageError

if TYPE_CHECKING:
    from .engine import Engine

# The engine's own BuildKit (driver docker, containerd image store) pushing an image it neither
# stores nor unpacks: on an empty engine, the unpack of every layer into the snapshotter is most of a
# rebuild whose steps all come from a registry cache (bench/README.md). ``push=`` empty: BuildKit's
# image exporter takes an empty value as true and pushes; buildx pushes once more through the
# engine (`pushing ... with docker`, which needs the stored image) only for a non-empty true value.
# tests/engine/test_engines.py holds both to this (the digests, an engine left without the images).
PUSH_ONLY = {"push": "", "store": "false", "unpack": "false"}


def pushed_checked(engine: Engine, pushed: dict[str, list[str]], metadata: dict[str, dict]) -> None:
    """With ``push_only`` nothing but the registry has the images: each pushed tag must name the
    digest BuildKit reported (an exporter that does not push, as the classic image store's, is
    caught here instead of reporting images nobody has)."""
    for role, refs in pushed.items():
        wanted = metadata[role]["containerimage.digest"]
        try:
            got = f"is {engine.registry.digest(refs[0])}"
        except EngineError:
            got = "is not in the registry"
        if got != f"is {wanted}":
            raise BuildError(
                f"--push-only: the build made the {role} image {wanted}, but {refs[0]} {got}: the builder did not push it",
                hint="--push-only needs the engine's containerd image store or another buildx builder "
                "(docs/guides/ci.md); without it use --push",
            )


def check_push_only(*, push: str | None, push_only: bool, load: bool, tags: tuple[str, ...]) -> None:
    """``push_only`` is for images that go to a registry (``push``) and nowhere else."""
    if push_only and not push:
        raise UsageError(
            "--push-only needs --push REGISTRY/REPO: the images go to the registry only",
            hint="imagesmith build --push REGISTRY/REPO --push-only",
        )
    if push_only and load:
        raise UsageError(
            "--push-only keeps the images out of the engine and --load puts them there",
            hint="drop one of the two (docs/guides/ci.md)",
        )
    if push_only and tags:
        raise UsageError(
            "--push-only keeps the images out of the engine, where -t would name them",
            hint="drop -t (the pushed tags are --push's REPO:train and REPO:serve), or drop --push-only",
        )
