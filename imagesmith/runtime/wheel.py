"""Reproducible wheel files, standard library only.

``wheel_bytes(name, version, files, summary)`` returns a wheel whose bytes are a pure function
of its arguments: entries in the order given (callers sort them), then ``.dist-info`` with
METADATA, WHEEL, any extra metadata and RECORD last; stored uncompressed, dated 1980-01-01,
mode 0644. Used for the preprocessing wheel (in the ``preprocessing-build`` stage and by
``imagesmith export``) and, on the host, for this package's own wheel (``imagesmith-runtime``).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import zipfile

from .files import write_atomic

WHEEL_TAG = "py3-none-any"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
VERSION_PREFIX = "0+sha256."  # content-versioned wheels: VERSION_PREFIX + 12 hex digits of a digest
VERSION_DIGITS = 12


def normalise(name: str) -> str:
    """A distribution name as wheel file names and .dist-info folders spell it (PEP 491)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def filename(name: str, version: str) -> str:
    """The wheel's file name (PEP 427)."""
    return f"{normalise(name)}-{version}-{WHEEL_TAG}.whl"


def content_version(hexdigest: str) -> str:
    """The version of a wheel named by its content: ``0+sha256.<first 12 hex digits>``."""
    return VERSION_PREFIX + hexdigest[:VERSION_DIGITS]


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_bytes(
    name: str,
    version: str,
    files: list[tuple[str, bytes]],
    summary: str,
    extra_metadata: dict[str, bytes] | None = None,
) -> tuple[str, bytes]:
    """``(file name, bytes)`` of a pure-Python wheel holding ``files`` (archive name, bytes)."""
    dist_info = f"{normalise(name)}-{version}.dist-info"
    entries = list(files)
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n"
    wheel = f"Wheel-Version: 1.0\nGenerator: imagesmith\nRoot-Is-Purelib: true\nTag: {WHEEL_TAG}\n"
    entries.append((f"{dist_info}/METADATA", metadata.encode()))
    entries.append((f"{dist_info}/WHEEL", wheel.encode()))
    for key, data in sorted((extra_metadata or {}).items()):
        entries.append((f"{dist_info}/{key}", data))
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for arcname, data in entries:
        writer.writerow([arcname, record_hash(data), len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    entries.append((f"{dist_info}/RECORD", record.getvalue().encode()))

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # unix, so the mode below is read
            info.create_version = info.extract_version = 20
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return filename(name, version), buf.getvalue()


def write_file(dest: str, data: bytes) -> str:
    """Write ``data`` to ``dest`` whole or not at all, making its folder; returns ``dest``."""
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    return write_atomic(dest, data)
