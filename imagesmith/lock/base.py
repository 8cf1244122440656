"""Pinning the base image: a registry's manifest digest when its registry answers, else the
local engine's image ID (the lock says which), and the Python version found in it. Policy about
the base lives here; the engine only answers questions (``LockEngine``).

The Python version of an image of another platform than this machine's is read from its files
and config, never by running it (that would run under QEMU: seconds per image at every lock):
``version_from_files`` says how, and only an image whose files do not tell is run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine import first_line
from ..errors import EngineError, LockError
from ..platforms import PLATFORMS, machine_platform, same_platform

if TYPE_CHECKING:  # the engine's records only when an engine answers: a no-op lock asks none
    from ..engine.protocols import LockEngine


@dataclass(frozen=True)
class BasePin:
    name: str  # as written in the spec (or --base)
    digest: str  # sha256:...
    source: str  # "registry" (manifest digest) or "local" (the engine's image ID)
    python_version: str = ""  # e.g. "3.11.2", read from the image
    index: str = ""  # the registry's image index digest, when the name is a multi-platform image
    # The same base's manifests for the other platforms its index has, with the same Python
    # version: ((platform, digest), ...). A build on one of them installs this platform's
    # Python environment there, natively (``python_env.py``).
    hosts: tuple[tuple[str, str], ...] = ()

    @property
    def ref(self) -> str:
        """What the Dockerfile's FROM uses: the name as written (tag kept for readers) pinned to
        the digest. BuildKit resolves by the digest; a local image reaches it as an OCI layout
        (see build.build_contexts)."""
        return f"{self.name.split('@', 1)[0]}@{self.digest}"

    def host_ref(self, platform: str) -> str:
        """The same base's image of ``platform`` (one of ``hosts``), pinned like ``ref``."""
        return f"{self.name.split('@', 1)[0]}@{dict(self.hosts)[platform]}"


def pin_base(engine: LockEngine, ref: str, platform: str = "linux/amd64") -> BasePin:
    """Pin a base image reference to a digest for ``platform``: a registry's manifest digest when
    the registry answers (for a multi-platform image, the manifest of ``platform`` in its index,
    whose digest is kept too), else the local engine's image ID (the lock says which), which
    must be an image of ``platform``."""
    if "@sha256:" in ref:
        name, digest = ref.split("@", 1)
        source, index = "registry", ""
        if not engine.has_image(ref):
            try:
                digest, index = engine.registry_platform_digest(ref, platform)
            except EngineError as exc:
                raise LockError(
                    f"base image {ref} is neither local nor in its registry", hint="check the digest"
                ) from exc
        else:
            source = "local" if not any(d.endswith(digest) for d in engine.image(ref).repo_digests) else "registry"
            if source == "local":
                _check_platform(engine, ref, platform)
        pinned = f"{name}@{digest}"
        if source == "registry" and not engine.has_image(pinned):
            engine.pull(pinned)
        version = python_version(engine, pinned, platform)
        return BasePin(name, digest, source, version, index, _hosts(engine, ref, platform, index, version))
    try:
        digest, index = engine.registry_platform_digest(ref, platform)
        source = "registry"
    except EngineError as exc:
        if not engine.has_image(ref):
            raise LockError(
                f"base image {ref} was found neither in its registry ({first_line(exc)}) nor in the local engine",
                hint="check the name, build or import the image into this engine, or pass --base with one that exists",
            ) from exc
        digest, index = _check_platform(engine, ref, platform).id, ""
        source = "local"
    pinned = f"{ref}@{digest}"
    if source == "registry" and not engine.has_image(pinned):
        engine.pull(pinned)
    version = python_version(engine, pinned if source == "registry" else ref, platform)
    return BasePin(ref, digest, source, version, index, _hosts(engine, ref, platform, index, version))


def _hosts(engine: LockEngine, ref: str, platform: str, index: str, version: str) -> tuple[tuple[str, str], ...]:
    """The base's manifests for the other platforms imagesmith builds for, from the same image
    index (``index``; none for a one-platform image or a local one), that have the same Python
    version ``version`` (the bytecode a build compiles there must be the bytecode the target's
    Python would compile; read as ``python_version`` reads it: from the files of an image of
    another platform than this machine's)."""
    if not index or not version:
        return ()
    name = ref.split("@", 1)[0]
    found = []
    for other in PLATFORMS:
        if other == platform:
            continue
        try:
            digest, other_index = engine.registry_platform_digest(f"{name}@{index}", other)
        except EngineError:
            continue
        if other_index != index:
            continue
        pinned = f"{name}@{digest}"
        try:
            if not engine.has_image(pinned):
                engine.pull(pinned)
            same = python_version(engine, pinned, other) == version
        except EngineError:
            continue
        if same:
            found.append((other, digest))
    return tuple(found)


