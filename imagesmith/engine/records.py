"""The records the engine seam hands out: plain data, no Docker types."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HistoryEntry:
    created_by: str
    empty_layer: bool  # True: a config-only step (LABEL, ENV, CMD, ...) that added no filesystem layer


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


@dataclass(frozen=True)
class IsolatedRun:
    """A container run to its end: its exit code and both streams (None: it could not start)."""

    exit_code: int | None
    stdout: str
    stderr: str
    start_error: str = ""
