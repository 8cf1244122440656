"""Pins from a lock the project already has: ``uv.lock``, ``pylock.toml`` (PEP 751) or
``poetry.lock``. When a project brings one, it is the source of truth: imagesmith resolves
nothing, it takes exactly those pins and hashes for the image's Python and platform.

- ``uv.lock``: ``uv export --frozen --no-emit-project --format requirements-txt`` (uv reads the
  lock only: no resolution, no network), then each line's environment marker is evaluated for
  the target (``target_environment``), so a universal lock gives the image's packages.
- ``pylock.toml``: read here (TOML), each package's ``marker`` evaluated the same way; its wheels'
  and sdist's sha256 hashes become the pin's hashes. Packages from a directory, a VCS or an
  archive URL have no index hash and are refused.
- ``poetry.lock``: ``poetry export --format requirements.txt`` when poetry (with its export plugin)
  is on this machine; otherwise a clear error saying how to proceed.

A pin without a hash, or a local/path requirement, is refused: an image installs from hashed
wheels only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .. import __version__, fsutil
from ..errors import LockError
from ..platforms import MACHINES
from .pins import Pin, pins_of
from .requirement_lines import INDEX, OPTION, REQUIREMENT, requirement_lines

UV_LOCK = "uv.lock"
PYLOCK = "pylock.toml"
POETRY_LOCK = "poetry.lock"
SOURCES = {"uv_lock": UV_LOCK, "pylock": PYLOCK, "poetry_lock": POETRY_LOCK}


def target_environment(python_full: str, platform: str) -> dict[str, str]:
    """The PEP 508 marker environment of the image: CPython ``python_full`` (e.g. 3.11.2) on Linux."""
    parts = python_full.split(".")
    return {
        "implementation_name": "cpython",
        "implementation_version": python_full,
        "os_name": "posix",
        "platform_machine": MACHINES[platform],
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": python_full,
        "python_version": ".".join(parts[:2]),
        "sys_platform": "linux",
        "extra": "",
    }


def _run(argv: list[str], root: Path, what: str, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=300, env=env)
    except FileNotFoundError as exc:
        raise LockError(f"{Path(argv[0]).name} is not installed", hint=f"install it to read {what}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LockError(f"`{' '.join(argv[:2])}` did not finish within 300 s") from exc
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
        tool = Path(argv[0]).name
        raise LockError(
            f"`{tool} {argv[1]}` could not export {what}: {' / '.join(tail)[:500]}",
            hint=f"run `{tool} lock` in {root} to bring {what} up to date with pyproject.toml",
        )
    return proc.stdout


def uv_export(root: Path, extras: tuple[str, ...], groups: tuple[str, ...]) -> str:
    """``uv.lock`` as pip requirements with hashes: the project's own dependencies (its default
    dependency groups left out: only ``groups`` are added), never the project itself."""
    from .uv_resolver import uv_bin  # with the resolvers, only when uv runs

    uv = uv_bin()
    argv = [
        uv,
        "export",
        "--frozen",
        "--format",
        "requirements-txt",
        "--no-emit-project",
        "--no-header",
        "--no-annotate",
        "--no-default-groups",
        "--quiet",
    ]
    for extra in extras:
        argv += ["--extra", extra]
    for group in groups:
        argv += ["--group", group]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}  # the lock decides, not the host
    return _run(argv, root, UV_LOCK, env)


def poetry_export(root: Path, extras: tuple[str, ...], groups: tuple[str, ...]) -> str:
    poetry = shutil.which("poetry")
    if poetry is None:
        raise LockError(
            f"{POETRY_LOCK} is read through `poetry export`, and poetry is not installed on this machine",
            hint="install poetry and poetry-plugin-export, or run `poetry export --format requirements.txt "
            "--output requirements.txt` yourself and set requirements: requirements.txt",
        )
    argv = [poetry, "export", "--format", "requirements.txt", "--output", "-"]
    for extra in extras:
        argv += ["--extras", extra]
    for group in groups:
        argv += ["--with", group]
    return _run(argv, root, POETRY_LOCK)


def pins_from_requirements(text: str, environment: dict[str, str], source: str) -> list[Pin]:
    """Pins from exported requirements: lines whose marker is false for the target are dropped;
    a path, URL, editable or included requirement is refused; index options are left out (the
    indexes come from the spec), and so are pip's other options."""
    from packaging.markers import InvalidMarker, Marker

    kept = []
    for line in requirement_lines(text):
        if line.kind in (INDEX, OPTION):
            continue
        if line.kind != REQUIREMENT:  # an include, an editable, a path or a URL
            head = line.text if line.option else line.value
            raise LockError(
                f"{source} pins {head[:120]!r}: a local, editable or URL requirement the image cannot install from hashes",
                hint="publish it to an index, or list it under source: (code) instead of as a dependency",
            )
        if line.marker:
            try:
                if not Marker(line.marker).evaluate(environment):
                    continue
            except InvalidMarker as exc:
                raise LockError(f"{source} has a marker imagesmith cannot read: {line.marker[:120]!r}") from exc
        kept.append(line)
    return pins_of(kept)


