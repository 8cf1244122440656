"""Comparing two environments in the parity manifest's terms: pure, used by ``verify`` and ``diff``.

A ``View`` is one side (a lock, an image's label, or an image as the probe observed it; ``verify``
builds them); ``compare(a, b)`` lists every difference as ``Change``s, grouped, so ``verify``
(the manifest against the image) and ``diff`` (any two sources) describe a difference in the
same words. Groups, in this order::

    base            the base image digest (or: the image is not built on the base its label names)
    python          Python version and platform
    distributions   added, removed, version_changed, hash_changed (same version, other wheel
                    hashes or other installed files), unrecorded (files in site-packages that
                    no distribution installed)
    system_packages Debian packages (full lists when both sides are images, else the pinned ones)
    preprocessing   the preprocessing files (and the preprocessing wheel's version)
    seed_env        seed, determinism, and the environment variables that decide the numbers
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

GROUPS = ("base", "python", "distributions", "system_packages", "preprocessing", "seed_env")
GROUP_TITLES = {
    "base": "base image",
    "python": "Python",
    "distributions": "distributions",
    "system_packages": "system packages",
    "preprocessing": "preprocessing files",
    "seed_env": "seed and environment",
}
KIND_TITLES = {
    "added": "added",
    "removed": "removed",
    "version_changed": "version changed",
    "hash_changed": "same version, different hash",
    "unrecorded": "files no distribution installed",
    "changed": "changed",
}

# Environment variables that change which code Python runs or how numeric libraries compute:
# compared even when neither manifest names them (a child image may set them).
WATCHED_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONUSERBASE",
    "PYTHONHASHSEED",
    "PYTHONSAFEPATH",
    "LD_PRELOAD",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "MKL_CBWR",
    "CUBLAS_WORKSPACE_CONFIG",
    "TF_DETERMINISTIC_OPS",
)
# Variables that only carry the seed and determinism into the image (compared as those fields).
SEED_ENV = ("IMAGESMITH_SEED", "IMAGESMITH_DETERMINISM")


@dataclass
class Dist:
    version: str
    hashes: tuple[str, ...] | None = None  # wheel hashes when known (lock, or a label whose version is installed)
    content: str | None = None  # fingerprint of the installed files (probe), None when not observed
    files: dict[str, str] | None = None  # path -> sha256 hex of each installed file, when observed in detail
    modified: tuple[str, ...] = ()  # installed files that differ from the RECORD, are missing, or stale bytecode


@dataclass
class View:
    """One side of a comparison, in the parity manifest's terms."""

    name: str  # how the side is named in output: "lock examples/iris/imagesmith.lock", "image app:serve"
    kind: str  # "lock", "image" (observed) or "label" (an image's claim, not observed)
    parity: str | None
    base: str | None
    python: str | None
    platform: str | None
    packages: dict[str, Dist]
    system_packages: dict[str, str]
    system_complete: bool  # True: every installed Debian package (observed); False: the pinned ones
    preprocessing: dict[str, str | None]  # path -> "sha256:..." (None: missing)
    preprocessing_version: str | None
    seed: int | None
    determinism: bool | None
    env: dict[str, str]  # the relevant variables as the environment sets them (absent: unset)
    env_expected: dict[str, str] = field(default_factory=dict)  # what this side's own seed/determinism/env imply
    unrecorded: dict[str, str] | None = None  # site-packages files no RECORD lists (None: not observed)
    id: str = ""


@dataclass(frozen=True)
class Change:
    group: str
    kind: str  # added | removed | changed | version_changed | hash_changed | unrecorded
    name: str
    a: Any
    b: Any
    detail: str = ""

    def line(self, a_name: str = "A", b_name: str = "B") -> str:
        """One readable line, naming the sides (``verify`` says "the manifest" / "the image")."""
        label = GROUP_TITLES[self.group]
        if self.a is None:
            text = f"{self.name} {_show(self.b)} is in {b_name} but not in {a_name}"
        elif self.b is None:
            text = f"{self.name} {_show(self.a)} is in {a_name} but not in {b_name}"
        elif self.kind == "hash_changed":
            text = f"{self.name} {_show(self.a)} differs"
        else:
            text = f"{self.name}: {_show(self.a)} in {a_name}, {_show(self.b)} in {b_name}"
        if self.detail:
            text += f" ({self.detail})" if self.kind != "hash_changed" else f": {self.detail}"
        return f"{label}: {text}"

    def short(self) -> str:
        """The line under a group heading in ``diff`` output."""
        if self.a is None:
            text = f"+ {self.name} {_show(self.b)}"
        elif self.b is None:
            text = f"- {self.name} {_show(self.a)}"
        elif self.a == self.b:
            text = f"{self.name} {_show(self.a)}"
        else:
            text = f"{self.name}: {_show(self.a)} -> {_show(self.b)}"
        return text + (f" ({self.detail})" if self.detail else "")

    def as_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "a": self.a, "b": self.b, "detail": self.detail}


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    return re.sub(r"sha256:([0-9a-f]{12})[0-9a-f]{52}", r"sha256:\1…", str(value))


# ------------------------------------------------------------------------------------------------
# comparison (pure)


