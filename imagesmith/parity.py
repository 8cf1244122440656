"""The parity manifest and digest on the host: ``imagesmith/runtime/parity.py`` is the one owner.

The implementation (and the algorithm, in its docstring) lives in the runtime package because
images run the very same code to check a model's stamp; the host imports it from there.
"""

from __future__ import annotations

import hashlib

from .runtime.parity import (
    MANIFEST_KEYS,
    PARITY_VERSION,
    READABLE_VERSIONS,
    canonical,
    compare,
    digest,
    manifest_from_lock,
    parse_manifest,
)

__all__ = [
    "INDEX_PARITY_VERSION",
    "MANIFEST_KEYS",
    "PARITY_VERSION",
    "READABLE_VERSIONS",
    "canonical",
    "compare",
    "digest",
    "index_digest",
    "manifest_from_lock",
    "parse_manifest",
]


INDEX_PARITY_VERSION = 1


def index_digest(parities: dict[str, str]) -> str:
    """One digest for a multi-platform image index: each platform's image has its own parity
    (its manifest names its platform, base and wheels); this names the set, for the index's tag
    and ``parity-of``. ``sha256`` of the UTF-8 lines ``imagesmith-index-parity 1`` then
    ``<platform> <parity>`` per platform, sorted by platform, each ending in a newline."""
    lines = [f"imagesmith-index-parity {INDEX_PARITY_VERSION}"] + [f"{p} {parities[p]}" for p in sorted(parities)]
    return "sha256:" + hashlib.sha256(("\n".join(lines) + "\n").encode("utf-8")).hexdigest()
