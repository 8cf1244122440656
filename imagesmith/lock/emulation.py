"""Locking for a platform this machine cannot run (no QEMU for it): refused only at what must run.

Most of a lock for another platform runs nothing of it: the base is pinned from its registry, its
Python version read from its files (``base.version_from_files``), uv resolves for the target from
the host, and apt pins its system packages natively in the base's image of this machine's
platform (``system.py``). What does run the target's own base (its Python when its files do not
tell, pip-compile in it, apt in it when the base has no image of this machine's platform, an
sdist's metadata) is refused before its container starts, by ``NativeOnly``, the lock's engine
for such a platform, with the problem and what would have run."""

from __future__ import annotations

from typing import Sequence

from ..errors import EngineError, LockError
from ..platforms import machine_platform, same_platform

HINT = (
    "register QEMU as the error says, or write the lock where QEMU is registered and commit it: a build "
    "from it needs QEMU only for the steps that run on the target (docs/guides/multi-platform.md)"
)
_SHOWN = 80  # the characters of a command said in the refusal


class NativeOnly:
    """A lock's engine (``LockEngine``) that starts containers only of this machine's platform's
    images: every other call passes through to ``engine``; a container of any other image (or of
    one the engine cannot say the platform of: the target's base) is refused with ``problem``
    (``platforms.emulation_problem``'s sentence) and what would have run, before it starts."""

    def __init__(self, engine, problem: str) -> None:
        self._engine = engine
        self._problem = problem
        self._here = machine_platform()

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    def run(self, image: str, command: Sequence[str], **options) -> str:
        self._check(image, " ".join([*(options.get("entrypoint") or ()), *command]))
        return self._engine.run(image, command, **options)

    def run_to_end(self, image: str, what: str, timeout: int, **create):
        self._check(image, what)
        return self._engine.run_to_end(image, what, timeout, **create)

    def _check(self, image: str, what: str) -> None:
        try:
            platform = self._engine.image(image).platform
        except EngineError:
            platform = ""
        if platform and same_platform(platform, self._here):
            return
        from ..python_env import emulation_refusal  # only on a refusal: the lock does not load the build's modules

        shown = what.splitlines()[0] if what.strip() else what
        shown = shown if len(shown) <= _SHOWN else shown[: _SHOWN - 1] + "…"
        step = f"the lock runs `{shown}` in the base image {image}"
        raise LockError(emulation_refusal(self._problem, [step]) or self._problem, hint=HINT)


def native_only(engine, problem: str | None):
    """``engine`` as the lock uses it for a platform whose emulation ``problem`` (None: it runs here)."""
    if problem is None or engine is None:
        return engine
    return NativeOnly(engine, problem)
