"""The lock: the contract both images are built from.

``imagesmith.lock`` (JSON, sorted, byte-identical for the same inputs) records

- ``inputs``: a digest of each input (requirements, resolver, target, base, system packages,
  preprocessing, environment), so ``lock`` with unchanged inputs does nothing and ``lock --check``
  can say which input changed;
- ``base``: the base image pinned to a digest, and whether that digest came from a registry or
  is the local engine's image ID; the Python version found in it; for a registry's multi-platform
  base, ``hosts``: the same index's manifests of the other platforms with the same Python (a
  build on one of them installs the Python environment natively: ``python_env.py``);
- ``packages``: every distribution pinned ``==`` with its sha256 hashes;
- ``system_packages``: Debian packages pinned to exact versions inside the base image;
- ``preprocessing``: content digests of the preprocessing files (bytes and relative paths);
- ``environment``: seed, determinism and environment variables;
- ``indexes``: the spec's package indexes, including ``package_indexes`` (never credentials;
  they are also part of the ``requirements`` input, see ``lock/indexes.py``);
- ``runtime``: imagesmith's in-image code, the ``imagesmith-runtime`` wheel (name, content
  version, sha256 of the wheel): part of the parity, so a new imagesmith whose in-image code
  changed makes the lock stale (input ``runtime``) until ``imagesmith lock`` re-pins it;
- ``build_system`` (only when the project itself is installed, spec ``install_project``): its
  ``[build-system].requires`` resolved by the same resolver, pinned with hashes. They build the
  project's wheel in the ``project-build`` stage and never reach the images, so they are not
  in the parity; they are part of the ``requirements`` input.
- ``installer``: the wheel of the tool that installs the pins inside the build (``INSTALLER``:
  uv, one exact version), resolved by the same resolver for the lock's Python and platform and
  pinned with hashes. Its wheel comes from the same wheelhouse and is hash-checked before it runs;
  it never reaches the images (not in the parity). Input ``installer``.

``requirements.lock`` beside it is the same pins in pip's format.

A spec with several ``platforms`` gets one section per platform, each a whole lock of its own
(inputs, base pinned to that platform's manifest, pins and hashes, system packages: so each has
its own parity), under ``platforms`` keyed by platform, and one ``requirements-<arch>.lock`` per
platform. ``Lock`` is always ONE platform's lock; ``read_locks`` gives every section.
Only changed parts are redone: a preprocessing edit re-digests files, it does not re-resolve.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from .. import __version__, gpu, platforms, runtime_wheel
from ..engine._common import first_line
from ..errors import LockError, ResolutionError, StaleLockError
from ..fsutil import atomic_write, sha256_bytes
from ..runtime import preprocessing
from ..spec import (
    IMAGE_REF_RE,
    INDEX_URL_RE,
    MAX_PATH,
    PATH_RE,
    PLATFORMS,
    PYPROJECT,
    PYTHON_RE,
    RESOLVERS,
    Spec,
    _type_name,
    env_problem,
    machine_platform,
    show,
    show_key,
)
from ..statcache import StatCache
from .base import BasePin, pin_base
from .existing import SOURCES, existing_pins, group_requirements
from .resolvers import (
    Pin,
    ResolveRequest,
    dependency_sources,
    dynamic_dependencies,
    get_resolver,
    render_requirements_lock,
    requirement_files,
)
from .system import pin_system_packages

LOCK_FORMAT = 1
LOCK_FILE = "imagesmith.lock"
REQUIREMENTS_LOCK = "requirements.lock"
INPUT_NAMES = (
    "resolver",
    "target",
    "requirements",
    "base",
    "system_packages",
    "preprocessing",
    "environment",
    "runtime",
    "installer",
)
# The tool that installs the locked wheels inside the build (template python_env): one exact
# version, whose command line the template is written for. A new version here makes every lock
# stale (input ``installer``) until ``imagesmith lock`` re-pins it.
INSTALLER = "uv==0.13.9"


@dataclass(frozen=True)
class Lock:
    inputs: dict
    resolver: str
    python: str
    platform: str
    base: BasePin
    packages: tuple[Pin, ...]
    system_packages: tuple[tuple[str, str], ...]
    preprocessing: tuple[tuple[str, str], ...]  # (relative path, sha256)
    seed: int
    determinism: bool
    env: tuple[tuple[str, str], ...]
    extras: dict = field(default_factory=dict)  # forward-compatible sections
    index_url: str | None = None  # the spec's package indexes (never credentials)
    extra_index_urls: tuple[str, ...] = ()
    runtime: Pin | None = None  # the imagesmith-runtime wheel (None: a lock written before it existed)
    package_indexes: tuple[tuple[str, str], ...] = ()  # (name, index URL): see indexes.py
    build_system: tuple[Pin, ...] = ()  # the project's build backend, pinned (install_project)
    installer: tuple[Pin, ...] = ()  # the in-build installer's wheel (INSTALLER), pinned

    @property
    def other_index_urls(self) -> list[str]:
        """Every index URL besides ``index_url`` (for ``credentials.index_netrc``)."""
        return [*self.extra_index_urls, *(url for _, url in self.package_indexes)]

    @property
    def preprocessing_digest(self) -> str:
        return preprocessing_digest(dict(self.preprocessing))

    @property
    def preprocessing_version(self) -> str | None:
        """The preprocessing wheel's version (content digest; see imagesmith/preprocessing.py),
        None when the spec names no preprocessing files."""
        return preprocessing.version_for(self.preprocessing_digest) if self.preprocessing else None

    def to_json(self) -> str:
        data = {"imagesmith_lock": LOCK_FORMAT, "generated_by": f"imagesmith {__version__}", **self.section()}
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def section(self) -> dict:
        """This platform's lock as a JSON object (the whole file for a one-platform spec)."""
        return {
            "inputs": dict(sorted(self.inputs.items())),
            "resolver": self.resolver,
            "target": {"python": self.python, "platform": self.platform},
            "base": {
                "name": self.base.name,
                "digest": self.base.digest,
                "source": self.base.source,
                "python_version": self.base.python_version,
                **({"index_digest": self.base.index} if self.base.index else {}),
                **({"hosts": dict(self.base.hosts)} if self.base.hosts else {}),
            },
            "packages": [p.as_dict() for p in self.packages],
            "system_packages": [{"name": n, "version": v} for n, v in self.system_packages],
            "preprocessing": {
                "files": dict(self.preprocessing),
                "digest": self.preprocessing_digest,
                "version": self.preprocessing_version,
            },
            "environment": {"seed": self.seed, "determinism": self.determinism, "env": dict(self.env)},
            **({"runtime": self.runtime.as_dict()} if self.runtime else {}),
            **({"build_system": [p.as_dict() for p in self.build_system]} if self.build_system else {}),
            **({"installer": [p.as_dict() for p in self.installer]} if self.installer else {}),
            **self.extras,
            **(
                {"indexes": self._indexes_json()}
                if self.index_url or self.extra_index_urls or self.package_indexes
                else {}
            ),
        }

    def _indexes_json(self) -> dict:
        out: dict = {"index_url": self.index_url, "extra_index_urls": list(self.extra_index_urls)}
        if self.package_indexes:
            out["package_indexes"] = dict(self.package_indexes)
        return out

    def requirements_text(self) -> str:
        """The pins in pip's format (``requirements.lock``, or ``requirements-<arch>.lock`` of a
        spec with several platforms: the same bytes either way, so a build step that mounts one
        platform's file is cached across both kinds of spec)."""
        header = (
            f"Generated by imagesmith {__version__} from {LOCK_FILE}; do not edit.\n"
            f"Python {self.python}, {self.platform}. Install with:\n"
            "  pip install --require-hashes --no-deps -r THIS_FILE"
        )
        return render_requirements_lock(self.packages, header)

    def build_system_text(self) -> str:
        """The build backend's pins in pip's format ("" when none): the Dockerfile carries it as
        a data file, so no other file beside the lock is needed."""
        if not self.build_system:
            return ""
        header = (
            f"Generated by imagesmith {__version__} from {LOCK_FILE}: the build backend of the project's wheel.\n"
            "Install with: pip install --require-hashes --no-deps -r FILE"
        )
        return render_requirements_lock(self.build_system, header)

    def installer_text(self) -> str:
        """The installer's pin in pip's format ("" when none): the Dockerfile carries it as a
        data file, like the build backend's."""
        if not self.installer:
            return ""
        header = (
            f"Generated by imagesmith {__version__} from {LOCK_FILE}: the installer used inside the build.\n"
            "Install with: pip install --require-hashes --no-deps -r FILE"
        )
        return render_requirements_lock(self.installer, header)