def pylock_pins(path: Path, environment: dict[str, str]) -> list[Pin]:
    """The packages of a PEP 751 ``pylock.toml`` that apply to the target, with their hashes."""
    from packaging.markers import InvalidMarker, Marker
    from packaging.utils import canonicalize_name

    try:
        data = fsutil.read_toml(path)
    except (OSError, UnicodeDecodeError, fsutil.tomllib.TOMLDecodeError) as exc:
        raise LockError(f"{path.name} is not readable TOML ({str(exc)[:200]})") from exc
    version = str(data.get("lock-version", ""))
    if not version.startswith("1."):
        raise LockError(f"{path.name} has lock-version {version or '(none)'}; imagesmith reads version 1.x (PEP 751)")
    packages = data.get("packages")
    if not isinstance(packages, list):
        raise LockError(f"{path.name} has no [[packages]]")
    python_full = environment["python_full_version"]
    requires = data.get("requires-python")
    if requires is not None and not _allows(requires, python_full):
        raise LockError(
            f"{path.name} requires Python {requires}; the image's Python is {python_full}",
            hint=_python_hint(requires, "the tool that wrote it"),
        )
    pins: dict[str, Pin] = {}
    for i, pkg in enumerate(packages):
        where = f"{path.name} packages[{i}]"
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            raise LockError(f"{where} has no name")
        marker = pkg.get("marker")
        if marker:
            try:
                if not Marker(str(marker)).evaluate(environment):
                    continue
            except InvalidMarker as exc:
                raise LockError(f"{where} ({pkg['name']}) has a marker imagesmith cannot read: {marker!r}") from exc
        for kind in ("vcs", "directory", "archive"):
            if kind in pkg:
                raise LockError(
                    f"{where} ({pkg['name']}) comes from a {kind}: the image installs from hashed index files only",
                    hint="publish it to an index, or list its code under source:",
                )
        if not isinstance(pkg.get("version"), str):
            raise LockError(f"{where} ({pkg['name']}) has no version")
        requires = pkg.get("requires-python")
        if requires is not None and not _allows(requires, python_full):
            raise LockError(
                f"{where}: {pkg['name']} {pkg['version']} requires Python {requires}; the image's Python is {python_full}",
                hint=_python_hint(requires, "the tool that wrote it"),
            )
        files = [f for f in (pkg.get("wheels") or []) if isinstance(f, dict)]
        if isinstance(pkg.get("sdist"), dict):
            files.append(pkg["sdist"])
        hashes = sorted({f"sha256:{h}" for f in files if isinstance(h := _sha256(f), str)})
        if not hashes:
            raise LockError(f"{where} ({pkg['name']}) lists no sha256 hash for its files")
        name = canonicalize_name(pkg["name"])
        pins[name] = Pin(name, pkg["version"], tuple(hashes))
    return [pins[k] for k in sorted(pins)]


