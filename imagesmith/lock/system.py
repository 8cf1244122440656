"""Pinning Debian packages (and what they pull in) to exact versions inside the base image, with
apt's own simulation. Needs the network to reach the image's apt sources."""

from __future__ import annotations

import re
import shlex
from typing import Iterable

from ..engine.protocols import LockEngine
from ..errors import EngineError, LockError


def pin_system_packages(engine: LockEngine, image: str, names: Iterable[str]) -> dict[str, str]:
    """Resolve Debian packages (and what they pull in) to exact versions inside ``image``,
    with apt's own simulation. Needs the network to reach the image's apt sources."""
    names = list(names)
    script = (
        "set -e; apt-get update -qq >/dev/null 2>&1 || { echo 'apt-get update failed' >&2; exit 3; }; "
        'apt-get install -s -qq --no-install-recommends "$@"'
    )
    try:
        out = engine.run(image, ["-c", script, "sh", *names], entrypoint=["sh"], network=True, user="root")
    except EngineError as exc:
        text = str(exc)
        if "Unable to locate package" in text or "has no installation candidate" in text:
            missing = re.findall(r"(?:Unable to locate package|Package) (\S+)", text)
            raise LockError(
                f"system package(s) {', '.join(sorted(set(missing)) or names)} not found in the base image's apt sources",
                hint="check the Debian package names in system_packages",
            ) from exc
        raise LockError(f"could not pin system packages in {image}: {text}") from exc
    pins = dict(re.findall(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+)", out, re.M))
    for n in names:
        n = n.split("=", 1)[0]
        if n not in pins and not _deb_installed(engine, image, n):
            raise LockError(f"apt did not resolve system package {n} in {image}")
    return dict(sorted(pins.items()))


def _deb_installed(engine: LockEngine, image: str, name: str) -> bool:
    out = engine.run(
        image, ["-c", f"dpkg-query -W -f='${{Version}}' {shlex.quote(name)} 2>/dev/null || true"], entrypoint=["sh"]
    )
    return bool(out.strip())
