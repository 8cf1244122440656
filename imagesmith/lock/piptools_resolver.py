"""The pip-tools resolver: ``pip-compile --generate-hashes``, on the host when the host is the
target and wheels suffice, else inside a container of the pinned base image
(``pip_compile_in_image``), where an sdist's build code may run. Also where ``UvResolver`` turns
when a distribution publishes only an sdist (``resolve_in_base``)."""

from __future__ import annotations

import os
import platform as host_platform
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from ..cache import container_pip_cache
from ..credentials import secret_file, strip_userinfo
from ..errors import EngineError, ResolutionError
from ..platforms import MACHINES
from . import piptools_venv
from .failures import INDEX_ENV, NETWORK_RE, NOT_FOUND_RE, configured_indexes, explain_failure
from .pins import Pin, parse_compiled
from .request import NeedsBuild, ResolveRequest, compile_output, console_script, run_with_credentials
from .resolution_files import stage_inputs


def resolve_in_base(engine, request: ResolveRequest) -> list[Pin]:
    """pip-compile in a container of the pinned base: where an sdist's build code may run."""
    if engine is None or request.base_ref is None:
        raise ResolutionError(
            "this resolution must run in a container of the base image (pip-tools for another Python or "
            "platform, or a requirement published only as an sdist, whose metadata comes from running its "
            "setup.py), and no engine was given",
            hint="run with a Docker engine available, or resolver: uv",
        )
    return avoiding_look_alikes(PipToolsResolver(engine).resolve_in_container, request)


LOOK_ALIKE_ROUNDS = 5


def avoiding_look_alikes(resolve: Callable[[ResolveRequest], list[Pin]], request: ResolveRequest) -> list[Pin]:
    """pip-compile with per-package indexes (see indexes.py): the pinned distributions are
    requirements, and a version chosen from files that are not on the pinned index is excluded
    (``name!=version``) and the resolution run again, at most ``LOOK_ALIKE_ROUNDS`` times. What
    is still wrong then, the lock's ``restrict_hashes`` refuses with the versions the index has."""
    from .indexes import off_index, pinned_requirements, refuse_general

    if not request.package_indexes:
        return resolve(request)
    refuse_general("pip-compile", configured_indexes("pip-compile"), request.package_indexes)
    excluded: list[str] = []
    with tempfile.TemporaryDirectory(prefix="imagesmith-pinned-") as tmp:
        pinned_in = Path(tmp) / "package-indexes.in"
        for _ in range(LOOK_ALIKE_ROUNDS):
            pinned_in.write_text(pinned_requirements(request.package_indexes, excluded))
            pins = resolve(replace(request, inputs=(*request.inputs, pinned_in)))
            wrong = off_index(pins, request.package_indexes, request.netrc())
            if not wrong:
                break
            excluded += [f"{p.name}!={p.version}" for p in wrong]
    return pins


def host_matches(python: str, platform: str) -> bool:
    """True when pip-compile run here resolves for the target (it resolves for its own interpreter)."""
    return (
        f"{sys.version_info.major}.{sys.version_info.minor}" == python
        and sys.platform == "linux"
        and host_platform.machine() == MACHINES[platform]
    )


def _container_cache() -> Path:
    """pip's cache for pip-compile in containers (``cache.container_pip_cache``)."""
    return container_pip_cache()


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def pip_tools_version() -> str:
    from importlib.metadata import version

    return version("pip-tools")


# pip-compile's --find-links page of the pinned distributions' files (indexes.find_links_page)
PINNED_LINKS = "imagesmith-package-indexes.html"


