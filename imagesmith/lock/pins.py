"""A pin (one distribution, one version, its hashes) and pip's requirements format, which every
resolver writes and ``requirements.lock`` is: reading it into pins, and writing pins as it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from ..errors import ResolutionError


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503) name
    version: str
    hashes: tuple[str, ...]  # "sha256:<hex>", sorted

    def as_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "hashes": list(self.hashes)}


def logical_lines(text: str) -> list[str]:
    """A requirements file's logical lines: continuations (``\\``) joined, comments and blank
    lines dropped."""
    out = []
    for raw in re.sub(r"\\\s*\n", " ", text).splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def parse_compiled(text: str) -> list[Pin]:
    """Parse pip-compile / uv output (``name==version \\ --hash=sha256:...``) into pins."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, Pin] = {}
    for line in logical_lines(text):
        if line.startswith("-"):
            continue
        head, *hash_parts = line.split("--hash=")
        try:
            req = Requirement(head.strip())
        except InvalidRequirement as exc:
            raise ResolutionError(f"the resolver wrote a line imagesmith cannot read: {line!r} ({exc})") from exc
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise ResolutionError(f"the resolver left {req.name} unpinned ({req.specifier or 'no version'})")
        hashes = tuple(sorted({h.strip() for h in hash_parts if h.strip()}))
        if not hashes:
            raise ResolutionError(f"the resolver gave no hash for {req.name}=={specs[0].version}")
        name = canonicalize_name(req.name)
        pins[name] = Pin(name=name, version=specs[0].version, hashes=hashes)
    return [pins[k] for k in sorted(pins)]


def preferences(previous: str) -> str:
    """An earlier requirements.lock as the resolvers' preferences: its ``name==version`` lines
    only. uv and pip-compile keep the hashes they find in an existing output file, and those may
    be another source's (a uv.lock resolved for other Pythons lists only their wheels): a re-lock
    keeps the versions it can and takes every hash from the index."""
    lines = [line.split("--hash=", 1)[0].strip() for line in logical_lines(previous) if not line.startswith("-")]
    return "".join(line + "\n" for line in lines if line)


def render_requirements_lock(pins: Sequence[Pin], header: str) -> str:
    """The pip-compatible ``requirements.lock``: ``pip install --require-hashes -r`` accepts it."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for pin in pins:
        lines.append(f"{pin.name}=={pin.version} \\")
        for i, h in enumerate(pin.hashes):
            lines.append(f"    --hash={h}" + (" \\" if i < len(pin.hashes) - 1 else ""))
    return "\n".join(lines) + "\n"
