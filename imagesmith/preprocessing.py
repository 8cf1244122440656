"""The preprocessing wheel on the host: ``imagesmith export preprocessing``.

The rules (the wheel's content, its version = content digest, the digest the lock records) are
``imagesmith/runtime/preprocessing.py``'s, the same code the image build runs; this module only
adds what needs a spec and a lock.
"""

from __future__ import annotations

from pathlib import Path

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
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileWriteError(
            f"cannot write the preprocessing wheel into {out}: it is a file, not a folder",
            hint="give -o a folder (it is made when missing); the file was left as it is",
        )
    try:
        return write_wheel(distribution_name(spec.name), str(spec.root), spec.preprocessing, str(out), version)
    except OSError as exc:  # a file on the way to the folder, no permission, a full disk
        raise FileWriteError(
            f"cannot write the preprocessing wheel into {out}: {exc.strerror or exc}",
            hint="nothing was written; give -o a folder that can be written",
        ) from exc
