"""``imagesmith diff A B``: what differs between two environments, grouped.

A and B may each be an image in the local engine, a registry reference or an ``imagesmith.lock``.
Each is turned into a ``View``: the parity manifest's fields as that source really has them. For
a lock that is what the lock pins (and what a build from it would set); for an image it is what
the probe found inside it (``probe.py``: installed distributions and their files, preprocessing
files, Debian packages) and what its config sets (environment), with the base checked against
the base image's layers. A child image inherits its parent's labels, so an image's labels are
only used for what cannot be observed (the wheel hashes of distributions whose installed version
is the one the label names). ``labels_only`` skips the probe: the view is then the label's claim,
with only the image config (environment, base layers) observed.

The comparison itself (``View``, ``Change``, ``compare``) is ``compare.py``'s, pure and shared
with ``verify``, so both commands describe a difference in the same words.

Exit status of the command: 0 when no group has a difference, 1 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .compare import GROUP_TITLES, GROUPS, KIND_TITLES, SEED_ENV, WATCHED_ENV, Change, Dist, View, compare

if TYPE_CHECKING:
    from .verify_source import Source

__all__ = ["GROUPS", "SEED_ENV", "WATCHED_ENV", "Change", "DiffResult", "Dist", "View", "compare", "diff"]

# ------------------------------------------------------------------------------------------------
# the command's result


@dataclass
class DiffResult:
    a: View
    b: View
    changes: list[Change]
    notes: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.changes

    def grouped(self) -> dict[str, list[Change]]:
        out: dict[str, list[Change]] = {}
        for change in self.changes:
            out.setdefault(change.group, []).append(change)
        return out

    def as_json(self) -> dict:
        return {
            "a": _side_json(self.a),
            "b": _side_json(self.b),
            "equal": self.equal,
            "differences": len(self.changes),
            "groups": {g: [c.as_json() for c in cs] for g, cs in self.grouped().items()},
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        """The human-readable report: sides, then each group with its kinds, then notes."""
        out = [
            f"A: {self.a.name}" + (f" (parity {self.a.parity})" if self.a.parity else ""),
            f"B: {self.b.name}" + (f" (parity {self.b.parity})" if self.b.parity else ""),
        ]
        for group, changes in self.grouped().items():
            kinds: dict[str, list[Change]] = {}
            for change in changes:  # base, Python, seed and env: one heading; the others by kind
                kinds.setdefault(
                    change.kind if group in ("distributions", "system_packages", "preprocessing") else "", []
                ).append(change)
            for kind, items in kinds.items():
                out.append(GROUP_TITLES[group] + (f" ({KIND_TITLES[kind]})" if kind else "") + ":")
                out += ["  " + c.short() for c in items]
        out += [f"note: {n}" for n in self.notes]
        n = len(self.changes)
        out.append("parity-equal" if not n else f"{n} difference{'s' if n != 1 else ''}")
        return out


def _side_json(view: View) -> dict:
    return {"name": view.name, "kind": view.kind, "parity": view.parity, "id": view.id}


def diff(
    engine, a: str, b: str, *, labels_only: bool = False, platform: str | None = None, platform_b: str | None = None
) -> DiffResult:
    """Compare two sources (image, registry reference, or lock file): the Python API of ``diff``.
    ``platform`` picks the image of a multi-platform index or the section of a multi-platform
    lock on both sides (default: this machine's), ``platform_b`` another one for B: then every
    distribution that differs says why (``explain_platforms``)."""
    from concurrent.futures import ThreadPoolExecutor

    from .verify import load_view
    from .verify_source import lock_source, open_image

    # the files first: a file that is no lock (or no file at all) is refused before the engine is asked
    la, lb = lock_source(a, platform), lock_source(b, platform_b or platform)
    sa = la or open_image(engine, a, platform)
    sb = lb or open_image(engine, b, platform_b or platform)
    chosen: list[str] = []
    if platform is None and platform_b is None:  # a lock against an image: the image's platform
        if la is not None and lb is None:
            sa = lock_for_image(a, la, sb, chosen)
        elif lb is not None and la is None:
            sb = lock_for_image(b, lb, sa, chosen)
    paths = tuple(sorted({p for s in (sa, sb) if s.manifest for p in s.manifest["preprocessing"]}))
    notes_a: list[str] = []
    notes_b: list[str] = []
    with ThreadPoolExecutor(max_workers=2) as pool:  # the two probes run side by side
        future_a = pool.submit(
            load_view, engine, sa, labels_only=labels_only, detail=True, preprocessing=paths, notes=notes_a
        )
        future_b = pool.submit(
            load_view, engine, sb, labels_only=labels_only, detail=True, preprocessing=paths, notes=notes_b
        )
        view_a, view_b = future_a.result(), future_b.result()
    changes = compare(view_a, view_b)
    if view_a.platform and view_b.platform and view_a.platform != view_b.platform:
        changes = explain_platforms(changes, view_a.platform, view_b.platform)
    return DiffResult(view_a, view_b, changes, chosen + notes_a + notes_b)


def lock_for_image(ref: str, lock: Source, image: Source, notes: list[str]) -> Source:
    """A lock's section for the platform of the image it is compared with, when no --platform
    chose one: a lock of several platforms against an arm64 image is compared by its arm64
    section, not by this machine's (whose every difference would be the platforms', and be
    explained as such). A lock without that platform is compared as it is, and a note says so."""
    from dataclasses import replace
    from pathlib import Path

    from . import parity
    from .lock.lockfile import read_locks

    want = image.info.platform if image.info is not None else None
    have = lock.lock.platform if lock.lock is not None else None
    if not want or not have or want == have:
        return lock
    sections = read_locks(Path(lock.ref))  # a lock that broke since it was read is its own error
    if want not in sections:
        notes.append(f"{ref} locks no {want} section (the image's platform): its {have} section is compared")
        return lock
    return replace(lock, lock=sections[want], manifest=parity.manifest_from_lock(sections[want]))


def explain_platforms(changes: list[Change], a: str, b: str) -> list[Change]:
    """Say why each distribution differs between two platforms' environments resolved from the
    same requirements: only markers can add or remove one (``platform_machine``, ``sys_platform``
    ... in a requirement); the same version with other hashes is that version's other wheel (a
    compiled package has one per platform); another version is what the resolver could pin for
    that platform (no wheel of one version for both, or a marker-conditioned requirement). Pure."""
    out = []
    for change in changes:
        if change.group == "distributions" and change.kind in ("added", "removed", "version_changed", "hash_changed"):
            if change.a is None or change.b is None:
                only = b if change.a is None else a
                why = f"markers: only {only} installs it (an environment marker in a requirement excludes it elsewhere)"
            elif change.kind == "hash_changed":
                why = f"wheels: the same version's own wheel for each platform ({a} and {b} builds)"
            else:
                why = "resolution: the resolver pinned another version for each platform (wheels or markers differ)"
            change = Change(change.group, change.kind, change.name, change.a, change.b, why)
        elif change.group == "base" and change.kind == "changed":
            detail = change.detail or f"each platform's own base image ({a}, {b})"
            change = Change(change.group, change.kind, change.name, change.a, change.b, detail)
        out.append(change)
    return out
