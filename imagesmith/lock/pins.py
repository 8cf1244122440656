"""A pin (one distribution, one version, its hashes) and pip's requirements format, which every
resolver writes and ``requirements.lock`` is: reading it into pins (its lines read by
``requirement_lines``), and writing pins as it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import ResolutionError
from .requirement_lines import OPTION_KINDS, Line, requirement_lines


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503) name
    version: str
    hashes: tuple[str, ...]  # "sha256:<hex>", sorted

    def as_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "hashes": list(self.hashes)}


def parse_compiled(text: str) -> list[Pin]:
    """Parse pip-compile / uv output (``name==version \\ --hash=sha256:...``) into pins."""
    return pins_of(line for line in requirement_lines(text) if line.kind not in OPTION_KINDS)


def pins_of(lines: Iterable[Line]) -> list[Pin]:
    """The pins of requirement lines, each ``name==version`` with its hashes (sorted by name)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, Pin] = {}
    for line in lines:
        try:
            req = line.requirement or Requirement(line.value)
        except InvalidRequirement as exc:
            raise ResolutionError(f"the resolver wrote a line imagesmith cannot read: {line.text!r} ({exc})") from exc
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise ResolutionError(f"the resolver left {req.name} unpinned ({req.specifier or 'no version'})")
        hashes = tuple(sorted(set(line.hashes)))
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
    lines = [
        line.value + (f" ; {line.marker}" if line.marker else "")
        for line in requirement_lines(previous)
        if line.kind not in OPTION_KINDS
    ]
    return "".join(line + "\n" for line in lines)


def render_requirements_lock(pins: Sequence[Pin], header: str) -> str:
    """The pip-compatible ``requirements.lock``: ``pip install --require-hashes -r`` accepts it."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for pin in pins:
        lines.append(f"{pin.name}=={pin.version} \\")
        for i, h in enumerate(pin.hashes):
            lines.append(f"    --hash={h}" + (" \\" if i < len(pin.hashes) - 1 else ""))
    return "\n".join(lines) + "\n"
