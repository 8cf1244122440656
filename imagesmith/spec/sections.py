"""The spec's sections, one validator each: requirements, train/serve targets, signoff, package
indexes, ``install_project``, ``cuda``, ``heavy``, ``dockerfile`` and one ``env`` entry. Each adds what is
wrong to ``Problems`` and returns a usable value, so that ``parse_spec`` reports every problem at once."""

from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath
from typing import Any

from ..credentials import credential_problem, has_userinfo
from ..gpu import MIN_DRIVER
from . import DOCKERFILE, PYPROJECT, ProjectPackage, Requirements, Signoff, Target
from .problems import Problems, encodable, show, show_key, type_name, unknown_keys
from .pyproject import project_package, read_pyproject, src_layout
from .schema import (
    DIST_NAME_RE,
    ENV_KEY_RE,
    HTTP_PATH_RE,
    INDEX_URL_RE,
    INSTALL_PROJECT,
    LOCK_SOURCES,
    MAX_NAME,
    MAX_PATH,
    MAX_SIGNOFF_TIMEOUT,
    MAX_STRING,
    MODULE_FUNC_RE,
    NAME_GROUP_RE,
    PATH_RE,
    REQ_KEYS,
    SIGNOFF_KEYS,
    SIGNOFF_REQUESTS,
)
from .values import command_args, finite_number, relative_path, string_list


def env_problem(key: Any, value: Any) -> str | None:
    """What is wrong with one ``env:`` entry (None: nothing). The lock's environment is checked
    with this same function when it is read."""
    if not (isinstance(key, str) and ENV_KEY_RE.fullmatch(key)):
        return "not a valid environment variable name"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"expected a string or number, got {type_name(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {show(value)}"
    if any(c in str(value) for c in "\n\r\0"):
        return "the value contains a line break or NUL"
    if len(str(value)) > MAX_STRING or not encodable(str(value)):
        return "the value is too long or not text"
    why = credential_problem(key, str(value))
    if why is not None:
        return (
            f"looks like a credential ({why}); env values are copied into the lock, the image, "
            "its labels and every stamp"
        )
    return None


