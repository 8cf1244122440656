"""What the backends of the engine seam share: the docker CLI's path, the engine hint, short,
credential-free text from errors and logs (``redact`` is credentials.py's, the one redactor), and
the readers an ``Engine.keeping_readers`` block keeps (``KeptReaders``)."""

from __future__ import annotations

import shutil
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator

from ..credentials import redact

__all__ = ["ENGINE_HINT", "KeptReaders", "docker_cli", "first_line", "redact", "tail"]

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


class KeptReaders:
    """The readers of images' files kept for a block (``Engine.keeping_readers``), in one holder:
    the Engine opens and closes the block (``block``) and ``Containers.reading`` fills it, so a
    block in which nothing is read makes no container backend. ``stack`` is the open block's
    (None outside one), which removes each kept reader's container when the block ends;
    ``readers``: image -> its reader in the block."""

    def __init__(self) -> None:
        self.stack: ExitStack | None = None
        self.readers: dict[str, Callable[..., Any]] = {}

    @contextmanager
    def block(self) -> Iterator[None]:
        """Keep the readers made in this block until it ends; a block inside another one keeps
        nothing of its own."""
        if self.stack is not None:
            yield
            return
        with ExitStack() as stack:
            self.stack = stack
            try:
                yield
            finally:
                self.stack = None
                self.readers = {}
