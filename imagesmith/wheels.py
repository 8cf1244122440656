"""The host-side wheel cache behind hermetic builds.

Every locked distribution's wheel for the target (Python version, platform; the sdist when it
publishes no wheel for it, see ``runtime/sdists.py``) is downloaded once on
the host with pip (``--require-hashes``: a wheel whose hash is not in the lock is refused), kept in
``<cache>/wheels/<sha256>/<file>`` (keyed by content, shared by all projects and builds), and
hard-linked into a wheelhouse folder that BuildKit receives as the ``wheels`` named context. The
install step in the image then runs ``pip install --no-index --require-hashes --no-deps`` from that
folder only: no network, and pip checks every hash again.

Choosing among cached wheels uses ``packaging.tags`` with the target's tags, in pip's order.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from .cache import default_cache_dir
from .errors import LockError
from .lock import Lock
from .lock.resolvers import Pin
from .platforms import target_platforms, target_tags

__all__ = ["WheelCache", "default_cache_dir", "target_platforms", "target_tags"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class WheelCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.store = self.root / "wheels"

    def _candidates(self, pin: Pin) -> list[Path]:
        found = []
        for h in pin.hashes:
            d = self.store / h.split(":", 1)[1]
            if d.is_dir():
                found += [p for p in d.iterdir() if p.name.endswith((".whl", ".tar.gz", ".zip"))]
        return found

    def _best(self, pin: Pin, ranking: dict[Tag, int]) -> Path | None:
        """The cached wheel for the target that pip would prefer; else the pin's cached sdist
        (built into a wheel in the Dockerfile's sdist-build stage)."""
        best, best_rank = None, None
        sdist = None
        for path in self._candidates(pin):
            if not path.name.endswith(".whl"):
                name, version = parse_sdist_filename(path.name)
                if canonicalize_name(name) == pin.name and version == Version(pin.version):
                    sdist = path
                continue
            name, version, _, tags = parse_wheel_filename(path.name)
            if canonicalize_name(name) != pin.name or version != Version(pin.version):
                continue
            rank = min((ranking[t] for t in tags if t in ranking), default=None)
            if rank is not None and (best_rank is None or rank < best_rank):
                best, best_rank = path, rank
        return best or sdist

    def wheelhouse(self, lock: Lock, progress=lambda msg: None) -> Path:
        """A folder holding exactly one wheel per locked distribution for the lock's target,
        downloading what the cache lacks. The folder's path depends only on its contents."""
        ranking = {t: i for i, t in enumerate(target_tags(lock.python, lock.platform))}
        chosen: dict[str, Path] = {}
        missing: list[Pin] = []
        for pin in lock.packages:
            best = self._best(pin, ranking)
            if best is None:
                missing.append(pin)
            else:
                chosen[pin.name] = best
        if missing:
            progress(f"downloading {len(missing)} wheel(s) for Python {lock.python} on {lock.platform}")
            self._download(missing, lock)
            for pin in missing:
                best = self._best(pin, ranking)
                if best is None:
                    raise LockError(
                        f"no wheel or sdist of {pin.name}=={pin.version} with a locked hash fits Python {lock.python} on {lock.platform}",
                        hint="pin a version that publishes files for this target, or re-lock",
                    )
                chosen[pin.name] = best
        key = hashlib.sha256("\n".join(sorted(p.parent.name for p in chosen.values())).encode()).hexdigest()[:24]
        house = self.root / "wheelhouses" / key
        if not house.is_dir():
            tmp = Path(tempfile.mkdtemp(prefix=".house-", dir=self._ensure(self.root / "wheelhouses")))
            for path in chosen.values():
                try:
                    os.link(path, tmp / path.name)
                except OSError:
                    shutil.copy2(path, tmp / path.name)
            try:
                os.rename(tmp, house)
            except OSError:  # another build made it meanwhile
                shutil.rmtree(tmp, ignore_errors=True)
        return house

    @staticmethod
    def _ensure(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _download(self, pins: list[Pin], lock: Lock) -> None:
        """pip download (hash-checked) into a temporary folder, then into the cache by hash."""
        self._ensure(self.store)
        version = lock.python.replace(".", "")
        with tempfile.TemporaryDirectory(prefix="imagesmith-dl-", dir=self.root) as tmp:
            req = Path(tmp) / "requirements.txt"
            req.write_text(
                "".join(f"{p.name}=={p.version} " + " ".join(f"--hash={h}" for h in p.hashes) + "\n" for p in pins)
            )
            argv = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--no-deps",
                "--require-hashes",
                "--prefer-binary",
                "--python-version",
                lock.python,
                "--implementation",
                "cp",
                "--abi",
                f"cp{version}",
                "--abi",
                "abi3",
                "--abi",
                "none",
                "--dest",
                str(Path(tmp) / "dl"),
                "-r",
                str(req),
            ]
            for plat in target_platforms(lock.platform):
                argv += ["--platform", plat]
            proc = subprocess.run(argv, capture_output=True, text=True)
            if proc.returncode != 0:
                out = (proc.stderr or proc.stdout).strip().splitlines()
                raise LockError(
                    "downloading the locked wheels failed:\n" + "\n".join(out[-12:]),
                    hint="check the network and the package index; `--install online` downloads inside the build instead",
                )
            for path in sorted((Path(tmp) / "dl").iterdir()):
                digest = _sha256(path)
                dest = self._ensure(self.store / digest) / path.name
                if not dest.exists():
                    os.replace(path, dest)
