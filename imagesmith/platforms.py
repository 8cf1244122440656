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
