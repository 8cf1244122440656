"""Read and validate a project's spec: ``imagesmith.yaml`` or ``[tool.imagesmith]`` in pyproject.toml.

``load_spec(path)`` does the I/O and turns YAML/TOML errors into ``SpecError``;
``parse_spec(data, root, origin)`` is pure and reports every problem at once, each with its key
path and, for a typo, the closest valid key.

Every value that later reaches a Dockerfile is checked here against a strict pattern, and every
path must stay inside the project directory: a spec cannot inject instructions or read outside.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .errors import SpecError

SPEC_FILE = "imagesmith.yaml"
PYPROJECT = "pyproject.toml"

NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
PYTHON_RE = re.compile(r"^3\.\d{1,2}$")
PLATFORMS = ("linux/amd64", "linux/arm64")
# A Docker image reference: [host[:port]/]path[:tag][@sha256:hex]. No spaces, no quotes.
IMAGE_REF_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
DEB_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+~:-]+)?$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Project paths: plain relative POSIX paths, no globs, quotes, dollar signs or control characters.
PATH_RE = re.compile(r"^[A-Za-z0-9_.@+-][A-Za-z0-9_.@+/ -]*$")
CONTAINER_PATH_RE = re.compile(r"^/[A-Za-z0-9_.@+/-]*$")
MODULE_FUNC_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
RESOLVERS = ("uv", "pip-tools")
INSTALL_MODES = ("hermetic", "online")


@dataclass(frozen=True)
class Requirements:
    """Where the Python requirements come from: a file, an inline list, or pyproject dependencies."""

    file: str | None = None
    inline: tuple[str, ...] = ()
    pyproject: bool = False
    extras: tuple[str, ...] = ()


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
    signoff: Signoff = field(default_factory=Signoff)

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
        return self.root / "Dockerfile"


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
        if pyproject.is_file() and "imagesmith" in _read_toml(pyproject).get("tool", {}):
            return pyproject
        raise SpecError(
            str(path),
            [f"no {SPEC_FILE} here, and no [tool.imagesmith] table in {PYPROJECT}"],
            hint=f'create {SPEC_FILE} (every key is described in the README, "A project") or pass --project DIR',
        )
    if not path.is_file():
        raise SpecError(str(path), ["file not found"], hint="pass the project directory or its spec file")
    return path


def load_spec(path: Path | str = ".") -> Spec:
    """Find, read and validate the spec for a project directory or spec file."""
    spec_file = find_spec(Path(path)).resolve()
    root = spec_file.parent
    if spec_file.name == PYPROJECT or spec_file.suffix == ".toml":
        data = _read_toml(spec_file).get("tool", {}).get("imagesmith")
        origin = f"{spec_file.name} [tool.imagesmith]"
        if data is None:
            raise SpecError(spec_file.name, ["no [tool.imagesmith] table"])
    else:
        origin = spec_file.name
        try:
            data = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SpecError(spec_file.name, [f"not valid YAML{where}: {problem}"], hint="fix the YAML syntax") from exc
        except UnicodeDecodeError as exc:
            raise SpecError(spec_file.name, ["not UTF-8 text"]) from exc
    return parse_spec(data, root, origin)


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(path.name, [f"not valid TOML: {exc}"], hint="fix the TOML syntax") from exc


# --------------------------------------------------------------------------------------------
# Parsing (pure)


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{key}: {message}" if key else message)


def _unknown_keys(data: dict, allowed: tuple[str, ...], prefix: str, problems: _Problems) -> None:
    for key in sorted(data, key=str):
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(allowed)})"
        problems.add(f"{prefix}{key}", f"unknown key{hint}")


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


def _project_path(root: Path, key: str, value: Any, problems: _Problems, *, must_exist: bool = True) -> str | None:
    """A relative path that stays inside ``root`` (after resolving symlinks) and exists."""
    if not isinstance(value, str) or not value:
        problems.add(key, f"expected a relative path, got {_type_name(value)}")
        return None
    if not PATH_RE.match(value):
        problems.add(
            key, f"'{value}' is not a plain relative path (letters, digits, . _ - + @ / and spaces; no globs or quotes)"
        )
        return None
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts:
        problems.add(key, f"'{value}' leaves the project directory; paths must be relative and inside it")
        return None
    normal = pure.as_posix().rstrip("/") or "."
    full = (root / normal).resolve()
    try:
        full.relative_to(root.resolve())
    except ValueError:
        problems.add(key, f"'{value}' resolves outside the project directory (through a symlink)")
        return None
    if must_exist and not full.exists():
        problems.add(key, f"'{value}' does not exist in {root}")
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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        problems.add(key, f"expected a number >= {minimum:g}, got {value!r}")
        return None
    return float(value)


TOP_KEYS = (
    "name",
    "python",
    "platform",
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
    "signoff",
)
TRAIN_KEYS = ("command",)
SERVE_KEYS = ("command", "port", "latency_budget_ms")
REQ_KEYS = ("file", "packages", "pyproject", "extras")
SIGNOFF_KEYS = ("predict", "samples", "rtol", "atol", "path", "request")
SIGNOFF_REQUESTS = ("list", "object")
HTTP_PATH_RE = re.compile(r"^/[A-Za-z0-9_.~/-]*$")
REQUIRED = ("name", "python", "base", "requirements", "train", "serve")


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
    if "name" in data and not (isinstance(name, str) and NAME_RE.match(name)):
        p.add("name", f"expected a lower-case image name like 'iris-model', got {name!r}")

    python = data.get("python", "3.11")
    if isinstance(python, float):  # YAML reads 3.11 as a float; 3.10 becomes 3.1
        text = repr(python)
        meant = next((v for v in (text, text + "0") if re.fullmatch(r"3\.(?:[89]|1[0-9])", v)), text)
        p.add("python", f'write the version in quotes: python: "{meant}" (YAML read the number {text})')
    elif not (isinstance(python, str) and PYTHON_RE.match(python)):
        p.add("python", f'expected a version like "3.11", got {python!r}')

    platform = data.get("platform", "linux/amd64")
    if platform not in PLATFORMS:
        p.add("platform", f"expected one of {', '.join(PLATFORMS)}, got {platform!r}")

    base = data.get("base", "")
    if "base" in data and not (isinstance(base, str) and IMAGE_REF_RE.match(base)):
        p.add("base", f"expected an image reference like 'python:3.11-slim', got {base!r}")

    resolver = data.get("resolver", "uv")
    if resolver not in RESOLVERS:
        p.add("resolver", f"expected one of {', '.join(RESOLVERS)}, got {resolver!r}")
    install = data.get("install", "hermetic")
    if install not in INSTALL_MODES:
        p.add("install", f"expected one of {', '.join(INSTALL_MODES)}, got {install!r}")

    system_packages: list[str] = []
    for i, pkg in enumerate(_str_list(data.get("system_packages", []), "system_packages", p) or []):
        if DEB_PACKAGE_RE.match(pkg):
            system_packages.append(pkg)
        else:
            p.add(f"system_packages[{i}]", f"'{pkg}' is not a Debian package name (like 'libgomp1')")

    requirements = _parse_requirements(data.get("requirements"), root, p) if "requirements" in data else Requirements()

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

    train = _parse_target(data.get("train"), "train", TRAIN_KEYS, p)
    serve = _parse_target(data.get("serve"), "serve", SERVE_KEYS, p)

    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        p.add("seed", f"expected an integer from 0 to 2**32-1, got {seed!r}")
        seed = 0

    env: dict[str, str] = {}
    raw_env = data.get("env", {})
    if not isinstance(raw_env, dict):
        p.add("env", f"expected a mapping of NAME: value, got {_type_name(raw_env)}")
    else:
        for key, value in raw_env.items():
            if not (isinstance(key, str) and ENV_KEY_RE.match(key)):
                p.add(f"env.{key}", "not a valid environment variable name")
            elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
                p.add(f"env.{key}", f"expected a string or number, got {_type_name(value)}")
            elif any(c in str(value) for c in "\n\r\0"):
                p.add(f"env.{key}", "the value contains a line break or NUL")
            else:
                env[key] = str(value)

    artifacts = data.get("artifacts", "/artifacts")
    if not (isinstance(artifacts, str) and CONTAINER_PATH_RE.match(artifacts)) or artifacts == "/":
        p.add("artifacts", f"expected an absolute path in the container like '/artifacts', got {artifacts!r}")

    determinism = data.get("determinism", False)
    if isinstance(determinism, str) and determinism in ("on", "off"):
        determinism = determinism == "on"
    if not isinstance(determinism, bool):
        p.add("determinism", f"expected on or off, got {determinism!r}")
        determinism = False

    accelerator = data.get("accelerator")
    if accelerator is not None and accelerator not in ("cpu", "gpu"):
        p.add("accelerator", f"expected cpu or gpu, got {accelerator!r}")

    signoff = _parse_signoff(data.get("signoff", {}), root, p)

    if p.items:
        raise SpecError(origin, p.items, hint=f'fix {origin}; every key is described in the README ("A project")')
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
        signoff=signoff,
    )


def _parse_requirements(value: Any, root: Path, p: _Problems) -> Requirements:
    if isinstance(value, str):
        path = _project_path(root, "requirements", value, p)
        return Requirements(file=path)
    if isinstance(value, list):
        items = _str_list(value, "requirements", p) or []
        return Requirements(inline=tuple(_checked_requirements(items, "requirements", p)))
    if isinstance(value, dict):
        _unknown_keys(value, REQ_KEYS, "requirements.", p)
        file = None
        if "file" in value:
            file = _project_path(root, "requirements.file", value["file"], p)
        inline = tuple(
            _checked_requirements(
                _str_list(value.get("packages", []), "requirements.packages", p) or [], "requirements.packages", p
            )
        )
        pyproject = value.get("pyproject", False)
        if not isinstance(pyproject, bool):
            p.add("requirements.pyproject", "expected true or false")
            pyproject = False
        if pyproject and not (root / PYPROJECT).is_file():
            p.add("requirements.pyproject", f"{PYPROJECT} does not exist in {root}")
        extras = tuple(_str_list(value.get("extras", []), "requirements.extras", p) or [])
        if not (file or inline or pyproject):
            p.add("requirements", "names no requirements (give file, packages or pyproject: true)")
        return Requirements(file=file, inline=inline, pyproject=pyproject, extras=extras)
    p.add("requirements", f"expected a file path, a list of requirements or a mapping, got {_type_name(value)}")
    return Requirements()


def _checked_requirements(items: list[str], key: str, p: _Problems) -> list[str]:
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for i, item in enumerate(items):
        try:
            Requirement(item)
        except InvalidRequirement as exc:
            p.add(f"{key}[{i}]", f"'{item}' is not a valid requirement: {exc}")
            continue
        out.append(item)
    return out


def _parse_target(value: Any, key: str, allowed: tuple[str, ...], p: _Problems) -> Target:
    if value is None:
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
        p.add(f"{key}.port", f"expected a port number from 1 to 65535, got {port!r}")
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
    if predict is not None and not (isinstance(predict, str) and MODULE_FUNC_RE.match(predict)):
        p.add("signoff.predict", f"expected 'module:function', got {predict!r}")
        predict = None
    samples = value.get("samples")
    if samples is not None:
        samples = _project_path(root, "signoff.samples", samples, p)
    rtol = _number(value.get("rtol", 1e-5), "signoff.rtol", p)
    atol = _number(value.get("atol", 1e-6), "signoff.atol", p)
    path = value.get("path", "/predict")
    if not (isinstance(path, str) and HTTP_PATH_RE.match(path)):
        p.add("signoff.path", f"expected an HTTP path like '/predict', got {path!r}")
        path = "/predict"
    request = value.get("request", "list")
    if request not in SIGNOFF_REQUESTS:
        p.add("signoff.request", f"expected one of {', '.join(SIGNOFF_REQUESTS)}, got {request!r}")
        request = "list"
    return Signoff(
        predict=predict,
        samples=samples,
        rtol=rtol if rtol is not None else 1e-5,
        atol=atol if atol is not None else 1e-6,
        path=path,
        request=request,
    )
