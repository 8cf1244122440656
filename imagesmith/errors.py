"""The one error root of imagesmith.

    ImagesmithError                 anything imagesmith reports to a user (exit 2 unless stated)
    ├── UsageError                  a command line that cannot be acted on
    ├── SpecError                   imagesmith.yaml / [tool.imagesmith] is malformed (lists every problem)
    ├── LockError                   the lock cannot be made or read
    │   ├── ResolutionError         the resolver could not pin the requirements
    │   ├── CudaMismatchError       the lock mixes CUDA majors, or differs from the spec's ``cuda``
    │   └── StaleLockError          the lock does not match its inputs (exit 1 for --check)
    ├── RenderError                 a value cannot be rendered safely into a Dockerfile
    ├── EngineError                 Docker engine / buildx / registry failures
    │   ├── BuildError              a build step failed (names the spec part and shows the log tail)
    │   └── SigningError            cosign cannot sign or check (missing, wrong password, registry down)
    ├── VerifyError                 verification could not be carried out (not: it failed)
    └── FileWriteError              an output file cannot be written (missing folder, a folder, read-only, disk full)

Each error explains itself in ``__str__`` and may carry a ``hint`` (what to do about it).
Errors from subprocesses and the Docker SDK are translated at the seam (``engine.py``,
``lock/resolvers.py``) with ``raise ... from``.
"""

from __future__ import annotations

from .runtime.errors import ImagesmithError  # the root is standard library only: images raise it too

__all__ = [
    "ImagesmithError",
    "UsageError",
    "SpecError",
    "LockError",
    "ResolutionError",
    "StaleLockError",
    "CudaMismatchError",
    "RenderError",
    "EngineError",
    "BuildError",
    "SigningError",
    "VerifyError",
]


class UsageError(ImagesmithError):
    pass


class SpecError(ImagesmithError):
    """A spec with one or more problems; ``problems`` holds one line per problem."""

    def __init__(self, path: str, problems: list[str], *, hint: str | None = None) -> None:
        self.path = path
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"{path}: {self.problems[0]}"
        else:
            message = f"{path}: {len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message, hint=hint)


class LockError(ImagesmithError):
    pass


class ResolutionError(LockError):
    pass


class CudaMismatchError(LockError):
    """The lock's CUDA-bearing distributions disagree on the CUDA major (see ``gpu.py``)."""


class StaleLockError(LockError):
    exit_code = 1

    def __init__(self, lock_path: str, changed: list[str]) -> None:
        self.changed = list(changed)
        super().__init__(
            f"{lock_path} is stale: {', '.join(self.changed)} changed since it was written",
            hint="run `imagesmith lock` to update it",
        )


class RenderError(ImagesmithError):
    pass


class EngineError(ImagesmithError):
    pass


class BuildError(EngineError):
    def __init__(self, message: str, *, log_tail: str = "", hint: str | None = None) -> None:
        self.log_tail = log_tail
        full = message
        if log_tail:
            full += "\n--- last lines of the build log ---\n" + log_tail.rstrip()
        super().__init__(full, hint=hint)


class SigningError(EngineError):
    """cosign could not be asked (not: a signature did not verify, which is a verify problem)."""


class VerifyError(ImagesmithError):
    pass


class FileWriteError(ImagesmithError):
    """An output file cannot be written; the old file (if any) is left as it was."""
