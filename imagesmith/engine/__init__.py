"""The engine seam: the only code that runs ``docker``/``buildx`` or uses the Docker SDK.

    Engine (this facade: the one object the rest of imagesmith holds)
      ├── images      Images      the engine's image store: inspect, tag, pull, push, history,
      │                           export as an OCI layout, prune's reads and removals
      │                                                                    (SDK; `docker push`)
      ├── containers  Containers  ONE run-to-end lifecycle; reading an image's files (SDK)
      ├── services    Services    signoff's detached services, removed however a run ends (SDK)
      ├── (attached.run_attached) the interactive `imagesmith run`          (`docker run`)
      ├── buildx      Buildx      BuildKit: the builder's driver, bake with --metadata-file
      │                                                                    (`docker buildx`)
      └── registry    Registry    registry reads without pulling          (`buildx imagetools`)

Consumers take what they need: the facade's methods (under the names consumers use), one
backend (prune takes ``images``), or a narrow protocol from ``protocols.py`` where it says more;
tests use one shared fake (tests/fakes.py). Policy lives with its feature, not here: what to
pin and how (lock/base.py, lock/system.py, the pip-compile script in lock/piptools_resolver.py), what
to output and cache (build.py), what to refuse (verify.py). Every failure is translated in the
backends into an ``EngineError`` (or ``BuildError``) that says what failed and what to do.
"""

from __future__ import annotations

import importlib
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Sequence

from ..platforms import same_platform
from ._common import ENGINE_HINT, KeptReaders, first_line
from .refs import is_loopback_registry, registry_host, repository

if TYPE_CHECKING:
    from .buildx import Buildx
    from .connection import engine_endpoint, service_address
    from .containers import Containers
    from .images import Images
    from .records import FileEntry, HistoryEntry, ImageInfo, IsolatedRun
    from .registry import Registry
    from .services import Services

# The backends and records, imported when first used: a no-op `imagesmith lock` or a
# labels-only `verify` never loads the backends it does not call (bench/README.md's start-up rows)
_LAZY = {
    "engine_endpoint": "connection",
    "service_address": "connection",
    "FileEntry": "records",
    "HistoryEntry": "records",
    "ImageInfo": "records",
    "IsolatedRun": "records",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ENGINE_HINT",
    "Engine",
    "FileEntry",
    "HistoryEntry",
    "ImageInfo",
    "IsolatedRun",
    "engine_endpoint",
    "first_line",
    "is_loopback_registry",
    "registry_host",
    "repository",
    "service_address",
]


