"""The engine's image store, through the Docker SDK (and ``docker push`` for pushing an image
the engine has): inspect, tag, pull, push, history, export as an OCI layout, and what prune
needs (a repository's tags, the images containers use, removing a tag)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from ..errors import EngineError, UsageError
from ._common import ENGINE_HINT, docker_cli, first_line, redact, tail
from .local_api import inspect_image
from .records import HistoryEntry, ImageInfo


def _not_found(ref: str) -> EngineError:
    return EngineError(f"image {ref} is not in the engine", hint="build it with `imagesmith build`, or pull it first")


class Images:
    def __init__(self, client: Callable[[], object], progress: Callable[[str], None] = lambda msg: None) -> None:
        self._client = client  # made on first use (see Engine.client)
        self._progress = progress  # one line per step of a pull (the CLI prints them on stderr)

    @property
    def client(self):
        return self._client()

    def image(self, ref: str) -> ImageInfo:
        info = self.find_image(ref)
        if info is None:
            raise _not_found(ref)
        return info

    def find_image(self, ref: str) -> ImageInfo | None:
        """``image(ref)``, or None when the engine has no such image: one inspect where
        ``has_image`` and then ``image`` would ask the engine twice."""
        found = inspect_image(ref)  # a local engine without the SDK: local_api.py says why
        a = (found[1] if found[0] else None) if found is not None else self._sdk_inspect(ref)
        if a is None:
            return None
        cfg = a.get("Config") or {}
        return ImageInfo(
            ref=ref,
            id=a["Id"],
            labels=dict(cfg.get("Labels") or {}),
            layers=tuple((a.get("RootFS") or {}).get("Layers") or ()),
            repo_digests=tuple(a.get("RepoDigests") or ()),
            config=cfg,
            size=int(a.get("Size") or 0),
            created=a.get("Created", ""),
            platform=f"{a['Os']}/{a['Architecture']}" if a.get("Os") and a.get("Architecture") else "",
        )

    def _sdk_inspect(self, ref: str) -> dict | None:
        """The SDK's attributes of ``ref``, None when the engine has no such image."""
        from docker.errors import APIError, DockerException, ImageNotFound

        try:
            return self.client.images.get(ref).attrs
        except ImageNotFound:
            return None
        except APIError as exc:
            if exc.status_code == 400:  # the engine answered: the name is not a reference ("bad ref!!")
                raise UsageError(
                    f"{ref} is not an image reference: {first_line(exc.explanation or exc)}",
                    hint="name an image as NAME[:TAG] or NAME@sha256:DIGEST",
                ) from exc
            raise EngineError(f"cannot inspect {ref}: {first_line(exc)}", hint=ENGINE_HINT) from exc
        except DockerException as exc:
            raise EngineError(f"cannot inspect {ref}: {first_line(exc)}", hint=ENGINE_HINT) from exc

    def has_image(self, ref: str) -> bool:
        return self.find_image(ref) is not None

    def pull(self, ref: str) -> ImageInfo:
        """Pull ``ref`` into the engine (only the layers it lacks) and inspect it, reporting the
        start, each layer fetched and the end as progress lines."""
        from docker.errors import DockerException

        self._progress(f"pulling {ref}")
        fetched = 0
        try:
            from docker.utils import parse_repository_tag

            name, tag = parse_repository_tag(ref)
            for event in self.client.api.pull(name, tag=tag or "latest", stream=True, decode=True):
                if event.get("error"):
                    raise EngineError(
                        f"cannot pull {ref}: {redact(str(event['error']))}",
                        hint="check the registry is reachable and you are logged in",
                    )
                # one event per layer when it is in: "Pull complete" (classic image store),
                # "Download complete" (containerd image store), or "Already exists"
                if event.get("status") in ("Pull complete", "Download complete", "Already exists") and event.get("id"):
                    fetched += event["status"] != "Already exists"
                    self._progress(f"  layer {event['id']}: {event['status'].lower()}")
        except DockerException as exc:
            raise EngineError(
                f"cannot pull {ref}: {first_line(exc)}", hint="check the registry is reachable and you are logged in"
            ) from exc
        info = self.image(ref)
        self._progress(f"pulled {ref} ({fetched} layer{'s' if fetched != 1 else ''} fetched)")
        return info

    def tag(self, image_id: str | Sequence[str], ref: str) -> None:
        """Name the image ``image_id`` (or the first of several IDs the engine knows) ``ref``."""
        from docker.errors import DockerException, ImageNotFound

        ids = [image_id] if isinstance(image_id, str) else list(dict.fromkeys(image_id))
        repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
        for i, ident in enumerate(ids):
            try:
                self.client.images.get(ident).tag(repo, tag)
                return
            except ImageNotFound as exc:
                if i == len(ids) - 1:
                    raise EngineError(f"cannot tag {ident} as {ref}: {first_line(exc)}") from exc
            except DockerException as exc:
                raise EngineError(f"cannot tag {ident} as {ref}: {first_line(exc)}") from exc

    def push(self, ref: str) -> str:
        """Push an image the engine has as ``ref``; returns its registry digest (sha256:...).
        (``imagesmith build --push`` pushes from the build instead.)"""
        proc = subprocess.run([docker_cli(), "push", ref], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EngineError(
                f"docker push {ref} failed: {tail(redact(proc.stderr), 5)}",
                hint="check the registry is reachable and you are logged in",
            )
        m = re.search(r"digest: (sha256:[a-f0-9]{64})", proc.stdout)
        if not m:
            raise EngineError(f"docker push {ref} did not report a digest")
        return m.group(1)

    def history(self, image: str, layers: int) -> tuple[HistoryEntry, ...] | None:
        """The build history of a local image, oldest first, or None when it cannot be matched
        to the image's ``layers`` filesystem layers.

        The engine's history API does not say which steps were config-only; it reports each
        step's size, and a step that added a layer has a non-zero size with the containerd image
        store. The answer is trusted only when the non-zero steps are exactly as many as the
        layers; otherwise None (the caller says it could not tell)."""
        from docker.errors import DockerException, ImageNotFound

        try:
            raw = self.client.api.history(image)
        except ImageNotFound as exc:
            raise EngineError(f"image {image} is not in the engine") from exc
        except DockerException as exc:
            raise EngineError(f"cannot read the history of {image}: {first_line(exc)}", hint=ENGINE_HINT) from exc
        entries = tuple(
            HistoryEntry(
                created_by=e.get("CreatedBy") or "", empty_layer=not e.get("Size"), size=int(e.get("Size") or 0)
            )
            for e in reversed(raw or [])
        )
        if sum(not e.empty_layer for e in entries) != layers:
            return None
        return entries

    def repository_tags(self, repository: str) -> list[tuple[str, str]]:
        """Every ``REPOSITORY:TAG`` the engine has, with its image ID, sorted."""
        from docker.errors import DockerException

        try:
            images = self.client.images.list(name=repository)
        except DockerException as exc:
            raise EngineError(f"cannot list the images of {repository}: {first_line(exc)}", hint=ENGINE_HINT) from exc
        out = set()
        for image in images:
            for ref in image.tags or ():
                if ref.rsplit(":", 1)[0] == repository:
                    out.add((ref, image.id))
        return sorted(out)

    def images_in_use(self) -> dict[str, list[str]]:
        """``{image ID: [container name, ...]}`` of every container, running or stopped."""
        from docker.errors import DockerException

        try:
            containers = self.client.api.containers(all=True)
        except DockerException as exc:
            raise EngineError(f"cannot list the engine's containers: {first_line(exc)}", hint=ENGINE_HINT) from exc
        used: dict[str, list[str]] = {}
        for c in containers:
            names = [n.lstrip("/") for n in c.get("Names") or ()] or [str(c.get("Id", ""))[:12]]
            used.setdefault(str(c.get("ImageID") or ""), []).extend(names)
        used.pop("", None)
        return {image_id: sorted(names) for image_id, names in used.items()}

    def remove_tag(self, ref: str) -> None:
        """``docker rmi REF``, never forced: the tag goes, and the image with it when it was its
        last tag; the engine refuses when a container uses the image. A tag already gone is fine."""
        from docker.errors import APIError, DockerException, ImageNotFound

        try:
            self.client.images.remove(ref, force=False, noprune=False)
        except ImageNotFound:
            return
        except APIError as exc:
            raise EngineError(
                f"the engine would not remove {ref}: {getattr(exc, 'explanation', None) or first_line(exc)}"
            ) from exc
        except DockerException as exc:
            raise EngineError(f"cannot remove {ref}: {first_line(exc)}", hint=ENGINE_HINT) from exc

    def save_oci_layout(self, image_id: str, dest: Path) -> Path:
        """``image_id`` from this engine's store as an OCI image layout folder at ``dest`` (made
        once: an existing layout is reused; written to a temporary folder, then renamed).

        A local base reaches BuildKit this way, as the named build context ``base``
        (``oci-layout://DEST@DIGEST``): bound to the exact digest, and it works on an engine that
        never built from the image (``FROM name:tag@sha256:...`` of a local-only image makes
        BuildKit ask the image's home registry there) and with builders outside the engine."""
        if (dest / "index.json").is_file():
            return dest
        import tarfile

        from docker.errors import DockerException, ImageNotFound

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
        try:
            archive = tmp / "image.tar"
            try:
                with open(archive, "wb") as fh:
                    for chunk in self.client.images.get(image_id).save(named=False):
                        fh.write(chunk)
            except ImageNotFound as exc:
                raise EngineError(
                    f"the base image {image_id} is not in the engine",
                    hint="make or pull the base image again, or run `imagesmith lock --upgrade-base`",
                ) from exc
            except DockerException as exc:
                raise EngineError(
                    f"cannot export the base image {image_id}: {first_line(exc)}", hint=ENGINE_HINT
                ) from exc
            layout = tmp / "layout"
            with tarfile.open(archive) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(layout, filter="data")
                else:  # pragma: no cover - Pythons without extraction filters
                    for member in tar.getmembers():
                        if (
                            member.name.startswith("/")
                            or ".." in member.name.split("/")
                            or not (member.isfile() or member.isdir())
                        ):
                            raise EngineError(f"the engine's export of {image_id} has an unsafe entry {member.name!r}")
                    tar.extractall(layout)
            try:
                index = json.loads((layout / "index.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise EngineError(
                    f"the engine exported {image_id} without an OCI index",
                    hint="enable the containerd image store (see docs/getting-started/installation.md)",
                ) from exc
            if image_id not in {m.get("digest") for m in index.get("manifests") or ()}:
                raise EngineError(
                    f"the engine's export of {image_id} names another image",
                    hint="enable the containerd image store (see docs/getting-started/installation.md)",
                )
            try:
                os.rename(layout, dest)
            except OSError:
                if not (dest / "index.json").is_file():  # not a concurrent export of the same image
                    raise
            return dest
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
