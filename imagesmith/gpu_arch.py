"""The GPU architectures a framework was compiled for, read from its wheel without a GPU.

CUDA code is shipped inside ELF shared libraries, in the ``.nv_fatbin`` section: a sequence of
fat binaries, each a header (magic ``0xBA55ED50``, version, header size, size of what follows)
and entries, each with its own header: kind (1: PTX, 2: an ELF cubin), header size, padded
payload size and, at byte 28, the architecture as ``10 * major + minor`` (``sm_86`` is 86). A
cubin runs on GPUs of its major with the same or a newer minor; PTX is compiled by the driver for
any GPU of its architecture or newer (``gpu.runs_on``). This is the list ``torch.cuda.get_arch_list``
reports, read from the bytes instead of from a CUDA context, so it needs no GPU and no import.

``read_archs`` runs when a lock is written (``imagesmith lock``, ``imagesmith build``): for a lock
with a framework (``lock/cuda.py``: torch, onnxruntime-gpu, a JAX CUDA plugin, CuPy) whose
architectures are not recorded yet, it takes the framework's wheel from the host wheel cache
(downloading it, hash-checked, as the build would) and records what its libraries hold, with
the wheel's sha256. A lock of CUDA libraries alone has no framework: its architectures stay
unknown (null), never guessed.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from . import gpu
from .cache import default_cache_dir
from .lock import Lock, cuda
from .lock.emulation import native_only
from .lock.lockfile import write_locks
from .platforms import emulation_problem
from .spec import Spec

if TYPE_CHECKING:
    from .wheels import WheelCache

FATBIN_MAGIC = 0xBA55ED50
_KIND_PTX, _KIND_CUBIN = 1, 2
SECTION = b".nv_fatbin"


def elf_section(fh: BinaryIO, name: bytes = SECTION) -> tuple[int, int] | None:
    """(offset, size) of the section ``name`` of a 64-bit little-endian ELF file, else None (not
    such a file, or no such section)."""
    fh.seek(0)
    head = fh.read(64)
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return None
    shoff = struct.unpack_from("<Q", head, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", head, 0x3A)
    if not shoff or shentsize < 64 or not shnum or shstrndx >= shnum:
        return None
    fh.seek(shoff)
    table = fh.read(shentsize * shnum)
    if len(table) < shentsize * shnum:
        return None
    sections = [struct.unpack_from("<IIQQQQ", table, i * shentsize) for i in range(shnum)]
    _, _, _, _, str_off, str_size = sections[shstrndx]
    fh.seek(str_off)
    names = fh.read(str_size)
    for name_off, _, _, _, offset, size in sections:
        end = names.find(b"\0", name_off)
        if names[name_off : end if end >= 0 else None] == name:
            return offset, size
    return None


def fatbin_archs(data: bytes) -> tuple[set[str], set[str]]:
    """(cubin architectures, PTX architectures) as ``"8.6"`` of a ``.nv_fatbin`` section's bytes."""
    sm: set[str] = set()
    ptx: set[str] = set()
    pos = 0
    while pos + 16 <= len(data):
        magic, _, header, size = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            pos += 8  # fat binaries are 8-byte aligned; padding between them
            continue
        entry, end = pos + header, min(pos + header + size, len(data))
        while entry + 32 <= end:
            kind, _, entry_header, padded = struct.unpack_from("<HHII", data, entry)
            arch = struct.unpack_from("<I", data, entry + 28)[0]
            if entry_header < 32:
                break
            if arch and kind in (_KIND_PTX, _KIND_CUBIN):
                (ptx if kind == _KIND_PTX else sm).add(f"{arch // 10}.{arch % 10}")
            entry += entry_header + padded
        pos = max(end, pos + 16)
    return sm, ptx


def file_archs(path: Path) -> tuple[set[str], set[str]]:
    """The architectures of one shared library (empty sets: no GPU code)."""
    with open(path, "rb") as fh:
        found = elf_section(fh)
        if found is None:
            return set(), set()
        offset, size = found
        fh.seek(offset)
        return fatbin_archs(fh.read(size))


def _is_library(member: str) -> bool:
    base = member.rsplit("/", 1)[-1]
    return base.endswith(".so") or ".so." in base


def wheel_archs(wheel: Path, pin) -> dict:
    """The record ``lock/cuda.py`` keeps: every cubin and PTX architecture in the wheel's shared
    libraries (each copied out to a temporary file to be read: section headers sit at the end)."""
    sm: set[str] = set()
    ptx: set[str] = set()
    if wheel.name.endswith(".whl"):
        with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory(prefix="imagesmith-arch-") as tmp:
            for info in archive.infolist():
                if info.is_dir() or not _is_library(info.filename):
                    continue
                out = Path(tmp) / "lib.so"
                with archive.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                one_sm, one_ptx = file_archs(out)
                sm |= one_sm
                ptx |= one_ptx
    return {
        "framework": pin.name,
        "version": pin.version,
        "sha256": wheel.parent.name,  # the cache keeps each file under its own sha256
        "sm": sorted(sm, key=_key),
        "ptx": sorted(ptx, key=_key),
    }