def _check_platform(engine: LockEngine, ref: str, platform: str):
    """The local image ``ref``, which must be of ``platform`` (its config's os/architecture)."""
    info = engine.image(ref)
    if info.platform and not same_platform(info.platform, platform):
        raise LockError(
            f"the local base image {ref} is a {info.platform} image, but the spec builds for {platform}",
            hint=f"use a base of {platform} (import one, or name a registry image whose index has it); "
            "a spec with several platforms needs a base that has each of them",
        )
    return info


def python_version(engine: LockEngine, image: str, platform: str | None = None) -> str:
    """The Python version in ``image`` (e.g. 3.11.2), an image of ``platform``: for this machine's
    platform (or one not given) read by running its python3; for another, read from its config
    and files without running it (``version_from_files``), and run (emulated) only when those do
    not tell."""
    if platform is not None and platform != machine_platform():
        env: list[str] = []
        found: dict = {}
        try:
            env = engine.image(image).config.get("Env") or []
            found = engine.read_paths(image, [*python3_candidates(env), DPKG_STATUS], small=DPKG_STATUS_BYTES)
        except EngineError:
            pass  # the files cannot be read: run it
        version = version_from_files(env, found)
        if version:
            return version
    out = engine.run(image, ["-c", "import platform; print(platform.python_version())"], entrypoint=["python3"])
    return out.strip()


DPKG_STATUS = "/var/lib/dpkg/status"
DPKG_STATUS_BYTES = 8 << 20  # read with its bytes up to this size (a large distribution's is a few MB)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the engine's, when the image sets none


def _env(env: list[str], name: str) -> str | None:
    return next((e.split("=", 1)[1] for e in env if e.startswith(name + "=")), None)


class FilesOnce:
    """A lock's engine (``LockEngine``) that reads each file of an image once: a lock for another
    platform reads the target base's dpkg status for its Python version (``python_version``) and
    again for apt (``system.py``), and copying it out of the image is a container each time. Every
    other call passes through to ``engine``; what ``read_paths`` answered is kept by (image, path,
    ``small``) for the lock's run."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self._read: dict[tuple[str, str, int | None], tuple | None] = {}

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    def read_paths(self, image: str, paths, small: int | None = None) -> dict:
        missing = [p for p in paths if (image, p, small) not in self._read]
        if missing:
            found = self._engine.read_paths(image, missing, small=small)
            self._read.update({(image, p, small): found.get(p) for p in missing})
        return {p: self._read[(image, p, small)] for p in paths}


def python3_candidates(env: list[str]) -> list[str]:
    """Where ``python3`` may be found in an image with the config env ``env``: each folder of its
    PATH, in order. Pure."""
    return [f"{folder.rstrip('/')}/python3" for folder in (_env(env, "PATH") or DEFAULT_PATH).split(":") if folder]


def version_from_files(env: list[str], files: dict) -> str | None:
    """The Python version that running ``python3`` in an image would report, from its config env
    ``env`` and ``files`` (``read_paths`` of ``python3_candidates`` and ``DPKG_STATUS``), or None
    when they do not tell for certain. Pure. The ``python3`` that runs is the first on PATH:

    - in ``/usr/local/bin`` with ``PYTHON_VERSION`` in the env (the python images' convention:
      the version they built), that version;
    - in ``/usr/bin`` (or ``/bin``) as a link to ``python3.X``: the distribution's, whose version
      is the dpkg database's ``python3.X-minimal`` package's (installed), upstream part only
      (``3.11.2-6+deb12u8`` -> ``3.11.2``; ``3.12.0~rc1-1`` -> ``3.12.0rc1``);
    - anything else (another folder, no link, no dpkg record): None, and the image is run."""
    first = next((p for p in python3_candidates(env) if files.get(p)), None)
    if first is None:
        return None
    folder = first.rsplit("/", 1)[0]
    if folder == "/usr/local/bin":
        return _env(env, "PYTHON_VERSION") or None
    entry = files[first][0]
    if folder not in ("/usr/bin", "/bin") or entry.kind != "symlink":
        return None
    name = entry.target.rsplit("/", 1)[-1]
    if not name.startswith("python3.") or not name[len("python3.") :].isdigit():
        return None
    status = files.get(DPKG_STATUS)
    data = status[0].data if status else None
    if data is None:
        return None
    return _dpkg_version(data.decode("utf-8", "replace"), f"{name}-minimal")


def installed_version(status: str, package: str) -> str | None:
    """The version (as dpkg writes it; "" when it has none) of ``package`` if the dpkg status file
    ``status`` records it as installed, else None. Pure."""
    for paragraph in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in paragraph.splitlines() if ": " in line and not line.startswith(" ")
        )
        if fields.get("Package") == package and fields.get("Status") == "install ok installed":
            return fields.get("Version", "")
    return None


def _dpkg_version(status: str, package: str) -> str | None:
    """The upstream version of the installed ``package`` in a dpkg status file, or None. Pure."""
    version = installed_version(status, package)
    if version is None:
        return None
    upstream = version.split(":", 1)[-1].rsplit("-", 1)[0].replace("~", "")
    return upstream or None
