"""Read and validate a project's spec: ``imagesmith.yaml`` or ``[tool.imagesmith]`` in pyproject.toml.

``load_spec(path)`` does the I/O and turns YAML/TOML errors into ``SpecError``;
``parse_spec(data, root, origin)`` is pure and reports every problem at once, each with its key
path and, for a typo, the closest valid key.

Every value that later reaches a Dockerfile is checked here against a strict pattern, and every
path must stay inside the project directory: a spec cannot inject instructions or read outside.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from .credentials import PASSWORD_ENV, USERNAME_ENV, credential_problem, has_userinfo
from .errors import SpecError
from .fsutil import tomllib
from .gpu import MIN_DRIVER
from .layout import IMAGE_UID, IMAGE_USER
from .platforms import machine_platform  # noqa: F401  (the CLI's and the lock's name for it)

SPEC_FILE = "imagesmith.yaml"
PYPROJECT = "pyproject.toml"

NAME_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
PYTHON_RE = re.compile(r"3\.[0-9]{1,2}")
PLATFORMS = ("linux/amd64", "linux/arm64")


def platform_arch(platform: str) -> str:
    """``linux/arm64`` -> ``arm64``: the architecture as BuildKit's TARGETARCH and OCI name it."""
    return platform.split("/", 1)[1]


# A Docker image reference: [host[:port]/]path[:tag][@sha256:hex]. No spaces, no quotes.
IMAGE_REF_RE = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?",
    re.ASCII,
)
DEB_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+~:-]+)?")
DIST_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", re.ASCII)  # PEP 508 names
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Project paths: plain relative POSIX paths, no globs, quotes, dollar signs or control characters.
DOCKERFILE = "Dockerfile"  # where imagesmith writes its Dockerfile unless the spec says otherwise
PATH_RE = re.compile(r"[A-Za-z0-9_.@+-][A-Za-z0-9_.@+/ -]*")
CONTAINER_PATH_RE = re.compile(r"/[A-Za-z0-9_.@+/-]*")
MODULE_FUNC_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", re.ASCII)
RESOLVERS = ("uv", "pip-tools")
# Bounds: a spec is a small file; anything bigger is a mistake or an attack (alias bombs).
MAX_SPEC_BYTES = 1 << 20
MAX_VALUES = 20_000
MAX_DEPTH = 32
MAX_STRING = 8192
MAX_NAME = 128
MAX_PATH = 1024
MAX_PROBLEMS = 40
INSTALL_MODES = ("hermetic", "online")
# Who the images run as: imagesmith's own non-root user (layout.IMAGE_USER, numeric IDs), or
# root: no USER line at all, the base image's own user (usually root).
USERS = (IMAGE_USER, "root")


@dataclass(frozen=True)
class Requirements:
    """Where the Python requirements come from: a file, an inline list, or pyproject dependencies."""

    file: str | None = None
    inline: tuple[str, ...] = ()
    pyproject: bool = False
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # PEP 735 dependency groups of pyproject.toml (or of the project's lock)
    lock: str | None = None  # the project's own lock, the source of truth: "uv_lock", "pylock" or "poetry_lock"


@dataclass(frozen=True)
class ProjectPackage:
    """The project itself, to be built into a wheel and installed into both images (spec
    ``install_project``): ``[project].name`` (canonical), ``[build-system].requires`` and its
    ``build-backend``, from pyproject.toml."""

    name: str
    requires: tuple[str, ...]
    backend: str


@dataclass(frozen=True)
class Target:
    command: tuple[str, ...]
    port: int | None = None
    latency_budget_ms: float | None = None


@dataclass(frozen=True)
class Signoff:
    predict: str | None = None
    samples: str | None = None
    rtol: float = 1e-5
    atol: float = 1e-6
    path: str = "/predict"  # the serve endpoint signoff POSTs each sample to
    request: str = "list"  # the request body: "list" = [sample] (a batch of one), "object" = sample


