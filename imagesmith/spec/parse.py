"""``parse_spec``: raw spec data (from YAML or TOML) to a ``Spec``, checking every key and
reporting every problem at once. Pure apart from checking that named paths exist inside the
project; the top-level keys are checked here in groups, the nested sections in ``sections``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..credentials import PASSWORD_ENV, USERNAME_ENV
from ..errors import SpecError
from ..layout import IMAGE_UID, IMAGE_USER
from ..platforms import PLATFORMS
from . import DOCKERFILE, SPEC_FILE, Spec, Target
from .problems import Problems, show, show_key, type_name, unknown_keys
from .pyproject import project_requirements
from .schema import (
    CONTAINER_PATH_RE,
    DEB_PACKAGE_RE,
    IMAGE_REF_RE,
    INSTALL_MODES,
    MAX_NAME,
    NAME_RE,
    PYTHON_RE,
    REQUIRED,
    RESOLVERS,
    SERVE_KEYS,
    TOP_KEYS,
    TRAIN_KEYS,
    USERS,
)
from .sections import (
    env_problem,
    parse_cuda,
    parse_dockerfile,
    parse_heavy,
    parse_indexes,
    parse_install_project,
    parse_package_indexes,
    parse_requirements,
    parse_signoff,
    parse_target,
)
from .values import relative_path, string_list


def parse_spec(data: Any, root: Path, origin: str = SPEC_FILE, *, pyproject: dict | None = None) -> Spec:
    """Validate raw spec data (from YAML or TOML) and build a ``Spec``. Pure apart from
    checking that named paths exist inside ``root`` and reading its pyproject.toml (``pyproject``:
    as a caller read it, ``read_pyproject``'s way). Raises ``SpecError`` listing every problem,
    in the order of the keys below."""
    root = Path(root)
    p = Problems()
    if not isinstance(data, dict):
        raise SpecError(origin, [f"expected a mapping of keys at the top level, got {type_name(data)}"])
    unknown_keys(data, TOP_KEYS, "", p)
    for key in REQUIRED:
        if key not in data:
            p.add(key, "missing (required)")
    fields = _identity(data, p)
    fields.update(_contents(data, root, p))
    fields.update(_running(data, root, p))
    fields.update(_sources_and_output(data, root, p, pyproject))
    if p.items:
        raise SpecError(origin, p.items, hint=_hint(origin, p))
    return Spec(root=root, origin=origin, **fields)


def _hint(origin: str, p: Problems) -> str:
    if not p.secret:
        return f"fix {origin}; every key is described in docs/reference/spec.md"
    return (
        "keep credentials out of the spec: a private index's credentials come from the host's netrc "
        f"or {USERNAME_ENV}/{PASSWORD_ENV} (see docs/guides/private-indexes.md); pass runtime "
        "secrets with `imagesmith run -e NAME=...` or your orchestrator's secrets"
    )


def _identity(data: dict, p: Problems) -> dict[str, Any]:
    """``name``, ``python``, ``platform``/``platforms`` and ``base``: what the image is."""
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

    platform, platforms = _platforms(data, p)

    base = data.get("base", "")
    if "base" in data and not (isinstance(base, str) and len(base) <= 512 and IMAGE_REF_RE.fullmatch(base)):
        p.add("base", f"expected an image reference like 'python:3.11-slim', got {show(base)}")
    return {"name": name, "python": python, "platform": platform, "platforms": platforms, "base": base}


def _platforms(data: dict, p: Problems) -> tuple[Any, tuple[str, ...]]:
    """``platform`` (one) or ``platforms`` (a list, the first is ``platform``)."""
    platform = data.get("platform", "linux/amd64")
    if platform not in PLATFORMS:
        p.add("platform", f"expected one of {', '.join(PLATFORMS)}, got {show(platform)}")
    if "platforms" not in data:
        return platform, (platform,)
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
        return listed[0], tuple(listed)
    return platform, (platform,)


def _contents(data: dict, root: Path, p: Problems) -> dict[str, Any]:
    """What goes into the images: ``resolver``, ``install``, ``system_packages``,
    ``requirements``, ``preprocessing``, ``source`` and ``heavy``."""
    resolver = data.get("resolver", "uv")
    if resolver not in RESOLVERS:
        p.add("resolver", f"expected one of {', '.join(RESOLVERS)}, got {show(resolver)}")
    install = data.get("install", "hermetic")
    if install not in INSTALL_MODES:
        p.add("install", f"expected one of {', '.join(INSTALL_MODES)}, got {show(install)}")

    system_packages: list[str] = []
    for i, pkg in enumerate(string_list(data.get("system_packages", []), "system_packages", p) or []):
        if DEB_PACKAGE_RE.fullmatch(pkg):
            system_packages.append(pkg)
        else:
            p.add(f"system_packages[{i}]", f"{show(pkg)} is not a Debian package name (like 'libgomp1')")

    requirements = (
        parse_requirements(data.get("requirements"), root, p)
        if "requirements" in data
        else project_requirements(root, p)
    )
    paths = {
        key: tuple(
            path
            for i, v in enumerate(string_list(data.get(key, []), key, p) or [])
            if (path := relative_path(root, f"{key}[{i}]", v, p)) is not None
        )
        for key in ("preprocessing", "source")
    }
    return {
        "resolver": resolver,
        "install": install,
        "heavy": parse_heavy(data.get("heavy", []), p),
        "system_packages": tuple(sorted(set(system_packages))),
        "requirements": requirements,
        **paths,
    }


def _running(data: dict, root: Path, p: Problems) -> dict[str, Any]:
    """How the images run: ``train``, ``serve``, ``seed``, ``env``, ``artifacts``,
    ``determinism``, ``accelerator``, ``cuda`` and ``signoff``."""
    train = parse_target(data["train"], "train", TRAIN_KEYS, p) if "train" in data else Target(command=("true",))
    serve = parse_target(data["serve"], "serve", SERVE_KEYS, p) if "serve" in data else Target(command=("true",))

    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        p.add("seed", f"expected an integer from 0 to 2**32-1, got {show(seed)}")
        seed = 0

    env = _env(data.get("env", {}), p)

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
    return {
        "train": train,
        "serve": serve,
        "seed": seed,
        "env": tuple(sorted(env.items())),
        "artifacts": (artifacts.rstrip("/") or "/") if isinstance(artifacts, str) else artifacts,
        "determinism": determinism,
        "accelerator": accelerator,
        "cuda": parse_cuda(data.get("cuda"), p),
        "signoff": parse_signoff(data.get("signoff", {}), root, p),
    }


def _env(raw_env: Any, p: Problems) -> dict[str, str]:
    env: dict[str, str] = {}
    if not isinstance(raw_env, dict):
        p.add("env", f"expected a mapping of NAME: value, got {type_name(raw_env)}")
        return env
    for key, value in raw_env.items():
        problem = env_problem(key, value)
        if problem is not None:
            p.add(f"env.{show_key(key)}", problem)
            p.secret = p.secret or problem.startswith("looks like a credential")
        else:
            env[key] = str(value)
    return env


def _sources_and_output(data: dict, root: Path, p: Problems, pyproject: dict | None) -> dict[str, Any]:
    """Where packages come from (``index_url``, ``extra_index_urls``, ``package_indexes``), who
    the images run as (``user``), whether the project itself is installed (``install_project``)
    and where the Dockerfile goes (``dockerfile``)."""
    index_url, extra_index_urls = parse_indexes(data, p)
    package_indexes = parse_package_indexes(data.get("package_indexes", {}), index_url, extra_index_urls, p)

    user = data.get("user", IMAGE_USER)
    if user not in USERS:
        p.add(
            "user",
            f"expected {IMAGE_USER} (the default: a non-root user, uid {IMAGE_UID}) or root (no USER line: "
            f"the base image's user), got {show(user)}",
        )
        user = IMAGE_USER
    return {
        "index_url": index_url,
        "extra_index_urls": extra_index_urls,
        "package_indexes": package_indexes,
        "user": user,
        "project": parse_install_project(data.get("install_project", "auto"), root, p, pyproject),
        "dockerfile": parse_dockerfile(data.get("dockerfile", DOCKERFILE), root, p),
    }
