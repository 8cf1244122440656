"""The lock's ``gpu`` section (lock/cuda.py): derived from the pins, present only with CUDA, never
read back as written; the architectures kept only for the framework wheel they were read from;
the image facts and the ``io.imagesmith.gpu`` label carry it."""

from __future__ import annotations

import json
from dataclasses import replace

from imagesmith import layout
from imagesmith.lock import cuda
from imagesmith.lock.pins import Pin
from imagesmith.plan import ImagePlan, plan_for
from imagesmith.spec.load import load_spec
from tests.conftest import PROJECTS
from tests.unit.test_gpu import CPU, TORCH_CU12
from tests.unit.test_package_indexes import _lock

TORCH = next(p for p in TORCH_CU12 if p.name == "torch")
ARCHS = {"framework": "torch", "version": TORCH.version, "sha256": "0" * 64, "sm": ["8.0", "9.0"], "ptx": ["9.0"]}


def test_a_lock_without_cuda_has_no_section_and_loses_a_stale_one():
    lock = _lock(packages=tuple(CPU), extras={"gpu": {"cuda": "12.8"}, "future": 1})
    data = json.loads(lock.to_json())
    assert "gpu" not in data and data["future"] == 1
    assert cuda.label(lock) is None


def test_the_section_is_derived_from_the_pins_not_read_back():
    lock = _lock(packages=tuple(TORCH_CU12), extras={"gpu": {"cuda": "99.9", "min_driver": "1"}})
    section = json.loads(lock.to_json())["gpu"]
    assert section["cuda"] == "12.8" and section["min_driver"] == "525.60.13" and section["archs"] is None


def test_archs_are_kept_for_the_wheel_they_were_read_from_only():
    lock = cuda.with_archs(_lock(packages=tuple(TORCH_CU12)), ARCHS)
    assert json.loads(lock.to_json())["gpu"]["archs"] == ARCHS
    other_hash = tuple(replace(p, hashes=("sha256:" + "1" * 64,)) if p.name == "torch" else p for p in TORCH_CU12)
    assert cuda.recorded_archs(replace(lock, packages=other_hash)) is None
    bumped = tuple(Pin("torch", "2.9.1", p.hashes) if p.name == "torch" else p for p in TORCH_CU12)
    assert json.loads(replace(lock, packages=bumped).to_json())["gpu"]["archs"] is None


def test_the_label_the_facts_and_the_plans_config_name_the_contract():
    spec = load_spec(PROJECTS / "gpu-tiny")
    lock = cuda.with_archs(_lock(packages=tuple(TORCH_CU12)), ARCHS)
    label = json.loads(cuda.label(lock) or "null")
    assert label == {
        "archs": {"framework": "torch", "ptx": ["9.0"], "sm": ["8.0", "9.0"], "version": "2.9.0"},
        "cuda": "12.8",
        "glibc": None,  # the base not read yet
        "major": 12,
        "min_driver": "525.60.13",
    }
    plan = plan_for(spec, lock)
    for role in layout.ROLES:
        assert plan.configs[role]["Labels"][layout.LABEL_GPU] == cuda.label(lock)
    assert plan.facts()["gpu"] == json.loads(lock.to_json())["gpu"]
    assert ImagePlan.from_facts(plan.facts()).gpu == plan.gpu  # verify reads the contract back from the facts
    cpu = plan_for(spec, _lock(packages=tuple(CPU)))
    assert layout.LABEL_GPU not in cpu.configs["serve"]["Labels"] and "gpu" not in cpu.facts()


CUDA_BASE = {
    "digest": "sha256:" + "a" * 64,
    "glibc": "2.35",
    "cuda": {"version": "12.4.1", "env": "12.4.1", "path": "/usr/local/cuda-12.4", "bytes": 4_812_000_000},
}


def test_cuda_twice_names_both_versions_and_the_bytes():
    lock = cuda.with_recorded(_lock(packages=tuple(TORCH_CU12)), base=CUDA_BASE)
    assert cuda.twice(lock) == (
        "CUDA twice: the base image python:3.11-slim carries CUDA 12.4.1 (/usr/local/cuda-12.4, 4,812 MB, "
        "CUDA_VERSION=12.4.1) and the lock's wheels bring CUDA 12.8 (nvidia-cublas-cu12, nvidia-cuda-cupti-cu12, "
        "nvidia-cuda-nvrtc-cu12 and 12 more; their bytes known once they are downloaded): the image holds both, and "
        "Python loads the wheels'. Use a plain Python base (the wheels carry CUDA's user-space libraries; the driver "
        "comes from the host)"
    )
    assert json.loads(lock.to_json())["gpu"]["base"] == CUDA_BASE
    assert json.loads(cuda.label(lock) or "null")["glibc"] == "2.35"