def compare(a: View, b: View) -> list[Change]:
    """Every difference between two views, grouped in ``GROUPS`` order, sorted within groups."""
    out: list[Change] = []
    if a.base != b.base:
        out.append(Change("base", "changed", "base", a.base, b.base, _base_detail(a, b)))
    for key in ("python", "platform"):
        x, y = getattr(a, key), getattr(b, key)
        if x != y and x is not None and y is not None:
            out.append(Change("python", "changed", key, x, y))
    out += _compare_packages(a, b)
    out += _compare_system(a, b)
    out += _compare_preprocessing(a, b)
    out += _compare_seed_env(a, b)
    return out


def _base_detail(a: View, b: View) -> str:
    for view in (a, b):
        if view.base and view.base.startswith("not "):
            return f"the layers of {view.name} do not start with the layers of the base its label names"
    return ""


def _compare_packages(a: View, b: View) -> list[Change]:
    out = []
    for name in sorted(set(a.packages) | set(b.packages)):
        x, y = a.packages.get(name), b.packages.get(name)
        if y is None:
            assert x is not None
            out.append(Change("distributions", "removed", name, x.version, None))
        elif x is None:
            out.append(Change("distributions", "added", name, None, y.version))
        elif x.version != y.version:
            out.append(Change("distributions", "version_changed", name, x.version, y.version))
        else:
            detail = _same_version_detail(a, x, b, y)
            if detail:
                out.append(Change("distributions", "hash_changed", name, x.version, y.version, detail))
    if a.unrecorded is not None and b.unrecorded is not None:
        for path in sorted(set(a.unrecorded) | set(b.unrecorded)):
            u, v = a.unrecorded.get(path), b.unrecorded.get(path)
            if u != v:
                out.append(
                    Change(
                        "distributions",
                        "unrecorded",
                        path,
                        _hash_or_none(u),
                        _hash_or_none(v),
                        "in site-packages, installed by no distribution",
                    )
                )
    return out


def _hash_or_none(value: str | None) -> str | None:
    return None if value is None else (value if value.startswith("sha256:") else "sha256:" + value)


def _same_version_detail(a: View, x: Dist, b: View, y: Dist) -> str:
    parts = []
    if x.hashes is not None and y.hashes is not None and set(x.hashes) != set(y.hashes):
        parts.append("other wheel hashes")
    if x.files is not None and y.files is not None and x.files != y.files:
        changed = sorted(p for p in set(x.files) | set(y.files) if x.files.get(p) != y.files.get(p))
        parts.append("installed files differ: " + _list(changed))
    elif x.content is not None and y.content is not None and x.content != y.content and not (x.modified or y.modified):
        parts.append("installed files differ")
    files_named = bool(parts) and x.files is not None and y.files is not None
    for view, dist in ((a, x), (b, y)):
        modified = [m for m in dist.modified if not files_named or m.endswith(" (stale bytecode)")]
        if modified:  # (when the files were compared one by one, only what that list cannot show)
            parts.append(
                f"in {view.name} {_list(modified)} "
                f"{'differs' if len(modified) == 1 else 'differ'} from what the distribution installed"
            )
    return "; ".join(parts)


def _list(items, limit: int = 4) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _compare_system(a: View, b: View) -> list[Change]:
    if a.system_complete and b.system_complete:
        names = set(a.system_packages) | set(b.system_packages)
    else:  # a lock or a label pins only some packages; compare those
        names = set()
        for view in (a, b):
            if not view.system_complete:
                names |= set(view.system_packages)
    out = []
    for name in sorted(names):
        x, y = a.system_packages.get(name), b.system_packages.get(name)
        if x != y:
            kind = "removed" if y is None else "added" if x is None else "changed"
            out.append(Change("system_packages", kind, name, x, y))
    return out


def _compare_preprocessing(a: View, b: View) -> list[Change]:
    out = []
    for path in sorted(set(a.preprocessing) | set(b.preprocessing)):
        x, y = a.preprocessing.get(path), b.preprocessing.get(path)
        if x != y:
            kind = "removed" if y is None else "added" if x is None else "changed"
            out.append(Change("preprocessing", kind, path, x, y))
    x, y = a.preprocessing_version, b.preprocessing_version
    if x != y and x is not None and y is not None:
        out.append(Change("preprocessing", "changed", "preprocessing version", x, y))
    return out


def _compare_seed_env(a: View, b: View) -> list[Change]:
    out = []
    if a.seed != b.seed:
        out.append(Change("seed_env", "changed", "seed", a.seed, b.seed))
    if a.determinism != b.determinism:
        out.append(Change("seed_env", "changed", "determinism", _onoff(a.determinism), _onoff(b.determinism)))
    same_settings = (a.seed, a.determinism) == (b.seed, b.determinism)
    for key in sorted(set(a.env) | set(b.env)):
        if key in SEED_ENV:
            continue
        x, y = a.env.get(key), b.env.get(key)
        if x == y:
            continue
        # A variable each side sets exactly as its own seed/determinism imply is explained by the
        # seed or determinism line above; anything else is a difference of its own.
        explained = not same_settings and x == a.env_expected.get(key) and y == b.env_expected.get(key)
        if not explained:
            kind = "removed" if y is None else "added" if x is None else "changed"
            out.append(Change("seed_env", kind, key, x, y))
    return out


def _onoff(value: bool | None) -> str | None:
    return None if value is None else ("on" if value else "off")
