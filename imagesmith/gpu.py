"""The CUDA a lock ships, and the GPU contract it implies (pure: no I/O, no engine).

CUDA's user-space libraries come as wheels; the driver comes from the host. ``contract(packages)``
reads the lock's pins (``Lock.packages``: canonical name, exact version) and finds every
distribution that brings CUDA, in each naming scheme in use:

- ``nvidia-*-cu11`` / ``-cu12`` / ``-cu13``: the major is in the name;
- the unsuffixed ``nvidia-*`` series that began with CUDA 13 (``nvidia-cuda-runtime``,
  ``nvidia-cublas``, ``nvidia-cufft`` …, beside the ``cuda-toolkit`` metapackage): CUDA 13, or the
  major of the version for the libraries whose version follows the toolkit's;
- ``cuda-toolkit`` (the metapackage): its version is the toolkit's;
- local versions of the PyTorch family (``torch==2.9.0+cu126``): ``cu126`` is CUDA 12.6;
- ``jax-cudaNN-plugin`` / ``jax-cudaNN-pjrt``, ``cupy-cudaNNx``, other names ending in ``cudaNN…``
  (``nvidia-dali-cuda120``, ``cupy-cuda115``): the major is in the name; other ``nvidia-*`` names
  (ModelOpt, NeMo …) are not read as CUDA;
- ``onnxruntime-gpu`` and ``triton``: they need CUDA but their name does not say which major
  (they take it from the ``nvidia-*`` wheels beside them), so they are listed without one.

The contract: the CUDA major, the runtime version(s) (``nvidia-cuda-runtime*``, ``cuda-toolkit``
or a ``+cuXYZ`` tag, whichever the lock has), which packages bring which major, and the minimum
NVIDIA driver that major needs (``MIN_DRIVER``). A lock whose packages bring two CUDA majors is
refused (``check``): the libraries of one major do not load against the other's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import CudaMismatchError

# The minimum Linux x86_64 NVIDIA driver for each CUDA major (CUDA 11 and later run on any driver of
# the major's family: "minor version compatibility"). Source: NVIDIA, CUDA Toolkit Release Notes,
# "CUDA Toolkit and Corresponding Driver Versions" / "Minimum Required Driver Version for CUDA
# Minor Version Compatibility", and NVIDIA's "CUDA Compatibility" guide (docs.nvidia.com/deploy/
# cuda-compatibility): CUDA 13.x >= 580 (580.65.06 ships with 13.0), 12.x >= 525 (525.60.13 ships
# with 12.0), 11.x >= 450 (450.80.02 ships with 11.0 Update). The one place these numbers live.
MIN_DRIVER: dict[int, str] = {
    11: "450.80.02",
    12: "525.60.13",
    13: "580.65.06",
}

_SUFFIXED = re.compile(r"^nvidia-[a-z0-9-]+-cu(\d+)$")
_JAX = re.compile(r"^jax-cuda(\d+)-(?:plugin|pjrt)$")
_CUPY = re.compile(r"^cupy-cuda(\d\d)x$")
_LOCAL_CU = re.compile(r"\+cu(\d+)(\d)$")  # +cu126 -> (12, 6); +cu130 -> (13, 0); +cu118 -> (11, 8)
_TORCH_FAMILY = frozenset({"torch", "torchvision", "torchaudio"})
# Unsuffixed nvidia-* distributions whose version is the toolkit's (nvidia-cublas 13.x is CUDA 13).
_TRACKS_TOOLKIT = frozenset(
    {
        "nvidia-cuda-runtime",
        "nvidia-cuda-nvrtc",
        "nvidia-cuda-cupti",
        "nvidia-cuda-nvcc",
        "nvidia-cuda-cccl",
        "nvidia-nvjitlink",
        "nvidia-nvtx",
        "nvidia-cublas",
    }
)
# The other unsuffixed CUDA 13 library wheels (their versions are the libraries' own: nvidia-cufft
# 12.x ships with CUDA 13). Any other nvidia-* name (DALI, NeMo, ModelOpt …) is not read as CUDA here.
_TOOLKIT_LIBS = frozenset(
    {
        "nvidia-cufft",
        "nvidia-curand",
        "nvidia-cusolver",
        "nvidia-cusparse",
        "nvidia-cufile",
        "nvidia-npp",
        "nvidia-nvjpeg",
        "nvidia-nvfatbin",
        "nvidia-nvvm",
        "nvidia-cuda-crt",
        "nvidia-cuda-culibos",
        "nvidia-cuda-opencl",
        "nvidia-cuda-sanitizer-api",
        "nvidia-cuda-profiler-api",
    }
)
# Other names that carry the major at their end: nvidia-dali-cuda120, cupy-cuda115 (CUDA 11.5).
_CUDA_TAIL = re.compile(r"(?<![a-z0-9])cuda(1\d)\d*x?$")
# nvidia-* distributions that are not CUDA libraries (NVML bindings, tooling).
_NOT_CUDA = frozenset({"nvidia-ml-py", "nvidia-ml-py3", "nvidia-pyindex"})
_UNSUFFIXED_SERIES_MAJOR = 13  # the unsuffixed nvidia-* series began with CUDA 13
_NO_MAJOR = frozenset({"onnxruntime-gpu", "triton", "pytorch-triton"})
# The frameworks whose compiled GPU code (the cubins in their libraries' .nv_fatbin sections, read
# by gpu_arch.py) says which GPUs an image runs on, in the order one is chosen as "the" framework;
# then any jax-cudaNN-plugin or cupy-cudaNNx (``is_framework``).
FRAMEWORKS = ("torch", "onnxruntime-gpu")


@dataclass(frozen=True)
class CudaPackage:
    name: str
    version: str
    major: int | None  # None: needs CUDA but its name does not say which major
    why: str  # how the major was read ("name suffix -cu12", "local version +cu126", …)


@dataclass(frozen=True)
class Contract:
    """What a lock's GPU stack needs from the host. ``major`` None: the lock ships no CUDA."""

    packages: tuple[CudaPackage, ...]
    runtime: tuple[str, ...]  # CUDA runtime version(s), "13.0" / "12.6", sorted
    majors: dict[int, tuple[str, ...]]  # CUDA major -> the packages that bring it

    @property
    def major(self) -> int | None:
        return min(self.majors) if len(self.majors) == 1 else None

    @property
    def min_driver(self) -> str | None:
        return MIN_DRIVER.get(self.major) if self.major is not None else None

    @property
    def cuda(self) -> str | None:
        """The CUDA version to name to a user: the newest runtime, else the major."""
        if self.runtime:
            return max(self.runtime, key=version_key)
        return str(self.major) if self.major is not None else None

    def as_dict(self) -> dict:
        return {
            "cuda": self.cuda,
            "major": self.major,
            "runtime": list(self.runtime),
            "min_driver": self.min_driver,
            "majors": {str(m): list(names) for m, names in sorted(self.majors.items())},
            "packages": [{"name": p.name, "version": p.version, "major": p.major, "why": p.why} for p in self.packages],
        }


