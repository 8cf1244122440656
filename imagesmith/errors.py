"""The one error root of imagesmith.

    ImagesmithError                 anything imagesmith reports to a user (exit 2 unless stated)
    ├── UsageError                  a command line that cannot be acted on
    ├── SpecError                   imagesmith.yaml / [tool.imagesmith] is malformed (lists every problem)
    ├── LockError                   the lock cannot be made or read
    │   ├── ResolutionError         the resolver could not pin the requirements
    │   ├── CudaMismatchError       the lock mixes CUDA majors, or differs from the spec's ``cuda``
    │   ├── StaleLockError          the lock does not match its inputs (exit 1 for --check)
    │   └── NotALockError           a file read as a lock is none at all (not JSON, no ``imagesmith_lock``)
    ├── RenderError                 a value cannot be rendered safely into a Dockerfile
    ├── EngineError                 Docker engine / buildx / registry failures
    │   ├── ContainerTimeout        a container ran past its time and was stopped
    │   ├── BuildError              a build step failed (names the spec part and shows the log tail)
    │   ├── PortInUseError          a host port a container would publish is taken (names the port)
    │   └── SigningError            cosign cannot sign or check (missing, wrong password, registry down)
    ├── VerifyError                 verification could not be carried out (not: it failed)
    └── FileWriteError              an output file cannot be written (missing folder, a folder, read-only, disk full)
        └── UserFileError           a file imagesmith did not generate is where it would write (never overwritten)

Each error explains itself in ``__str__`` and may carry a ``hint`` (what to do about it).
Errors from subprocesses and the Docker SDK are translated at the seam (``engine.py``,
``lock/failures.py``) with ``raise ... from``.
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
    "NotALockError",
    "RenderError",
    "EngineError",
    "BuildError",
    "ContainerTimeout",
    "PortInUseError",
    "SigningError",
    "VerifyError",
    "FileWriteError",
    "UserFileError",
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


class NotALockError(LockError):
    """A file read as a lock holds no lock at all: not JSON, or no ``imagesmith_lock`` format.
    Where the file is the project's own lock, its hint (rewrite it) stands; where a user named
    the file (``diff A FILE``), the caller says it is not a lock instead (``verify_source``)."""


class RenderError(ImagesmithError):
    pass


class EngineError(ImagesmithError):
    pass


class ContainerTimeout(EngineError):
    """A container ran past its time and was stopped (the engine's wait for it ran out)."""


class BuildError(EngineError):
    def __init__(self, message: str, *, log_tail: str = "", hint: str | None = None) -> None:
        self.log_tail = log_tail
        full = message
        if log_tail:
            full += "\n--- last lines of the build log ---\n" + log_tail.rstrip()
        super().__init__(full, hint=hint)


class PortInUseError(EngineError):
    """The engine cannot publish a container port on ``host_port``: something else holds it."""

    def __init__(self, host_port: int, container_port: int | None = None, *, hint: str | None = None) -> None:
        self.host_port = host_port
        self.container_port = container_port
        inside = f" (the container's port {container_port})" if container_port else ""
        super().__init__(
            f"port {host_port} on 127.0.0.1 is already in use: it cannot be published{inside}",
            hint=hint or f"stop what listens on port {host_port}, or publish on another port",
        )


class SigningError(EngineError):
    """cosign could not be asked (not: a signature did not verify, which is a verify problem)."""


class VerifyError(ImagesmithError):
    pass


class FileWriteError(ImagesmithError):
    """An output file cannot be written; the old file (if any) is left as it was."""


class UserFileError(FileWriteError):
    """A file imagesmith did not write (no ``# Generated by imagesmith`` first line) is where it
    would write one: it is left as it is, and nothing else is written."""

    def __init__(self, path: str, *, what: str, hint: str) -> None:
        self.path = path
        super().__init__(
            f"{path} was not written by imagesmith (its first line is not imagesmith's header); "
            f"imagesmith never overwrites a file of yours, so it did not write its {what} there",
            hint=hint,
        )