def preprocessing_digest(files: dict[str, str]) -> str:
    """The digest of ``{path: sha256}``: ``preprocessing.py`` owns the rule (it also runs in images)."""
    return preprocessing.digest_of(files)


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
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise LockError(f"{path} is not a regular file", hint="run `imagesmith lock` to rewrite it")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LockError(f"{path} does not exist", hint="run `imagesmith lock` first") from None
    except OSError as exc:
        raise LockError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_LOCK_BYTES:
        raise LockError(
            f"{path} is {len(raw)} bytes, more than a lock can be", hint="run `imagesmith lock` to rewrite it"
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, or an integer of 4300+ digits
        raise LockError(
            f"{path} is not a valid lock file: {show(str(exc), 120)[1:-1]}", hint="run `imagesmith lock` to rewrite it"
        ) from exc
    except RecursionError:
        raise LockError(
            f"{path} is nested too deeply to be a lock file", hint="run `imagesmith lock` to rewrite it"
        ) from None
    if not isinstance(data, dict):
        raise LockError(
            f"{path} is not a lock file: it holds {_type_name(data)}, not a JSON object",
            hint="run `imagesmith lock` to rewrite it",
        )
    if data.get("imagesmith_lock") != LOCK_FORMAT:
        raise LockError(
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
            where.append(f"expected a JSON object, got {_type_name(section)}")
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


def _parse_lock(data: Any, problems: list[str]) -> Lock | None:
    def need(key: str, value, ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"{key}: expected {what}, got {show(value)}")

    def mapping(key: str, value) -> Any:
        if not isinstance(value, dict):
            problems.append(f"{key}: expected a JSON object, got {_type_name(value)}")
            return {}
        return value

    def listing(key: str, value) -> Any:
        if not isinstance(value, list):
            problems.append(f"{key}: expected a JSON list, got {_type_name(value)}")
            return []
        return value

    def text(value) -> bool:
        return isinstance(value, str)

    inputs = mapping("inputs", data.get("inputs"))
    for name, value in inputs.items():
        need(
            f"inputs.{show_key(name)}",
            value,
            name in INPUT_NAMES and text(value) and bool(_SHA256_RE.fullmatch(value)),
            "a known input with a sha256 digest",
        )
    resolver = data.get("resolver")
    need("resolver", resolver, resolver in RESOLVERS, f"one of {', '.join(RESOLVERS)}")
    target = mapping("target", data.get("target"))
    python, platform = target.get("python"), target.get("platform")
    need("target.python", python, text(python) and bool(PYTHON_RE.fullmatch(python)), "a version like 3.11")
    need("target.platform", platform, platform in PLATFORMS, f"one of {', '.join(PLATFORMS)}")

    b = mapping("base", data.get("base"))
    bname, bdigest, bsource = b.get("name"), b.get("digest"), b.get("source")
    bpy = b.get("python_version", "")
    need(
        "base.name",
        bname,
        text(bname) and len(bname) <= 512 and bool(IMAGE_REF_RE.fullmatch(bname)),
        "an image reference",
    )
    need("base.digest", bdigest, text(bdigest) and bool(_SHA256_RE.fullmatch(bdigest)), "sha256:<64 hex digits>")
    need("base.source", bsource, bsource in ("registry", "local"), "registry or local")
    bindex = b.get("index_digest", "")
    need(
        "base.index_digest",
        bindex,
        text(bindex) and (bindex == "" or bool(_SHA256_RE.fullmatch(bindex))),
        "sha256:<64 hex digits>",
    )
    bhosts = b.get("hosts", {})
    need(
        "base.hosts",
        bhosts,
        isinstance(bhosts, dict)
        and all(k in PLATFORMS and text(v) and bool(_SHA256_RE.fullmatch(v)) for k, v in bhosts.items()),
        "{platform: sha256:<64 hex digits>}",
    )
    need(
        "base.python_version",
        bpy,
        text(bpy) and (bpy == "" or bool(_PY_FULL_RE.fullmatch(bpy))),
        "a version like 3.11.2",
    )

    def pin_ok(entry: Any) -> bool:
        """{name, version, hashes}: a canonical name, a plain version, sha256 hashes."""
        name, version, hashes = entry.get("name"), entry.get("version"), entry.get("hashes")
        return bool(
            text(name)
            and _DIST_RE.fullmatch(name)
            and text(version)
            and _VERSION_RE.fullmatch(version)
            and isinstance(hashes, list)
            and hashes
            and all(text(h) and _SHA256_RE.fullmatch(h) for h in hashes)
        )

    def pins(key: str, value: Any, want: str) -> list[Pin]:
        """A list of {name, version, hashes} under ``key``, each checked; the good ones as pins."""
        out = []
        for i, entry in enumerate(listing(key, value)):
            entry = mapping(f"{key}[{i}]", entry)
            ok = pin_ok(entry)
            need(f"{key}[{i}]", entry, ok, want)
            if ok:
                out.append(Pin(entry["name"], entry["version"], tuple(entry["hashes"])))
        return out

    packages = pins(
        "packages",
        data.get("packages"),
        "{name, version, hashes: [sha256:...]} with a canonical name and a plain version",
    )

    system = []
    for i, entry in enumerate(listing("system_packages", data.get("system_packages"))):
        entry = mapping(f"system_packages[{i}]", entry)
        name, version = entry.get("name"), entry.get("version")
        need(
            f"system_packages[{i}].name",
            name,
            text(name) and bool(_DEB_NAME_RE.fullmatch(name)),
            "a Debian package name",
        )
        need(
            f"system_packages[{i}].version",
            version,
            text(version) and bool(_DEB_VERSION_RE.fullmatch(version)),
            "a Debian version (letters, digits and . + ~ : -)",
        )
        system.append((name, version))

    pre = mapping("preprocessing", data.get("preprocessing"))
    files = mapping("preprocessing.files", pre.get("files"))
    for rel, digest in files.items():
        ok_path = (
            text(rel) and len(rel) <= MAX_PATH and bool(PATH_RE.fullmatch(rel)) and ".." not in PurePosixPath(rel).parts
        )
        need(
            f"preprocessing.files.{show_key(rel)}",
            digest,
            ok_path and text(digest) and bool(_SHA256_RE.fullmatch(digest)),
            "a relative path inside the project with a sha256 digest",
        )
    if not problems and files and pre.get("digest") != preprocessing_digest(files):
        problems.append("preprocessing.digest does not match preprocessing.files")

    env_section = mapping("environment", data.get("environment"))
    seed, determinism = env_section.get("seed"), env_section.get("determinism")
    need(
        "environment.seed",
        seed,
        isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32,
        "an integer from 0 to 2**32-1",
    )
    need("environment.determinism", determinism, isinstance(determinism, bool), "true or false")
    env = mapping("environment.env", env_section.get("env"))
    for key, value in env.items():
        problem = env_problem(key, value) or (None if text(value) else "expected a string")
        if problem:
            problems.append(f"environment.env.{show_key(key)}: {problem}")

    indexes = mapping("indexes", data.get("indexes", {}))
    index_url, extra = indexes.get("index_url"), indexes.get("extra_index_urls", [])
    need(
        "indexes.index_url",
        index_url,
        index_url is None or (text(index_url) and bool(INDEX_URL_RE.fullmatch(index_url))),
        "an index URL without credentials",
    )
    need(
        "indexes.extra_index_urls",
        extra,
        isinstance(extra, list) and all(text(u) and INDEX_URL_RE.fullmatch(u) for u in extra),
        "a list of index URLs without credentials",
    )
    pinned = mapping("indexes.package_indexes", indexes.get("package_indexes", {}))
    general = {u.rstrip("/") for u in [index_url, *extra] if text(u)} if isinstance(extra, list) else set()
    for name, url in pinned.items():
        need(
            f"indexes.package_indexes.{show_key(name)}",
            url,
            text(name)
            and bool(_DIST_RE.fullmatch(name))
            and text(url)
            and bool(INDEX_URL_RE.fullmatch(url))
            and url.rstrip("/") not in general,
            "a canonical distribution name: an index URL without credentials, not a general index",
        )
    runtime = None
    if "runtime" in data:
        r = mapping("runtime", data.get("runtime"))
        ok = pin_ok(r)
        need("runtime", r, ok, "{name, version, hashes: [sha256:...]} of the imagesmith-runtime wheel")
        if ok:
            runtime = Pin(r["name"], r["version"], tuple(r["hashes"]))
    build_system = pins(
        "build_system", data.get("build_system", []), "{name, version, hashes: [sha256:...]} with a canonical name"
    )
    installer = pins("installer", data.get("installer", []), "{name, version, hashes: [sha256:...]} of the installer")
    if problems:
        return None
    return Lock(
        inputs=dict(inputs),
        resolver=resolver,
        python=python,
        platform=platform,
        base=BasePin(bname, bdigest, bsource, bpy, bindex, tuple(sorted(bhosts.items()))),
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
    )


# --------------------------------------------------------------------------------------------
# Inputs


def _digest_json(value) -> str:
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def preprocessing_files(spec: Spec, stat: StatCache | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` of the preprocessing files (``stat``: digests of unchanged
    files from the stat cache; the same result as ``preprocessing.file_digests``)."""
    if stat is None:
        return preprocessing.file_digests(str(spec.root), spec.preprocessing)
    found = {
        f: stat.sha256(spec.root / f)
        for rel in spec.preprocessing
        for f in preprocessing.files_under(str(spec.root), rel)
    }
    return dict(sorted(found.items()))


def compute_inputs(spec: Spec, base: str) -> dict[str, str]:
    """A digest for each input of the lock. Pure function of the spec and the files it names
    (their digests come from the stat cache when a file is unchanged: statcache.py)."""
    stat = StatCache.for_project(spec.root)
    req = spec.requirements
    req_material: dict = {"inline": list(req.inline), "extras": list(req.extras), "files": {}}
    if spec.index_url or spec.extra_index_urls or spec.package_indexes:  # only when set: older locks keep their digest
        req_material["indexes"] = {"index_url": spec.index_url, "extra_index_urls": list(spec.extra_index_urls)}
        if spec.package_indexes:
            req_material["indexes"]["package_indexes"] = dict(spec.package_indexes)
    if req.file:
        for f in requirement_files(spec.root / req.file):
            if not _inside(spec.root, f):
                raise LockError(
                    f"{req.file} includes {show(f.name)}, which is outside the project directory",
                    hint="keep every -r/-c file inside the project (symlinks too)",
                )
            req_material["files"][_rel(spec.root, f)] = stat.sha256(f)
    if req.groups:  # only when set, like indexes: other locks keep their digest
        req_material["groups"] = list(req.groups)
    if req.lock:
        req_material["lock"] = req.lock
    for name, used in ((PYPROJECT, req.pyproject or bool(req.lock)), (SOURCES.get(req.lock or "", ""), bool(req.lock))):
        if not used or not (spec.root / name).exists():
            continue
        if not _inside(spec.root, spec.root / name):
            raise LockError(
                f"{name} is a symlink out of the project directory", hint="keep the project's files inside it"
            )
        req_material["files"][name] = stat.sha256(spec.root / name)
    if spec.project is not None:  # only when installed, like indexes: other locks keep their digest
        req_material["build_system"] = list(spec.project.requires)
        if (spec.root / PYPROJECT).is_file() and _inside(spec.root, spec.root / PYPROJECT):
            req_material["files"].setdefault(PYPROJECT, stat.sha256(spec.root / PYPROJECT))
    if req.pyproject and dynamic_dependencies(spec.root / PYPROJECT):
        # the backend reads the dependencies from the project's files (see dependency_sources)
        for f in dependency_sources(spec.root):
            req_material["files"].setdefault(_rel(spec.root, f), stat.sha256(f))
    inputs = {
        "resolver": _digest_json(spec.resolver),
        "target": _digest_json({"python": spec.python, "platform": spec.platform}),
        "requirements": _digest_json(req_material),
        "base": _digest_json(base),
        "system_packages": _digest_json(list(spec.system_packages)),
        "preprocessing": preprocessing_digest(preprocessing_files(spec, stat)),
        "environment": _digest_json({"seed": spec.seed, "determinism": spec.determinism, "env": spec.env_dict}),
        "runtime": runtime_wheel.build().sha256,
        "installer": _digest_json(INSTALLER),
    }
    stat.save()
    return inputs


def _inside(root: Path, f: Path) -> bool:
    try:
        Path(f).resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _same_text(path: Path, text: str) -> bool:
    """``path`` is a regular file holding exactly ``text`` (whatever bytes it holds otherwise)."""
    try:
        return path.is_file() and not path.is_symlink() and path.read_bytes() == text.encode("utf-8")
    except OSError:
        return False


def runtime_pin() -> Pin:
    """This imagesmith's runtime wheel as the lock pins it."""
    built = runtime_wheel.build()
    return Pin(built.name, built.version, (built.sha256,))


def _rel(root: Path, f: Path) -> str:
    try:
        return f.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return f.as_posix()


def changed_inputs(lock: Lock, inputs: dict[str, str]) -> list[str]:
    return [name for name in INPUT_NAMES if lock.inputs.get(name) != inputs.get(name)]


# --------------------------------------------------------------------------------------------
# Locking


@dataclass
class LockResult:
    lock: Lock  # the spec's first platform's (its only one, usually)
    changed: list[str]  # inputs that were redone ([] = nothing to do), over every platform
    written: bool
    locks: dict[str, Lock] = field(default_factory=dict)  # every platform's, in the spec's order


def check_lock(spec: Spec, base: str | None = None) -> list[str]:
    """The inputs that changed since the lock was written ([] when fresh), over every platform
    of the spec (a platform the lock lacks: ``target``). Raises if no lock."""
    locks = read_locks(spec.lock_path)
    changed: set[str] = set()
    for platform in spec.platforms:
        one = spec.for_platform(platform)
        lock = locks.get(platform)
        if lock is None:
            changed.add("target")
            continue
        changed.update(changed_inputs(lock, compute_inputs(one, base or spec.base)))
    if set(locks) != set(spec.platforms):
        changed.add("target")
    if not changed and not all(
        _same_text(spec.requirements_lock_for(p), locks[p].requirements_text()) for p in spec.platforms
    ):
        return ["requirements.lock"]
    return [name for name in INPUT_NAMES if name in changed]


def ensure_fresh(spec: Spec, base: str | None = None) -> Lock:
    """The lock of the spec's (first) platform, refused when any platform's is stale."""
    return ensure_fresh_all(spec, base)[spec.platform]


def stale_lock(spec: Spec, base: str | None = None) -> StaleLockError | None:
    """The refusal a stale lock gets, naming what changed (None when it is fresh): what
    ``ensure_fresh_all`` raises and ``lock --check`` reports."""
    changed = check_lock(spec, base)
    return StaleLockError(spec.lock_path.name, changed) if changed else None


def ensure_fresh_all(spec: Spec, base: str | None = None) -> dict[str, Lock]:
    """Every platform's lock, in the spec's order; refused when any is stale."""
    stale = stale_lock(spec, base)
    if stale is not None:
        raise stale
    locks = read_locks(spec.lock_path)
    check_cuda(spec, locks)
    return {p: locks[p] for p in spec.platforms}


def lock_project(
    spec: Spec,
    engine,
    *,
    base: str | None = None,
    resolver: str | None = None,
    upgrade: bool = False,
    upgrade_packages: tuple[str, ...] = (),
    upgrade_base: bool = False,
    write: bool = True,
    replace_invalid: bool = False,
    progress=lambda msg: None,
) -> LockResult:
    """Bring the project's lock up to date, redoing only what changed, platform by platform.
    Writes atomically.

    A lock that exists but is not valid (edited by hand, another format) is refused, unless
    ``replace_invalid`` (``imagesmith lock``: the user asked for a new one): then it is redone whole."""
    base = base or spec.base
    if resolver:
        spec = replace(spec, resolver=resolver)
    previous: dict[str, Lock] = {}
    if spec.lock_path.is_file():
        try:
            previous = read_locks(spec.lock_path)
        except LockError:
            if not replace_invalid:
                raise
    locks: dict[str, Lock] = {}
    changed: set[str] = set()
    for platform in spec.platforms:
        if spec.multi_platform:
            progress(f"locking for {platform}")
        lock, redone = _lock_platform(
            spec.for_platform(platform),
            engine,
            previous.get(platform),
            base=base,
            upgrade=upgrade,
            upgrade_packages=upgrade_packages,
            upgrade_base=upgrade_base,
            progress=progress,
        )
        locks[platform] = lock
        changed.update(redone)
    check_cuda(spec, locks)  # before anything is written: a refused lock leaves the old files as they were
    files_ok = set(previous) == set(spec.platforms) and all(
        _same_text(spec.requirements_lock_for(p), locks[p].requirements_text()) for p in spec.platforms
    )
    if set(previous) != set(spec.platforms) and previous:
        changed.add("target")
    if not changed and files_ok:
        return LockResult(locks[spec.platform], [], False, locks)
    if write:
        write_locks(spec, locks)
    done = [name for name in INPUT_NAMES if name in changed]
    return LockResult(locks[spec.platform], done or ["requirements.lock"], write, locks)


def check_cuda(spec: Spec, locks: dict[str, Lock]) -> None:
    """Each platform's pins bring one CUDA major, the spec's ``cuda`` when it declares one (``gpu.check``)."""
    for platform, lock in sorted(locks.items()):
        where = f"the lock for {platform}" if len(locks) > 1 else "the lock"
        gpu.check(lock.packages, want=spec.cuda, where=where)


def write_locks(spec: Spec, locks: dict[str, Lock]) -> None:
    """Every platform's requirements file, then imagesmith.lock, each atomically: imagesmith.lock
    is never ahead of them."""
    for platform, lock in locks.items():
        path = spec.requirements_lock_for(platform)
        atomic_write(path, lock.requirements_text())
    atomic_write(spec.lock_path, locks_json(locks))


def _lock_platform(
    spec: Spec,
    engine,
    previous: Lock | None,
    *,
    base: str,
    upgrade: bool,
    upgrade_packages: tuple[str, ...],
    upgrade_base: bool,
    progress,
) -> tuple[Lock, list[str]]:
    """One platform's lock (``spec`` names that platform alone) and the inputs redone for it
    ([] when ``previous`` is up to date: then it is returned as it is)."""
    inputs = compute_inputs(spec, base)
    changed = changed_inputs(previous, inputs) if previous else list(INPUT_NAMES)
    if upgrade or upgrade_packages:
        changed = sorted(set(changed) | {"requirements"}, key=INPUT_NAMES.index)
    if upgrade or upgrade_base:
        changed = sorted(set(changed) | {"base"}, key=INPUT_NAMES.index)
    if not changed and previous is not None:
        return previous, []

    # The base first: pip-tools may resolve inside it, system packages are pinned inside it.
    if previous is None or {"base", "target"} & set(changed):
        problem = platforms.emulation_problem(spec.platform)
        if problem:  # the base's Python is read by running it: say so before a cryptic exec error
            raise LockError(problem)
        progress(f"pinning base image {base}")
        base_pin = pin_base(engine, base, spec.platform)
        major_minor = ".".join(base_pin.python_version.split(".")[:2])
        if base_pin.python_version and major_minor != spec.python:
            raise LockError(
                f"the base image {base} has Python {base_pin.python_version}, but the spec asks for Python {spec.python}",
                hint=f'set python: "{major_minor}" in {spec.origin}, or choose a base with Python {spec.python}',
            )
    else:
        base_pin = previous.base

    if previous is None or {"resolver", "target", "requirements"} & set(changed):
        if spec.requirements.lock:
            progress(
                f"taking the pins of {SOURCES[spec.requirements.lock]} for Python {spec.python} on {spec.platform}"
            )
        else:
            progress(f"resolving requirements with {spec.resolver} for Python {spec.python} on {spec.platform}")
        packages = tuple(_resolve(spec, engine, base_pin, previous, upgrade, upgrade_packages))
        build_system = tuple(_resolve_build_system(spec, engine, base_pin, previous, upgrade, upgrade_packages))
    else:
        packages = previous.packages
        build_system = previous.build_system

    if previous is None or {"resolver", "target", "requirements", "installer"} & set(changed):
        progress(f"pinning the installer {INSTALLER} for Python {spec.python} on {spec.platform}")
        try:
            installer = tuple(_resolve_installer(spec, engine, base_pin, previous))
        except ResolutionError as exc:  # e.g. a private index that replaces the general one
            progress(f"the package indexes have no {INSTALLER} ({first_line(exc)}): the build installs with pip")
            installer = ()
    else:
        installer = previous.installer

    if previous is None or {"base", "system_packages"} & set(changed):
        if spec.system_packages:
            progress(f"pinning system packages in {base_pin.ref}")
            system_packages = tuple(sorted(pin_system_packages(engine, base_pin.ref, spec.system_packages).items()))
        else:
            system_packages = ()
    else:
        system_packages = previous.system_packages

    lock = Lock(
        inputs=inputs,
        resolver=spec.resolver,
        python=spec.python,
        platform=spec.platform,
        base=base_pin,
        packages=packages,
        system_packages=system_packages,
        preprocessing=tuple(preprocessing_files(spec).items()),
        seed=spec.seed,
        determinism=spec.determinism,
        env=spec.env,
        extras=previous.extras if previous else {},
        index_url=spec.index_url,
        extra_index_urls=spec.extra_index_urls,
        runtime=runtime_pin(),
        package_indexes=spec.package_indexes,
        build_system=build_system,
        installer=installer,
    )
    return lock, changed


def write_lock(spec: Spec, lock: Lock) -> None:
    """A one-platform lock's two files (see ``write_locks``)."""
    write_locks(spec, {lock.platform: lock})


def _resolve_build_system(
    spec: Spec, engine, base_pin: BasePin, previous: Lock | None, upgrade: bool, upgrade_packages: tuple[str, ...]
) -> list[Pin]:
    """The project's ``[build-system].requires``, resolved for the image like its requirements
    (same resolver, target and indexes), with hashes; [] when the project is not installed."""
    if spec.project is None:
        return []
    with tempfile.TemporaryDirectory(prefix="imagesmith-bs-") as tmp:
        inline = Path(tmp) / "build-system.in"
        inline.write_text("\n".join(spec.project.requires) + "\n")
        previous_text = (previous.build_system_text() or None) if previous else None
        return _resolve_files(spec, engine, base_pin, (inline,), (), previous_text, upgrade, upgrade_packages)


def _resolve_installer(spec: Spec, engine, base_pin: BasePin, previous: Lock | None) -> list[Pin]:
    """``INSTALLER`` resolved for the image like the requirements (same target and indexes: a
    linux/arm64 lock pins its aarch64 wheel), with hashes. One distribution, no deps, wheels only:
    always resolved by uv, whichever resolver the spec names (pip-compile hashes by reading each of
    uv's two dozen wheels when an index publishes no hashes: ten seconds on every fresh lock)."""
    with tempfile.TemporaryDirectory(prefix="imagesmith-installer-") as tmp:
        inline = Path(tmp) / "installer.in"
        inline.write_text(INSTALLER + "\n")
        previous_text = (previous.installer_text() or None) if previous else None
        return _resolve_files(spec, engine, base_pin, (inline,), (), previous_text, False, (), resolver="uv")


def _resolve_files(
    spec: Spec,
    engine,
    base_pin: BasePin,
    inputs: tuple[Path, ...],
    extras: tuple[str, ...],
    previous_text: str | None,
    upgrade: bool,
    upgrade_packages: tuple[str, ...],
    resolver: str | None = None,
) -> list[Pin]:
    """Resolve ``inputs`` with ``resolver`` (default: the spec's) for the spec's target and indexes
    (``previous_text``: earlier pins to prefer); pinned packages keep only their index's files,
    whichever resolver ran."""
    request = ResolveRequest(
        inputs=inputs,
        extras=extras,
        python=spec.python,
        platform=spec.platform,
        previous=previous_text,
        upgrade=upgrade,
        upgrade_packages=upgrade_packages,
        base_ref=base_pin.ref,
        index_url=spec.index_url,
        extra_index_urls=spec.extra_index_urls,
        package_indexes=spec.package_indexes,
    )
    pins = get_resolver(resolver or spec.resolver, engine).resolve(request)
    if spec.package_indexes:
        from . import indexes as pin_indexes  # only here: urllib.request is slow to import

        pins = pin_indexes.restrict_hashes(pins, spec.package_indexes, request.netrc())
    return pins


def _resolve(
    spec: Spec, engine, base_pin: BasePin, previous: Lock | None, upgrade: bool, upgrade_packages: tuple[str, ...]
) -> list[Pin]:
    req = spec.requirements
    if req.lock:  # the project's own lock is the source of truth: nothing is resolved
        return existing_pins(
            spec.root,
            req.lock,
            extras=req.extras,
            groups=req.groups,
            python_full=base_pin.python_version or spec.python + ".0",
            platform=spec.platform,
        )
    with tempfile.TemporaryDirectory(prefix="imagesmith-in-") as tmp:
        inputs: list[Path] = []
        if req.file:
            inputs.append(spec.root / req.file)
        if req.pyproject:
            inputs.append(spec.root / PYPROJECT)
        inline_lines = list(req.inline)
        if req.groups:
            inline_lines += group_requirements(spec.root / PYPROJECT, req.groups)
        if inline_lines:
            inline = Path(tmp) / "requirements.in"
            inline.write_text("\n".join(inline_lines) + "\n")
            inputs.append(inline)
        previous_text = previous.requirements_text() if previous else None
        pins = _resolve_files(
            spec, engine, base_pin, tuple(inputs), req.extras, previous_text, upgrade, upgrade_packages
        )
    if not pins:
        raise LockError("the requirements resolved to no packages", hint="name at least one requirement")
    return pins