def _sha256(entry: dict[str, Any]) -> str | None:
    hashes = entry.get("hashes")
    return hashes.get("sha256") if isinstance(hashes, dict) else None


def _allows(requires_python: object, python_full: str) -> bool:
    """Whether a ``requires-python`` specifier admits ``python_full`` (unreadable: refused)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(str(requires_python)).contains(python_full, prereleases=True)
    except InvalidSpecifier as exc:
        raise LockError(f"requires-python {requires_python!r} is not a version specifier imagesmith can read") from exc


def _python_hint(requires_python: object, tool: str) -> str:
    return (
        f"choose a base image whose Python {requires_python} allows (spec base:), or widen requires-python "
        f"in pyproject.toml and run `{tool}` again"
    )


def check_uv_lock_python(path: Path, python_full: str) -> None:
    """Refuse a ``uv.lock`` whose ``requires-python`` excludes the image's Python, naming the
    project and both Pythons: uv resolved it for other interpreters, and its wheels would not
    be the image's (the download would fail on hashes much later)."""
    try:
        data = fsutil.read_toml(path)
    except (OSError, UnicodeDecodeError, fsutil.tomllib.TOMLDecodeError) as exc:
        raise LockError(f"{path.name} is not readable TOML ({str(exc)[:200]})") from exc
    requires = data.get("requires-python")
    if requires is None or _allows(requires, python_full):
        return
    roots = [
        f"{p.get('name')} {p.get('version', '')}".strip()
        for p in data.get("package") or []
        if isinstance(p, dict) and isinstance(p.get("source"), dict) and {"virtual", "editable"} & set(p["source"])
    ]
    raise LockError(
        f"{path.name} (project {', '.join(sorted(roots)) or path.parent.name}) requires Python {requires}; "
        f"the image's Python is {python_full}",
        hint=_python_hint(requires, "uv lock"),
    )


def existing_pins(
    root: Path, source: str, *, extras: tuple[str, ...], groups: tuple[str, ...], python_full: str, platform: str
) -> list[Pin]:
    """The pins of the project's own lock ``source`` (a key of ``SOURCES``) for the target."""
    environment = target_environment(python_full, platform)
    if source == "uv_lock":
        check_uv_lock_python(root / UV_LOCK, python_full)
        pins = pins_from_requirements(uv_export(root, extras, groups), environment, UV_LOCK)
    elif source == "poetry_lock":
        pins = pins_from_requirements(poetry_export(root, extras, groups), environment, POETRY_LOCK)
    elif source == "pylock":
        pins = pylock_pins(root / PYLOCK, environment)
    else:
        raise LockError(f"unknown lock source {source!r}")
    if not pins:
        raise LockError(
            f"{SOURCES[source]} pins no package for Python {python_full} on {platform}",
            hint="check the lock's markers, or add dependencies and lock again",
        )
    return pins


def group_requirements(pyproject: Path, groups: tuple[str, ...]) -> list[str]:
    """The requirements of PEP 735 dependency groups in ``pyproject`` (``{include-group = ...}``
    followed, cycles refused), for resolvers that do not read ``[dependency-groups]`` themselves."""
    from packaging.utils import canonicalize_name

    try:
        table = fsutil.read_toml(pyproject).get("dependency-groups") or {}
    except (OSError, UnicodeDecodeError, fsutil.tomllib.TOMLDecodeError) as exc:
        raise LockError(f"{pyproject.name} is not readable TOML ({str(exc)[:200]})") from exc
    names = {canonicalize_name(k): k for k in table} if isinstance(table, dict) else {}
    out: list[str] = []

    def add(group: str, seen: tuple[str, ...]) -> None:
        key = canonicalize_name(group)
        if key in seen:
            raise LockError(f"dependency group {group} includes itself ({' -> '.join((*seen, key))})")
        if key not in names:
            raise LockError(
                f"{pyproject.name} has no dependency group {group!r}",
                hint=f"its groups: {', '.join(sorted(names)) or 'none'} ([dependency-groups])",
            )
        for item in table[names[key]]:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and isinstance(item.get("include-group"), str):
                add(item["include-group"], (*seen, key))
            else:
                raise LockError(f"dependency group {group} has an entry imagesmith cannot read: {str(item)[:100]}")

    for group in groups:
        add(group, ())
    return out


