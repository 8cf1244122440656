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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

from ..cache import container_pip_cache
from ..credentials import index_args, index_netrc, redact, secret_file, strip_userinfo
from ..errors import EngineError, ResolutionError
from ..fsutil import tomllib
from ..platforms import MACHINES, RESOLVER_PLATFORMS
from ..spec.pyproject import pyproject_project

# packaging and .indexes (urllib.request, html.parser) are imported in the functions that use
# them: an up-to-date lock and verify import this module (for Pin) and never resolve.

PLATFORM_TAGS = RESOLVER_PLATFORMS


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
    index_url: str | None = None  # the spec's indexes (no credentials; those come from the host)
    extra_index_urls: tuple[str, ...] = ()
    package_indexes: tuple[tuple[str, str], ...] = ()  # (name, index URL): see indexes.py

    def index_options(self) -> list[str]:
        """The general indexes only: a per-package index never is one (see indexes.py)."""
        return index_args(self.index_url, self.extra_index_urls)

    def netrc(self) -> str:
        """The host's credentials for the spec's indexes, as netrc text ("" when none)."""
        return index_netrc(self.index_url, [*self.extra_index_urls, *(url for _, url in self.package_indexes)])


class Resolver(Protocol):
    name: str

    def resolve(self, request: ResolveRequest) -> list[Pin]: ...


# --------------------------------------------------------------------------------------------
# Output parsing (shared)


def logical_lines(text: str) -> list[str]:
    """A requirements file's logical lines: continuations (``\\``) joined, comments and blank
    lines dropped."""
    out = []
    for raw in re.sub(r"\\\s*\n", " ", text).splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def parse_compiled(text: str) -> list[Pin]:
    """Parse pip-compile / uv output (``name==version \\ --hash=sha256:...``) into pins."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, Pin] = {}
    for line in logical_lines(text):
        if line.startswith("-"):
            continue
        head, *hash_parts = line.split("--hash=")
        try:
            req = Requirement(head.strip())
        except InvalidRequirement as exc:
            raise ResolutionError(f"the resolver wrote a line imagesmith cannot read: {line!r} ({exc})") from exc
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise ResolutionError(f"the resolver left {req.name} unpinned ({req.specifier or 'no version'})")
        hashes = tuple(sorted({h.strip() for h in hash_parts if h.strip()}))
        if not hashes:
            raise ResolutionError(f"the resolver gave no hash for {req.name}=={specs[0].version}")
        name = canonicalize_name(req.name)
        pins[name] = Pin(name=name, version=specs[0].version, hashes=hashes)
    return [pins[k] for k in sorted(pins)]


def preferences(previous: str) -> str:
    """An earlier requirements.lock as the resolvers' preferences: its ``name==version`` lines
    only. uv and pip-compile keep the hashes they find in an existing output file, and those may
    be another source's (a uv.lock resolved for other Pythons lists only their wheels): a re-lock
    keeps the versions it can and takes every hash from the index."""
    lines = [line.split("--hash=", 1)[0].strip() for line in logical_lines(previous) if not line.startswith("-")]
    return "".join(line + "\n" for line in lines if line)


def render_requirements_lock(pins: Sequence[Pin], header: str) -> str:
    """The pip-compatible ``requirements.lock``: ``pip install --require-hashes -r`` accepts it."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for pin in pins:
        lines.append(f"{pin.name}=={pin.version} \\")
        for i, h in enumerate(pin.hashes):
            lines.append(f"    --hash={h}" + (" \\" if i < len(pin.hashes) - 1 else ""))
    return "\n".join(lines) + "\n"


# Index settings each resolver reads from the environment (pip also reads its config files).
INDEX_ENV = {
    "uv": ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_INDEX", "UV_EXTRA_INDEX_URL"),
    "pip-compile": ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"),
}
_NETWORK_RE = re.compile(
    r"Failed to fetch|Could not fetch URL|NewConnectionError|Connection refused|Max retries exceeded|"
    r"Name or service not known|Temporary failure in name resolution|ConnectTimeout|timed out|"
    r"tcp connect error|dns error|error sending request",
    re.I,
)
_FETCH_URL_RE = re.compile(r"(?:Failed to fetch:?|Could not fetch URL)\s+`?(\w+://[^\s`'\"]+)")
# any run of whitespace between the words: uv wraps its messages at the terminal's width
_NO_WHEEL_RE = re.compile(
    r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:==\S+)?\s+has\s+no\s+wheels\s+with\s+a\s+matching\s+(?:platform|Python)[^.(]*",
    re.I,
)
_NOT_FOUND_RE = re.compile(
    r"(?:Because )?([A-Za-z0-9][A-Za-z0-9._-]*) was not found in the package registry|"
    r"there is no version of ([A-Za-z0-9][A-Za-z0-9._-]*(?:[=<>!~]=?[^\s,]+)?)|"
    r"No matching distribution found for ([^\s;]+)|"
    r"Could not find a version that satisfies the requirement ([^\s;]+)",
    re.I,
)
_CONFLICT_RE = re.compile(r"No solution found|ResolutionImpossible|conflicting dependencies|unsatisfiable", re.I)
# The lines of pip's and uv's output that explain a failure (the rest is traceback and retries).
_KEEP_RE = re.compile(
    r"^\s*(?:error|ERROR|cause|hint|  cause|Because|And because|Cannot install|The conflict|"
    r"\S.* depends on|Could not|No matching|.*conflicting dependencies|.*unsatisfiable)",
    re.M,
)


def _index_of(url: str) -> str:
    """The index root of a URL pip or uv failed to fetch (``.../simple/idna/`` -> ``.../simple``)."""
    url = redact(url.rstrip(":.,)"))
    m = re.match(r"(.*?/simple)(?:/|$)", url)
    return m.group(1) if m else url.rstrip("/")


def configured_indexes(tool: str, env: Mapping[str, str] | None = None) -> list[str]:
    source: Mapping[str, str] = os.environ if env is None else env
    urls: list[str] = []
    for key in INDEX_ENV[tool]:
        urls += [redact(u) for u in source.get(key, "").split() if u]
    return urls


def _explain_failure(tool: str, output: str, request: ResolveRequest, env: dict | None = None) -> ResolutionError:
    """One readable error for a failed resolution, classified: index unreachable (naming the index),
    no wheel for the target (naming it), unknown package, or a conflict (the resolver's own
    explanation, which names the clashing packages and versions)."""
    target = f"Python {request.python} on {request.platform}"
    output = redact(output)
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    kept = [ln for ln in lines if _KEEP_RE.match(ln) and "Traceback" not in ln and "Retrying" not in ln]
    body = "\n".join(dict.fromkeys(kept[-15:] or lines[-15:])) or "(no output)"
    if _NETWORK_RE.search(output):
        fetched = [_index_of(u) for u in _FETCH_URL_RE.findall(output)]
        indexes = list(dict.fromkeys(fetched or configured_indexes(tool, env))) or ["the default package index"]
        return ResolutionError(
            f"{tool} could not reach the package index {', '.join(indexes)} while resolving for {target}",
            hint="check the network, or the index settings (" + " / ".join(INDEX_ENV[tool]) + ")",
        )
    m = _NO_WHEEL_RE.search(output)
    if m:
        return ResolutionError(
            f"{m.group(1)} has no wheel for the target, {target} ({PLATFORM_TAGS[request.platform]}):\n{body}",
            hint="choose a version that publishes wheels for this Python and platform, or change python:/platform:",
        )
    m = _NOT_FOUND_RE.search(output)
    if m and not re.search(r"conflicting dependencies|depends on", output):
        name = next(g for g in m.groups() if g)
        return ResolutionError(
            f"no distribution of {name} for {target} was found on the package index:\n{body}",
            hint="check the package name and version exist, and publish a wheel or sdist for this Python and platform",
        )
    if _CONFLICT_RE.search(output):
        return ResolutionError(
            f"the requirements conflict for {target}:\n{body}", hint="relax one of the versions named above"
        )
    return ResolutionError(
        f"{tool} could not resolve the requirements for {target}:\n{body}", hint="see the resolver's message above"
    )


def _run(
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


def _tool(name: str) -> str:
    """A console script installed beside this interpreter, else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def uv_bin() -> str:
    """The uv that imagesmith installs (its ``uv`` dependency, found by ``uv.find_uv_bin()``),
    never another uv on PATH (a pyenv shim, another version): every uv call goes through it."""
    try:
        from uv import find_uv_bin
    except ImportError as exc:  # a broken install: uv is a dependency of imagesmith
        raise ResolutionError(
            "the uv package that imagesmith depends on is not installed", hint="pip install imagesmith installs it"
        ) from exc
    try:
        return str(find_uv_bin())
    except FileNotFoundError as exc:
        raise ResolutionError(
            f"uv's binary is missing ({exc})", hint="reinstall uv: pip install --force-reinstall uv"
        ) from exc


# --------------------------------------------------------------------------------------------
# uv


# uv's words when --no-build meets a distribution that publishes only an sdist for the target.
_NEEDS_BUILD_RE = re.compile(
    r"building from source is disabled|building source distributions is disabled|has no usable wheels|--no-build", re.I
)


class UvResolver:
    """``uv pip compile --no-build``: uv never runs a package's build code on the host. When a
    distribution publishes only an sdist for the target, reading its metadata means running its
    setup.py, so the resolution moves into a container of the base (``PipToolsResolver``'s)."""

    name = "uv"

    def __init__(self, engine=None) -> None:
        self._engine = engine

    def resolve(self, request: ResolveRequest) -> list[Pin]:
        try:
            return self._resolve_on_host(request)
        except _NeedsBuild:
            return _resolve_in_base(self._engine, request)

    def _resolve_on_host(self, request: ResolveRequest) -> list[Pin]:
        from .indexes import check_origins, refuse_general, uv_project
        from .indexes import origins as index_origins

        with tempfile.TemporaryDirectory(prefix="imagesmith-uv-") as tmp:
            out = Path(tmp) / "requirements.lock"
            if request.previous and not request.upgrade:
                out.write_text(preferences(request.previous))
            argv = [
                uv_bin(),
                "pip",
                "compile",
                "--quiet",
                "--generate-hashes",
                "--no-header",
                "--no-annotate",
                "--no-build",
                "--python-version",
                request.python,
                "--python-platform",
                PLATFORM_TAGS[request.platform],
                "--output-file",
                str(out),
            ]
            for extra in request.extras:
                argv += ["--extra", extra]
            if request.upgrade:
                argv.append("--upgrade")
            for pkg in request.upgrade_packages:
                argv += ["--upgrade-package", pkg]
            argv += [*request.index_options(), *[str(p) for p in request.inputs]]
            if request.package_indexes:  # each pinned to its explicit index (indexes.py)
                refuse_general("uv", configured_indexes("uv"), request.package_indexes)
                pins_project = Path(tmp) / "package-indexes" / "pyproject.toml"
                pins_project.parent.mkdir()
                pins_project.write_text(uv_project(request.package_indexes))
                argv += ["--emit-index-annotation", str(pins_project)]
            with secret_file(request.netrc()) as netrc:
                env = dict(os.environ, UV_NO_PROGRESS="1", **({"NETRC": str(netrc)} if netrc else {}))
                proc = _run(argv, env=env)
            if proc.returncode != 0:
                if _NEEDS_BUILD_RE.search(proc.stderr + proc.stdout) and not _NETWORK_RE.search(proc.stderr):
                    raise _NeedsBuild()
                raise _explain_failure("uv", proc.stderr + proc.stdout, request)
            compiled = out.read_text()
            if request.package_indexes:
                check_origins(index_origins(compiled), request.package_indexes)
            return parse_compiled(compiled)


class _NeedsBuild(Exception):
    """A resolution on the host would have to run a package's build code."""


def _resolve_in_base(engine, request: ResolveRequest) -> list[Pin]:
    """pip-compile in a container of the pinned base: where an sdist's build code may run."""
    if engine is None or request.base_ref is None:
        raise ResolutionError(
            "this resolution must run in a container of the base image (pip-tools for another Python or "
            "platform, or a requirement published only as an sdist, whose metadata comes from running its "
            "setup.py), and no engine was given",
            hint="run with a Docker engine available, or resolver: uv",
        )
    return _avoiding_look_alikes(PipToolsResolver(engine).resolve_in_container, request)


LOOK_ALIKE_ROUNDS = 5


def _avoiding_look_alikes(resolve: Callable[[ResolveRequest], list[Pin]], request: ResolveRequest) -> list[Pin]:
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


# --------------------------------------------------------------------------------------------
# pip-tools


def host_matches(python: str, platform: str) -> bool:
    """True when pip-compile run here resolves for the target (it resolves for its own interpreter)."""
    return (
        f"{sys.version_info.major}.{sys.version_info.minor}" == python
        and sys.platform == "linux"
        and host_platform.machine() == MACHINES[platform]
    )


# pip's include forms: -r FILE, -rFILE, --requirement FILE, --requirement=FILE (and -c likewise)
_INCLUDE_RE = re.compile(r"^\s*(?:(?:-r|-c)\s*|(?:--requirement|--constraint)(?:\s+|=))([^\s#]\S*)")


def requirement_files(path: Path, seen: set[Path] | None = None) -> list[Path]:
    """A requirements file and every file it includes with -r / -c, recursively (resolved paths;
    includes are relative to the including file, as pip reads them; URLs are left to the resolver)."""
    seen = seen if seen is not None else set()
    try:
        path = Path(path).resolve(strict=True)
    except FileNotFoundError:
        return []  # a missing include: the resolver names it
    except (OSError, RuntimeError) as exc:
        raise ResolutionError(f"{Path(path).name} cannot be followed: a symlink loop ({exc})") from exc
    if path in seen:
        return []
    if not path.is_file():
        raise ResolutionError(
            f"{path.name} (a requirements include) is not a regular file", hint="-r and -c name requirements files"
        )
    seen.add(path)
    out = [path]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ResolutionError(
            f"{path.name} is not UTF-8 text (byte {exc.start})", hint="save the requirements file as UTF-8"
        ) from exc
    except OSError as exc:
        raise ResolutionError(f"{path.name} cannot be read: {exc.strerror or exc}") from exc
    for line in text.splitlines():
        m = _INCLUDE_RE.match(line)
        if m and "://" not in m.group(1):
            out += requirement_files(path.parent / m.group(1), seen)
    return out


def dynamic_dependencies(pyproject: Path) -> bool:
    """Does ``pyproject`` leave its dependencies to its build backend (``dynamic``)?"""
    dynamic = (pyproject_project(pyproject) or {}).get("dynamic")
    return isinstance(dynamic, list) and bool({"dependencies", "optional-dependencies"} & set(dynamic))


def project_files(root: Path) -> list[Path]:
    """The project's files a build backend may read, without what never goes into an image
    (``layout.IGNORED``, at any depth) and without links (a link may leave the project)."""
    from fnmatch import fnmatch

    from ..layout import IGNORED

    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not any(fnmatch(d, pat) for pat in IGNORED))
        for name in sorted(names):
            path = Path(folder) / name
            if not path.is_symlink() and path.is_file() and not any(fnmatch(name, pat) for pat in IGNORED):
                out.append(path)
    return out


def dependency_sources(root: Path) -> list[Path]:
    """The files dynamic dependencies are read from, as far as imagesmith can tell without running
    the backend: setup.py, setup.cfg, requirements*.txt/.in at the top, and the files named by
    ``[tool.setuptools.dynamic]`` ``dependencies``/``optional-dependencies``. (Code files are left
    out on purpose: a one-line edit must not re-resolve. A backend that reads others needs an
    explicit ``imagesmith lock`` after they change.)"""
    names = {"setup.py", "setup.cfg"}
    names.update(p.name for p in root.glob("requirements*.txt"))
    names.update(p.name for p in root.glob("requirements*.in"))
    try:
        tool = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("tool") or {}
        dynamic = (tool.get("setuptools") or {}).get("dynamic") or {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        dynamic = {}
    entries = [dynamic.get("dependencies")]
    optional = dynamic.get("optional-dependencies")
    entries += list(optional.values()) if isinstance(optional, dict) else []
    for entry in entries:
        files = entry.get("file") if isinstance(entry, dict) else None
        for name in [files] if isinstance(files, str) else files if isinstance(files, list) else []:
            if isinstance(name, str):
                names.add(name)
    found = []
    for name in sorted(names):
        path = root / name
        if path.is_file() and not path.is_symlink() and path.resolve().is_relative_to(root.resolve()):
            found.append(path)
    return found


def stage_inputs(inputs: Sequence[Path], dest: Path) -> list[str]:
    """Copy the inputs and every file they include into ``dest``, keeping their layout relative to
    one another (so ``-r ../base.txt`` still resolves), and return the inputs' paths relative to
    ``dest``. A container then sees exactly the files the resolution reads, and nothing else of
    the project: a pyproject.toml is copied alone (its static dependencies are all pip-compile
    reads), unless its dependencies are dynamic: then its build backend reads them from the
    project's files (``project_files``), so the project is copied without what is ignored."""
    files: set[Path] = set()
    for p in inputs:
        if Path(p).name != "pyproject.toml":
            files.update(requirement_files(p))
        elif dynamic_dependencies(Path(p)):
            files.update(f.resolve() for f in project_files(Path(p).resolve().parent))
        else:
            files.add(Path(p).resolve())
    root = Path(os.path.commonpath([str(f.parent) for f in files])) if files else Path("/")
    for f in sorted(files):
        target = dest / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    return [Path(p).resolve().relative_to(root).as_posix() for p in inputs]


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

    def __init__(self, engine=None) -> None:
        self._engine = engine

    @staticmethod
    def options(request: ResolveRequest) -> list[str]:
        # not --quiet: pip's warnings are what name an unreachable index
        opts = [
            "--generate-hashes",
            "--allow-unsafe",
            "--no-header",
            "--no-annotate",
            "--strip-extras",
            "--no-emit-index-url",
            "--no-emit-find-links",
            "--no-emit-trusted-host",
            *request.index_options(),
        ]
        for extra in request.extras:
            opts += ["--extra", extra]
        if request.upgrade:
            opts.append("--upgrade")
        for pkg in request.upgrade_packages:
            opts += ["--upgrade-package", pkg]
        return opts

    def resolve(self, request: ResolveRequest) -> list[Pin]:
        """On the host when it is the target and wheels suffice (``--only-binary``: no package's
        build code runs here); else, or for a pyproject.toml (its metadata may need its build
        backend) or an sdist, in a container of the base."""
        return _avoiding_look_alikes(self._resolve_anywhere, request)

    def _resolve_anywhere(self, request: ResolveRequest) -> list[Pin]:
        if host_matches(request.python, request.platform) and not any(
            Path(p).name == "pyproject.toml" for p in request.inputs
        ):
            try:
                return self.resolve_on_host(request)
            except _NeedsBuild:
                pass
        return _resolve_in_base(self._engine, request)

    def resolve_on_host(self, request: ResolveRequest) -> list[Pin]:
        from .indexes import find_links_page

        with tempfile.TemporaryDirectory(prefix="imagesmith-piptools-") as tmp:
            out = Path(tmp) / "requirements.lock"
            if request.previous and not request.upgrade:
                out.write_text(preferences(request.previous))
            argv = [
                _tool("pip-compile"),
                *self.options(request),
                "--pip-args",
                "--only-binary=:all:",
                "--output-file",
                str(out),
                *[str(p) for p in request.inputs],
            ]
            if request.package_indexes:
                page = Path(tmp) / PINNED_LINKS
                page.write_text(find_links_page(request.package_indexes, request.netrc()))
                argv[1:1] = ["--find-links", str(page)]
            with secret_file(request.netrc()) as netrc:
                proc = _run(argv, env=dict(os.environ, **({"NETRC": str(netrc)} if netrc else {})))
            if proc.returncode != 0:
                output = proc.stderr + proc.stdout
                if _NOT_FOUND_RE.search(output) and not _NETWORK_RE.search(output):
                    raise _NeedsBuild()  # perhaps only an sdist: the container decides
                raise _explain_failure("pip-compile", output, request)
            return parse_compiled(out.read_text())

    def resolve_in_container(self, request: ResolveRequest) -> list[Pin]:
        """pip-compile inside the pinned base image, so the markers and wheels are the target's:
        the inputs are staged into a folder the container sees, pip-tools (this host's version)
        is installed into a throwaway venv there, and the pins are read back from the output file."""
        from .indexes import find_links_page

        if self._engine is None or request.base_ref is None:
            raise ResolutionError(
                f"pip-tools resolves only for the interpreter that runs it (here Python "
                f"{sys.version_info.major}.{sys.version_info.minor} on {host_platform.machine()}; the target is "
                f"Python {request.python} on {request.platform}), so it must run in the base image, and no engine was given",
                hint="use resolver: uv, or run with a Docker engine available",
            )
        with tempfile.TemporaryDirectory(prefix="imagesmith-piptools-") as tmp:
            work, outdir = Path(tmp) / "in", Path(tmp) / "out"
            work.mkdir()
            outdir.mkdir()
            args = stage_inputs(request.inputs, work)
            out = outdir / "requirements.lock"
            if request.previous and not request.upgrade:
                out.write_text(preferences(request.previous))
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
                )
            if code == 3 and not _NETWORK_RE.search(output):
                raise ResolutionError(
                    f"could not install pip-tools {pip_tools_version()} in the base image "
                    f"{request.base_ref}:\n{_tail(output)}",
                    hint="use a base image whose pip can install packages, or resolver: uv",
                )
            if code != 0:
                raise _explain_failure("pip-compile", output, request, env=env)
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
    timeout: int = 1800,
) -> tuple[int, str]:
    """pip-compile inside ``image``, so it resolves for that image's Python and platform.

    ``work`` (the staged inputs; ``args`` are relative to it) is mounted at /in, ``out``'s
    folder at /out (pip-compile reads earlier pins from ``out`` and writes the result there),
    ``cache`` (optional) at /cache as pip's cache. pip-tools ``pip_tools`` is installed into a
    throwaway venv in the container. Runs as the calling user, so every file it writes is
    theirs. ``netrc`` (optional): a file with index credentials, mounted read-only and named by
    NETRC, so no credential is ever in the container's environment or command line.
    Returns (exit code, output); exit 3: pip-tools could not be installed."""
    script = (
        "python3 -m venv /tmp/pt >/dev/null || exit 4; "
        f"/tmp/pt/bin/pip install -q --disable-pip-version-check 'pip-tools=={pip_tools}' "
        f"|| {{ echo 'imagesmith: could not install pip-tools {pip_tools} in the base image' >&2; exit 3; }}; "
        f'cd /in && exec /tmp/pt/bin/pip-compile "$@" --output-file /out/{out.name}'
    )
    volumes = {
        str(work.resolve()): {"bind": "/in", "mode": "rw"},
        str(out.parent.resolve()): {"bind": "/out", "mode": "rw"},
    }
    env = {"HOME": "/tmp", "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(environment or {})}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        volumes[str(cache.resolve())] = {"bind": "/cache", "mode": "rw"}
        env["PIP_CACHE_DIR"] = "/cache"
    if netrc is not None:
        volumes[str(Path(netrc).resolve())] = {"bind": "/run/imagesmith/netrc", "mode": "ro"}
        env["NETRC"] = "/run/imagesmith/netrc"
    user = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else None
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
    if run.exit_code is None:
        raise EngineError(f"cannot start pip-compile in a container of {image}: {run.start_error}")
    output = run.stdout + run.stderr
    if run.exit_code == 4:
        raise EngineError(
            f"cannot make a virtual environment in {image} to run pip-compile:\n{_tail(output)}",
            hint="use a base image with Python's venv module (e.g. python3-venv), or resolver: uv",
        )
    return run.exit_code, output


def get_resolver(name: str, engine=None) -> Resolver:
    if name == "uv":
        return UvResolver(engine)
    if name == "pip-tools":
        return PipToolsResolver(engine)
    raise ResolutionError(f"unknown resolver {name!r}", hint="use uv or pip-tools")
