"""``imagesmith.lock`` on disk: read it and check every field with the spec's own rules (a lock
edited by hand can no more inject a Dockerfile instruction than a spec can), and write it with
the ``requirements.lock`` files beside it."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

from .. import __version__, fsutil
from ..errors import LockError, NotALockError
from ..fsutil import atomic_write, check_not_link
from ..platforms import PLATFORMS, machine_platform
from ..spec import Spec
from ..spec.problems import show, show_key, type_name
from ..spec.schema import IMAGE_REF_RE, INDEX_URL_RE, MAX_PATH, PATH_RE, PYTHON_RE, RESOLVERS
from ..spec.sections import env_problem
from . import LOCK_FORMAT, Lock, preprocessing_digest
from .base import BasePin
from .inputs import INPUT_NAMES
from .pins import Pin

MAX_LOCK_BYTES = 32 << 20
_SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")
_DIST_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")  # a canonical distribution name
_VERSION_RE = re.compile(r"[A-Za-z0-9.+!_-]{1,64}")
_DEB_NAME_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_DEB_VERSION_RE = re.compile(r"[A-Za-z0-9.+~:-]{1,128}")
_PY_FULL_RE = re.compile(r"[0-9]+\.[0-9]+(?:\.[0-9]+)?[A-Za-z0-9+.]{0,16}")
KNOWN_SECTIONS = {
    "imagesmith_lock",
    "generated_by",
    "inputs",
    "resolver",
    "target",
    "base",
    "packages",
    "system_packages",
    "preprocessing",
    "environment",
    "indexes",
    "runtime",
    "build_system",
    "installer",
    "wheels_only",
}


def read_lock(path: Path, platform: str | None = None) -> Lock:
    """Read and validate ``imagesmith.lock``: every field is checked with the spec's own rules
    (a lock edited by hand can no more inject a Dockerfile instruction than a spec can).
    The section of ``platform``; by default the only one, else this machine's platform's, else
    the first (platforms sort by name)."""
    locks = read_locks(path)
    if platform is None:
        return locks.get(machine_platform()) or next(iter(locks.values()))
    if platform not in locks:
        raise LockError(
            f"{Path(path).name} has no section for {platform} (it locks {', '.join(locks)})",
            hint=f"add {platform} to the spec's platforms and run `imagesmith lock`, or name one of those",
        )
    return locks[platform]


def read_locks(path: Path) -> dict[str, Lock]:
    """Every platform's lock in ``imagesmith.lock`` (platforms sorted by name), checked like
    ``read_lock``."""
    path = Path(path)
    try:
        if path.is_symlink():
            raise LockError(
                f"{path} is a symbolic link, not a regular file",
                hint="remove the link (imagesmith neither follows nor replaces it), then run `imagesmith lock`",
            )
        if path.exists() and not path.is_file():
            raise LockError(f"{path} is not a regular file", hint="run `imagesmith lock` to rewrite it")
        raw = fsutil.read_bounded(path, MAX_LOCK_BYTES)
    except FileNotFoundError:
        raise LockError(f"{path} does not exist", hint="run `imagesmith lock` first") from None
    except fsutil.FileTooLarge as exc:
        raise LockError(
            f"{path} is {exc.size} bytes, more than a lock can be", hint="run `imagesmith lock` to rewrite it"
        ) from None
    except OSError as exc:
        raise LockError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, or an integer of 4300+ digits
        raise NotALockError(
            f"{path} is not a valid lock file: {show(str(exc), 120)[1:-1]}", hint="run `imagesmith lock` to rewrite it"
        ) from exc
    except RecursionError:
        raise NotALockError(
            f"{path} is nested too deeply to be a lock file", hint="run `imagesmith lock` to rewrite it"
        ) from None
    if not isinstance(data, dict):
        raise NotALockError(
            f"{path} is not a lock file: it holds {type_name(data)}, not a JSON object",
            hint="run `imagesmith lock` to rewrite it",
        )
    if data.get("imagesmith_lock") != LOCK_FORMAT:
        raise (LockError if "imagesmith_lock" in data else NotALockError)(
            f"{path} has lock format {show(data.get('imagesmith_lock'))}; this imagesmith reads {LOCK_FORMAT}",
            hint="run `imagesmith lock` to rewrite it",
        )
    problems: list[str] = []
    sections: dict = {}
    if "platforms" in data:
        listed = data["platforms"]
        if not isinstance(listed, dict) or not listed or set(data) - {"imagesmith_lock", "generated_by", "platforms"}:
            problems.append("platforms: expected a JSON object of platform sections, and nothing beside it")
        else:
            sections = listed
    else:
        sections = {None: data}
    locks: dict[str, Lock] = {}
    for key, section in sections.items():
        where: list[str] = []
        try:
            lock = _parse_lock(section, where) if isinstance(section, dict) else None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            where.append(f"a field is missing or of the wrong type ({show(str(exc), 80)[1:-1]})")
            lock = None
        if lock is None and not where:
            where.append(f"expected a JSON object, got {type_name(section)}")
        if lock is not None and key is not None and lock.platform != key:
            where.append(f"the section's target.platform is {show(lock.platform)}")
        problems += [f"platforms.{show_key(key)}: {p}" if key is not None else p for p in where]
        if lock is not None:
            locks[lock.platform] = lock
    if problems or not locks:
        shown = problems[:20] + (["(more problems not shown)"] if len(problems) > 20 else [])
        raise LockError(
            f"{path} is not a valid lock (edited by hand?):\n" + "\n".join(f"  - {p}" for p in shown),
            hint="run `imagesmith lock` to rewrite it (imagesmith never builds from a lock it cannot trust)",
        )
    return locks


def locks_json(locks: dict[str, Lock]) -> str:
    """The text of ``imagesmith.lock`` for ``locks`` (platform -> lock, in the spec's order): one
    lock's own JSON when there is one platform, else a ``platforms`` object of sections."""
    if len(locks) == 1:
        return next(iter(locks.values())).to_json()
    data = {
        "imagesmith_lock": LOCK_FORMAT,
        "generated_by": f"imagesmith {__version__}",
        "platforms": {platform: lock.section() for platform, lock in locks.items()},
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def check_replaceable_locks(spec: Spec) -> None:
    """Refuse (``FileWriteError``) what imagesmith may not replace where it writes a platform's
    pip-format lock (``requirements.lock``: also the name rye and others give their own lock,
    which a spec may even read as its requirements; ``fsutil.check_replaceable``: a file without
    imagesmith's header, a link, a folder), and a symbolic link at imagesmith.lock. Nothing has
    been written when this raises."""
    check_not_link(spec.lock_path)
    for platform in spec.platforms:
        path = spec.requirements_lock_for(platform)
        fsutil.check_replaceable(
            path,
            what=f"hashed pip-format lock ({path.name})",
            hint=f"rename your {path.name} (e.g. to requirements.txt, and name that in {spec.origin}'s "
            "`requirements:` if it names this one), or remove it if imagesmith may replace it",
        )


def write_locks(spec: Spec, locks: dict[str, Lock]) -> None:
    """Every platform's requirements file, then imagesmith.lock, each atomically: imagesmith.lock
    is never ahead of them. Refused before anything is written when one of those requirements
    files is the user's (``check_replaceable_locks``)."""
    check_replaceable_locks(spec)
    paths = {platform: spec.requirements_lock_for(platform) for platform in locks}
    for platform, lock in locks.items():
        atomic_write(paths[platform], lock.requirements_text())
    atomic_write(spec.lock_path, locks_json(locks))


def write_lock(spec: Spec, lock: Lock) -> None:
    """A one-platform lock's two files (see ``write_locks``)."""
    write_locks(spec, {lock.platform: lock})


class _Checker:
    """The checks of one lock section's fields, each adding to ``problems`` what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def need(self, key: str, value: Any, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(f"{key}: expected {what}, got {show(value)}")

    def mapping(self, key: str, value: Any) -> Any:
        if not isinstance(value, dict):
            self.problems.append(f"{key}: expected a JSON object, got {type_name(value)}")
            return {}
        return value

    def listing(self, key: str, value: Any) -> Any:
        if not isinstance(value, list):
            self.problems.append(f"{key}: expected a JSON list, got {type_name(value)}")
            return []
        return value

    def pins(self, key: str, value: Any, want: str) -> list[Pin]:
        """A list of {name, version, hashes} under ``key``, each checked; the good ones as pins."""
        out = []
        for i, entry in enumerate(self.listing(key, value)):
            entry = self.mapping(f"{key}[{i}]", entry)
            ok = _pin_ok(entry)
            self.need(f"{key}[{i}]", entry, ok, want)
            if ok:
                out.append(Pin(entry["name"], entry["version"], tuple(entry["hashes"])))
        return out


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _pin_ok(entry: Any) -> bool:
    """{name, version, hashes}: a canonical name, a plain version, sha256 hashes."""
    name, version, hashes = entry.get("name"), entry.get("version"), entry.get("hashes")
    return bool(
        _text(name)
        and _DIST_RE.fullmatch(name)
        and _text(version)
        and _VERSION_RE.fullmatch(version)
        and isinstance(hashes, list)
        and hashes
        and all(_text(h) and _SHA256_RE.fullmatch(h) for h in hashes)
    )


def _parse_lock(data: Any, problems: list[str]) -> Lock | None:
    """One platform's section as a ``Lock``, or None with ``problems`` saying why (every problem,
    section by section in the order below)."""
    c = _Checker(problems)
    inputs = _inputs(c, data)
    resolver = data.get("resolver")
    c.need("resolver", resolver, resolver in RESOLVERS, f"one of {', '.join(RESOLVERS)}")
    target = c.mapping("target", data.get("target"))
    python, platform = target.get("python"), target.get("platform")
    c.need("target.python", python, _text(python) and bool(PYTHON_RE.fullmatch(python)), "a version like 3.11")
    c.need("target.platform", platform, platform in PLATFORMS, f"one of {', '.join(PLATFORMS)}")
    base = _base(c, data)
    packages = c.pins(
        "packages",
        data.get("packages"),
        "{name, version, hashes: [sha256:...]} with a canonical name and a plain version",
    )
    system = _system_packages(c, data)
    files = _preprocessing(c, data)
    seed, determinism, env = _environment(c, data)
    index_url, extra, pinned = _indexes(c, data)
    runtime = _runtime(c, data)
    build_system = c.pins(
        "build_system", data.get("build_system", []), "{name, version, hashes: [sha256:...]} with a canonical name"
    )
    installer = c.pins("installer", data.get("installer", []), "{name, version, hashes: [sha256:...]} of the installer")
    wheels_only = data.get("wheels_only", False)
    c.need("wheels_only", wheels_only, isinstance(wheels_only, bool), "true or false")
    if problems:
        return None
    return Lock(
        inputs=dict(inputs),
        resolver=resolver,
        python=python,
        platform=platform,
        base=base,
        packages=tuple(packages),
        system_packages=tuple(system),
        preprocessing=tuple(sorted(files.items())),
        seed=seed,
        determinism=determinism,
        env=tuple(sorted(env.items())),
        extras={k: v for k, v in data.items() if k not in KNOWN_SECTIONS},
        index_url=index_url,
        extra_index_urls=tuple(extra),
        runtime=runtime,
        package_indexes=tuple(sorted(pinned.items())),
        build_system=tuple(build_system),
        installer=tuple(installer),
        wheels_only=wheels_only,
    )


def _inputs(c: _Checker, data: dict) -> dict:
    inputs = c.mapping("inputs", data.get("inputs"))
    for name, value in inputs.items():
        c.need(
            f"inputs.{show_key(name)}",
            value,
            name in INPUT_NAMES and _text(value) and bool(_SHA256_RE.fullmatch(value)),
            "a known input with a sha256 digest",
        )
    return inputs


def _base(c: _Checker, data: dict) -> BasePin:
    b = c.mapping("base", data.get("base"))
    bname, bdigest, bsource = b.get("name"), b.get("digest"), b.get("source")
    bpy = b.get("python_version", "")
    c.need(
        "base.name",
        bname,
        _text(bname) and len(bname) <= 512 and bool(IMAGE_REF_RE.fullmatch(bname)),
        "an image reference",
    )
    c.need("base.digest", bdigest, _text(bdigest) and bool(_SHA256_RE.fullmatch(bdigest)), "sha256:<64 hex digits>")
    c.need("base.source", bsource, bsource in ("registry", "local"), "registry or local")
    bindex = b.get("index_digest", "")
    c.need(
        "base.index_digest",
        bindex,
        _text(bindex) and (bindex == "" or bool(_SHA256_RE.fullmatch(bindex))),
        "sha256:<64 hex digits>",
    )
    bhosts = b.get("hosts", {})
    c.need(
        "base.hosts",
        bhosts,
        isinstance(bhosts, dict)
        and all(k in PLATFORMS and _text(v) and bool(_SHA256_RE.fullmatch(v)) for k, v in bhosts.items()),
        "{platform: sha256:<64 hex digits>}",
    )
    c.need(
        "base.python_version",
        bpy,
        _text(bpy) and (bpy == "" or bool(_PY_FULL_RE.fullmatch(bpy))),
        "a version like 3.11.2",
    )
    hosts = tuple(sorted(bhosts.items())) if isinstance(bhosts, dict) else ()
    return BasePin(bname, bdigest, bsource, bpy, bindex, hosts)


def _system_packages(c: _Checker, data: dict) -> list:
    system = []
    for i, entry in enumerate(c.listing("system_packages", data.get("system_packages"))):
        entry = c.mapping(f"system_packages[{i}]", entry)
        name, version = entry.get("name"), entry.get("version")
        c.need(
            f"system_packages[{i}].name",
            name,
            _text(name) and bool(_DEB_NAME_RE.fullmatch(name)),
            "a Debian package name",
        )
        c.need(
            f"system_packages[{i}].version",
            version,
            _text(version) and bool(_DEB_VERSION_RE.fullmatch(version)),
            "a Debian version (letters, digits and . + ~ : -)",
        )
        system.append((name, version))
    return system


def _preprocessing(c: _Checker, data: dict) -> dict:
    pre = c.mapping("preprocessing", data.get("preprocessing"))
    files = c.mapping("preprocessing.files", pre.get("files"))
    for rel, digest in files.items():
        ok_path = (
            _text(rel)
            and len(rel) <= MAX_PATH
            and bool(PATH_RE.fullmatch(rel))
            and ".." not in PurePosixPath(rel).parts
        )
        c.need(
            f"preprocessing.files.{show_key(rel)}",
            digest,
            ok_path and _text(digest) and bool(_SHA256_RE.fullmatch(digest)),
            "a relative path inside the project with a sha256 digest",
        )
    if not c.problems and files and pre.get("digest") != preprocessing_digest(files):
        c.problems.append("preprocessing.digest does not match preprocessing.files")
    return files


def _environment(c: _Checker, data: dict) -> tuple[Any, Any, dict]:
    env_section = c.mapping("environment", data.get("environment"))
    seed, determinism = env_section.get("seed"), env_section.get("determinism")
    c.need(
        "environment.seed",
        seed,
        isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32,
        "an integer from 0 to 2**32-1",
    )
    c.need("environment.determinism", determinism, isinstance(determinism, bool), "true or false")
    env = c.mapping("environment.env", env_section.get("env"))
    for key, value in env.items():
        problem = env_problem(key, value) or (None if _text(value) else "expected a string")
        if problem:
            c.problems.append(f"environment.env.{show_key(key)}: {problem}")
    return seed, determinism, env


def _indexes(c: _Checker, data: dict) -> tuple[Any, Any, dict]:
    indexes = c.mapping("indexes", data.get("indexes", {}))
    index_url, extra = indexes.get("index_url"), indexes.get("extra_index_urls", [])
    c.need(
        "indexes.index_url",
        index_url,
        index_url is None or (_text(index_url) and bool(INDEX_URL_RE.fullmatch(index_url))),
        "an index URL without credentials",
    )
    c.need(
        "indexes.extra_index_urls",
        extra,
        isinstance(extra, list) and all(_text(u) and INDEX_URL_RE.fullmatch(u) for u in extra),
        "a list of index URLs without credentials",
    )
    pinned = c.mapping("indexes.package_indexes", indexes.get("package_indexes", {}))
    general = {u.rstrip("/") for u in [index_url, *extra] if _text(u)} if isinstance(extra, list) else set()
    for name, url in pinned.items():
        c.need(
            f"indexes.package_indexes.{show_key(name)}",
            url,
            _text(name)
            and bool(_DIST_RE.fullmatch(name))
            and _text(url)
            and bool(INDEX_URL_RE.fullmatch(url))
            and url.rstrip("/") not in general,
            "a canonical distribution name: an index URL without credentials, not a general index",
        )
    return index_url, extra, pinned


def _runtime(c: _Checker, data: dict) -> Pin | None:
    if "runtime" not in data:
        return None
    r = c.mapping("runtime", data.get("runtime"))
    ok = _pin_ok(r)
    c.need("runtime", r, ok, "{name, version, hashes: [sha256:...]} of the imagesmith-runtime wheel")
    return Pin(r["name"], r["version"], tuple(r["hashes"])) if ok else None