def version_key(version: str) -> tuple[int, ...]:
    """``"580.65.06"`` -> (580, 65, 6): numeric, for driver and CUDA versions."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def _major_minor(version: str) -> str:
    parts = re.findall(r"\d+", version.split("+")[0])
    return ".".join(parts[:2])


def classify(name: str, version: str) -> CudaPackage | None:
    """The CUDA a single pinned distribution brings, or None when it brings none."""
    name = name.lower().replace("_", "-")
    if name in _NOT_CUDA:
        return None
    if m := _SUFFIXED.match(name):
        return CudaPackage(name, version, int(m.group(1)), f"name suffix -cu{m.group(1)}")
    if m := _JAX.match(name):
        return CudaPackage(name, version, int(m.group(1)), f"name jax-cuda{m.group(1)}")
    if m := _CUPY.match(name):
        return CudaPackage(name, version, int(m.group(1)), f"name cupy-cuda{m.group(1)}x")
    if name == "cuda-toolkit":
        return CudaPackage(name, version, version_key(version)[0], "cuda-toolkit version")
    if name in _TORCH_FAMILY:
        if m := _LOCAL_CU.search(version):
            return CudaPackage(name, version, int(m.group(1)), f"local version +cu{m.group(1)}{m.group(2)}")
        return None  # a CPU build (+cpu) or a plain PyPI version: its CUDA comes from nvidia-* pins
    if name.startswith("nvidia-"):
        if name in _TRACKS_TOOLKIT:
            major = version_key(version)[0]
            return CudaPackage(name, version, major, f"version {_major_minor(version)} follows the toolkit")
        if name in _TOOLKIT_LIBS:
            return CudaPackage(name, version, _UNSUFFIXED_SERIES_MAJOR, "unsuffixed nvidia-* series (CUDA 13 on)")
    if m := _CUDA_TAIL.search(name):
        return CudaPackage(name, version, int(m.group(1)), f"name ends in cuda{m.group(0).split('cuda')[1]}")
    if name in _NO_MAJOR:
        return CudaPackage(name, version, None, "needs CUDA; the major comes from the nvidia-* wheels")
    return None


def contract(packages: Iterable) -> Contract:
    """The GPU contract of a lock's pins (objects with ``name`` and ``version``, e.g. ``Lock.packages``)."""
    found = sorted(
        (c for p in packages if (c := classify(p.name, p.version)) is not None),
        key=lambda c: c.name,
    )
    majors: dict[int, list[str]] = {}
    runtime: set[str] = set()
    for c in found:
        if c.major is not None:
            majors.setdefault(c.major, []).append(c.name)
        if c.name.startswith("nvidia-cuda-runtime") or c.name == "cuda-toolkit":
            runtime.add(_major_minor(c.version))
    if not runtime:
        # no runtime wheel pinned: a +cuXYZ build carries its own runtime
        for c in found:
            if m := _LOCAL_CU.search(c.version):
                runtime.add(f"{m.group(1)}.{m.group(2)}")
    return Contract(
        packages=tuple(found),
        runtime=tuple(sorted(runtime, key=version_key)),
        majors={m: tuple(names) for m, names in sorted(majors.items())},
    )