@dataclass(frozen=True)
class Spec:
    root: Path
    origin: str  # the file the spec was read from, relative to root (for messages)
    name: str
    python: str
    platform: str
    base: str
    resolver: str
    install: str
    system_packages: tuple[str, ...]
    requirements: Requirements
    preprocessing: tuple[str, ...]
    source: tuple[str, ...]
    train: Target
    serve: Target
    seed: int
    env: tuple[tuple[str, str], ...]
    artifacts: str
    determinism: bool
    accelerator: str | None = None
    cuda: str | None = None  # the CUDA major the lock must ship ("12"); None: whatever it resolves to (gpu.py)
    signoff: Signoff = field(default_factory=Signoff)
    index_url: str | None = None  # replaces the default package index (no credentials: see credentials.py)
    extra_index_urls: tuple[str, ...] = ()
    # (canonical name, index URL), sorted: each named distribution comes from that index only,
    # and no other distribution comes from it (see lock/indexes.py)
    package_indexes: tuple[tuple[str, str], ...] = ()
    user: str = IMAGE_USER  # one of USERS; render.image_user says what USER the Dockerfile sets
    project: ProjectPackage | None = None  # the project's own wheel goes into the images (install_project)
    # every platform the images are built for, in the spec's order (``platform`` is the first):
    # ``platforms: [linux/amd64, linux/arm64]`` builds both; each gets its own lock section
    platforms: tuple[str, ...] = ()
    dockerfile: str = DOCKERFILE  # where imagesmith writes its Dockerfile, relative to root

    def __post_init__(self) -> None:
        if not self.platforms:
            object.__setattr__(self, "platforms", (self.platform,))

    @property
    def multi_platform(self) -> bool:
        return len(self.platforms) > 1

    def for_platform(self, platform: str) -> "Spec":
        """This spec for one of its platforms alone (what each lock section is resolved from)."""
        return replace(self, platform=platform, platforms=(platform,))

    def requirements_lock_for(self, platform: str) -> Path:
        """The pip-format lock of ``platform``: ``requirements.lock`` for a one-platform spec,
        ``requirements-<arch>.lock`` (arch as BuildKit's TARGETARCH says it) for several."""
        if not self.multi_platform:
            return self.requirements_lock_path
        return self.root / f"requirements-{platform_arch(platform)}.lock"

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def lock_path(self) -> Path:
        return self.root / "imagesmith.lock"

    @property
    def requirements_lock_path(self) -> Path:
        return self.root / "requirements.lock"

    @property
    def dockerfile_path(self) -> Path:
        """Where imagesmith writes its Dockerfile (spec ``dockerfile``; never over a user's own file)."""
        return self.root / self.dockerfile


# --------------------------------------------------------------------------------------------
# Reading


def find_spec(path: Path) -> Path:
    """The spec file for ``path``: the file itself, or the spec inside a project directory."""
    path = Path(path)
    if path.is_dir():
        yml = path / SPEC_FILE
        if yml.is_file():
            return yml
        pyproject = path / PYPROJECT
        if pyproject.is_file() and _tool_table(pyproject) is not None:
            return pyproject
        raise SpecError(
            _short_path(path),
            [f"no {SPEC_FILE} here, and no [tool.imagesmith] table in {PYPROJECT}"],
            hint=f'create {SPEC_FILE} (every key is described in the README, "A project") or pass --project DIR',
        )
    if not path.is_file():
        raise SpecError(
            _short_path(path),
            ["file not found (or not a regular file)"],
            hint="pass the project directory or its spec file",
        )
    return path


def load_spec(path: Path | str = ".") -> Spec:
    """Find, read and validate the spec for a project directory or spec file.

    The project root is the folder the spec file is found in, not the folder a symlinked spec
    points into; a spec that is a symlink to a file outside that folder is refused."""
    found = Path(os.path.abspath(find_spec(Path(path))))
    root = found.parent
    if found.is_symlink():
        try:
            found.resolve(strict=True).relative_to(root.resolve())
        except (OSError, RuntimeError, ValueError):
            raise SpecError(
                found.name,
                ["is a symlink that leaves the project directory"],
                hint="copy the spec into the project instead of linking it",
            ) from None
    if found.name == PYPROJECT or found.suffix == ".toml":
        data = _tool_table(found)
        origin = f"{found.name} [tool.imagesmith]"
        if data is None:
            raise SpecError(found.name, ["no [tool.imagesmith] table"])
    else:
        origin = found.name
        data = _read_yaml(found)
    _check_size(data, origin)
    return parse_spec(data, root, origin)


def _short_path(path: Path) -> str:
    return show(str(path), 200)[1:-1]


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(path.name, [f"cannot be read: {exc.strerror or exc}"]) from exc
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(path.name, [f"is {len(raw)} bytes; a spec is at most {MAX_SPEC_BYTES}"])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(path.name, [f"not UTF-8 text (byte {exc.start})"], hint="save the file as UTF-8") from exc


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (the safe loader
    silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            "while reading a mapping",
                            node.start_mark,
                            f"the key {show(key)} is given twice (first on line {seen[key] + 1})",
                            key_node.start_mark,
                        )
                    seen[key] = key_node.start_mark.line
                except TypeError:  # an unhashable key: the base class reports it
                    pass
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path):
    return _parse(path, lambda text: yaml.load(text, Loader=_StrictLoader))  # noqa: S506 - a SafeLoader subclass


def _read_toml(path: Path) -> dict:
    return _parse(path, tomllib.loads)


