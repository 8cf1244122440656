"""Where imagesmith keeps what it downloads on the host (one place, read by the lock and the
wheel cache): ``$XDG_CACHE_HOME/imagesmith`` or ``~/.cache/imagesmith``."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "imagesmith"


def project_key(root: Path | str) -> str:
    """The name of a project directory's own entries in the cache (the stat cache, the staged
    source, the last render): its resolved path, hashed."""
    import hashlib

    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:24]


def container_pip_cache() -> Path:
    """pip's cache for pip-compile in containers: beside the wheel cache, shared by all projects."""
    return default_cache_dir() / "pip-in-container"