def check_replaceable_pylock(dest: Path) -> None:
    """Refuse (``FileWriteError``) what imagesmith may not replace at ``dest``
    (``fsutil.check_replaceable``): another tool's pylock.toml is never overwritten, nor a link
    or a folder there. ``lock --pylock`` asks this before locking, ``write_pylock`` before uv runs."""
    fsutil.check_replaceable(
        dest,
        what="pylock.toml",
        hint="move your pylock.toml away, or lock from it (`requirements: {pylock: true}` in the spec)",
    )


def write_pylock(lock, dest: Path) -> None:
    """Write ``dest`` (a PEP 751 ``pylock.toml``) with exactly the lock's pins, for tools that read
    the standard: uv turns the hashed ``requirements.lock`` into it, asking the spec's indexes for
    the files' URLs (uv's own default index otherwise), and imagesmith's header goes first (a TOML
    comment). Refused when the result pins another version or none of the locked hashes (the file
    would then not be the lock), and, before anything runs, when a ``dest`` imagesmith did not
    write is there (another tool's pylock.toml: never overwritten)."""
    import tempfile

    from ..credentials import index_args, index_netrc, secret_file
    from ..fsutil import atomic_write
    from ..platforms import RESOLVER_PLATFORMS
    from .pins import render_requirements_lock

    check_replaceable_pylock(dest)
    if lock.package_indexes:
        raise LockError(
            "pylock.toml is not written for a lock with package_indexes",
            hint="uv's pylock.toml export has no per-package index; use imagesmith.lock and requirements.lock",
        )
    from .uv_resolver import uv_bin  # with the resolvers, only when uv runs

    uv = uv_bin()
    with tempfile.TemporaryDirectory(prefix="imagesmith-pylock-") as tmp:
        source, out = Path(tmp) / "requirements.lock", Path(tmp) / "pylock.toml"
        source.write_text(render_requirements_lock(lock.packages, "pins of imagesmith.lock"))
        argv = [
            uv,
            "pip",
            "compile",
            "--quiet",
            "--no-header",
            "--format",
            "pylock.toml",
            "--no-deps",
            "--python-version",
            lock.python,
            "--python-platform",
            RESOLVER_PLATFORMS[lock.platform],
            "--output-file",
            str(out),
            *index_args(lock.index_url, lock.extra_index_urls),
            str(source),
        ]
        with secret_file(index_netrc(lock.index_url, lock.extra_index_urls)) as netrc:
            env = dict(os.environ, UV_NO_PROGRESS="1", **({"NETRC": str(netrc)} if netrc else {}))
            _run(argv, Path(tmp), "pylock.toml", env)
        text = out.read_text(encoding="utf-8")
        written = {
            p.name: p
            for p in pylock_pins(out, target_environment(lock.base.python_version or lock.python + ".0", lock.platform))
        }
    for pin in lock.packages:
        got = written.get(pin.name)
        if got is None or got.version != pin.version or not set(got.hashes) & set(pin.hashes):
            raise LockError(
                f"pylock.toml would not be the lock: {pin.name} {pin.version} is "
                + ("missing" if got is None else f"{got.version} with other files"),
                hint="run `imagesmith lock` again; the index may have changed",
            )
    atomic_write(dest, f"{fsutil.GENERATED_HEADER}{__version__} from imagesmith.lock; do not edit.\n{text}")
