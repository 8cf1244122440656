"""The project itself, installed: its wheel, built and installed inside the image build.

Standard library only (part of the ``imagesmith-runtime`` wheel). Two steps, each run by the
Dockerfile from that wheel with the base image's Python:

``build --src SRC --backend DIR --out OUT``
    in the ``project-build`` stage, with no network: ``pip wheel --no-deps --no-index
    --no-build-isolation`` of the project in SRC, its build backend importable from DIR only
    (installed there from the lock's hashed ``build_system`` wheels). The wheel is then
    rewritten so its bytes depend on its files only: entries sorted by name, every date
    1980-01-01, modes kept (whatever the backend did with ``SOURCE_DATE_EPOCH``). Exactly one
    wheel must come out.

``install --python VENV_PYTHON --wheel-dir DIR --facts FILE``
    in the last layer of ``shared``: installs the one wheel in DIR into the venv
    (``--no-deps --no-index --no-compile``: its dependencies are the lock's, already there),
    compiles exactly the ``.py`` files its RECORD lists (``unchecked-hash``: no timestamps),
    and writes FILE: the distribution's name, version, wheel file name and the wheel's sha256
    (the record of what was installed; code, like ``/app``, so not in the parity).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import py_compile
import subprocess
import sys
import zipfile

from .errors import ImagesmithError
from .files import sha256_file, write_atomic
from .wheel import ZIP_DATE, normalise


class ProjectError(ImagesmithError):
    """The project's wheel could not be built or installed as asked."""


def normalised_wheel(data: bytes) -> bytes:
    """The wheel ``data`` rewritten reproducibly: entries sorted, dated 1980-01-01, stored
    uncompressed, each entry's Unix mode kept (a console script's mode matters to no one, but
    an executable data file's does)."""
    entries = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            mode = (info.external_attr >> 16) & 0o777 or 0o644
            entries.append((info.filename, mode, zf.read(info)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, mode, content in sorted(entries, key=lambda e: e[0]):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.create_version = info.extract_version = 20
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, content)
    return out.getvalue()


def _one_wheel(folder: str) -> str:
    wheels = sorted(f for f in os.listdir(folder) if f.endswith(".whl"))
    if len(wheels) != 1:
        raise ProjectError(f"expected one wheel of the project in {folder}, found {len(wheels)}: {wheels}")
    return os.path.join(folder, wheels[0])


def build(src: str, backend: str, out: str) -> str:
    """Build the project's wheel into ``out`` (see the module docstring); returns its path."""
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=backend, HOME=os.environ.get("HOME", "/tmp"))
    env.setdefault("SOURCE_DATE_EPOCH", "315532800")  # 1980-01-01: the oldest a zip can say
    cmd = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-cache-dir"]
    cmd += ["--no-deps", "--no-index", "--no-build-isolation", "--wheel-dir", out, src]
    result = subprocess.run(cmd, env=env, stdout=sys.stderr, check=False)
    if result.returncode != 0:
        raise ProjectError(f"the project's build backend failed (pip wheel exited {result.returncode})")
    path = _one_wheel(out)
    with open(path, "rb") as fh:
        data = fh.read()
    write_atomic(path, normalised_wheel(data))
    return path


def _dist_info(wheel_name: str) -> tuple[str, str]:
    parts = os.path.basename(wheel_name)[: -len(".whl")].split("-")
    return parts[0], parts[1]


def install(python: str, wheel_dir: str, facts: str) -> dict:
    """Install the wheel in ``wheel_dir`` into the venv of ``python``; returns what ``facts`` holds."""
    wheel = _one_wheel(wheel_dir)
    cmd = [sys.executable, "-m", "pip", "--python", python, "install", "--disable-pip-version-check"]
    cmd += ["--no-cache-dir", "--no-index", "--no-deps", "--no-compile", wheel]
    result = subprocess.run(cmd, stdout=sys.stderr, check=False)
    if result.returncode != 0:
        raise ProjectError(f"installing the project's wheel failed (pip exited {result.returncode})")
    name, version = _dist_info(wheel)
    site = os.path.dirname(facts)
    record = os.path.join(site, f"{name}-{version}.dist-info", "RECORD")
    with open(record, encoding="utf-8") as fh:
        rows = [row[0] for row in csv.reader(fh) if row]
    for rel in sorted(rows):
        path = os.path.normpath(os.path.join(site, rel))
        if path.endswith(".py") and path.startswith(site + os.sep) and os.path.isfile(path):
            py_compile.compile(path, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(f"{name}-{version}.dist-info/METADATA").decode("utf-8", "replace")
    dist = next((line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Name:")), name)
    data = {
        "name": normalise(dist).replace("_", "-"),
        "version": version,
        "wheel": os.path.basename(wheel),
        "sha256": sha256_file(wheel),
    }
    write_atomic(facts, (json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n").encode())
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagesmith_runtime.project", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    b = sub.add_parser("build")
    b.add_argument("--src", required=True)
    b.add_argument("--backend", required=True)
    b.add_argument("--out", required=True)
    i = sub.add_parser("install")
    i.add_argument("--python", required=True)
    i.add_argument("--wheel-dir", required=True)
    i.add_argument("--facts", required=True)
    args = parser.parse_args(argv)
    try:
        if args.step == "build":
            print(build(args.src, args.backend, args.out))
        else:
            print(json.dumps(install(args.python, args.wheel_dir, args.facts), sort_keys=True))
    except (ProjectError, OSError, KeyError, zipfile.BadZipFile) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
