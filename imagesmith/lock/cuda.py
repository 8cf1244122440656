"""The ``gpu`` section of a lock: the contract of its CUDA pins (``gpu.py``), and the GPU
architectures its main framework was compiled for, when they have been read (``gpu_arch.py``).

Only a lock whose pins bring CUDA has the section. The contract is derived from the pins every
time the lock is written (a hand-edited section is not trusted, it is recomputed); the
architectures cannot be derived from names, so they are read from the framework's wheel once and
kept with the wheel's sha256: a lock that pins another wheel drops them until they are read again.

The section, as written to ``imagesmith.lock`` and into the image facts and label::

    "gpu": {"cuda": "12.9", "major": 12, "runtime": ["12.9"], "min_driver": "525.60.13",
            "majors": {"12": [...]}, "packages": [...],
            "archs": {"framework": "torch", "version": "2.14.1", "sha256": "...",
                      "sm": ["7.5", "8.0", ...], "ptx": ["12.0"]}  or null (unknown),
            "base": {"digest": "sha256:...", "glibc": "2.36", "cuda": null or
                     {"version": "12.4.1", "env": "12.4.1", "path": "/usr/local/cuda-12.4", "bytes": N}}
                    or null (not read yet)}

The base facts are read once per base digest (``gpu_arch.record``, by running the base's
python3): its glibc, and a CUDA toolkit it may already carry. A base with a toolkit beside CUDA
wheels ships CUDA twice (``twice``), with the bytes of both: the base's toolkit as recorded here,
the wheels' as they install, read from their files in the host wheel cache
(``gpu_arch.wheels_bytes``; the cache is the one home of wheel files and so of their sizes, which
the lock does not record).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .. import gpu

SECTION = "gpu"


def framework(packages) -> Any | None:
    """The pin whose compiled GPU code says which GPUs the image runs on (``gpu.FRAMEWORKS``, first
    found), or None: a lock of CUDA libraries alone has no framework to read."""
    by_name = {p.name: p for p in packages}
    for name in gpu.FRAMEWORKS:
        if name in by_name:
            return by_name[name]
    for p in sorted(by_name.values(), key=lambda p: p.name):
        if gpu.is_framework(p.name):
            return p
    return None


def recorded_archs(lock) -> dict | None:
    """The architectures recorded in ``lock`` for the wheel of its current framework pin, else None."""
    pin = framework(lock.packages)
    old = lock.extras.get(SECTION)
    archs = old.get("archs") if isinstance(old, dict) else None
    if pin is None or not isinstance(archs, dict):
        return None
    if archs.get("framework") != pin.name or archs.get("version") != pin.version:
        return None
    if f"sha256:{archs.get('sha256')}" not in pin.hashes:
        return None
    sm, ptx = archs.get("sm"), archs.get("ptx")
    if not (isinstance(sm, list) and isinstance(ptx, list) and all(isinstance(a, str) for a in sm + ptx)):
        return None
    return {k: archs[k] for k in ("framework", "version", "sha256", "sm", "ptx")}


def recorded_base(lock) -> dict | None:
    """The base facts recorded in ``lock`` for its current base digest, else None."""
    old = lock.extras.get(SECTION)
    base = old.get("base") if isinstance(old, dict) else None
    if not isinstance(base, dict) or base.get("digest") != lock.base.digest:
        return None
    cuda = base.get("cuda")
    if cuda is not None and not (isinstance(cuda, dict) and isinstance(cuda.get("bytes"), int)):
        return None
    return {"digest": base["digest"], "glibc": base.get("glibc"), "cuda": cuda}


def section(lock) -> dict:
    """``{"gpu": {...}}`` for a lock whose pins bring CUDA, else ``{}``."""
    contract = gpu.contract(lock.packages)
    if not contract.packages:
        return {}
    return {SECTION: {**contract.as_dict(), "archs": recorded_archs(lock), "base": recorded_base(lock)}}


def with_recorded(lock, *, archs: dict | None = None, base: dict | None = None):
    """``lock`` with ``archs`` (``gpu_arch.wheel_archs``' record) and/or ``base`` (``gpu_arch.base_facts``)
    kept in its ``gpu`` section, beside what is recorded already."""
    kept = {"archs": recorded_archs(lock), "base": recorded_base(lock)}
    if archs is not None:
        kept["archs"] = archs
    if base is not None:
        kept["base"] = base
    return replace(lock, extras={**lock.extras, SECTION: kept})


def with_archs(lock, archs: dict):
    return with_recorded(lock, archs=archs)


def twice(lock, wheels: tuple[int, int] | None = None) -> str | None:
    """ "CUDA twice": the base carries a CUDA toolkit (``/usr/local/cuda`` or ``CUDA_VERSION``) and
    the pins bring CUDA wheels, both in the image; None otherwise (or when the base is not read yet).
    ``wheels``: (bytes installed, how many of the CUDA wheels those are) of the CUDA wheels in the
    host wheel cache (``gpu_arch.wheels_bytes``); None or none cached: their bytes are not known yet."""
    contract = gpu.contract(lock.packages)
    base = recorded_base(lock)
    cuda = base.get("cuda") if base else None
    if not contract.packages or not cuda:
        return None
    where = cuda.get("path") or "its environment"
    version = cuda.get("version") or cuda.get("env") or "of unknown version"
    env = f", CUDA_VERSION={cuda['env']}" if cuda.get("env") else ""
    wheels_named = ", ".join(p.name for p in contract.packages[:3]) + (
        f" and {len(contract.packages) - 3} more" if len(contract.packages) > 3 else ""
    )
    total = len(contract.packages)
    if wheels is None or not wheels[1]:
        size = "their bytes known once they are downloaded"
    elif wheels[1] < total:
        size = f"{wheels[0] / 1e6:,.0f} MB installed from the {wheels[1]} of {total} in the wheel cache"
    else:
        size = f"{wheels[0] / 1e6:,.0f} MB installed"
    return (
        f"CUDA twice: the base image {lock.base.name} carries CUDA {version} ({where}, "
        f"{cuda['bytes'] / 1e6:,.0f} MB{env}) and the lock's wheels bring CUDA {contract.cuda or contract.major} "
        f"({wheels_named}; {size}): the image holds both, and Python loads the wheels'. "
        "Use a plain Python base (the wheels carry CUDA's user-space libraries; the driver comes from the host)"
    )


def label(lock) -> str | None:
    """The ``io.imagesmith.gpu`` label's value (canonical JSON), None for a lock without CUDA:
    what the host check needs without pulling the image (``gpu_host``)."""
    found = section(lock).get(SECTION)
    if found is None:
        return None
    return gpu.label_text(found)