def parse_requirements(value: Any, root: Path, p: Problems) -> Requirements:
    if isinstance(value, str):
        path = relative_path(root, "requirements", value, p, file=True)
        return Requirements(file=path)
    if isinstance(value, list):
        items = string_list(value, "requirements", p) or []
        return Requirements(inline=tuple(checked_requirements(items, "requirements", p)))
    if isinstance(value, dict):
        unknown_keys(value, REQ_KEYS, "requirements.", p)
        file = None
        if "file" in value:
            file = relative_path(root, "requirements.file", value["file"], p, file=True)
        inline = tuple(
            checked_requirements(
                string_list(value.get("packages", []), "requirements.packages", p) or [], "requirements.packages", p
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
        extras = tuple(string_list(value.get("extras", []), "requirements.extras", p) or [])
        groups = tuple(string_list(value.get("groups", []), "requirements.groups", p) or [])
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
    p.add("requirements", f"expected a file path, a list of requirements or a mapping, got {type_name(value)}")
    return Requirements()


def checked_requirements(items: list[str], key: str, p: Problems) -> list[str]:
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


def parse_target(value: Any, key: str, allowed: tuple[str, ...], p: Problems) -> Target:
    if value is None:  # `train:` with no value
        p.add(key, "has no value: expected a mapping with 'command'")
        return Target(command=("true",))
    if not isinstance(value, dict):
        p.add(key, f"expected a mapping with 'command', got {type_name(value)}")
        return Target(command=("true",))
    unknown_keys(value, allowed, f"{key}.", p)
    if "command" not in value:
        p.add(f"{key}.command", "missing (required)")
    command = command_args(value.get("command", ["true"]), f"{key}.command", p) or ("true",)
    port = value.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        p.add(f"{key}.port", f"expected a port number from 1 to 65535, got {show(port)}")
        port = None
    budget = value.get("latency_budget_ms")
    if budget is not None:
        budget = finite_number(budget, f"{key}.latency_budget_ms", p, minimum=0.001)
    return Target(command=command, port=port, latency_budget_ms=budget)


def parse_signoff(value: Any, root: Path, p: Problems) -> Signoff:
    if not isinstance(value, dict):
        p.add("signoff", f"expected a mapping, got {type_name(value)}")
        return Signoff()
    unknown_keys(value, SIGNOFF_KEYS, "signoff.", p)
    predict = value.get("predict")
    if predict is not None and not (isinstance(predict, str) and MODULE_FUNC_RE.fullmatch(predict)):
        p.add("signoff.predict", f"expected 'module:function' (or 'module:object.method'), got {show(predict)}")
        predict = None
    samples = value.get("samples")
    if samples is not None:
        samples = relative_path(root, "signoff.samples", samples, p, file=True)
    rtol = finite_number(value.get("rtol", 1e-5), "signoff.rtol", p)
    atol = finite_number(value.get("atol", 1e-6), "signoff.atol", p)
    path = value.get("path", "/predict")
    if not (isinstance(path, str) and HTTP_PATH_RE.fullmatch(path)):
        p.add("signoff.path", f"expected an HTTP path like '/predict', got {show(path)}")
        path = "/predict"
    timeout = value.get("timeout", Signoff.timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= MAX_SIGNOFF_TIMEOUT:
        p.add("signoff.timeout", f"expected whole seconds from 1 to {MAX_SIGNOFF_TIMEOUT}, got {show(timeout)}")
        timeout = Signoff.timeout
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
        timeout=timeout,
    )


def parse_indexes(data: dict, p: Problems) -> tuple[str | None, tuple[str, ...]]:
    """``index_url`` (replaces the default index) and ``extra_index_urls``: plain URLs, no credentials."""
    index_url = data.get("index_url")
    if index_url is not None and _index_url("index_url", index_url, p) is None:
        index_url = None
    extra = []
    for i, url in enumerate(string_list(data.get("extra_index_urls", []), "extra_index_urls", p) or []):
        if _index_url(f"extra_index_urls[{i}]", url, p) is not None:
            extra.append(url)
    return index_url, tuple(extra)


def _index_url(key: str, value: Any, p: Problems) -> str | None:
    if isinstance(value, str) and len(value) <= MAX_PATH and has_userinfo(value):
        p.add(key, "holds a user name or password: credentials never go into the spec")
        p.secret = True
        return None
    if not (isinstance(value, str) and len(value) <= MAX_PATH and INDEX_URL_RE.fullmatch(value)):
        p.add(key, f"expected an index URL like 'https://pypi.example.com/simple', got {show(value)}")
        return None
    return value


def parse_package_indexes(
    value: Any, index_url: str | None, extra_index_urls: tuple[str, ...], p: Problems
) -> tuple[tuple[str, str], ...]:
    """``package_indexes: {distribution: index URL}``: each named distribution is resolved and
    downloaded from its index only, and nothing else is taken from that index. So such an index
    cannot also be ``index_url`` or one of ``extra_index_urls`` (those serve every package)."""
    if not isinstance(value, dict):
        p.add("package_indexes", f"expected a mapping of distribution name: index URL, got {type_name(value)}")
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


def parse_heavy(value: Any, p: Problems) -> tuple[str, ...]:
    """``heavy: [opencv-python, scipy]``: distributions that get a layer of their own besides those
    imagesmith picks (``plan.heavy_groups``); canonical names, sorted, each once."""
    names: set[str] = set()
    for i, name in enumerate(string_list(value, "heavy", p) or []):
        if len(name) <= MAX_NAME and DIST_NAME_RE.fullmatch(name):
            names.add(re.sub(r"[-_.]+", "-", name).lower())  # PEP 503 (packaging is not imported this early)
        else:
            p.add(f"heavy[{i}]", f"{show(name)} is not a distribution name (like 'opencv-python')")
    return tuple(sorted(names))


def parse_cuda(value: Any, p: Problems) -> str | None:
    """``cuda: "13"``: a CUDA major that ``gpu.MIN_DRIVER`` knows (YAML's ``13`` is taken too)."""
    if value is None:
        return None
    majors = tuple(str(m) for m in sorted(MIN_DRIVER))
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text not in majors:
        p.add("cuda", f'expected a CUDA major, one of {", ".join(majors)} (quoted, e.g. "13"), got {show(value)}')
        return None
    return text


def parse_install_project(value: Any, root: Path, p: Problems, pyproject: dict | None = None) -> ProjectPackage | None:
    """``install_project``: ``auto`` (the default) installs the project when pyproject.toml has
    ``[project]`` with a static name and ``[build-system]`` with a ``build-backend``; ``true``
    requires that (and says what is missing); ``false`` never installs it. ``pyproject``: the
    project's pyproject.toml as ``read_pyproject`` reads it, when the caller has (else read here)."""
    if value not in INSTALL_PROJECT or not isinstance(value, (bool, str)):
        p.add("install_project", f"expected auto, true or false, got {show(value)}")
        return None
    if value is False:
        return None
    read = read_pyproject(root) if pyproject is None else pyproject
    found, missing = project_package(read, src_layout=src_layout(root))
    if found is None:
        if value is True:
            p.add("install_project", f"true, but {PYPROJECT} has no {', no '.join(missing)}")
        return None
    from packaging.requirements import Requirement

    key = "install_project ([build-system].requires)"
    checked = checked_requirements(list(found.requires), key, p)
    for item in checked:
        if Requirement(item).url:
            p.add(
                key, f"{show(item)} is a URL or path requirement: the backend is installed from hashed index files only"
            )
    return ProjectPackage(found.name, tuple(checked), found.backend)


def parse_dockerfile(value: Any, root: Path, p: Problems) -> str:
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