def test_no_cuda_twice_for_a_plain_base_a_cpu_lock_or_another_base():
    plain = {**CUDA_BASE, "cuda": None}
    assert cuda.twice(cuda.with_recorded(_lock(packages=tuple(TORCH_CU12)), base=plain)) is None
    assert cuda.twice(cuda.with_recorded(_lock(packages=tuple(CPU)), base=CUDA_BASE)) is None
    other = cuda.with_recorded(_lock(packages=tuple(TORCH_CU12)), base={**CUDA_BASE, "digest": "sha256:" + "f" * 64})
    assert cuda.recorded_base(other) is None and cuda.twice(other) is None  # recorded for another base: read again


def test_the_dockerfile_sets_the_label_for_a_gpu_lock_only():
    from imagesmith.render import render

    spec = load_spec(PROJECTS / "gpu-tiny")
    lock = cuda.with_recorded(_lock(packages=tuple(TORCH_CU12)), archs=ARCHS, base=CUDA_BASE)
    text = render(spec, lock)
    line = next(line.strip() for line in text.splitlines() if line.strip().startswith(layout.LABEL_GPU + "="))
    value = json.loads(json.loads(line.removesuffix("\\").strip().split("=", 1)[1]))
    assert value == json.loads(cuda.label(lock) or "null")
    assert layout.LABEL_GPU not in render(spec, _lock(packages=tuple(CPU)))  # nor in the config label


def _wheel(store, pin, members: dict[str, int], tag: str = "py3-none-manylinux_2_27_x86_64") -> None:
    """A real wheel file of ``pin`` in a wheel cache's store (``wheels/<sha256>/<file>``), its members
    ``{path: bytes}`` (zeros, deflated: small on disk, their installed size as given)."""
    import zipfile

    folder = store / "wheels" / pin.hashes[0].split(":", 1)[1]
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(
        folder / f"{pin.name.replace('-', '_')}-{pin.version}-{tag}.whl", "w", zipfile.ZIP_DEFLATED
    ) as zf:
        for name, size in members.items():
            zf.writestr(name, b"\0" * size)


def test_cuda_twice_gives_the_bytes_the_cached_cuda_wheels_install(tmp_path):
    from imagesmith.gpu_arch import wheels_bytes
    from imagesmith.wheels import WheelCache

    lock = cuda.with_recorded(_lock(packages=tuple(TORCH_CU12)), base=CUDA_BASE)
    cache = WheelCache(tmp_path)
    assert wheels_bytes(cache, lock) == (0, 0)  # nothing cached: nothing downloaded to find out
    by_name = {p.name: p for p in TORCH_CU12}
    _wheel(
        tmp_path,
        by_name["nvidia-cublas-cu12"],
        {"nvidia/cublas/lib/libcublasLt.so.12": 3_000_000, "x.dist-info/RECORD": 500},
    )
    _wheel(tmp_path, by_name["nvidia-cudnn-cu12"], {"nvidia/cudnn/lib/libcudnn.so.9": 2_000_000})
    _wheel(tmp_path, by_name["numpy"], {"numpy/core.so": 9_000_000})  # not CUDA: not counted
    _wheel(tmp_path, by_name["nvidia-nccl-cu12"], {"nccl.so": 1_000_000}, tag="py3-none-win_amd64")  # not this target
    assert wheels_bytes(cache, lock) == (5_000_500, 2)
    assert (
        "(nvidia-cublas-cu12, nvidia-cuda-cupti-cu12, nvidia-cuda-nvrtc-cu12 and 12 more; 5 MB installed from the 2 of 15 in the wheel cache)"
        in (cuda.twice(lock, wheels_bytes(cache, lock)) or "")
    )
    # every CUDA wheel cached: their whole installed size, beside the base's 4,812 MB
    for c in cuda.gpu.contract(lock.packages).packages:
        if c.name not in ("nvidia-cublas-cu12", "nvidia-cudnn-cu12"):
            _wheel(tmp_path, by_name[c.name], {"lib.so": 1_000_000})
    bytes_, found = wheels_bytes(cache, lock)
    assert (bytes_, found) == (5_000_500 + 13 * 1_000_000, 15)
    message = cuda.twice(lock, (bytes_, found)) or ""
    assert "carries CUDA 12.4.1 (/usr/local/cuda-12.4, 4,812 MB, CUDA_VERSION=12.4.1)" in message
    assert "and 12 more; 18 MB installed): the image holds both" in message
