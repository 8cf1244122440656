"""The records the engine seam hands out: plain data, no Docker types."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HistoryEntry:
    created_by: str
    empty_layer: bool  # True: a config-only step (LABEL, ENV, CMD, ...) that added no filesystem layer
    size: int = 0  # bytes the step added (the engine's history; 0 when not known, e.g. from a registry)


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    id: str  # sha256:... (with the containerd store: the manifest digest)
    labels: dict[str, str]
    layers: tuple[str, ...]  # RootFS diff IDs, bottom first
    repo_digests: tuple[str, ...]
    config: dict  # the image config (Entrypoint, Cmd, Env, ExposedPorts, WorkingDir, ...)
    size: int
    created: str
    history: tuple[HistoryEntry, ...] | None = None  # oldest first; None: not read (see Images.history)
    source: str = "local"  # "local" (the engine's image store) or "registry" (read without pulling)
    platform: str = ""  # os/architecture of the image's config, e.g. linux/arm64 ("" when not known)
    index_digest: str = ""  # the image index this image was chosen from (registry reads of an index)


@dataclass(frozen=True)
class IsolatedRun:
    """A container run to its end: its exit code and both streams (None: it could not start).
    ``truncated``: stdout was longer than the run's limit, so the container was killed and
    ``stdout`` is empty."""

    exit_code: int | None
    stdout: str
    stderr: str
    start_error: str = ""
    truncated: bool = False


@dataclass(frozen=True)
class FileEntry:
    """One entry of an image's file system, read without running the image (``read_paths``)."""

    path: str  # absolute, as in the image
    kind: str  # "file", "dir", "symlink", "hardlink" or "other"
    mode: int  # permission bits
    uid: int
    target: str = ""  # a link's target
    sha256: str = ""  # a regular file's content digest ("sha256:...")
    data: bytes | None = None  # a regular file's bytes, when it is small (see ``read_paths``)
