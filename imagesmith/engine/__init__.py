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
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ._common import ENGINE_HINT, first_line
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


def _to(backend: str, name: str) -> Callable[..., Any]:
    """A facade method that is the method ``name`` of the backend ``backend`` (an attribute of
    ``Engine``, made on first use): arguments, answer and errors are the backend's."""

    def forward(self: Engine, *args: Any, **kwargs: Any) -> Any:
        return getattr(getattr(self, backend), name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = f"``Engine.{backend}.{name}``."
    return forward


class Engine:
    """One Docker engine: the one ``DOCKER_HOST`` names, else the current docker context's (as the
    ``docker`` CLI, and so buildx, would choose). The SDK client is made on first use, so
    commands that need no engine (render, lock when nothing changed) never touch Docker."""

    def __init__(self, progress: Callable[[str], None] = lambda msg: None) -> None:
        self._client = None
        self._progress = progress

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

        return Containers(lambda: self.client)

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
        if platform and registry_host(ref) and local.platform and local.platform != platform:
            return self.registry.image(ref, platform)  # the engine holds this machine's image of the index
        return local

    def runnable(self, ref: str) -> ImageInfo:
        """``ref`` in the engine's store, pulled first when it is a registry reference the engine
        lacks (a build on another builder pushed it). For commands that run containers of it."""
        if registry_host(ref) and not self.images.has_image(ref):
            return self.images.pull(ref)
        return self.images.image(ref)

    # ---- the backends' operations, under the names consumers use: each is the backend's own
    # method (``_to``), so its signature and docstring live once, in the backend

    image = _to("images", "image")
    has_image = _to("images", "has_image")
    pull = _to("images", "pull")
    tag = _to("images", "tag")
    push = _to("images", "push")
    save_oci_layout = _to("images", "save_oci_layout")
    history = _to("images", "history")
    registry_layer_sizes = _to("registry", "layer_sizes")
    registry_top_layer = _to("registry", "top_layer")
    registry_platform_digest = _to("registry", "platform_digest")
    run = _to("containers", "run")
    run_to_end = _to("containers", "run_to_end")
    run_isolated = _to("containers", "run_isolated")
    read_paths = _to("containers", "read_paths")
    reading = _to("containers", "reading")
    run_helper = _to("containers", "run_helper")
    start_service = _to("services", "start_service")
    service_exit_code = _to("services", "service_exit_code")
    stop_service = _to("services", "stop_service")
    remove_signoff = _to("services", "remove_signoff")
    buildx_prefetch = _to("buildx", "prefetch")
    buildx_available = _to("buildx", "available")
    builder_driver = _to("buildx", "driver")
    bake = _to("buildx", "bake")

    def registry_image(self, ref: str, platform: str | None = None) -> ImageInfo:
        """``registry.image`` of ``platform`` (None: the registry's default, linux/amd64)."""
        return self.registry.image(ref, platform) if platform else self.registry.image(ref)

    def run_attached(self, image: str, command: Sequence[str], **options) -> int:
        from .attached import run_attached

        return run_attached(image, command, **options)