class PipToolsResolver:
    """``pip-compile --generate-hashes``. With per-package indexes, the pinned indexes are never
    pip's indexes: the pinned distributions' files reach it as one find-links page."""

    name = "pip-tools"
    wheels_only = False  # pip-compile reads an sdist when it must, and does not say so

    def __init__(self, engine=None) -> None:
        self._engine = engine

    @staticmethod
    def options(request: ResolveRequest) -> list[str]:
        # not --quiet: pip's warnings are what name an unreachable index
        return [
            "--generate-hashes",
            "--allow-unsafe",
            "--no-header",
            "--no-annotate",
            "--strip-extras",
            "--no-emit-index-url",
            "--no-emit-find-links",
            "--no-emit-trusted-host",
            *request.index_options(),
            *request.compile_options(),
        ]

    def resolve(self, request: ResolveRequest) -> list[Pin]:
        """On the host when it is the target and wheels suffice (``--only-binary``: no package's
        build code runs here); else, or for a pyproject.toml (its metadata may need its build
        backend) or an sdist, in a container of the base."""
        return avoiding_look_alikes(self._resolve_anywhere, request)

    def _resolve_anywhere(self, request: ResolveRequest) -> list[Pin]:
        if host_matches(request.python, request.platform) and not any(
            Path(p).name == "pyproject.toml" for p in request.inputs
        ):
            try:
                return self.resolve_on_host(request)
            except NeedsBuild:
                pass
        return resolve_in_base(self._engine, request)

    def resolve_on_host(self, request: ResolveRequest) -> list[Pin]:
        from .indexes import find_links_page

        with compile_output(request, "piptools") as out:
            argv = [
                console_script("pip-compile"),
                *self.options(request),
                "--pip-args",
                "--only-binary=:all:",
                "--output-file",
                str(out),
                *[str(p) for p in request.inputs],
            ]
            if request.package_indexes:
                page = out.parent / PINNED_LINKS
                page.write_text(find_links_page(request.package_indexes, request.netrc()))
                argv[1:1] = ["--find-links", str(page)]
            proc = run_with_credentials(argv, request)
            if proc.returncode != 0:
                output = proc.stderr + proc.stdout
                if NOT_FOUND_RE.search(output) and not NETWORK_RE.search(output):
                    raise NeedsBuild()  # perhaps only an sdist: the container decides
                raise explain_failure("pip-compile", output, request)
            return parse_compiled(out.read_text())

    def resolve_in_container(self, request: ResolveRequest) -> list[Pin]:
        """pip-compile inside the pinned base image, so the markers and wheels are the target's:
        the inputs are staged into a folder the container sees, pip-tools (this host's version)
        runs from a venv kept in the host cache for this base (piptools_venv.py: made by the
        base's first lock), and the pins are read back from the output file."""
        from .indexes import find_links_page

        if self._engine is None or request.base_ref is None:
            raise ResolutionError(
                f"pip-tools resolves only for the interpreter that runs it (here Python "
                f"{sys.version_info.major}.{sys.version_info.minor} on {host_platform.machine()}; the target is "
                f"Python {request.python} on {request.platform}), so it must run in the base image, and no engine was given",
                hint="use resolver: uv, or run with a Docker engine available",
            )
        with compile_output(request, "piptools", "out") as out:
            work = out.parent.parent / "in"
            work.mkdir()
            args = stage_inputs(request.inputs, work)
            # The host's pip index settings reach the container without their credentials: the
            # URLs as options, the user info (and the host's netrc entries) in a netrc file.
            if request.index_url is None and os.environ.get("PIP_INDEX_URL"):
                request = replace(request, index_url=os.environ["PIP_INDEX_URL"])
            if not request.extra_index_urls and os.environ.get("PIP_EXTRA_INDEX_URL"):
                request = replace(request, extra_index_urls=tuple(os.environ["PIP_EXTRA_INDEX_URL"].split()))
            env = {k: strip_userinfo(v) for k, v in os.environ.items() if k in INDEX_ENV["pip-compile"]}
            if request.package_indexes:
                (work / PINNED_LINKS).write_text(find_links_page(request.package_indexes, request.netrc()))
                args = ["--find-links", PINNED_LINKS, *args]
            with secret_file(request.netrc()) as netrc:
                code, output = pip_compile_in_image(
                    self._engine,
                    request.base_ref or "",
                    work=work,
                    args=[*self.options(request), *args],
                    out=out,
                    pip_tools=pip_tools_version(),
                    cache=_container_cache(),
                    netrc=netrc,
                    venvs=piptools_venv.venvs_dir(),
                    platform=request.platform,
                )
            if code == 3 and not NETWORK_RE.search(output):
                raise ResolutionError(
                    f"could not install pip-tools {pip_tools_version()} in the base image "
                    f"{request.base_ref}:\n{_tail(output)}",
                    hint="use a base image whose pip can install packages, or resolver: uv",
                )
            if code != 0:
                raise explain_failure("pip-compile", output, request, env=env)
            return parse_compiled(out.read_text())


