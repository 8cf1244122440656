"""Bringing the lock up to date, platform by platform, redoing only what changed
(``lock_project``), and saying whether it is (``check_lock``; ``ensure_fresh`` refuses a stale one)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .. import gpu, platforms
from ..engine._common import first_line
from ..errors import LockError, ResolutionError, StaleLockError
from ..fsutil import holds
from ..spec import PYPROJECT, Spec
from . import Lock
from . import inputs as lock_inputs
from .base import BasePin, FilesOnce, pin_base
from .emulation import native_only
from .existing import SOURCES, existing_pins, group_requirements
from .inputs import INPUT_NAMES, changed_inputs, compute_inputs, preprocessing_files, runtime_pin
from .lockfile import check_replaceable_locks, read_locks, write_locks
from .pins import Pin

if TYPE_CHECKING:
    from .request import Resolver


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
    texts = lock_inputs.requirement_texts(spec)  # the requirements files, read once for every platform
    for platform in spec.platforms:
        one = spec.for_platform(platform)
        lock = locks.get(platform)
        if lock is None:
            changed.add("target")
            continue
        changed.update(changed_inputs(lock, compute_inputs(one, base or spec.base, texts)))
    if set(locks) != set(spec.platforms):
        changed.add("target")
    if not changed and not all(
        holds(spec.requirements_lock_for(p), locks[p].requirements_text()) for p in spec.platforms
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
    if write:
        check_replaceable_locks(spec)  # a user's requirements.lock: refused before anything is resolved
    previous: dict[str, Lock] = {}
    if spec.lock_path.is_file():
        try:
            previous = read_locks(spec.lock_path)
        except LockError:
            if not replace_invalid:
                raise
    locks: dict[str, Lock] = {}
    changed: set[str] = set()
    reads = FilesOnce(engine) if engine is not None else None  # the base's files, read once for the whole lock
    texts = lock_inputs.requirement_texts(spec)  # and the requirements files
    for platform in spec.platforms:
        if spec.multi_platform:
            progress(f"locking for {platform}")
        lock, redone = _lock_platform(
            spec.for_platform(platform),
            native_only(reads, platforms.emulation_problem(platform)),  # refuses what would run emulated
            previous.get(platform),
            base=base,
            upgrade=upgrade,
            upgrade_packages=upgrade_packages,
            upgrade_base=upgrade_base,
            progress=progress,
            texts=texts,
        )
        locks[platform] = lock
        changed.update(redone)
    check_cuda(spec, locks)  # before anything is written: a refused lock leaves the old files as they were
    files_ok = set(previous) == set(spec.platforms) and all(
        holds(spec.requirements_lock_for(p), locks[p].requirements_text()) for p in spec.platforms
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
    texts: Mapping[Path, str] | None = None,
) -> tuple[Lock, list[str]]:
    """One platform's lock (``spec`` names that platform alone) and the inputs redone for it
    ([] when ``previous`` is up to date: then it is returned as it is); ``texts``: the
    requirements files as read (``inputs.requirement_texts``)."""
    inputs = compute_inputs(spec, base, texts)
    changed = changed_inputs(previous, inputs) if previous else list(INPUT_NAMES)
    if upgrade or upgrade_packages:
        changed = sorted(set(changed) | {"requirements"}, key=INPUT_NAMES.index)
    if upgrade or upgrade_base:
        changed = sorted(set(changed) | {"base"}, key=INPUT_NAMES.index)
    if not changed and previous is not None:
        return previous, []
    redo = set(changed)

    # The base first: pip-tools may resolve inside it, system packages are pinned inside it.
    if previous is None or {"base", "target"} & redo:
        base_pin = _pin_base(spec, engine, base, progress)
    else:
        base_pin = previous.base
    if previous is None or {"resolver", "target", "requirements"} & redo:
        if spec.requirements.lock:
            progress(
                f"taking the pins of {SOURCES[spec.requirements.lock]} for Python {spec.python} on {spec.platform}"
            )
        else:
            progress(f"resolving requirements with {spec.resolver} for Python {spec.python} on {spec.platform}")
        resolved, wheels_only = _resolve(spec, engine, base_pin, previous, upgrade, upgrade_packages)
        packages = tuple(resolved)
        build_system = tuple(_resolve_build_system(spec, engine, base_pin, previous, upgrade, upgrade_packages))
    else:
        packages, build_system = previous.packages, previous.build_system
        wheels_only = previous.wheels_only
    if previous is None or {"resolver", "target", "requirements", "installer"} & redo:
        installer = _pin_installer(spec, engine, base_pin, previous, progress)
    else:
        installer = previous.installer
    if previous is None or {"base", "system_packages"} & redo:
        system_packages = _pin_system(spec, engine, base_pin, progress)
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
        wheels_only=wheels_only,
    )
    return lock, changed


def _pin_base(spec: Spec, engine, base: str, progress) -> BasePin:
    """The base pinned for the spec's platform, refused when its Python is not the spec's."""
    progress(f"pinning base image {base}")
    base_pin = pin_base(engine, base, spec.platform)
    major_minor = ".".join(base_pin.python_version.split(".")[:2])
    if base_pin.python_version and major_minor != spec.python:
        raise LockError(
            f"the base image {base} has Python {base_pin.python_version}, but the spec asks for Python {spec.python}",
            hint=f'set python: "{major_minor}" in {spec.origin}, or choose a base with Python {spec.python}',
        )
    return base_pin


def _pin_installer(spec: Spec, engine, base_pin: BasePin, previous: Lock | None, progress) -> tuple[Pin, ...]:
    """The installer's pins; none (the build installs with pip) when the indexes do not have it."""
    installer = lock_inputs.INSTALLER
    progress(f"pinning the installer {installer} for Python {spec.python} on {spec.platform}")
    try:
        return tuple(_resolve_installer(spec, engine, base_pin, previous))
    except ResolutionError as exc:  # e.g. a private index that replaces the general one
        progress(f"the package indexes have no {installer} ({first_line(exc)}): the build installs with pip")
        return ()


