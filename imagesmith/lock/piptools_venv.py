"""The pip-tools venv that pip-compile runs from in a container of the base image, kept in the
host cache so that only a base's first lock makes it.

Making it (``python3 -m venv`` in the base, then ``pip install pip-tools``, which also upgrades
the venv's pip) is most of an in-container lock: ensurepip and the install each take seconds, and
pip's own cache saves only the downloads. So the venv is made once per (base image ID, platform,
pip-tools version), in ``$XDG_CACHE_HOME/imagesmith/pip-tools-venvs/<key>``, and later locks mount
it read-only at ``MOUNT`` (the path it was made at: a venv's scripts and ``pyvenv.cfg`` name it).

Never trusted if half-written: it is made in a hidden staging folder (``.<key>.<random>``), the
container writes ``INSTALLED`` only after pip-tools installed, the host then writes ``COMPLETE``
(the key and pip-tools version) and renames the folder into place in one step. A folder without a
``COMPLETE`` that names its key and version is not used; staging folders left by a killed lock are
removed after a day."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..cache import PRUNE_AFTER_S, default_cache_dir, prune_due

MOUNT = "/opt/imagesmith-pip-tools"  # where the venv is made and used, in every container
INSTALLED = "imagesmith-installed"  # written by the container once pip-tools is installed
COMPLETE = "imagesmith-complete.json"  # written by the host last, before the rename


def venvs_dir() -> Path:
    return default_cache_dir() / "pip-tools-venvs"


def venv_key(image_id: str, platform: str, pip_tools: str) -> str:
    """The cache entry's name: the base's image ID (its interpreter and libraries), the platform
    the container runs as and the pip-tools version installed, hashed."""
    return hashlib.sha256(f"{image_id}\n{platform}\n{pip_tools}".encode()).hexdigest()[:32]


def ready(folder: Path, key: str, pip_tools: str) -> Path | None:
    """The complete venv for ``key``, or None (none yet, or one that is not whole)."""
    path = folder / key
    try:
        data = json.loads((path / COMPLETE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data != {"key": key, "pip_tools": pip_tools} or not (path / "bin" / "pip-compile").is_file():
        return None
    return path


def staging(folder: Path, key: str) -> Path:
    """A new, empty, hidden folder beside the entry, where a container makes the venv."""
    folder.mkdir(parents=True, exist_ok=True)
    _prune_staging(folder)
    return Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder))


def publish(staged: Path, folder: Path, key: str, pip_tools: str) -> Path | None:
    """Move ``staged`` into place as ``key``'s venv when the container said pip-tools installed
    (``INSTALLED``); else, or when another lock published first, remove it. Returns the entry."""
    try:
        if (staged / INSTALLED).is_file() and (staged / "bin" / "pip-compile").is_file():
            if (folder / key).exists() and ready(folder, key, pip_tools) is None:
                shutil.rmtree(folder / key)  # not whole (no writer uses it: they stage)
            (staged / COMPLETE).write_text(json.dumps({"key": key, "pip_tools": pip_tools}), encoding="utf-8")
            os.rename(staged, folder / key)  # one step; refused when the entry exists
            return folder / key
    except OSError:
        pass
    shutil.rmtree(staged, ignore_errors=True)
    return ready(folder, key, pip_tools)


def _prune_staging(folder: Path) -> None:
    """Remove staging folders a killed lock left, once they are a day old (checked once a day)."""
    if not prune_due(folder):
        return
    now = time.time()
    for entry in folder.glob(".*.*"):
        try:
            if entry.is_dir() and now - entry.stat().st_mtime > PRUNE_AFTER_S:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass
