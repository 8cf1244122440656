"""Platform tables: what each target platform is called by the tools imagesmith drives.

One place for them, so the lock (resolvers) and the wheel cache agree without importing each
other. The platforms a spec may name are ``spec.PLATFORMS``.
"""

from __future__ import annotations

from packaging.tags import Tag, compatible_tags, cpython_tags

MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}  # uname -m of each platform
RESOLVER_PLATFORMS = {"linux/amd64": "x86_64-manylinux_2_28", "linux/arm64": "aarch64-manylinux_2_28"}  # uv's names
GLIBC_MINORS = range(28, 16, -1)  # what the lock resolves for (manylinux_2_28) and older


def target_platforms(platform: str) -> list[str]:
    """pip's platform tags for ``platform``, most preferred first."""
    arch = MACHINES[platform]
    plats = [f"manylinux_2_{m}_{arch}" for m in GLIBC_MINORS]
    plats += [f"manylinux2014_{arch}"] + ([f"manylinux2010_{arch}", f"manylinux1_{arch}"] if arch == "x86_64" else [])
    return plats


def target_tags(python: str, platform: str) -> list[Tag]:
    """The target's supported tags, most preferred first (as pip orders them)."""
    version = tuple(int(p) for p in python.split("."))
    abi = f"cp{version[0]}{version[1]}"
    plats = target_platforms(platform)
    tags = list(cpython_tags(python_version=version, abis=[abi], platforms=plats))
    tags += list(compatible_tags(python_version=version, interpreter=abi, platforms=plats))
    return tags


def emulation_problem(
    platform: str, host_machine: str | None = None, binfmt_dir: str = "/proc/sys/fs/binfmt_misc"
) -> str | None:
    """None when this machine can run ``platform``'s programs (its own, or QEMU registered through
    binfmt_misc); else what is missing and how to add it. (Placeholder until h-qemu lands.)"""
    import os
    import platform as _platform

    machine = host_machine or _platform.machine()
    arch = MACHINES[platform]
    if machine == arch:
        return None
    handler = os.path.join(binfmt_dir, f"qemu-{arch}")
    try:
        with open(handler, encoding="utf-8") as fh:
            if fh.readline().strip() == "enabled":
                return None
    except OSError:
        pass
    return (
        f"building for {platform} on this {machine} machine needs QEMU registered through binfmt_misc, "
        f"and {handler} is not enabled: run `IMAGESMITH_PLATFORMS={platform} scripts/setup-engine.sh`, or "
        f"apt-get install qemu-user-static binfmt-support && update-binfmts --enable qemu-{arch}"
    )
