"""Resolvers: turn requirement inputs into exact pins with hashes for the image's Python and platform.

Both implement the ``Resolver`` protocol and return the same ``Pin`` list, so the lock file has
one format whichever resolved it. The resolver is chosen in one place, ``get_resolver``.

- ``UvResolver`` runs ``uv pip compile --generate-hashes`` with ``--python-version`` and
  ``--python-platform``, so it resolves for the target whatever the host is.
- ``PipToolsResolver`` runs ``pip-compile --generate-hashes --allow-unsafe``. pip-compile only
  resolves for the interpreter that runs it, so when the host's Python version or platform is not
  the target's, it runs inside a container of the pinned base image (see ``engine.py``).
"""

from __future__ import annotations

import os
import platform as host_platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import ResolutionError

PLATFORM_TAGS = {"linux/amd64": "x86_64-manylinux_2_28", "linux/arm64": "aarch64-manylinux_2_28"}
MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503) name
    version: str
    hashes: tuple[str, ...]  # "sha256:<hex>", sorted

    def as_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "hashes": list(self.hashes)}


@dataclass(frozen=True)
class ResolveRequest:
    """What to resolve. ``inputs`` are files the resolver reads (requirements files or a
    pyproject.toml); ``previous`` is an earlier requirements.lock used as preferences."""

    inputs: tuple[Path, ...]
    extras: tuple[str, ...]
    python: str  # "3.11"
    platform: str  # "linux/amd64"
    previous: str | None = None
    upgrade: bool = False
    upgrade_packages: tuple[str, ...] = ()
    base_ref: str | None = None  # the pinned base image, for resolvers that must run inside it


class Resolver(Protocol):
    name: str

    def resolve(self, request: ResolveRequest) -> list[Pin]: ...


# --------------------------------------------------------------------------------------------
# Output parsing (shared)


def parse_compiled(text: str) -> list[Pin]:
    """Parse pip-compile / uv output (``name==version \\ --hash=sha256:...``) into pins."""
    pins: dict[str, Pin] = {}
    logical = re.sub(r"\\\s*\n", " ", text)
    for raw in logical.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        head, *hash_parts = line.split("--hash=")
        try:
            req = Requirement(head.strip())
        except InvalidRequirement as exc:
            raise ResolutionError(f"the resolver wrote a line imagesmith cannot read: {raw!r} ({exc})") from exc
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise ResolutionError(f"the resolver left {req.name} unpinned ({req.specifier or 'no version'})")
        hashes = tuple(sorted({h.strip() for h in hash_parts if h.strip()}))
        if not hashes:
            raise ResolutionError(f"the resolver gave no hash for {req.name}=={specs[0].version}")
        name = canonicalize_name(req.name)
        pins[name] = Pin(name=name, version=specs[0].version, hashes=hashes)
    return [pins[k] for k in sorted(pins)]


def render_requirements_lock(pins: Sequence[Pin], header: str) -> str:
    """The pip-compatible ``requirements.lock``: ``pip install --require-hashes -r`` accepts it."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for pin in pins:
        lines.append(f"{pin.name}=={pin.version} \\")
        for i, h in enumerate(pin.hashes):
            lines.append(f"    --hash={h}" + (" \\" if i < len(pin.hashes) - 1 else ""))
    return "\n".join(lines) + "\n"


_CONFLICT_HINTS = (
    (re.compile(r"no solution|ResolutionImpossible|conflict", re.I),
     "the requirements conflict: relax one of the versions named above"),
    (re.compile(r"not found in the package registry|No matching distribution|Could not find a version|no versions? of", re.I),
     "check the package name and version exist on the package index"),
    (re.compile(r"Failed to fetch|Connection|timed out|Name or service not known|dns", re.I),
     "the package index could not be reached: check the network or the index settings (PIP_INDEX_URL / UV_INDEX_URL)"),
)


def _explain_failure(tool: str, output: str, request: ResolveRequest) -> ResolutionError:
    lines = [ln.rstrip() for ln in output.strip().splitlines() if ln.strip()]
    # Keep the resolver's own explanation (uv and pip-compile both name the clashing packages).
    body = "\n".join(lines[-15:]) if lines else "(no output)"
    hint = next((h for rx, h in _CONFLICT_HINTS if rx.search(output)), "see the resolver's message above")
    return ResolutionError(
        f"{tool} could not resolve the requirements for Python {request.python} on {request.platform}:\n{body}",
        hint=hint,
    )


def _run(argv: list[str], *, env: dict | None = None, cwd: Path | None = None, timeout: int = 1800) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    except FileNotFoundError as exc:
        raise ResolutionError(f"{argv[0]} is not installed", hint="pip install imagesmith installs it") from exc
    except subprocess.TimeoutExpired as exc:
        raise ResolutionError(f"{argv[0]} did not finish in {timeout} s", hint="check the network and the index") from exc


def _tool(name: str) -> str:
    """A console script installed beside this interpreter, else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


