"""The host-side wheel cache behind hermetic builds.

Every locked distribution's wheel for the target (Python version, platform) is downloaded once on
the host with pip (``--only-binary``; the sdist of a distribution that publishes no wheel for the
target is fetched by pip in a container of the pinned base, because reading an sdist's metadata
runs its setup.py; see ``runtime/sdists.py`` for how it is built) (``--require-hashes``: a wheel whose hash is not in the lock is refused), kept in
``<cache>/wheels/<sha256>/<file>`` (keyed by content, shared by all projects and builds), and
hard-linked into a wheelhouse folder that BuildKit receives as the ``wheels`` named context. The
install step in the image then runs the lock's installer (uv, its wheel from the same folder,
hash-checked first) as ``uv pip install --offline --no-index --require-hashes --no-deps`` from that
folder only: no network, and uv checks every hash again.

Choosing among cached wheels uses ``packaging.tags`` with the target's tags, in pip's order.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from .cache import default_cache_dir
from .credentials import index_args, index_netrc, pip_config, pip_environment, redact, secret_file
from .errors import EngineError, LockError, UsageError
from .lock import Lock
from .lock.pins import Pin
from .platforms import target_platforms, target_tags

__all__ = ["WheelCache", "default_cache_dir", "target_platforms", "target_tags"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# pip download of exactly the locked files: each checked against its locked hash, nothing else
PIP_DOWNLOAD = ("-m", "pip", "download", "--disable-pip-version-check", "--no-deps", "--require-hashes")
_SAVED = re.compile(r"^\s*Saved (.+?)\s*$")  # pip download's line for each file it fetched
# pip's lines for a file whose hash is not the lock's: "name==version from URL[#frag] (...):", then
# "Expected sha256 ..." and "Got ..."
_MISMATCH = re.compile(r"^\s*([A-Za-z0-9._-]+)==(\S+) from (\S+?)(?:#\S*)?(?: \(.*\))?:\s*\n\s*Expected", re.M)
_GOT = re.compile(r"^\s*Got\s+([0-9a-f]{64})", re.M)


class WheelCache:
    def __init__(self, root: Path, engine=None) -> None:
        self.root = Path(root)
        self.store = self.root / "wheels"
        self._engine = engine  # runs pip for sdists in a container of the base (made when needed)

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

    def cached_file(self, pin: Pin, lock: Lock) -> Path | None:
        """The cached file of one pin for the lock's target, as ``wheel_file`` would choose it,
        or None when the cache lacks it (nothing is downloaded)."""
        return self._best(pin, {t: i for i, t in enumerate(target_tags(lock.python, lock.platform))})

    def wheel_file(self, pin: Pin, lock: Lock, progress=lambda msg: None) -> Path:
        """The cached file of one pin for the lock's target (downloaded first when the cache
        lacks it), as ``wheelhouse`` would choose it."""
        ranking = {t: i for i, t in enumerate(target_tags(lock.python, lock.platform))}
        best = self._best(pin, ranking)
        if best is None:
            progress(f"downloading {pin.name} {pin.version} for Python {lock.python} on {lock.platform}")
            self._download([pin], lock, progress)
            best = self._best(pin, ranking)
        if best is None:
            raise LockError(
                f"no wheel or sdist of {pin.name}=={pin.version} with a locked hash fits Python {lock.python} on {lock.platform}",
                hint="pin a version that publishes files for this target, or re-lock",
            )
        return best

    def wheelhouse(self, lock: Lock, progress=lambda msg: None) -> Path:
        """A folder holding exactly one wheel per locked distribution (and build-backend and installer pin) for the lock's target,
        downloading what the cache lacks. The folder's path depends only on its contents."""
        ranking = {t: i for i, t in enumerate(target_tags(lock.python, lock.platform))}
        chosen: dict[tuple[str, str], Path] = {}
        missing: list[Pin] = []
        # the build backend's wheels too (the project-build stage installs them from here), and
        # the installer's (the install step runs it from here)
        for pin in dict.fromkeys((*lock.packages, *lock.build_system, *lock.installer)):
            best = self._best(pin, ranking)
            if best is None:
                missing.append(pin)
            else:
                chosen[(pin.name, pin.version)] = best
        if missing:
            progress(f"downloading {len(missing)} wheel(s) for Python {lock.python} on {lock.platform}")
            self._download(missing, lock, progress)
            for pin in missing:
                best = self._best(pin, ranking)
                if best is None:
                    raise LockError(
                        f"no wheel or sdist of {pin.name}=={pin.version} with a locked hash fits Python {lock.python} on {lock.platform}",
                        hint="pin a version that publishes files for this target, or re-lock",
                    )
                chosen[(pin.name, pin.version)] = best
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

    def _download(self, pins: list[Pin], lock: Lock, progress=lambda msg: None) -> None:
        """Wheels with pip on the host (hash-checked, ``--only-binary``: no sdist is ever opened
        here), then the sdists of the pins that publish no wheel for the target, fetched by pip
        in a container of the pinned base: pip reads an sdist's metadata by running its build
        backend (setup.py), and that code runs there, never on the host."""
        self._ensure(self.store)
        with (
            tempfile.TemporaryDirectory(prefix="imagesmith-dl-", dir=self.root) as tmp,
            secret_file(index_netrc(lock.index_url, lock.other_index_urls)) as netrc,
        ):
            dl = Path(tmp) / "dl"
            dl.mkdir()
            # A distribution pinned to an index (package_indexes) is fetched from it alone; the
            # rest from the general indexes, which never include a pinned one (lock/indexes.py).
            from .lock.indexes import download_groups  # here: an edit's rebuild downloads nothing

            for pinned_index, group in download_groups(pins, lock.package_indexes):
                indexes = (
                    ["--index-url", pinned_index] if pinned_index else index_args(lock.index_url, lock.extra_index_urls)
                )
                sdist_only: list[Pin] = []
                remaining = list(group)
                while remaining:
                    failed = self._download_wheels(remaining, lock, Path(tmp), netrc, indexes, progress)
                    if failed is None:
                        break
                    sdist_only.append(failed)
                    remaining = [p for p in remaining if p is not failed]
                if sdist_only:
                    self._download_sdists(sdist_only, lock, Path(tmp), netrc, indexes)
            for path in sorted(dl.iterdir()):
                digest = _sha256(path)
                dest = self._ensure(self.store / digest) / path.name
                if not dest.exists():
                    os.replace(path, dest)

    @staticmethod
    def _requirements(pins: list[Pin], path: Path) -> Path:
        path.write_text(
            "".join(f"{p.name}=={p.version} " + " ".join(f"--hash={h}" for h in p.hashes) + "\n" for p in pins)
        )
        return path

    def _download_wheels(
        self,
        pins: list[Pin],
        lock: Lock,
        tmp: Path,
        netrc: Path | None,
        indexes: list[str],
        progress=lambda msg: None,
    ) -> Pin | None:
        """pip download of the wheels; returns the pin pip found no wheel of (None: all done).
        Each file pip has fetched is reported as one ``progress`` line, with its size, as it
        happens (a large stack is minutes of downloads: never a silent wait)."""
        version = lock.python.replace(".", "")
        req = self._requirements(pins, tmp / "wheels.txt")
        argv = [
            sys.executable,
            *PIP_DOWNLOAD,
            "--only-binary=:all:",
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
            str(tmp / "dl"),
            "-r",
            str(req),
            *indexes,
        ]
        for plat in target_platforms(lock.platform):
            argv += ["--platform", plat]
        # the lock alone decides which files: no pip.conf, no PIP_* setting but certificates,
        # proxy and credentials (so a pinned index's download adds no index of the host's either)
        env = pip_environment(os.environ, pip_config(sys.executable, os.environ))
        if netrc:
            env["NETRC"] = str(netrc)
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, errors="replace"
        )
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:
            seen.append(line)
            m = _SAVED.match(line)
            if m:
                saved = Path(m.group(1))
                size = saved.stat().st_size if saved.is_file() else 0
                progress(f"fetched {saved.name} ({size / 1e6:.1f} MB)")
        if proc.wait() == 0:
            return None
        output = redact("".join(seen))
        missing = re.search(r"No matching distribution found for ([A-Za-z0-9._-]+)==", output)
        if missing:
            name = canonicalize_name(missing.group(1))
            for pin in pins:
                if pin.name == name:
                    return pin
        mismatch = _MISMATCH.search(output)
        if mismatch:
            dist, version, url = mismatch.groups()
            dist = canonicalize_name(dist)
            got = _GOT.search(output, mismatch.end())
            raise LockError(
                f"{url.rsplit('/', 1)[-1]} ({dist} {version}) does not match the lock's hashes"
                + (f": it is sha256:{got.group(1)}" if got else ""),
                hint=f"the lock's hashes for {dist} are not those of the file the index serves for "
                f"Python {lock.python} on {lock.platform}: lock again (`imagesmith lock --upgrade-package {dist}`, "
                "or the tool that wrote the project's own lock)",
            )
        out = output.strip().splitlines()
        raise LockError(
            "downloading the locked wheels failed:\n" + "\n".join(out[-12:]),
            hint="check the network and the package index; `--install online` downloads inside the build instead",
        )

    def _download_sdists(self, pins: list[Pin], lock: Lock, tmp: Path, netrc: Path | None, indexes: list[str]) -> None:
        """Fetched by pip in a container of the pinned base (``lock.platform``'s); on a machine that
        cannot run that platform (no QEMU for it), refused before the container starts
        (``lock.emulation.NativeOnly``, the lock's own refusal), as a usage error naming what
        would have run, as the build would refuse building them from source."""
        from .lock.emulation import Refusal, native_only
        from .platforms import emulation_problem

        self._requirements(pins, tmp / "sdists.txt")
        if self._engine is None:
            from .engine import Engine

            self._engine = Engine()
        names = ", ".join(f"{p.name}=={p.version}" for p in pins)
        step = f"fetching and building {names} from source (no wheel for Python {lock.python} on {lock.platform})"
        engine = native_only(self._engine, emulation_problem(lock.platform), Refusal(UsageError, lambda *_: step))
        argv = [
            "python3",
            *PIP_DOWNLOAD,
            *[a for p in pins for a in ("--no-binary", p.name)],
            "--dest",
            "/run/imagesmith/dl",
            "-r",
            "/run/imagesmith/in/sdists.txt",
            *indexes,
        ]
        volumes = {
            str(tmp.resolve()): {"bind": "/run/imagesmith/in", "mode": "ro"},
            str((tmp / "dl").resolve()): {"bind": "/run/imagesmith/dl", "mode": "rw"},
        }
        env = {"HOME": "/tmp", "PIP_NO_CACHE_DIR": "1", "PIP_CONFIG_FILE": "/dev/null"}  # the base's pip.conf: ignored
        if netrc is not None:
            volumes[str(netrc)] = {"bind": "/run/imagesmith/netrc", "mode": "ro"}
            env["NETRC"] = "/run/imagesmith/netrc"
        user = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else None
        try:
            engine.run(
                lock.base.ref,
                argv,
                entrypoint=[],
                network=True,
                environment=env,
                volumes=volumes,
                user=user,
                timeout=1800,
            )
        except EngineError as exc:
            raise LockError(
                f"fetching the sdist of {names} (no wheel for Python {lock.python} on {lock.platform}) "
                f"in a container of {lock.base.name} failed: {redact(str(exc))[-1500:]}",
                hint="check the network and the package index, or pin a version that publishes wheels",
            ) from exc
