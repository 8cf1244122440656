"""Pinning Debian packages (and what they pull in) to exact versions inside the base image, with
apt's own simulation. Needs the network to reach the image's apt sources.

For a base of another platform than this machine's, apt runs natively in the same base's image
of this machine's platform (``BasePin.hosts``), resolving for the target's architecture against
the target image's own apt configuration and dpkg status, read from it without running it: the
same simulation the build's ``apt_download`` stage runs natively, so the same pins, without apt
under QEMU (scale's lock: 20 s emulated). The target image is run only without such a host, or
when the native run fails for another reason than apt's own answer: a package apt does not find,
or package lists it cannot download (the network), is reported as it is, never tried again."""

from __future__ import annotations

import re
import shlex
from typing import Iterable

from ..engine.protocols import LockEngine
from ..errors import EngineError, LockError
from ..layout import BUILD_MOUNTS
from .base import DPKG_STATUS, DPKG_STATUS_BYTES, installed_version

TARGET = f"{BUILD_MOUNTS}/target"  # where the target's apt configuration and dpkg status are copied
# The target's files are read with their bytes up to this size each: the Python version's bound,
# so that the lock reads the dpkg status once for both (base.FilesOnce)
_KEPT = DPKG_STATUS_BYTES


def pin_system_packages(
    engine: LockEngine, image: str, names: Iterable[str], native: tuple[str, str] | None = None
) -> dict[str, str]:
    """Resolve Debian packages (and what they pull in) to exact versions inside ``image``,
    with apt's own simulation. Needs the network to reach the image's apt sources. ``native``:
    (the same base's image of this machine's platform, ``image``'s dpkg architecture): apt runs
    there, natively, for that architecture against ``image``'s own apt configuration and dpkg
    status (``image`` is not run); ``image`` runs only when those cannot be read."""
    names = list(names)
    status: str | None = None
    try:
        try:
            if native is None:
                raise EngineError("no image of this machine's platform")
            out, status = _simulate_natively(engine, image, names, *native)
        except EngineError as exc:
            if _missing(str(exc)) or _UPDATE_FAILED in str(exc):  # the same sources would fail the same way
                raise
            out = _simulate(engine, image, names)  # run in the target's image (under QEMU, if it is not ours)
    except EngineError as exc:
        text = str(exc)
        if _missing(text):
            missing = re.findall(r"(?:Unable to locate package|Package) (\S+)", text)
            raise LockError(
                f"system package(s) {', '.join(sorted(set(missing)) or names)} not found in the base image's apt sources",
                hint="check the Debian package names in system_packages",
            ) from exc
        if _UPDATE_FAILED in text:
            raise LockError(
                f"could not pin system packages: apt could not download the package lists of {image}'s apt "
                f"sources (the network, or a source that does not answer): {text}",
                hint="check that the engine's containers reach the sources in the base's /etc/apt (a proxy, DNS), "
                "then lock again; apt is not tried again under emulation, which would reach the same sources",
            ) from exc
        raise LockError(f"could not pin system packages in {image}: {text}") from exc
    pins = dict(re.findall(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+)", out, re.M))
    for n in names:
        n = n.split("=", 1)[0]
        if n in pins:
            continue
        if not (installed_in(status, n) if status is not None else _deb_installed(engine, image, n)):
            raise LockError(f"apt did not resolve system package {n} in {image}")
    return dict(sorted(pins.items()))


def _missing(text: str) -> bool:
    return "Unable to locate package" in text or "has no installation candidate" in text


_UPDATE_FAILED = "apt-get update failed"
# Any list that cannot be downloaded fails the update (Error-Mode=any; older apt ignores the
# option), its errors kept: a partial index would pin by what answered, or say "not found"
_UPDATE = (
    f"apt-get $o -o APT::Update::Error-Mode=any update -qq >/dev/null || {{ echo '{_UPDATE_FAILED}' >&2; exit 3; }}"
)


def _simulate(engine: LockEngine, image: str, names: list[str]) -> str:
    """apt's simulation of installing ``names``, run in ``image`` (its own architecture)."""
    script = f'set -e; o=""; {_UPDATE}; apt-get install -s -qq --no-install-recommends "$@"'
    return engine.run(image, ["-c", script, "sh", *names], entrypoint=["sh"], network=True, user="root")


def _simulate_natively(
    engine: LockEngine, image: str, names: list[str], host: str, arch: str
) -> tuple[str, str | None]:
    """apt's simulation of installing ``names`` into ``image``, run in ``host`` (an image of this
    machine's platform) for ``arch``, with ``image``'s /etc/apt and dpkg status copied in: (apt's
    output, the dpkg status). Falls back to ``_simulate`` in ``image`` when its files cannot be
    read whole (a link, a file too large to keep)."""
    import tempfile
    from pathlib import Path

    found = engine.read_paths(image, ["/etc/apt", DPKG_STATUS], small=_KEPT)
    entries = [*(found.get("/etc/apt") or ()), *(found.get(DPKG_STATUS) or ())]
    if not found.get(DPKG_STATUS) or any(
        e.kind not in ("file", "dir") or (e.kind == "file" and e.data is None) for e in entries
    ):
        return _simulate(engine, image, names), None  # the status not read: dpkg is asked
    options = " ".join(
        f"-o {o}"
        for o in (
            f"APT::Architecture={arch}",
            f"APT::Architectures={arch}",
            f"Dir::Etc={TARGET}/etc/apt",
            f"Dir::State::status={TARGET}/status",
            "Dir::State::lists=/tmp/lists",
            "Dir::Cache=/tmp/cache",
        )
    )
    script = (
        f'set -e; o="{options}"; mkdir -p /tmp/lists/partial /tmp/cache/archives/partial; '
        f'{_UPDATE}; apt-get $o install -s -qq --no-install-recommends "$@"'
    )
    if not engine.has_image(host):
        engine.pull(host)
    with tempfile.TemporaryDirectory(prefix="imagesmith-apt-") as tmp:
        root = Path(tmp)
        for entry in entries:
            dest = root / ("status" if entry.path == DPKG_STATUS else entry.path.lstrip("/"))
            if entry.kind == "dir":
                dest.mkdir(parents=True, exist_ok=True)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(entry.data or b"")
        what = f"apt-get install -s for {arch}"
        run = engine.run_to_end(
            host,
            what,
            600,
            command=["-c", script, "sh", *names],
            entrypoint=["sh"],
            user="root",
            files={str(root): TARGET},
        )
    if run.exit_code is None:
        raise EngineError(f"cannot start `{what}` in {host}: {run.start_error}")
    if run.exit_code != 0:
        raise EngineError(f"`{what}` failed in {host} (exit {run.exit_code}):\n{run.stderr[-2000:]}")
    status = next(e for e in entries if e.path == DPKG_STATUS).data or b""
    return run.stdout, status.decode("utf-8", "replace")


def installed_in(status: str, name: str) -> bool:
    """Whether the dpkg status file ``status`` records ``name`` as installed. Pure."""
    return installed_version(status, name) is not None


def _deb_installed(engine: LockEngine, image: str, name: str) -> bool:
    out = engine.run(
        image, ["-c", f"dpkg-query -W -f='${{Version}}' {shlex.quote(name)} 2>/dev/null || true"], entrypoint=["sh"]
    )
    return bool(out.strip())
