"""What the backends of the engine seam share: the docker CLI's path, the engine hint, and
short, credential-free text from errors and logs."""

from __future__ import annotations

import re
import shutil

ENGINE_HINT = ("start a Docker engine with buildx and the containerd image store, or point DOCKER_HOST "
               "(or a docker context) at one; README: \"Engines and builders\"")


def docker_cli() -> str:
    return shutil.which("docker") or "docker"


def redact(text: str) -> str:
    """Credentials in URLs (scheme://user:pass@host) never reach output."""
    return re.sub(r"(\w+://)[^/\s:@]+:[^/\s@]+@", r"\1***:***@", text)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def tail(text: str, n: int) -> str:
    return "\n".join(text.strip().splitlines()[-n:])