# --------------------------------------------------------------------------------------------
# uv


class UvResolver:
    name = "uv"

    def resolve(self, request: ResolveRequest) -> list[Pin]:
        with tempfile.TemporaryDirectory(prefix="imagesmith-uv-") as tmp:
            out = Path(tmp) / "requirements.lock"
            if request.previous and not request.upgrade:
                out.write_text(request.previous)
            argv = [
                _tool("uv"), "pip", "compile", "--quiet", "--generate-hashes", "--no-header",
                "--no-annotate", "--python-version", request.python,
                "--python-platform", PLATFORM_TAGS[request.platform], "--output-file", str(out),
            ]
            for extra in request.extras:
                argv += ["--extra", extra]
            if request.upgrade:
                argv.append("--upgrade")
            for pkg in request.upgrade_packages:
                argv += ["--upgrade-package", pkg]
            argv += [str(p) for p in request.inputs]
            env = dict(os.environ, UV_NO_PROGRESS="1")
            proc = _run(argv, env=env)
            if proc.returncode != 0:
                raise _explain_failure("uv", proc.stderr + proc.stdout, request)
            return parse_compiled(out.read_text())


# --------------------------------------------------------------------------------------------
# pip-tools


def host_matches(python: str, platform: str) -> bool:
    return (f"{sys.version_info.major}.{sys.version_info.minor}" == python
            and sys.platform == "linux" and host_platform.machine() == MACHINES[platform])


class PipToolsResolver:
    name = "pip-tools"

    def __init__(self, engine=None) -> None:
        self._engine = engine

    def resolve(self, request: ResolveRequest) -> list[Pin]:
        with tempfile.TemporaryDirectory(prefix="imagesmith-piptools-") as tmp:
            out = Path(tmp) / "requirements.lock"
            if request.previous and not request.upgrade:
                out.write_text(request.previous)
            opts = ["--quiet", "--generate-hashes", "--allow-unsafe", "--no-header", "--no-annotate",
                    "--strip-extras", "--no-emit-index-url", "--no-emit-find-links"]
            for extra in request.extras:
                opts += ["--extra", extra]
            if request.upgrade:
                opts.append("--upgrade")
            for pkg in request.upgrade_packages:
                opts += ["--upgrade-package", pkg]
            if host_matches(request.python, request.platform):
                argv = [_tool("pip-compile"), *opts, "--output-file", str(out), *[str(p) for p in request.inputs]]
                proc = _run(argv)
                output = proc.stderr + proc.stdout
            else:
                proc, output = self._in_container(request, opts, Path(tmp), out)
            if proc.returncode != 0:
                raise _explain_failure("pip-compile", output, request)
            return parse_compiled(out.read_text())

    def _in_container(self, request: ResolveRequest, opts: list[str], tmp: Path, out: Path):
        """Run pip-compile inside the pinned base image, so markers and wheels are the target's."""
        if self._engine is None or request.base_ref is None:
            raise ResolutionError(
                f"pip-tools resolves only for the interpreter that runs it (host: Python "
                f"{sys.version_info.major}.{sys.version_info.minor}, target: {request.python}) and no engine was given",
                hint="use resolver: uv, or run with a Docker engine available",
            )
        return self._engine.run_pip_compile(request.base_ref, request.inputs, opts, out)


def get_resolver(name: str, engine=None) -> Resolver:
    if name == "uv":
        return UvResolver()
    if name == "pip-tools":
        return PipToolsResolver(engine)
    raise ResolutionError(f"unknown resolver {name!r}", hint="use uv or pip-tools")
