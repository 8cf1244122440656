"""Platform tables: what each target platform is called by the tools imagesmith drives.

One place for them, so the lock (resolvers) and the wheel cache agree without importing each
other. The platforms a spec may name are ``spec.PLATFORMS``.
"""

from __future__ import annotations

import platform as _platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # packaging.tags is imported by target_tags: the lock and verify need only the tables
    from packaging.tags import Tag

MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}  # uname -m of each platform
RESOLVER_PLATFORMS = {"linux/amd64": "x86_64-manylinux_2_28", "linux/arm64": "aarch64-manylinux_2_28"}  # uv's names
GLIBC_MINORS = range(28, 16, -1)  # what the lock resolves for (manylinux_2_28) and older
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")  # where the kernel lists its binfmt handlers


def machine_platform() -> str:
    """This machine's platform in the spec's words (``linux/amd64`` on x86-64, ``linux/arm64`` on
    aarch64): what ``--platform`` defaults to."""
    machine = {"arm64": "aarch64", "amd64": "x86_64"}.get(_platform.machine().lower(), _platform.machine().lower())
    return next((p for p, arch in MACHINES.items() if arch == machine), "linux/amd64")


def target_platforms(platform: str) -> list[str]:
    """pip's platform tags for ``platform``, most preferred first."""
    arch = MACHINES[platform]
    plats = [f"manylinux_2_{m}_{arch}" for m in GLIBC_MINORS]
    plats += [f"manylinux2014_{arch}"] + ([f"manylinux2010_{arch}", f"manylinux1_{arch}"] if arch == "x86_64" else [])
    return plats


def target_tags(python: str, platform: str) -> list[Tag]:
    """The target's supported tags, most preferred first (as pip orders them)."""
    from packaging.tags import compatible_tags, cpython_tags

    version = tuple(int(p) for p in python.split("."))
    abi = f"cp{version[0]}{version[1]}"
    plats = target_platforms(platform)
    tags = list(cpython_tags(python_version=version, abis=[abi], platforms=plats))
    tags += list(compatible_tags(python_version=version, interpreter=abi, platforms=plats))
    return tags


def emulation_problem(platform: str, host_machine: str | None = None, binfmt_dir: Path = BINFMT_DIR) -> str | None:
    """None when this machine can run ``platform``'s binaries: it is the host's own platform
    (``host_machine``, default ``platform.machine()``), or the kernel has an enabled QEMU handler
    for it (``binfmt_dir/qemu-<machine>`` whose first line is ``enabled``). Otherwise one sentence
    naming the problem and the fix. The engine sees the handler without a restart."""
    arch = MACHINES[platform]
    host = host_machine or _platform.machine()
    if host == arch:
        return None
    handler = binfmt_dir / f"qemu-{arch}"
    try:
        state = handler.read_text().splitlines()[:1]
    except OSError:
        state = []
    if state == ["enabled"]:
        return None
    what = (
        f"QEMU's {arch} handler is registered but disabled ({handler})"
        if handler.exists()
        else f"no QEMU handler for {arch} is registered with the kernel ({handler} is missing)"
    )
    return (
        f"building or running {platform} on this {host} machine needs emulation, and {what}: "
        f"run `make engine` (or IMAGESMITH_PLATFORMS={platform} scripts/setup-engine.sh), "
        f"or apt-get install qemu-user-static binfmt-support and update-binfmts --enable qemu-{arch}"
    )


# ---- choosing an image index's entry, as containerd (and so Docker) does --------------------
#
# containerd normalises a platform before it compares (its ``platforms.Normalize``): the OS
# lower-cased, the architecture's aliases folded (``x86_64`` is ``amd64``, ``aarch64`` is
# ``arm64``) and default variants dropped. Among an index's entries it keeps every one that
# matches, and every one with no platform at all (checked against its config later), sorted so
# that entries with a platform come first, in index order; the first wins. A checker that
# compares the raw strings can be shown one entry while Docker runs another.

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "i386": "386",
    "armhf": "arm",
    "armel": "arm",
}
_ARCH_VARIANTS = {"armhf": "v7", "armel": "v6"}  # the variant an alias implies
_DEFAULT_VARIANTS = {"amd64": ("", "v1"), "arm64": ("", "8", "v8", "v8.0"), "386": ("",)}
INDEX_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def normalize(os_name: object, arch: object, variant: object = "") -> tuple[str, str, str]:
    """(os, architecture, variant) as containerd compares them: lower-cased, aliases folded,
    a default variant dropped (``linux/amd64/v1`` is ``linux/amd64``; ``arm64/v8`` is ``arm64``)."""
    o = str(os_name or "").lower()
    o = "darwin" if o == "macos" else o
    a, v = str(arch or "").lower(), str(variant or "").lower()
    v = _ARCH_VARIANTS.get(a, v)
    a = _ARCH_ALIASES.get(a, a)
    if v in _DEFAULT_VARIANTS.get(a, ()):
        v = ""
    if a == "arm" and v in ("", "7", "5", "6", "8"):
        v = "v" + (v or "7")
    return o, a, v


def platform_string(os_name: object, arch: object, variant: object = "") -> str:
    """``os/arch[/variant]`` as written (not normalised), for messages."""
    parts = [str(os_name or "?"), str(arch or "?")] + ([str(variant)] if variant else [])
    return "/".join(parts)


def index_candidates(entries: list, platform: str) -> list[dict]:
    """The entries of an image index that Docker on ``platform`` (``os/arch``) may run, in the
    order it prefers them: every entry whose normalised OS and architecture are the platform's
    (whatever its variant: a host may run several, so each counts), then the entries that name no
    platform (containerd reads their config to decide). Anything that is not a dict is skipped."""
    want_os, want_arch, _ = normalize(*platform.split("/", 2))
    named, unnamed = [], []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        plat = entry.get("platform")
        if plat is None:
            unnamed.append(entry)
        elif isinstance(plat, dict):
            got_os, got_arch, _ = normalize(plat.get("os"), plat.get("architecture"), plat.get("variant"))
            if (got_os, got_arch) == (want_os, want_arch):
                named.append(entry)
    return named + unnamed


def same_platform(a: str, b: str) -> bool:
    """Whether two ``os/arch[/variant]`` strings name the same platform once normalised."""
    return normalize(*a.split("/", 2)) == normalize(*b.split("/", 2))
