"""The ``imagesmith-runtime`` wheel: imagesmith's in-image code (``imagesmith/runtime/``) as the
one thing images install.

Its bytes are a pure function of the package's files: every module the registry
(``runtime.MODULES``) lists, as ``imagesmith_runtime/<module>.py``, and the root files
(``runtime.ROOT_FILES``: ``imagesmith.pth``), sorted, written by ``runtime/wheel.py`` (fixed zip
times, stored, mode 0644). Its version is its content digest, as for the preprocessing wheel::

    version = "0+sha256." + the first 12 hex digits of
              sha256(json.dumps({archive name: "sha256:<hex of the file>"}, sort_keys, separators , :))

The lock pins it (name, version, sha256 of the wheel; see ``lock.inputs.runtime_pin``), so it is part of
the parity manifest; ``render``/``build`` write it to ``.imagesmith/`` beside the Dockerfile
(``write_beside``), where the Dockerfile's ``imagesmith-runtime`` stage copies it from.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import layout, runtime
from .errors import FileWriteError, RenderError
from .fsutil import atomic_write, check_not_link
from .platforms import PLATFORMS, platform_arch
from .runtime import wheel

SOURCE = Path(runtime.__file__).resolve().parent
GENERATED_DIR = layout.GENERATED_DIR  # beside the Dockerfile, in the build context


@dataclass(frozen=True)
class RuntimeWheel:
    name: str
    version: str
    filename: str
    sha256: str  # "sha256:<hex>" of the wheel's bytes
    data: bytes


def _files() -> list[tuple[str, bytes]]:
    found = {p.stem for p in SOURCE.glob("*.py")}
    listed = set(runtime.MODULES)
    if found != listed:
        raise RenderError(
            f"imagesmith/runtime/ and its registry disagree: unlisted {sorted(found - listed)}, "
            f"missing {sorted(listed - found)}",
            hint="list every in-image module in runtime.MODULES",
        )
    files = [(f"{runtime.PACKAGE}/{name}.py", (SOURCE / f"{name}.py").read_bytes()) for name in listed]
    files += [(name, (SOURCE / name).read_bytes()) for name in runtime.ROOT_FILES]
    return sorted(files)


@lru_cache(maxsize=1)
def build() -> RuntimeWheel:
    """The wheel of this imagesmith's runtime (computed once per process)."""
    files = _files()
    digests = {name: "sha256:" + hashlib.sha256(data).hexdigest() for name, data in files}
    text = json.dumps(digests, sort_keys=True, separators=(",", ":"))
    version = wheel.content_version(hashlib.sha256(text.encode()).hexdigest())
    filename, data = wheel.wheel_bytes(
        runtime.DISTRIBUTION, version, files, "imagesmith's in-image code (version = content digest)"
    )
    return RuntimeWheel(runtime.DISTRIBUTION, version, filename, "sha256:" + hashlib.sha256(data).hexdigest(), data)


def check_folder(context: Path) -> Path:
    """``<context>/.imagesmith`` (what the Dockerfile copies from), refused (``FileWriteError``) when
    it or one of its platform folders is a symbolic link or not a folder: imagesmith writes and
    removes its files there, never through a link out of the project, and never over a file of
    that name. Nothing has been written when this raises."""
    folder = Path(context) / GENERATED_DIR
    for path in (folder, *(folder / platform_arch(p) for p in PLATFORMS)):
        check_not_link(
            path,
            hint="imagesmith writes and removes its build-context files there and never follows a link to do so: "
            f"remove the link; {GENERATED_DIR}/ is imagesmith's own folder (it makes it)",
        )
        if path.exists() and not path.is_dir():
            raise FileWriteError(
                f"{path} is a file where imagesmith keeps its build-context folder",
                hint=f"move the file away; {GENERATED_DIR}/ is imagesmith's own folder (it makes it)",
            )
    return folder


def write_beside(context: Path) -> Path:
    """Write the wheel into ``<context>/.imagesmith/`` (atomically; other runtime wheels there are
    removed); returns its path. Unchanged bytes are not rewritten."""
    built = build()
    folder = check_folder(context)
    dest = folder / built.filename
    if not (dest.is_file() and dest.read_bytes() == built.data):
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(dest, built.data)
    for old in folder.glob(f"{wheel.normalise(built.name)}-*.whl"):
        if old.name != built.filename:
            old.unlink()
    return dest


def stale_beside(context: Path) -> str | None:
    """Why ``<context>/.imagesmith/`` does not hold this imagesmith's wheel (None: it does)."""
    built = build()
    dest = Path(context) / GENERATED_DIR / built.filename
    if not dest.is_file():
        return f"{GENERATED_DIR}/{built.filename} is missing"
    if dest.read_bytes() != built.data:
        return f"{GENERATED_DIR}/{built.filename} differs from this imagesmith's runtime wheel"
    return None


def install_into(python: Path, scratch: Path) -> None:
    """Install this imagesmith's runtime wheel into the venv of ``python`` with imagesmith's uv,
    as the Dockerfile does (offline, no index, no dependencies, no cache, files copied, no
    bytecode; by name and version from a folder): for tests and benchmarks on the host.
    ``scratch`` is a folder for the wheel file."""
    from .lock.uv_resolver import uv_bin

    built = build()
    (Path(scratch) / built.filename).write_bytes(built.data)
    argv = [uv_bin(), "pip", "install", "-q", "--python", str(python), "--offline", "--no-cache", "--no-index"]
    argv += ["--no-deps", "--link-mode", "copy", "--find-links", str(scratch), f"{built.name}=={built.version}"]
    env = {**os.environ, "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(argv, check=True, capture_output=True, env=env)