def _pin_system(spec: Spec, engine, base_pin: BasePin, progress) -> tuple[tuple[str, str], ...]:
    if not spec.system_packages:
        return ()
    from .system import pin_system_packages

    here = platforms.machine_platform()
    native = None
    if spec.platform != here and here in dict(base_pin.hosts):  # apt natively, for the target's architecture
        native = (base_pin.host_ref(here), platforms.platform_arch(spec.platform))
    progress(f"pinning system packages in {base_pin.ref}" + (f" (apt natively, on {here})" if native else ""))
    return tuple(sorted(pin_system_packages(engine, base_pin.ref, spec.system_packages, native).items()))


def get_resolver(name: str, engine=None) -> Resolver:
    """``resolvers.get_resolver``, imported on first use: a lock that is up to date resolves
    nothing, and the resolvers' modules are a fifth of a no-op `imagesmith lock` (bench/README.md)."""
    from .resolvers import get_resolver as chosen

    return chosen(name, engine)


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
        return _resolve_files(spec, engine, base_pin, (inline,), (), previous_text, upgrade, upgrade_packages)[0]


def _resolve_installer(spec: Spec, engine, base_pin: BasePin, previous: Lock | None) -> list[Pin]:
    """``inputs.INSTALLER`` resolved for the image like the requirements (same target and indexes: a
    linux/arm64 lock pins its aarch64 wheel), with hashes. One distribution, no deps, wheels only:
    always resolved by uv, whichever resolver the spec names (pip-compile hashes by reading each of
    uv's two dozen wheels when an index publishes no hashes: ten seconds on every fresh lock)."""
    with tempfile.TemporaryDirectory(prefix="imagesmith-installer-") as tmp:
        inline = Path(tmp) / "installer.in"
        inline.write_text(lock_inputs.INSTALLER + "\n")
        previous_text = (previous.installer_text() or None) if previous else None
        return _resolve_files(spec, engine, base_pin, (inline,), (), previous_text, False, (), resolver="uv")[0]


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
) -> tuple[list[Pin], bool]:
    """Resolve ``inputs`` with ``resolver`` (default: the spec's) for the spec's target and indexes
    (``previous_text``: earlier pins to prefer); pinned packages keep only their index's files,
    whichever resolver ran. With whether every pin is known to have a wheel for the target
    (``Resolver.wheels_only``)."""
    from .request import ResolveRequest  # only here, with the resolvers (see get_resolver)

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
        root=spec.root,
    )
    chosen = get_resolver(resolver or spec.resolver, engine)
    pins = chosen.resolve(request)
    if spec.package_indexes:
        from . import indexes as pin_indexes  # only here: urllib.request is slow to import

        pins = pin_indexes.restrict_hashes(pins, spec.package_indexes, request.netrc())
    return pins, chosen.wheels_only


def _resolve(
    spec: Spec, engine, base_pin: BasePin, previous: Lock | None, upgrade: bool, upgrade_packages: tuple[str, ...]
) -> tuple[list[Pin], bool]:
    """The requirements' pins, and whether each is known to have a wheel for the target (never
    for a project's own lock: its files are not checked against the target)."""
    req = spec.requirements
    if req.lock:  # the project's own lock is the source of truth: nothing is resolved
        return existing_pins(
            spec.root,
            req.lock,
            extras=req.extras,
            groups=req.groups,
            python_full=base_pin.python_version or spec.python + ".0",
            platform=spec.platform,
        ), False
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
        pins, wheels_only = _resolve_files(
            spec, engine, base_pin, tuple(inputs), req.extras, previous_text, upgrade, upgrade_packages
        )
    if not pins:
        raise LockError("the requirements resolved to no packages", hint="name at least one requirement")
    return pins, wheels_only
