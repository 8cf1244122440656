"""What the backends of the engine seam share: the docker CLI's path, the engine hint, and
short, credential-free text from errors and logs (``redact`` is credentials.py's, the one
redactor)."""

from __future__ import annotations

import shutil

from ..credentials import redact

__all__ = ["ENGINE_HINT", "docker_cli", "first_line", "redact", "tail"]

ENGINE_HINT = (
    "start a Docker engine with buildx and the containerd image store, or point DOCKER_HOST "
    "(or a docker context) at one; see docs/guides/engines.md"
)


def docker_cli() -> str:
    return shutil.which("docker") or "docker"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def tail(text: str, n: int) -> str:
    return "\n".join(text.strip().splitlines()[-n:])
