"""The parity manifest and its digest: the only place that computes them.

The parity digest names everything that decides the numbers a model produces, and nothing else
(not the app code, not build times, not tags). Build stamps it into the image's labels, verify
recomputes it with these same functions.

Algorithm (version 2):

1. The manifest is a JSON object with exactly these keys::

       {"imagesmith_parity": 2,
        "base": "sha256:<digest of the base image>",
        "python": "<full Python version in the base, e.g. 3.11.2, else the spec's 3.11>",
        "platform": "linux/amd64",
        "packages": {"<canonical name>": {"version": "<v>", "hashes": ["sha256:<hex>", ...sorted]}},
        "system_packages": {"<name>": "<exact version>"},
        "preprocessing": {"<relative posix path>": "sha256:<hex of the file's bytes>"},
        "preprocessing_version": "0+sha256.<12 hex>" (the preprocessing wheel's version; null
                                 when the spec names no preprocessing files),
        "seed": <int>,
        "determinism": <bool>,
        "env": {"<NAME>": "<value>"},
        "runtime": {"name": "imagesmith-runtime", "version": "0+sha256.<12 hex>",
                    "hashes": ["sha256:<hex of the wheel>"]}  (imagesmith's in-image code, as locked)}

2. It is serialised canonically: ``json.dumps(manifest, sort_keys=True, separators=(",", ":"),
   ensure_ascii=True)`` encoded as UTF-8 (so pure ASCII).
3. The parity digest is ``"sha256:" + sha256(those bytes).hexdigest()``.

The canonical text is also what the image facts file (``manifest``) and the signed parity
attestation carry, so anyone can check it with ``sha256sum`` alone.

Version 2 is the only one: it pins imagesmith's in-image code (the ``imagesmith-runtime`` wheel)
as ``runtime``. Nothing built with an older version is read.

This module uses the standard library only: it is part of the ``imagesmith-runtime`` wheel, so
the runtime compares a model's stamp with the image by these same functions (see ``stamp.py``);
``imagesmith/parity.py`` re-exports it on the host.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .untrusted import loads

PARITY_VERSION = 2
READABLE_VERSIONS = (PARITY_VERSION,)
MANIFEST_KEYS = (
    "imagesmith_parity",
    "base",
    "python",
    "platform",
    "packages",
    "system_packages",
    "preprocessing",
    "preprocessing_version",
    "seed",
    "determinism",
    "env",
    "runtime",
)


def manifest_from_lock(lock) -> dict[str, Any]:
    """The parity manifest of a ``Lock`` (see the module docstring for its shape)."""
    return {
        "imagesmith_parity": PARITY_VERSION,
        "base": lock.base.digest,
        "python": lock.base.python_version or lock.python,
        "platform": lock.platform,
        "packages": {p.name: {"version": p.version, "hashes": sorted(p.hashes)} for p in lock.packages},
        "system_packages": dict(lock.system_packages),
        "preprocessing": dict(lock.preprocessing),
        "preprocessing_version": lock.preprocessing_version,
        "seed": lock.seed,
        "determinism": lock.determinism,
        "env": dict(lock.env),
        "runtime": _runtime(getattr(lock, "runtime", None)),
    }


def _runtime(pin) -> dict[str, Any] | None:
    if pin is None:
        return None
    return {"name": pin.name, "version": pin.version, "hashes": sorted(pin.hashes)}


def canonical(manifest: dict[str, Any]) -> str:
    """The canonical serialisation (step 2 of the algorithm)."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(manifest: dict[str, Any]) -> str:
    """The parity digest of a manifest (step 3 of the algorithm)."""
    return "sha256:" + hashlib.sha256(canonical(manifest).encode("utf-8")).hexdigest()


MAX_MANIFEST = 4 << 20  # bytes of a manifest's text: a large ML stack's is under 1 MiB


def parse_manifest(text: str) -> dict[str, Any]:
    """Read a manifest from its label text; raises ValueError when it is not a parity manifest
    (also when it is too large or too deeply nested to be one: ``untrusted.loads``)."""
    data = loads(text, what="the manifest", max_bytes=MAX_MANIFEST)
    if not isinstance(data, dict) or data.get("imagesmith_parity") not in READABLE_VERSIONS:
        raise ValueError(f"not an imagesmith parity manifest (version {' or '.join(map(str, READABLE_VERSIONS))})")
    missing = [k for k in MANIFEST_KEYS if k not in data]
    if missing:
        raise ValueError(f"manifest lacks {', '.join(missing)}")
    return data


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """One line per difference between two manifests, grouped in manifest order; [] when equal."""
    lines: list[str] = []
    for key in MANIFEST_KEYS:
        a, b = expected.get(key), actual.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and "version" not in a:
            for name in sorted(set(a) | set(b)):
                if name not in b:
                    lines.append(f"{key}: {name} missing (expected {_short(a[name])})")
                elif name not in a:
                    lines.append(f"{key}: {name} unexpected ({_short(b[name])})")
                elif a[name] != b[name]:
                    lines.append(f"{key}: {name} is {_short(b[name])}, expected {_short(a[name])}")
        elif isinstance(a, dict) or isinstance(b, dict):
            lines.append(
                f"{key}: {_short(b) if b is not None else None!r}, expected {_short(a) if a is not None else None!r}"
            )
        else:
            lines.append(f"{key}: {b!r}, expected {a!r}")
    return lines


def _short(value: Any) -> str:
    if isinstance(value, dict) and "version" in value:
        if "hashes" in value:
            return f"{value['version']} (hashes {','.join(h[7:19] for h in value['hashes'][:2])}…)"
        return str(value["version"])
    return str(value)