def pip_compile_in_image(
    engine,
    image: str,
    *,
    work: Path,
    args: Sequence[str],
    out: Path,
    pip_tools: str,
    environment: dict[str, str] | None = None,
    cache: Path | None = None,
    netrc: Path | None = None,
    venvs: Path | None = None,
    platform: str = "",
    timeout: int = 1800,
) -> tuple[int, str]:
    """pip-compile inside ``image``, so it resolves for that image's Python and platform.

    ``work`` (the staged inputs; ``args`` are relative to it) is mounted at /in, ``out``'s
    folder at /out (pip-compile reads earlier pins from ``out`` and writes the result there),
    ``cache`` (optional) at /cache as pip's cache. pip-tools ``pip_tools`` runs from a venv made
    in the container: with ``venvs`` (a folder of the host cache, see piptools_venv.py) the one
    kept for this image, platform and version, mounted read-only, made there first if there is
    none yet; without it a throwaway venv. Runs as the calling user, so every file it writes is
    theirs. ``netrc`` (optional): a file with index credentials, mounted read-only and named by
    NETRC, so no credential is ever in the container's environment or command line.
    Returns (exit code, output); exit 3: pip-tools could not be installed."""
    volumes = {
        str(work.resolve()): {"bind": "/in", "mode": "rw"},
        str(out.parent.resolve()): {"bind": "/out", "mode": "rw"},
    }
    venv, kept, staged = "/tmp/pt", None, None
    if venvs is not None:
        found = engine.find_image(image)  # by ID: a tag moved to another base makes another venv
        key = piptools_venv.venv_key(found.id if found else image, platform, pip_tools)
        venv, kept = piptools_venv.MOUNT, piptools_venv.ready(venvs, key, pip_tools)
        folder = kept or piptools_venv.staging(venvs, key)  # a kept venv, else where to make one
        staged = None if kept else folder
        volumes[str(folder.resolve())] = {"bind": venv, "mode": "ro" if kept else "rw"}
    install = (
        f"python3 -m venv {venv} >/dev/null || exit 4; "
        f"{venv}/bin/pip install -q --disable-pip-version-check 'pip-tools=={pip_tools}' "
        f"|| {{ echo 'imagesmith: could not install pip-tools {pip_tools} in the base image' >&2; exit 3; }}; "
        f"touch {venv}/{piptools_venv.INSTALLED}; "
    )
    script = ("" if kept else install) + f'cd /in && exec {venv}/bin/pip-compile "$@" --output-file /out/{out.name}'
    env = {"HOME": "/tmp", "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(environment or {})}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        volumes[str(cache.resolve())] = {"bind": "/cache", "mode": "rw"}
        env["PIP_CACHE_DIR"] = "/cache"
    if netrc is not None:
        volumes[str(Path(netrc).resolve())] = {"bind": "/run/imagesmith/netrc", "mode": "ro"}
        env["NETRC"] = "/run/imagesmith/netrc"
    user = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else None
    try:
        run = engine.run_to_end(
            image,
            "pip-compile",
            timeout,
            command=["-c", script, "sh", *args],
            entrypoint=["sh"],
            user=user,
            environment=env,
            volumes=volumes,
            tmpfs={"/tmp": "rw,exec,size=512m"},
        )
    finally:
        if staged is not None and venvs is not None:
            piptools_venv.publish(staged, venvs, key, pip_tools)
    if run.exit_code is None:
        raise EngineError(f"cannot start pip-compile in a container of {image}: {run.start_error}")
    output = run.stdout + run.stderr
    if run.exit_code == 4:
        raise EngineError(
            f"cannot make a virtual environment in {image} to run pip-compile:\n{_tail(output)}",
            hint="use a base image with Python's venv module (e.g. python3-venv), or resolver: uv",
        )
    return run.exit_code, output