def _parse(path: Path, parser):
    """``parser`` over the file's text, with every way it can fail as one ``SpecError``."""
    text = _read_text(path)
    try:
        return parser(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(
            path.name, [f"not valid YAML{where}: {show(problem, 200)[1:-1]}"], hint="fix the YAML syntax"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(
            path.name, [f"not valid TOML: {show(str(exc), 200)[1:-1]}"], hint="fix the TOML syntax"
        ) from exc
    except RecursionError:
        raise SpecError(
            path.name, ["is nested too deeply to read"], hint=f"a spec needs a handful of levels; at most {MAX_DEPTH}"
        ) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise SpecError(path.name, [f"holds a value that cannot be read: {show(str(exc), 80)[1:-1]}"]) from exc


def _tool_table(path: Path) -> Any:
    """``[tool.imagesmith]`` of a pyproject.toml (None when absent); a ``tool`` that is not a table is an error."""
    tool = _read_toml(path).get("tool", {})
    if not isinstance(tool, dict):
        raise SpecError(path.name, [f"[tool] must be a table, got {_type_name(tool)}"], hint="fix the TOML")
    return tool.get("imagesmith")


def _check_size(data: Any, origin: str) -> None:
    """Refuse data that is too deep, too big once YAML aliases are expanded, or holds strings
    that cannot be encoded (lone surrogates): the parser and its messages stay small and fast."""
    budget = [MAX_VALUES]
    problems: list[str] = []

    def walk(value: Any, depth: int, key: str) -> None:
        budget[0] -= 1
        if budget[0] < 0 or problems:
            return
        if depth > MAX_DEPTH:
            problems.append(f"{key or 'the spec'}: nested more than {MAX_DEPTH} levels deep")
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k, depth + 1, key)
                walk(v, depth + 1, f"{key}.{show_key(k)}" if key else show_key(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, depth + 1, f"{key}[{i}]")
        elif isinstance(value, str):
            if len(value) > MAX_STRING:
                problems.append(f"{key or 'a key'}: a string of {len(value)} characters (at most {MAX_STRING})")
            elif not _encodable(value):
                problems.append(f"{key or 'a key'}: holds a lone surrogate (\\ud800-\\udfff), which is not text")

    walk(data, 0, "")
    if budget[0] < 0:
        problems.append(f"holds more than {MAX_VALUES} values (YAML aliases expanded): refused as a resource bomb")
    if problems:
        raise SpecError(origin, problems[:1], hint=f"fix {origin}")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def show(value: Any, limit: int = 60) -> str:
    """A value for a message, bounded: a short string quoted (a long one cut, with its length),
    anything else as its type. Never a full ``repr``: a value can be gigabytes once expanded."""
    if isinstance(value, str):
        text = value if len(value) <= limit else value[:limit] + "…"
        quoted = repr(text.encode("utf-8", "backslashreplace").decode("utf-8"))
        return quoted + (f" ({len(value)} characters)" if len(value) > limit else "")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else "a very large integer"
    return _type_name(value)


def show_key(key: Any) -> str:
    """A mapping key for a key path in a message, bounded."""
    return show(key, 40)[1:-1] if isinstance(key, str) else show(key, 40)


# --------------------------------------------------------------------------------------------
# Parsing (pure)


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.secret = False  # a value looked like a credential: the hint says where credentials go

    def add(self, key: str, message: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(f"{key}: {message}" if key else message)
        elif len(self.items) == MAX_PROBLEMS:
            self.items.append("(more problems not shown)")


def _unknown_keys(data: dict, allowed: tuple[str, ...], prefix: str, problems: _Problems) -> None:
    for key in sorted(data, key=str):
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(allowed)})"
        problems.add(f"{prefix}{show_key(key)}", f"unknown key{hint}")


def _type_name(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


def _project_path(root: Path, key: str, value: Any, problems: _Problems, *, file: bool = False) -> str | None:
    """A relative path that exists and stays inside ``root`` after resolving symlinks; with
    ``file``, a regular file (not a folder, FIFO or device)."""
    if not isinstance(value, str) or not value:
        problems.add(key, f"expected a relative path, got {_type_name(value)}")
        return None
    if len(value) > MAX_PATH:
        problems.add(key, f"a path of {len(value)} characters (at most {MAX_PATH})")
        return None
    if not PATH_RE.fullmatch(value):
        problems.add(
            key,
            f"{show(value)} is not a plain relative path (letters, digits, . _ - + @ / and spaces; no globs or quotes)",
        )
        return None
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts:
        problems.add(key, f"{show(value)} leaves the project directory; paths must be relative and inside it")
        return None
    normal = pure.as_posix().rstrip("/") or "."
    try:
        full = (root / normal).resolve(strict=True)
    except FileNotFoundError:
        problems.add(
            key,
            f"{show(value)} does not exist in {root}"
            + (" (a dangling symlink)" if (root / normal).is_symlink() else ""),
        )
        return None
    except (OSError, RuntimeError) as exc:  # a symlink loop, a permission problem
        problems.add(key, f"{show(value)} cannot be followed: {getattr(exc, 'strerror', None) or 'a symlink loop'}")
        return None
    try:
        full.relative_to(root.resolve())
    except ValueError:
        problems.add(key, f"{show(value)} resolves outside the project directory (through a symlink)")
        return None
    if file and not full.is_file():
        what = "a folder" if full.is_dir() else "not a regular file"
        problems.add(key, f"{show(value)} is {what}; name a file")
        return None
    if not (full.is_file() or full.is_dir()):
        problems.add(key, f"{show(value)} is neither a regular file nor a folder")
        return None
    return normal


def _str_list(value: Any, key: str, problems: _Problems) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(key, f"expected a list of strings, got {_type_name(value)}")
        return None
    return list(value)


def _command(value: Any, key: str, problems: _Problems) -> tuple[str, ...] | None:
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            problems.add(key, f"cannot split command: {exc}")
            return None
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        problems.add(key, f"expected a command (string or list of strings), got {_type_name(value)}")
        return None
    if not parts:
        problems.add(key, "the command is empty")
        return None
    if any(("\n" in p or "\r" in p or "\0" in p) for p in parts):
        problems.add(key, "a command argument contains a line break or NUL")
        return None
    return tuple(parts)


def _number(value: Any, key: str, problems: _Problems, *, minimum: float = 0.0) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        problems.add(key, f"expected a finite number >= {minimum:g}, got {show(value)}")
        return None
    return float(value)


TOP_KEYS = (
    "name",
    "python",
    "platform",
    "platforms",
    "base",
    "resolver",
    "install",
    "system_packages",
    "requirements",
    "preprocessing",
    "source",
    "train",
    "serve",
    "seed",
    "env",
    "artifacts",
    "determinism",
    "accelerator",
    "cuda",
    "signoff",
    "index_url",
    "extra_index_urls",
    "package_indexes",
    "user",
    "install_project",
    "dockerfile",
)
TRAIN_KEYS = ("command",)
SERVE_KEYS = ("command", "port", "latency_budget_ms")
REQ_KEYS = ("file", "packages", "pyproject", "extras", "groups", "uv_lock", "pylock", "poetry_lock")
LOCK_SOURCES = {"uv_lock": "uv.lock", "pylock": "pylock.toml", "poetry_lock": "poetry.lock"}
SIGNOFF_KEYS = ("predict", "samples", "rtol", "atol", "path", "request")
SIGNOFF_REQUESTS = ("list", "object")
HTTP_PATH_RE = re.compile(r"/[A-Za-z0-9_.~/-]*")
# A package index: http(s), a host, an optional port and a plain path. No user info, query or spaces.
NAME_GROUP_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")  # PEP 735 / PEP 508 names
INDEX_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/+-]*)?")
REQUIRED = ("name", "python", "base", "train", "serve")  # requirements: from pyproject.toml when absent


def parse_spec(data: Any, root: Path, origin: str = SPEC_FILE) -> Spec:
    """Validate raw spec data (from YAML or TOML) and build a ``Spec``. Pure apart from
    checking that named paths exist inside ``root``. Raises ``SpecError`` listing every problem."""
    root = Path(root)
    p = _Problems()
    if not isinstance(data, dict):
        raise SpecError(origin, [f"expected a mapping of keys at the top level, got {_type_name(data)}"])
    _unknown_keys(data, TOP_KEYS, "", p)
    for key in REQUIRED:
        if key not in data:
            p.add(key, "missing (required)")

    name = data.get("name", "")
    if isinstance(name, str) and len(name) > MAX_NAME:
        p.add("name", f"a name of {len(name)} characters (at most {MAX_NAME})")
    elif "name" in data and not (isinstance(name, str) and NAME_RE.fullmatch(name)):
        p.add("name", f"expected a lower-case image name like 'iris-model', got {show(name)}")

    python = data.get("python", "3.11")
    if isinstance(python, float):  # YAML reads 3.11 as a float; 3.10 becomes 3.1
        text = repr(python)
        meant = next((v for v in (text, text + "0") if re.fullmatch(r"3\.(?:[89]|1[0-9])", v)), text)
        p.add("python", f'write the version in quotes: python: "{meant}" (YAML read the number {text})')
    elif not (isinstance(python, str) and PYTHON_RE.fullmatch(python)):
        p.add("python", f'expected a version like "3.11", got {show(python)}')

    platform = data.get("platform", "linux/amd64")
    if platform not in PLATFORMS:
        p.add("platform", f"expected one of {', '.join(PLATFORMS)}, got {show(platform)}")
    platforms: tuple[str, ...] = (platform,)
    if "platforms" in data:
        listed = data.get("platforms")
        if "platform" in data:
            p.add("platforms", "give either platform (one) or platforms (a list), not both")
        elif not isinstance(listed, list) or not listed:
            p.add("platforms", f"expected a list like [linux/amd64, linux/arm64], got {show(listed)}")
        elif bad := [x for x in listed if x not in PLATFORMS]:
            p.add("platforms", f"expected each of {', '.join(PLATFORMS)}, got {show(bad[0])}")
        elif len(set(listed)) != len(listed):
            p.add("platforms", "a platform is listed twice")
        else:
            platforms = tuple(listed)
            platform = platforms[0]

    base = data.get("base", "")
    if "base" in data and not (isinstance(base, str) and len(base) <= 512 and IMAGE_REF_RE.fullmatch(base)):
        p.add("base", f"expected an image reference like 'python:3.11-slim', got {show(base)}")

    resolver = data.get("resolver", "uv")
    if resolver not in RESOLVERS:
        p.add("resolver", f"expected one of {', '.join(RESOLVERS)}, got {show(resolver)}")
    install = data.get("install", "hermetic")
    if install not in INSTALL_MODES:
        p.add("install", f"expected one of {', '.join(INSTALL_MODES)}, got {show(install)}")

    system_packages: list[str] = []
    for i, pkg in enumerate(_str_list(data.get("system_packages", []), "system_packages", p) or []):
        if DEB_PACKAGE_RE.fullmatch(pkg):
            system_packages.append(pkg)
        else:
            p.add(f"system_packages[{i}]", f"{show(pkg)} is not a Debian package name (like 'libgomp1')")

    requirements = (
        _parse_requirements(data.get("requirements"), root, p)
        if "requirements" in data
        else _project_requirements(root, p)
    )

    preprocessing = [
        path
        for i, v in enumerate(_str_list(data.get("preprocessing", []), "preprocessing", p) or [])
        if (path := _project_path(root, f"preprocessing[{i}]", v, p)) is not None
    ]
    source = [
        path
        for i, v in enumerate(_str_list(data.get("source", []), "source", p) or [])
        if (path := _project_path(root, f"source[{i}]", v, p)) is not None
    ]

    train = _parse_target(data["train"], "train", TRAIN_KEYS, p) if "train" in data else Target(command=("true",))
    serve = _parse_target(data["serve"], "serve", SERVE_KEYS, p) if "serve" in data else Target(command=("true",))

    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        p.add("seed", f"expected an integer from 0 to 2**32-1, got {show(seed)}")
        seed = 0

    env: dict[str, str] = {}
    raw_env = data.get("env", {})
    if not isinstance(raw_env, dict):
        p.add("env", f"expected a mapping of NAME: value, got {_type_name(raw_env)}")
    else:
        for key, value in raw_env.items():
            problem = env_problem(key, value)
            if problem is not None:
                p.add(f"env.{show_key(key)}", problem)
                p.secret = p.secret or problem.startswith("looks like a credential")
            else:
                env[key] = str(value)

    artifacts = data.get("artifacts", "/artifacts")
    if not (isinstance(artifacts, str) and CONTAINER_PATH_RE.fullmatch(artifacts)) or artifacts == "/":
        p.add("artifacts", f"expected an absolute path in the container like '/artifacts', got {show(artifacts)}")

    determinism = data.get("determinism", False)
    if isinstance(determinism, str) and determinism in ("on", "off"):
        determinism = determinism == "on"
    if not isinstance(determinism, bool):
        p.add("determinism", f"expected on or off, got {show(determinism)}")
        determinism = False

    accelerator = data.get("accelerator")
    if accelerator is not None and accelerator not in ("cpu", "gpu"):
        p.add("accelerator", f"expected cpu or gpu, got {show(accelerator)}")

    cuda = _parse_cuda(data.get("cuda"), p)

    signoff = _parse_signoff(data.get("signoff", {}), root, p)

    index_url, extra_index_urls = _parse_indexes(data, p)
    package_indexes = _parse_package_indexes(data.get("package_indexes", {}), index_url, extra_index_urls, p)

    user = data.get("user", IMAGE_USER)
    if user not in USERS:
        p.add(
            "user",
            f"expected {IMAGE_USER} (the default: a non-root user, uid {IMAGE_UID}) or root (no USER line: "
            f"the base image's user), got {show(user)}",
        )
        user = IMAGE_USER

    project = _parse_install_project(data.get("install_project", "auto"), root, p)
    dockerfile = _dockerfile(data.get("dockerfile", DOCKERFILE), root, p)

    if p.items:
        hint = f'fix {origin}; every key is described in the README ("A project")'
        if p.secret:
            hint = (
                "keep credentials out of the spec: a private index's credentials come from the host's netrc "
                f"or {USERNAME_ENV}/{PASSWORD_ENV} (README: Private package indexes); pass runtime "
                "secrets with `imagesmith run -e NAME=...` or your orchestrator's secrets"
            )
        raise SpecError(origin, p.items, hint=hint)
    return Spec(
        root=root,
        origin=origin,
        name=name,
        python=python,
        platform=platform,
        base=base,
        resolver=resolver,
        install=install,
        system_packages=tuple(sorted(set(system_packages))),
        requirements=requirements,
        preprocessing=tuple(preprocessing),
        source=tuple(source),
        train=train,
        serve=serve,
        seed=seed,
        env=tuple(sorted(env.items())),
        artifacts=artifacts.rstrip("/") or "/",
        determinism=determinism,
        accelerator=accelerator,
        cuda=cuda,
        signoff=signoff,
        index_url=index_url,
        extra_index_urls=extra_index_urls,
        package_indexes=package_indexes,
        user=user,
        project=project,
        platforms=platforms,
        dockerfile=dockerfile,
    )


def _dockerfile(value: Any, root: Path, p: _Problems) -> str:
    """The spec's ``dockerfile``: a plain relative path inside the project (it need not exist yet)
    whose folder exists; not a folder itself."""
    if not isinstance(value, str) or not PATH_RE.fullmatch(value) or len(value) > MAX_PATH:
        p.add("dockerfile", f"expected a relative file path like 'imagesmith.Dockerfile', got {show(value)}")
        return DOCKERFILE
    pure = PurePosixPath(value)
    if ".." in pure.parts or value.endswith("/"):
        p.add("dockerfile", f"{show(value)} must name a file inside the project directory")
        return DOCKERFILE
    full = root / pure.as_posix()
    if full.is_dir():
        p.add("dockerfile", f"{show(value)} is a folder; name the file imagesmith writes its Dockerfile to")
    elif not full.parent.is_dir():
        p.add("dockerfile", f"the folder of {show(value)} does not exist in {root}")
    return pure.as_posix()


def _parse_cuda(value: Any, p: _Problems) -> str | None:
    """``cuda: "13"``: a CUDA major that ``gpu.MIN_DRIVER`` knows (YAML's ``13`` is taken too)."""
    if value is None:
        return None
    majors = tuple(str(m) for m in sorted(MIN_DRIVER))
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text not in majors:
        p.add("cuda", f'expected a CUDA major, one of {", ".join(majors)} (quoted, e.g. "13"), got {show(value)}')
        return None
    return text


INSTALL_PROJECT = ("auto", True, False)


def _parse_install_project(value: Any, root: Path, p: _Problems) -> ProjectPackage | None:
    """``install_project``: ``auto`` (the default) installs the project when pyproject.toml has
    ``[project]`` with a static name and ``[build-system]`` with a ``build-backend``; ``true``
    requires that (and says what is missing); ``false`` never installs it."""
    if value not in INSTALL_PROJECT or not isinstance(value, (bool, str)):
        p.add("install_project", f"expected auto, true or false, got {show(value)}")
        return None
    if value is False:
        return None
    pyproject = root / PYPROJECT
    data: dict = {}
    if pyproject.is_file() and not pyproject.is_symlink():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            data = {}
    found, missing = project_package(data, src_layout=src_layout(root))
    if found is None:
        if value is True:
            p.add("install_project", f"true, but {PYPROJECT} has no {', no '.join(missing)}")
        return None
    from packaging.requirements import Requirement

    key = "install_project ([build-system].requires)"
    checked = _checked_requirements(list(found.requires), key, p)
    for item in checked:
        if Requirement(item).url:
            p.add(
                key, f"{show(item)} is a URL or path requirement: the backend is installed from hashed index files only"
            )
    return ProjectPackage(found.name, tuple(checked), found.backend)


# PEP 517/518's fallback for a pyproject.toml without [build-system], as pip applies it.
FALLBACK_BUILD_SYSTEM = {"requires": ["setuptools>=40.8.0"], "build-backend": "setuptools.build_meta:__legacy__"}


def src_layout(root: Path) -> bool:
    """``src/`` holds the project's packages (``src/<pkg>/__init__.py``), and is not itself a
    package (``src/__init__.py``: code that imports ``src.x`` from the project's folder)."""
    src = root / "src"
    return src.is_dir() and not (src / "__init__.py").exists() and any(src.glob("*/__init__.py"))


def project_package(pyproject: dict, *, src_layout: bool = False) -> tuple[ProjectPackage | None, list[str]]:
    """The installable project a parsed pyproject.toml describes, or None and what it lacks:
    ``[project]`` with a static ``name``, ``[build-system]`` with a ``build-backend`` and a
    non-empty ``requires`` list. Pure (``imagesmith init`` asks the same question).

    A src layout (``src_layout``) without any ``[build-system]`` is installable the way the
    packaging standards say and pip does: setuptools' legacy backend (``FALLBACK_BUILD_SYSTEM``),
    since its packages are importable only installed. A flat layout without one is not: its code
    is importable from the working folder as it is, and uv treats such a project as virtual
    (never installed); so is any project whose ``[tool.uv] package = false``."""
    project, system = pyproject.get("project"), pyproject.get("build-system")
    tool = pyproject.get("tool")
    uv = tool.get("uv") if isinstance(tool, dict) else None
    virtual = isinstance(uv, dict) and uv.get("package") is False
    if system is None and src_layout and not virtual:
        system = FALLBACK_BUILD_SYSTEM
    missing = []
    name = project.get("name") if isinstance(project, dict) else None
    if not isinstance(project, dict):
        missing.append("a [project] table")
    elif not (isinstance(name, str) and NAME_GROUP_RE.fullmatch(name)):
        missing.append("a static [project].name")
    backend = system.get("build-backend") if isinstance(system, dict) else None
    requires = system.get("requires") if isinstance(system, dict) else None
    if not (isinstance(backend, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:]{0,200}", backend)):
        missing.append("[build-system].build-backend")
    if not (isinstance(requires, list) and requires and all(isinstance(r, str) for r in requires)):
        missing.append("[build-system].requires")
    if missing:
        return None, missing
    assert isinstance(name, str) and isinstance(backend, str) and isinstance(requires, list)
    from packaging.utils import canonicalize_name  # here: most projects have no installable package

    return ProjectPackage(canonicalize_name(name), tuple(requires), backend), []


def env_problem(key: Any, value: Any) -> str | None:
    """What is wrong with one ``env:`` entry (None: nothing). The lock's environment is checked
    with this same function when it is read."""
    if not (isinstance(key, str) and ENV_KEY_RE.fullmatch(key)):
        return "not a valid environment variable name"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"expected a string or number, got {_type_name(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {show(value)}"
    if any(c in str(value) for c in "\n\r\0"):
        return "the value contains a line break or NUL"
    if len(str(value)) > MAX_STRING or not _encodable(str(value)):
        return "the value is too long or not text"
    why = credential_problem(key, str(value))
    if why is not None:
        return (
            f"looks like a credential ({why}); env values are copied into the lock, the image, "
            "its labels and every stamp"
        )
    return None


def _project_requirements(root: Path, p: _Problems) -> Requirements:
    """No ``requirements`` key: the project's own, as a modern project keeps them. Its lock when
    it has one (uv.lock, then pylock.toml, then poetry.lock, beside a pyproject.toml), else
    ``[project].dependencies`` of its pyproject.toml."""
    pyproject = root / PYPROJECT
    if pyproject.is_file() and not pyproject.is_symlink():
        for key, name in LOCK_SOURCES.items():
            if (root / name).is_file() and not (root / name).is_symlink():
                return Requirements(lock=key)
        project = pyproject_project(pyproject)
        if project is not None:
            return Requirements(pyproject=True)
    p.add(
        "requirements",
        f"missing: give a requirements file, or declare [project] dependencies in {PYPROJECT} "
        "(or bring a uv.lock, pylock.toml or poetry.lock beside it)",
    )
    return Requirements()


def pyproject_project(path: Path) -> dict | None:
    """``[project]`` of a pyproject.toml (None: absent or unreadable; the spec reader reports the latter)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    project = data.get("project")
    return project if isinstance(project, dict) else None


def _parse_requirements(value: Any, root: Path, p: _Problems) -> Requirements:
    if isinstance(value, str):
        path = _project_path(root, "requirements", value, p, file=True)
        return Requirements(file=path)
    if isinstance(value, list):
        items = _str_list(value, "requirements", p) or []
        return Requirements(inline=tuple(_checked_requirements(items, "requirements", p)))
    if isinstance(value, dict):
        _unknown_keys(value, REQ_KEYS, "requirements.", p)
        file = None
        if "file" in value:
            file = _project_path(root, "requirements.file", value["file"], p, file=True)
        inline = tuple(
            _checked_requirements(
                _str_list(value.get("packages", []), "requirements.packages", p) or [], "requirements.packages", p
            )
        )
        flags = {}
        for key in ("pyproject", *LOCK_SOURCES):
            flag = value.get(key, False)
            if not isinstance(flag, bool):
                p.add(f"requirements.{key}", "expected true or false")
                flag = False
            flags[key] = flag
        pyproject = flags["pyproject"]
        if pyproject and not (root / PYPROJECT).is_file():
            p.add("requirements.pyproject", f"{PYPROJECT} does not exist in {root}")
        locks = [key for key in LOCK_SOURCES if flags[key]]
        for key in locks:
            if not (root / LOCK_SOURCES[key]).is_file() or (root / LOCK_SOURCES[key]).is_symlink():
                p.add(f"requirements.{key}", f"{LOCK_SOURCES[key]} does not exist in {root}")
        if len(locks) > 1:
            p.add("requirements", f"names {' and '.join(locks)}: one lock is the source of truth")
        if locks and (file or inline or pyproject):
            p.add(
                f"requirements.{locks[0]}",
                f"{LOCK_SOURCES[locks[0]]} is the source of truth: file, packages and pyproject cannot be added to it",
            )
        extras = tuple(_str_list(value.get("extras", []), "requirements.extras", p) or [])
        groups = tuple(_str_list(value.get("groups", []), "requirements.groups", p) or [])
        for i, group in enumerate(groups):
            if not NAME_GROUP_RE.fullmatch(group):
                p.add(f"requirements.groups[{i}]", f"expected a dependency group name, got {show(group)}")
        if groups and not (pyproject or locks):
            p.add("requirements.groups", f"dependency groups come from {PYPROJECT}: set pyproject: true (or a lock)")
        if "pylock" in locks and (extras or groups):
            p.add(
                "requirements.pylock", "pylock.toml is taken as it is: extras and groups are chosen when it is written"
            )
        if not (file or inline or pyproject or locks):
            p.add("requirements", "names no requirements (give file, packages, pyproject: true or a lock)")
        return Requirements(
            file=file,
            inline=inline,
            pyproject=pyproject,
            extras=extras,
            groups=groups,
            lock=locks[0] if locks else None,
        )
    p.add("requirements", f"expected a file path, a list of requirements or a mapping, got {_type_name(value)}")
    return Requirements()


def _checked_requirements(items: list[str], key: str, p: _Problems) -> list[str]:
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for i, item in enumerate(items):
        try:
            Requirement(item)
        except InvalidRequirement as exc:
            p.add(f"{key}[{i}]", f"{show(item)} is not a valid requirement: {show(str(exc), 160)[1:-1]}")
            continue
        out.append(item)
    return out


def _parse_target(value: Any, key: str, allowed: tuple[str, ...], p: _Problems) -> Target:
    if value is None:  # `train:` with no value
        p.add(key, "has no value: expected a mapping with 'command'")
        return Target(command=("true",))
    if not isinstance(value, dict):
        p.add(key, f"expected a mapping with 'command', got {_type_name(value)}")
        return Target(command=("true",))
    _unknown_keys(value, allowed, f"{key}.", p)
    if "command" not in value:
        p.add(f"{key}.command", "missing (required)")
    command = _command(value.get("command", ["true"]), f"{key}.command", p) or ("true",)
    port = value.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        p.add(f"{key}.port", f"expected a port number from 1 to 65535, got {show(port)}")
        port = None
    budget = value.get("latency_budget_ms")
    if budget is not None:
        budget = _number(budget, f"{key}.latency_budget_ms", p, minimum=0.001)
    return Target(command=command, port=port, latency_budget_ms=budget)


def _parse_signoff(value: Any, root: Path, p: _Problems) -> Signoff:
    if not isinstance(value, dict):
        p.add("signoff", f"expected a mapping, got {_type_name(value)}")
        return Signoff()
    _unknown_keys(value, SIGNOFF_KEYS, "signoff.", p)
    predict = value.get("predict")
    if predict is not None and not (isinstance(predict, str) and MODULE_FUNC_RE.fullmatch(predict)):
        p.add("signoff.predict", f"expected 'module:function', got {show(predict)}")
        predict = None
    samples = value.get("samples")
    if samples is not None:
        samples = _project_path(root, "signoff.samples", samples, p, file=True)
    rtol = _number(value.get("rtol", 1e-5), "signoff.rtol", p)
    atol = _number(value.get("atol", 1e-6), "signoff.atol", p)
    path = value.get("path", "/predict")
    if not (isinstance(path, str) and HTTP_PATH_RE.fullmatch(path)):
        p.add("signoff.path", f"expected an HTTP path like '/predict', got {show(path)}")
        path = "/predict"
    request = value.get("request", "list")
    if request not in SIGNOFF_REQUESTS:
        p.add("signoff.request", f"expected one of {', '.join(SIGNOFF_REQUESTS)}, got {show(request)}")
        request = "list"
    return Signoff(
        predict=predict,
        samples=samples,
        rtol=rtol if rtol is not None else 1e-5,
        atol=atol if atol is not None else 1e-6,
        path=path,
        request=request,
    )


def _parse_indexes(data: dict, p: _Problems) -> tuple[str | None, tuple[str, ...]]:
    """``index_url`` (replaces the default index) and ``extra_index_urls``: plain URLs, no credentials."""
    index_url = data.get("index_url")
    if index_url is not None and _index_url("index_url", index_url, p) is None:
        index_url = None
    extra = []
    for i, url in enumerate(_str_list(data.get("extra_index_urls", []), "extra_index_urls", p) or []):
        if _index_url(f"extra_index_urls[{i}]", url, p) is not None:
            extra.append(url)
    return index_url, tuple(extra)


def _index_url(key: str, value: Any, p: _Problems) -> str | None:
    if isinstance(value, str) and len(value) <= MAX_PATH and has_userinfo(value):
        p.add(key, "holds a user name or password: credentials never go into the spec")
        p.secret = True
        return None
    if not (isinstance(value, str) and len(value) <= MAX_PATH and INDEX_URL_RE.fullmatch(value)):
        p.add(key, f"expected an index URL like 'https://pypi.example.com/simple', got {show(value)}")
        return None
    return value


def _parse_package_indexes(
    value: Any, index_url: str | None, extra_index_urls: tuple[str, ...], p: _Problems
) -> tuple[tuple[str, str], ...]:
    """``package_indexes: {distribution: index URL}``: each named distribution is resolved and
    downloaded from its index only, and nothing else is taken from that index. So such an index
    cannot also be ``index_url`` or one of ``extra_index_urls`` (those serve every package)."""
    if not isinstance(value, dict):
        p.add("package_indexes", f"expected a mapping of distribution name: index URL, got {_type_name(value)}")
        return ()
    if not value:
        return ()  # the usual case: packaging is not imported for nothing (start-up time)
    from packaging.utils import canonicalize_name

    general = {u.rstrip("/") for u in (index_url, *extra_index_urls) if u}
    out: dict[str, str] = {}
    for name, url in value.items():
        key = f"package_indexes.{show_key(name)}"
        if not (isinstance(name, str) and len(name) <= MAX_NAME and DIST_NAME_RE.fullmatch(name)):
            p.add(key, f"expected a distribution name like 'torch', got {show(name)}")
            continue
        canonical = canonicalize_name(name)
        if canonical in out:
            p.add(key, f"names {canonical} a second time (names are compared as PEP 503 normalises them)")
            continue
        if _index_url(key, url, p) is None:
            continue
        if url.rstrip("/") in general:
            p.add(
                key,
                f"{show(url)} is also index_url or one of extra_index_urls; a per-package index serves only the "
                "packages pinned to it, so it cannot be a general index too",
            )
            continue
        out[canonical] = url
    return tuple(sorted(out.items()))
