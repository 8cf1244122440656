"""The parity manifest and digest on the host: ``imagesmith/runtime/parity.py`` is the one owner.

The implementation (and the algorithm, in its docstring) lives in the runtime package because
images run the very same code to check a model's stamp; the host imports it from there.
"""

from __future__ import annotations

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
    "MANIFEST_KEYS",
    "PARITY_VERSION",
    "READABLE_VERSIONS",
    "canonical",
    "compare",
    "digest",
    "manifest_from_lock",
    "parse_manifest",
]