def _listing(names: tuple[str, ...], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def is_framework(name: str) -> bool:
    """A framework that ships its own GPU code (torch, onnxruntime-gpu, jax-cudaNN-plugin, cupy-cudaNNx)."""
    return name in FRAMEWORKS or bool(_JAX.match(name) and name.endswith("-plugin")) or bool(_CUPY.match(name))


def runs_on(compute_cap: str, sm: Iterable[str], ptx: Iterable[str] = ()) -> str | None:
    """Which compiled code of the framework a GPU of ``compute_cap`` ("8.6") runs, or None when
    none: a cubin for X.Y runs on X.Z with Z >= Y (the same major; NVIDIA's binary compatibility),
    PTX for X.Y is compiled by the driver for any GPU of X.Y or newer."""
    cc = version_key(compute_cap)[:2]
    if len(cc) < 2:
        return None  # not a compute capability
    cubins = sorted((k for a in sm if len(k := version_key(str(a))[:2]) == 2), reverse=True)
    for a in cubins:
        if a[0] == cc[0] and a[1] <= cc[1]:
            return f"sm_{a[0]}{a[1]} cubin"
    for a in sorted((k for a in ptx if len(k := version_key(str(a))[:2]) == 2), reverse=True):
        if a <= cc:
            return f"compute_{a[0]}{a[1]} PTX (compiled by the driver at first use)"
    return None


def archs_text(archs: dict) -> str:
    """The architectures of an ``archs`` record as NVIDIA names them: "sm_80, sm_90; compute_90"."""
    sm = ", ".join(f"sm_{str(a).replace('.', '')}" for a in archs.get("sm") or []) or "no cubin"
    ptx = ", ".join(f"compute_{str(a).replace('.', '')}" for a in archs.get("ptx") or []) or "no PTX"
    return f"{sm}; {ptx}"


def label_text(section: dict) -> str:
    """The ``io.imagesmith.gpu`` label: the contract a host check needs (CUDA, the minimum driver,
    the architectures or null when unknown, the base's glibc), canonical JSON."""
    archs = section.get("archs")
    value = {
        "cuda": section.get("cuda"),
        "major": section.get("major"),
        "min_driver": section.get("min_driver"),
        "glibc": (section.get("base") or {}).get("glibc"),
        "archs": None if not archs else {k: archs.get(k) for k in ("framework", "version", "sm", "ptx")},
    }
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def signed_hardware(contract: dict, hardware: dict | None) -> tuple[list[str], list[str], list[str]]:
    """An image's GPU contract (its ``io.imagesmith.gpu`` label) against the GPUs a signoff record
    says it ran on: (checks, problems, notes). A GPU whose driver is older than the contract's
    minimum cannot have run the image's CUDA, and a GPU whose compute capability is not among the
    architectures the image's framework was compiled for (``runs_on``) cannot have run its GPU
    code: such a signoff is refused. Signed off without a GPU, or on a GPU whose driver or compute
    capability the record does not state (older records, drivers before R510), or with the
    architectures unknown: a note."""
    checks: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    need, cuda = contract.get("min_driver"), contract.get("cuda")
    if not isinstance(need, str):
        return checks, problems, notes
    archs = contract.get("archs") if isinstance(contract.get("archs"), dict) else None
    if archs is not None and not (archs.get("sm") or archs.get("ptx")):
        archs = None
    gpus = [g for g in (hardware or {}).get("gpus") or [] if isinstance(g, dict)]
    if not gpus:
        notes.append(f"it was signed off without a GPU: this image's CUDA {cuda} code was not exercised there")
    for g in gpus:
        name, driver, cap = g.get("name"), g.get("driver"), g.get("compute_cap")
        if not isinstance(driver, str) or not version_key(driver):
            notes.append(f"the signoff does not say which driver {name} had: its CUDA {cuda} not checked")
        elif version_key(driver) < version_key(need):
            problems.append(
                f"it was signed off on {name} with driver {driver}, older than {need} that CUDA {cuda} in this "
                f"image needs: that run cannot have used this image's CUDA; sign off again on a driver {need} or newer"
            )
        else:
            checks.append(f"it was signed off on {name} with driver {driver}, which runs CUDA {cuda} (needs {need})")
        if archs is None:
            continue
        what = f"{archs.get('framework')} {archs.get('version')}"
        if not isinstance(cap, str) or len(version_key(cap)) < 2:
            notes.append(
                f"the signoff does not say {name}'s compute capability: not checked against the architectures "
                f"{what} in this image was compiled for ({archs_text(archs)})"
            )
            continue
        runs = runs_on(cap, archs.get("sm") or [], archs.get("ptx") or [])
        if runs is None:
            problems.append(
                f"it was signed off on {name}, compute capability {cap}, which is not among the architectures "
                f"{what} in this image was compiled for ({archs_text(archs)}): that run cannot have used this "
                f"image's GPU code; sign off again on a GPU of one of these architectures"
            )
        else:
            checks.append(f"it was signed off on {name}, compute capability {cap}, which runs {what}'s {runs}")
    return checks, problems, notes


def check(packages: Iterable, *, want: str | None = None, where: str = "the lock") -> Contract:
    """The contract, or ``CudaMismatchError`` when the pins bring two CUDA majors, or a major other
    than ``want`` (the spec's ``cuda``, e.g. ``"12"``)."""
    c = contract(packages)
    if len(c.majors) > 1:
        parts = "; ".join(f"CUDA {m}: {_listing(names)}" for m, names in c.majors.items())
        newest = max(c.majors)
        raise CudaMismatchError(
            f"{where} mixes CUDA majors ({parts}); the libraries of one major do not load against another's",
            hint=f"pin every CUDA package to one major (e.g. the -cu{newest} names, or torch's +cu{newest}x build) "
            "and run `imagesmith lock` again",
        )
    if want is not None and c.majors:
        got = c.major
        if got is not None and str(got) != str(want).split(".")[0]:
            names = c.majors[got]
            raise CudaMismatchError(
                f"{where} ships CUDA {c.cuda} ({_listing(names)}) but the spec declares cuda: {want!r}",
                hint=f"pin the CUDA {want} builds of these packages, or set cuda: {str(got)!r} in the spec",
            )
    return c
