"""The one fake engine for unit tests.

It stands for the ``Engine`` facade, its ``images`` backend and every protocol in
imagesmith/engine/protocols.py: images in memory, answers for runs given by the test, and every
call recorded in ``calls`` as ``(method, first argument, keyword arguments)``. The real engine is exercised by the ``engine`` tests; this is for pure
logic only (what a command asks of the engine, and what it makes of the answers)."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from imagesmith.engine import FileEntry, ImageInfo, IsolatedRun
from imagesmith.errors import EngineError


def image_info(
    ref: str = "x:serve",
    *,
    id: str = "sha256:" + "1" * 64,
    labels: dict | None = None,
    config: dict | None = None,
    layers: tuple[str, ...] = (),
    source: str = "local",
) -> ImageInfo:
    return ImageInfo(
        ref=ref,
        id=id,
        labels=dict(labels or {}),
        layers=layers,
        repo_digests=(),
        config=dict(config or {}),
        size=0,
        created="",
        source=source,
    )


class FakeEngine:
    def __init__(
        self,
        images: dict[str, ImageInfo] | None = None,
        *,
        default: ImageInfo | None = None,
        registry: dict[str, str] | None = None,
        runs: Callable[[str, list], str] | None = None,
        attached_exit: int = 0,
        driver: str = "docker",
        files: dict[str, dict[str, bytes]] | None = None,
    ) -> None:
        self.store = dict(images or {})  # ref -> ImageInfo (the engine's image store)
        self.default = default  # answered for any other ref, when given
        self.registry = dict(registry or {})  # ref -> digest (what registry_digest answers)
        self.runs = runs or (lambda image, command: "")
        self.attached_exit = attached_exit
        self.driver = driver
        self.containers: dict[str, list[str]] = {}  # image ID -> names of containers using it
        self.calls: list[tuple[str, object, dict]] = []
        self.files = dict(files or {})  # image ID -> {path: bytes}: what read_paths finds in it

    @classmethod
    def with_labels(cls, images: dict[str, dict], **kw) -> "FakeEngine":
        """Images given as {ref: labels}."""
        return cls({ref: image_info(ref, labels=labels) for ref, labels in images.items()}, **kw)

    def _record(self, method: str, first, **kw) -> None:
        self.calls.append((method, first, kw))

    def called(self, method: str) -> list[tuple[str, object, dict]]:
        return [c for c in self.calls if c[0] == method]

    @property
    def images(self) -> "FakeEngine":
        """The ``Images`` backend, for consumers that take it (prune): this fake answers as it."""
        return self

    # ---- images and the registry -----------------------------------------------------------

    def image(self, ref: str) -> ImageInfo:
        self._record("image", ref)
        if ref in self.store:
            return self.store[ref]
        if self.default is not None:
            return self.default
        raise EngineError(f"image {ref} is not in the engine")

    def has_image(self, ref: str) -> bool:
        return ref in self.store or self.default is not None

    def find_image(self, ref: str) -> ImageInfo | None:
        return self.image(ref) if self.has_image(ref) else None

    def lookup(self, ref: str, platform: str | None = None) -> ImageInfo:
        return self.image(ref)

    runnable = registry_image = lookup

    def pull(self, ref: str) -> ImageInfo:
        """A reference the fake registry has (by name, or NAME@DIGEST of one it has) is pulled
        into the store; anything else fails as a real pull would."""
        self._record("pull", ref)
        name, _, digest = ref.partition("@")
        if ref not in self.store and (ref in self.registry or self.registry.get(name) == digest):
            self.store[ref] = image_info(ref, id=digest or self.registry[ref])
        return self.image(ref)

    @contextmanager
    def keeping_readers(self) -> Iterator[None]:
        """The real engine shares one container per image read in the block; the fake makes none."""
        self._record("keeping_readers", None)
        yield

    def read_paths(self, image: str, paths, small: int | None = None) -> dict[str, tuple[FileEntry, ...] | None]:
        """Regular files of ``files`` (a path absent there: absent; ``small`` is the real
        engine's bound on the bytes it keeps, not checked here)."""
        held = self.files.get(image, {})
        return {
            p: (FileEntry(p, "file", 0o644, 0, "", "sha256:" + hashlib.sha256(held[p]).hexdigest(), held[p]),)
            if p in held
            else None
            for p in paths
        }

    def registry_top_layer(self, pinned: str, diff_id: str, max_bytes: int, depth: int = 1) -> bytes:
        raise EngineError(f"the fake registry serves no blob of {pinned}")

    def registry_digest(self, ref: str) -> str:
        self._record("registry_digest", ref)
        if ref not in self.registry:
            raise EngineError(f"{ref} is not in its registry")
        return self.registry[ref]

    def registry_platform_digest(self, ref: str, platform: str) -> tuple[str, str]:
        """A fake registry holds single-platform manifests: (the digest, no index)."""
        return self.registry_digest(ref), ""

    def history(self, image: str, layers: int):
        return None

    def tag(self, image_id, ref: str) -> None:
        self._record("tag", image_id, ref=ref)

    def save_oci_layout(self, image_id: str, dest: Path) -> Path:
        self._record("save_oci_layout", image_id, dest=dest)
        return dest

    def repository_tags(self, repository: str) -> list[tuple[str, str]]:
        return sorted((ref, info.id) for ref, info in self.store.items() if ref.rsplit(":", 1)[0] == repository)

    def images_in_use(self) -> dict[str, list[str]]:
        return {image_id: sorted(names) for image_id, names in self.containers.items()}

    def remove_tag(self, ref: str) -> None:
        """As ``docker rmi TAG``: refused when it is the image's last tag and a container uses it."""
        self._record("remove_tag", ref)
        info = self.store.get(ref)
        if info is None:
            return
        last = sum(i.id == info.id for i in self.store.values()) == 1
        if last and self.containers.get(info.id):
            raise EngineError(f"the engine would not remove {ref}: image is being used by a container")
        del self.store[ref]

    # ---- containers ------------------------------------------------------------------------

    def run(self, image: str, command, **options) -> str:
        self._record("run", image, command=list(command), **options)
        return self.runs(image, list(command))

    def run_to_end(self, image: str, what: str, timeout: int, **create) -> IsolatedRun:
        self._record("run_to_end", image, what=what, **create)
        return IsolatedRun(0, self.runs(image, list(create.get("command") or [])), "")

    def run_isolated(self, image: str, argv, *, timeout: int = 300, environment=None, output_limit=None) -> IsolatedRun:
        self._record("run_isolated", image, argv=list(argv))
        return IsolatedRun(0, self.runs(image, list(argv)), "")

    def run_helper(self, image: str, argv, **options) -> IsolatedRun:
        self._record("run_helper", image, argv=list(argv), **options)
        return IsolatedRun(0, self.runs(image, list(argv)), "")

    def start_service(self, image: str, **options) -> tuple[str, str, int]:
        self._record("start_service", image, **options)
        return "c0ffee", "127.0.0.1", 1

    def service_exit_code(self, container_id: str) -> int | None:
        return None

    def stop_service(self, container_id: str) -> str:
        self._record("stop_service", container_id)
        return ""

    def remove_signoff(self, run_id: str) -> int:
        self._record("remove_signoff", run_id)
        return 0

    def run_attached(self, image: str, command, **options) -> int:
        self._record("run_attached", image, command=list(command), **options)
        return self.attached_exit

    # ---- BuildKit --------------------------------------------------------------------------

    def ping(self) -> None:
        pass

    def buildx_prefetch(self, builder: str | None = None) -> None:
        pass

    def buildx_available(self) -> None:
        pass

    def builder_driver(self, builder: str | None = None) -> str:
        return self.driver

    def bake(self, definition: dict, **options) -> dict[str, dict]:
        confirm = options.get("confirm")
        replaced = confirm() if confirm is not None else None  # as buildx.bake: once it started
        definition = definition if replaced is None else replaced
        self._record("bake", definition, **options)
        return {t: {"containerimage.digest": "sha256:" + "f" * 64} for t in definition.get("target") or {}}
