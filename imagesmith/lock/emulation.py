"""Running nothing of a platform this machine cannot run (no QEMU for it): refused only at what must run.

Most of a lock for another platform runs nothing of it: the base is pinned from its registry, its
Python version read from its files (``base.version_from_files``), uv resolves for the target from
the host, and apt pins its system packages natively in the base's image of this machine's
platform (``system.py``). What does run the target's own base (its Python when its files do not
tell, pip-compile in it, apt in it when the base has no image of this machine's platform, an
sdist's metadata) is refused before its container starts, by ``NativeOnly``, the engine for such a
platform, with the problem and what would have run. The one mechanism for every caller: the lock
(``LockError``, ``LOCK``) and the wheel cache fetching an sdist in the base for a build or a lock
(``UsageError``, its own words: ``wheels.py``) each pass a ``Refusal``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from ..errors import EngineError, ImagesmithError, LockError
from ..platforms import machine_platform, same_platform

if TYPE_CHECKING:
    from ..engine.protocols import LockEngine
    from ..engine.records import FileEntry, ImageInfo, IsolatedRun

HINT = (
    "register QEMU as the error says, or write the lock where QEMU is registered and commit it: a build "
    "from it needs QEMU only for the steps that run on the target (docs/guides/multi-platform.md)"
)
_SHOWN = 80  # the characters of a command said in the refusal


def _lock_step(image: str, what: str) -> str:
    shown = what.splitlines()[0] if what.strip() else what
    shown = shown if len(shown) <= _SHOWN else shown[: _SHOWN - 1] + "…"
    return f"the lock runs `{shown}` in the base image {image}"


@dataclass(frozen=True)
class Refusal:
    """How a container refused is said: the caller's error type, the step that would have run
    (from the image and the command: ``step(image, what)``), and the hint."""

    error: type[ImagesmithError]
    step: Callable[[str, str], str]
    hint: str | None = None

    def __call__(self, problem: str, image: str, what: str) -> ImagesmithError:
        from ..python_env import emulation_refusal  # only on a refusal: the lock does not load the build's modules

        return self.error(emulation_refusal(problem, [self.step(image, what)]) or problem, hint=self.hint)


LOCK = Refusal(LockError, _lock_step, HINT)  # the lock's: "the lock runs `pip-compile` in the base image …"


class NativeOnly:
    """An engine (``LockEngine``) that starts containers only of this machine's platform's images:
    every other call passes through to ``engine``; a container of any other image (or of one the
    engine cannot say the platform of: the target's base, a registry base not pulled) is refused,
    before it starts, with ``refusal`` of ``problem`` (``platforms.emulation_problem``'s sentence)
    and what would have run."""

    def __init__(self, engine: LockEngine, problem: str, refusal: Refusal = LOCK) -> None:
        self._engine = engine
        self._problem = problem
        self._refusal = refusal
        self._here = machine_platform()

    def image(self, ref: str) -> ImageInfo:
        return self._engine.image(ref)

    def has_image(self, ref: str) -> bool:
        return self._engine.has_image(ref)

    def find_image(self, ref: str) -> ImageInfo | None:
        return self._engine.find_image(ref)

    def pull(self, ref: str) -> ImageInfo:
        return self._engine.pull(ref)

    def registry_platform_digest(self, ref: str, platform: str) -> tuple[str, str]:
        return self._engine.registry_platform_digest(ref, platform)

    def read_paths(
        self, image: str, paths: Sequence[str], small: int | None = None
    ) -> dict[str, tuple[FileEntry, ...] | None]:
        return self._engine.read_paths(image, paths, small=small)  # copied out of a container never started

    def run(self, image: str, command: Sequence[str], **options) -> str:
        self._check(image, " ".join([*(options.get("entrypoint") or ()), *command]))
        return self._engine.run(image, command, **options)

    def run_to_end(self, image: str, what: str, timeout: int, **create) -> IsolatedRun:
        self._check(image, what)
        return self._engine.run_to_end(image, what, timeout, **create)

    def _check(self, image: str, what: str) -> None:
        try:
            platform = self._engine.image(image).platform
        except EngineError:
            platform = ""
        if platform and same_platform(platform, self._here):
            return
        raise self._refusal(self._problem, image, what)


def native_only(engine, problem: str | None, refusal: Refusal = LOCK):
    """``engine`` for a platform whose emulation ``problem`` (None: it runs here, and ``engine`` is
    returned as it is); a container refused is said by ``refusal``."""
    if problem is None or engine is None:
        return engine
    return NativeOnly(engine, problem, refusal)