class Engine:
    """One Docker engine: the one ``DOCKER_HOST`` names, else the current docker context's (as the
    ``docker`` CLI, and so buildx, would choose). The SDK client is made on first use, so
    commands that need no engine (render, lock when nothing changed) never touch Docker."""

    def __init__(self, progress: Callable[[str], None] = lambda msg: None) -> None:
        self._client = None
        self._progress = progress
        self._kept = KeptReaders()  # the readers a ``keeping_readers`` block keeps (the containers backend's)

    @property
    def client(self):
        if self._client is None:
            from .connection import connect

            self._client = connect()
        return self._client

    # the backends, each made (and its module imported) on first use

    @cached_property
    def images(self) -> Images:
        from .images import Images

        return Images(lambda: self.client, self._progress)

    @cached_property
    def containers(self) -> Containers:
        from .containers import Containers

        return Containers(lambda: self.client, self._kept, self._progress)

    @cached_property
    def services(self) -> Services:
        from .services import Services

        return Services(lambda: self.client, self.service_address)

    @cached_property
    def buildx(self) -> Buildx:
        from .buildx import Buildx

        return Buildx()

    @cached_property
    def registry(self) -> Registry:
        from .registry import Registry

        return Registry()

    def ping(self) -> None:
        """Fail early, with the engine hint, when there is no engine (asked without the SDK when
        the engine is the local socket: see local_api.py)."""
        from .local_api import ping

        if self._client is None and ping():
            return
        self.client  # noqa: B018 - connecting is the point

    def service_address(self) -> tuple[str, str]:
        """(address to publish container ports on, host to connect to them): see
        ``connection.service_address``."""
        from .connection import current_host, service_address

        return service_address(current_host())

    # ---- reads that span the store and the registry -------------------------------------------

    def lookup(self, ref: str, platform: str | None = None) -> ImageInfo:
        """Labels and config of ``ref``: from the engine's store when it is there, else (a registry
        reference) read from its registry without pulling (an index: its ``platform`` entry,
        default linux/amd64). For checks that read, not run."""
        if registry_host(ref) and not self.images.has_image(ref):
            return self.registry_image(ref, platform)
        local = self.images.image(ref)
        if platform and registry_host(ref) and local.platform and not same_platform(local.platform, platform):
            return self.registry.image(ref, platform)  # the engine holds this machine's image of the index
        return local

    def runnable(self, ref: str) -> ImageInfo:
        """``ref`` in the engine's store, pulled first when it is a registry reference the engine
        lacks (a build on another builder pushed it). For commands that run containers of it."""
        if registry_host(ref) and not self.images.has_image(ref):
            return self.images.pull(ref)
        return self.images.image(ref)

    # ---- the backends' operations, under the names consumers use ------------------------------

    def image(self, ref: str) -> ImageInfo:
        return self.images.image(ref)

    def has_image(self, ref: str) -> bool:
        return self.images.has_image(ref)

    def find_image(self, ref: str) -> ImageInfo | None:
        return self.images.find_image(ref)

    def pull(self, ref: str) -> ImageInfo:
        return self.images.pull(ref)

    def tag(self, image_id: str | Sequence[str], ref: str) -> None:
        self.images.tag(image_id, ref)

    def push(self, ref: str) -> str:
        return self.images.push(ref)

    def save_oci_layout(self, image_id: str, dest: Path) -> Path:
        return self.images.save_oci_layout(image_id, dest)

    def registry_image(self, ref: str, platform: str | None = None) -> ImageInfo:
        return self.registry.image(ref, platform) if platform else self.registry.image(ref)

    def history(self, image: str, layers: int) -> tuple[HistoryEntry, ...] | None:
        return self.images.history(image, layers)

    def registry_layer_sizes(self, pinned: str) -> tuple[int, ...]:
        return self.registry.layer_sizes(pinned)

    def registry_top_layer(self, pinned: str, diff_id: str, max_bytes: int, depth: int = 1) -> bytes:
        return self.registry.top_layer(pinned, diff_id, max_bytes, depth)

    def registry_platform_digest(self, ref: str, platform: str) -> tuple[str, str]:
        return self.registry.platform_digest(ref, platform)

    def run(self, image: str, command: Sequence[str], **options) -> str:
        return self.containers.run(image, command, **options)

    def run_to_end(self, image: str, what: str, timeout: int, **create) -> IsolatedRun:
        return self.containers.run_to_end(image, what, timeout, **create)

    def run_isolated(
        self,
        image: str,
        argv: Sequence[str],
        *,
        timeout: int = 300,
        environment: dict[str, str] | None = None,
        output_limit: int | None = None,
    ) -> IsolatedRun:
        return self.containers.run_isolated(
            image, argv, timeout=timeout, environment=environment, output_limit=output_limit
        )

    def read_paths(
        self, image: str, paths: Sequence[str], small: int | None = None
    ) -> dict[str, tuple[FileEntry, ...] | None]:
        return self.containers.read_paths(image, paths, small)

    def reading(self, image: str):
        return self.containers.reading(image)

    def keeping_readers(self) -> ContextManager[None]:
        """Within this block, every ``reading`` (and ``read_paths``) of one image shares one
        container, created at the first read and removed when the block ends, instead of one
        container each: a verify reads an image's facts file and then its interpreter, each a
        container create and removal on the engine (0.2-0.6 s each on a loaded engine). The
        answers are the same: the same archive reads of the same never-started container. The
        block is held here (``KeptReaders``) and filled by the containers backend, which is
        not made for it: a check whose reads are all in the host's cache makes none. A block
        inside another one keeps nothing of its own."""
        return self._kept.block()

    def run_helper(self, image: str, argv: Sequence[str], **options) -> IsolatedRun:
        return self.containers.run_helper(image, argv, **options)

    def start_service(self, image: str, **options) -> tuple[str, str, int]:
        return self.services.start_service(image, **options)

    def service_exit_code(self, container_id: str) -> int | None:
        return self.services.service_exit_code(container_id)

    def stop_service(self, container_id: str) -> str:
        return self.services.stop_service(container_id)

    def remove_signoff(self, run_id: str) -> int:
        return self.services.remove_signoff(run_id)

    def run_attached(self, image: str, command: Sequence[str], **options) -> int:
        from .attached import run_attached

        return run_attached(image, command, **options)

    def buildx_prefetch(self, builder: str | None = None) -> None:
        self.buildx.prefetch(builder)

    def buildx_available(self) -> None:
        self.buildx.available()

    def builder_driver(self, builder: str | None = None) -> str:
        return self.buildx.driver(builder)

    def bake(
        self,
        definition: dict,
        *,
        cwd: Path,
        epoch: int,
        builder: str | None = None,
        echo: Callable[[str], None] | None = None,
        describe_failure: Callable[[str], tuple[str, bool]] | None = None,
        passthrough: bool = False,
        confirm: Callable[[], dict | None] | None = None,
    ) -> dict[str, dict]:
        return self.buildx.bake(
            definition,
            cwd=cwd,
            epoch=epoch,
            builder=builder,
            echo=echo,
            describe_failure=describe_failure,
            passthrough=passthrough,
            confirm=confirm,
        )
