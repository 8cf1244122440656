"""The preprocessing wheel on the host: ``imagesmith export preprocessing``.

The rules (the wheel's content, its version = content digest, the digest the lock records) are
``imagesmith/runtime/preprocessing.py``'s, the same code the image build runs; this module only
adds what needs a spec and a lock.
"""

from __future__ import annotations

import os

from .errors import FileWriteError
from .runtime.preprocessing import PreprocessingError, distribution_name, write_wheel

__all__ = ["PreprocessingError", "distribution_name", "export"]


def export(spec, lock, out_dir) -> str:
    """Write the project's preprocessing wheel (at the lock's version) into ``out_dir``."""
    version = getattr(lock, "preprocessing_version", None)
    if not spec.preprocessing or version is None:
        raise PreprocessingError(
            f"{spec.origin} names no preprocessing files, so there is no wheel to export",
            hint="list the preprocessing code under `preprocessing:` in the spec",
        )
    try:
        return write_wheel(distribution_name(spec.name), str(spec.root), spec.preprocessing, str(out_dir), version)
    except OSError as exc:  # -o names a file, a folder under a file, or one that cannot be made or written
        reason = exc.strerror or str(exc)
        if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
            reason = "it is a file, not a folder"
        where = (
            f" ({exc.filename})" if exc.filename and os.path.abspath(exc.filename) != os.path.abspath(out_dir) else ""
        )
        raise FileWriteError(
            f"cannot write the wheel into {out_dir}: {reason}{where}",
            hint="give -o a folder that exists or can be made, and that you can write to; nothing was written",
        ) from exc