def _key(arch: str) -> tuple[int, ...]:
    return tuple(int(p) for p in arch.split("."))


# Run by the base's own python3 (-I -S: nothing of the image's site): its glibc, and the CUDA
# toolkit it may carry (/usr/local/cuda's version and bytes, CUDA_VERSION), as one JSON line.
BASE_PROBE = r"""
import json, os, platform, re
lib, ver = platform.libc_ver()
out = {"glibc": ver if lib == "glibc" else None, "cuda": None}
root, env = "/usr/local/cuda", os.environ.get("CUDA_VERSION") or None
if os.path.isdir(root) or env:
    real = os.path.realpath(root) if os.path.isdir(root) else None
    size, version = 0, None
    for folder, _, files in os.walk(real) if real else ():
        for name in files:
            try:
                size += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    try:
        version = json.load(open(os.path.join(root, "version.json")))["cuda"]["version"]
    except Exception:
        try:
            version = re.search(r"[0-9]+[.][0-9.]+", open(os.path.join(root, "version.txt")).read()).group(0)
        except Exception:
            pass
    out["cuda"] = {"version": version, "env": env, "path": real, "bytes": size}
print(json.dumps(out, sort_keys=True))
"""


def base_facts(engine, lock: Lock) -> dict:
    """The record ``lock/cuda.py`` keeps of the base: its glibc and a CUDA toolkit in it."""
    import json

    from .errors import LockError

    out = engine.run(lock.base.ref, ["-I", "-S", "-c", BASE_PROBE], entrypoint=["python3"])
    try:
        found = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise LockError(f"the base image {lock.base.name} did not say what it holds: {out.strip()[:200]!r}") from exc
    return {"digest": lock.base.digest, "glibc": found.get("glibc"), "cuda": found.get("cuda")}


def installed_bytes(wheel: Path) -> int:
    """The bytes a wheel's files take once installed: the sum of its members' uncompressed sizes,
    read from the zip's central directory (nothing is extracted)."""
    with zipfile.ZipFile(wheel) as zf:
        return sum(info.file_size for info in zf.infolist())


def wheels_bytes(cache: WheelCache, lock: Lock) -> tuple[int, int]:
    """(bytes installed, how many wheels) of the lock's CUDA-bearing pins whose wheel for the lock's
    target is in the host wheel cache (nothing is downloaded; a file that is not a readable wheel
    is not counted)."""
    total = found = 0
    for c in gpu.contract(lock.packages).packages:
        pin = next((p for p in lock.packages if p.name == c.name), None)
        path = cache.cached_file(pin, lock) if pin is not None else None
        if path is None or not path.name.endswith(".whl"):
            continue
        try:
            total += installed_bytes(path)
        except (OSError, zipfile.BadZipFile):
            continue
        found += 1
    return total, found


def record(
    spec: Spec,
    locks: dict[str, Lock],
    engine=None,
    cache: WheelCache | None = None,
    progress=lambda msg: None,
) -> dict[str, Lock]:
    """``locks`` with what a GPU lock records beside its pins read where it is not yet (then
    ``imagesmith.lock`` is rewritten: the pins are unchanged): the GPU architectures of its
    framework's wheel (``cache``: the host wheel cache, default ``cache.default_cache_dir()``'s) and,
    with an ``engine``, the base's glibc and CUDA. A base that ships CUDA too: a "CUDA twice"
    warning, every time, with the bytes of the CUDA wheels the cache holds (``wheels_bytes``)."""
    out = dict(locks)
    for platform, lock in locks.items():
        if not cuda.section(lock):
            continue
        pin = cuda.framework(lock.packages)
        if pin is not None and cuda.recorded_archs(lock) is None:
            progress(f"reading the GPU architectures {pin.name} {pin.version} was compiled for ({platform})")
            if cache is None:
                from .wheels import WheelCache  # here: a lock with nothing to read imports no wheel machinery

                cache = WheelCache(default_cache_dir())
            lock = cuda.with_recorded(lock, archs=wheel_archs(cache.wheel_file(pin, lock, progress), pin))
        if engine is not None and cuda.recorded_base(lock) is None:
            here = native_only(engine, emulation_problem(platform))  # the base is run: refused without QEMU
            lock = cuda.with_recorded(lock, base=base_facts(here, lock))
        out[platform] = lock
        if cuda.twice(lock) is not None:
            if cache is None:
                from .wheels import WheelCache

                cache = WheelCache(default_cache_dir())
            progress(f"warning: {cuda.twice(lock, wheels_bytes(cache, lock))}")
    if out != locks:
        write_locks(spec, out)
    return out
