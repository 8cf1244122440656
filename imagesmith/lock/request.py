"""What every resolver shares: the ``ResolveRequest`` it is given, the ``Resolver`` protocol it
implements, the output file it compiles into (``compile_output``, holding the earlier lock's
versions as preferences) and running its tool (``run_tool``, ``run_with_credentials``;
``NeedsBuild`` when a resolution on the host would have to run a package's build code)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..credentials import index_args, index_netrc, secret_file
from ..errors import ResolutionError
from .pins import Pin, preferences

OUTPUT_FILE = "requirements.lock"  # the file a resolver's tool compiles into


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
    index_url: str | None = None  # the spec's indexes (no credentials; those come from the host)
    extra_index_urls: tuple[str, ...] = ()
    package_indexes: tuple[tuple[str, str], ...] = ()  # (name, index URL): see indexes.py
    # the project's folder: a host resolver runs there, as pip and uv read a requirement's
    # relative path (`-e .`, the project itself) from their working directory
    root: Path | None = None

    def index_options(self) -> list[str]:
        """The general indexes only: a per-package index never is one (see indexes.py)."""
        return index_args(self.index_url, self.extra_index_urls)

    def compile_options(self) -> list[str]:
        """The extras and upgrades, as uv and pip-compile both spell them."""
        opts = [arg for extra in self.extras for arg in ("--extra", extra)]
        if self.upgrade:
            opts.append("--upgrade")
        return opts + [arg for pkg in self.upgrade_packages for arg in ("--upgrade-package", pkg)]

    def netrc(self) -> str:
        """The host's credentials for the spec's indexes, as netrc text ("" when none)."""
        return index_netrc(self.index_url, [*self.extra_index_urls, *(url for _, url in self.package_indexes)])


class Resolver(Protocol):
    name: str
    # after ``resolve``: whether every pin is known to have a wheel for the target (the lock's
    # ``wheels_only``); False when the resolution may have read an sdist
    wheels_only: bool

    def resolve(self, request: ResolveRequest) -> list[Pin]: ...


class NeedsBuild(Exception):
    """A resolution on the host would have to run a package's build code."""


@contextmanager
def compile_output(request: ResolveRequest, tool: str, folder: str = "") -> Iterator[Path]:
    """The file a resolver's tool compiles into (``OUTPUT_FILE``, in ``folder`` of a temporary
    folder, removed after), holding the earlier lock's versions as preferences unless the request
    upgrades: the tool keeps the versions it can."""
    with tempfile.TemporaryDirectory(prefix=f"imagesmith-{tool}-") as tmp:
        out = Path(tmp, folder, OUTPUT_FILE)
        out.parent.mkdir(exist_ok=True)
        if request.previous and not request.upgrade:
            out.write_text(preferences(request.previous))
        yield out


def run_with_credentials(argv: list[str], request: ResolveRequest, **env: str) -> subprocess.CompletedProcess:
    """``run_tool`` in the project's folder (``request.root``) and the host's environment with
    ``env``, and the host's credentials for the request's indexes in a netrc file (``NETRC``,
    removed after) when there are any."""
    with secret_file(request.netrc()) as netrc:
        env = dict(os.environ, **env, **({"NETRC": str(netrc)} if netrc else {}))
        return run_tool(argv, env=env, cwd=request.root)


def run_tool(
    argv: list[str], *, env: dict | None = None, cwd: Path | None = None, timeout: int = 1800
) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    except FileNotFoundError as exc:
        raise ResolutionError(f"{argv[0]} is not installed", hint="pip install imagesmith installs it") from exc
    except subprocess.TimeoutExpired as exc:
        raise ResolutionError(
            f"{argv[0]} did not finish in {timeout} s", hint="check the network and the index"
        ) from exc


def console_script(name: str) -> str:
    """A console script installed beside this interpreter, else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)
