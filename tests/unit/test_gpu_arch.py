"""The GPU architectures of a framework, read from the .nv_fatbin section of its libraries (ELF
files built here byte by byte, in the layout checked against torch 2.14.1's libtorch_cuda.so),
recorded in the lock for the wheel they came from, and checked against each GPU's compute
capability by the host check."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zipfile
from pathlib import Path

from imagesmith import gpu, gpu_arch, gpu_host
from imagesmith.gpu_host import HostGpu
from imagesmith.lock.lockfile import read_lock
from imagesmith.lock.pins import Pin
from imagesmith.spec.load import load_spec
from imagesmith.wheels import WheelCache
from tests.conftest import PROJECTS
from tests.unit.test_gpu import TORCH_CU12
from tests.unit.test_package_indexes import _lock

_KIND = {"sm": 2, "ptx": 1}


def fatbin(entries: list[tuple[str, int]]) -> bytes:
    """One fat binary: entries of (kind, 10 * major + minor), each with an 8-byte payload."""
    body = b""
    for kind, arch in entries:
        payload = b"\xaa" * 8
        header = struct.pack("<HHIIIIIII", _KIND[kind], 0x101, 64, len(payload), 0, len(payload), 0, 0, arch)
        body += header.ljust(64, b"\0") + payload
    return struct.pack("<IHHQ", gpu_arch.FATBIN_MAGIC, 1, 16, len(body)) + body


def elf(sections: dict[bytes, bytes]) -> bytes:
    """A 64-bit little-endian ELF file holding ``sections`` (and the section-name table)."""
    names = b"\0" + b"".join(n + b"\0" for n in sections) + b".shstrtab\0"
    data, offsets = b"", []
    for content in [*sections.values(), names]:
        offsets.append(64 + len(data))
        data += content + b"\0" * (-len(content) % 8)
    shoff = 64 + len(data)
    headers = [b"\0" * 64]  # section 0 is null
    name_at = 1
    for (name, content), offset in zip(sections.items(), offsets):
        headers.append(struct.pack("<IIQQQQIIQQ", name_at, 1, 0, 0, offset, len(content), 0, 0, 8, 0))
        name_at += len(name) + 1
    headers.append(struct.pack("<IIQQQQIIQQ", name_at, 3, 0, 0, offsets[-1], len(names), 0, 0, 1, 0))
    head = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    head += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(headers), len(headers) - 1)
    return head + data + b"".join(headers)


LIB = elf({b".text": b"\x90" * 16, b".nv_fatbin": fatbin([("sm", 80), ("sm", 86)]) + fatbin([("sm", 90), ("ptx", 90)])})


def test_the_section_of_an_elf_file_and_its_architectures(tmp_path):
    path = tmp_path / "libkernels.so"
    path.write_bytes(LIB)
    assert gpu_arch.file_archs(path) == ({"8.0", "8.6", "9.0"}, {"9.0"})
    plain = tmp_path / "libplain.so"
    plain.write_bytes(elf({b".text": b"\x90" * 16}))
    assert gpu_arch.file_archs(plain) == (set(), set())
    script = tmp_path / "not-elf.so"
    script.write_text("#!/bin/sh\n")
    assert gpu_arch.file_archs(script) == (set(), set())


def _wheel(folder: Path, libs: dict[str, bytes]) -> Path:
    tmp = folder / "torch-2.9.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr("torch/__init__.py", "")
        for name, content in libs.items():
            zf.writestr(name, content)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    home = folder / "wheels" / digest
    home.mkdir(parents=True)
    return Path(shutil.move(str(tmp), home / tmp.name))


def test_a_wheel_and_the_lock_record_read_once_and_kept_for_that_wheel(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    wheel = _wheel(cache, {"torch/lib/libtorch_cuda.so": LIB, "torch/lib/libc10.so.2": elf({b".text": b"\0"})})
    digest = wheel.parent.name
    pins = tuple(Pin("torch", "2.9.0", (f"sha256:{digest}",)) if p.name == "torch" else p for p in TORCH_CU12)
    root = tmp_path / "proj"
    shutil.copytree(PROJECTS / "gpu-tiny", root)
    spec = load_spec(root)
    lock = _lock(packages=pins)
    out = gpu_arch.record(spec, {"linux/amd64": lock}, cache=WheelCache(cache))
    want = {"framework": "torch", "version": "2.9.0", "sha256": digest, "sm": ["8.0", "8.6", "9.0"], "ptx": ["9.0"]}
    assert json.loads(out["linux/amd64"].to_json())["gpu"]["archs"] == want
    written = read_lock(spec.lock_path)
    assert json.loads(written.to_json())["gpu"]["archs"] == want
    wheel.unlink()  # recorded: not read again
    assert gpu_arch.record(spec, {"linux/amd64": written}, cache=WheelCache(cache)) == {"linux/amd64": written}


def test_compute_capability_against_the_architectures():
    assert gpu.runs_on("8.9", ["8.0", "8.6"]) == "sm_86 cubin"
    assert gpu.runs_on("7.5", ["8.0", "8.6"]) is None
    assert gpu.runs_on("12.0", ["8.0", "9.0"], ["9.0"]).startswith("compute_90 PTX")
    assert gpu.runs_on("12.0", ["8.0", "9.0"]) is None  # a cubin does not cross majors
    contract = gpu.check(TORCH_CU12)
    archs = {"framework": "torch", "version": "2.9.0", "sm": ["8.0", "8.6", "9.0"], "ptx": []}
    gpus = (HostGpu(0, "580.82.07", "7.0", "Tesla V100-SXM2-16GB"), HostGpu(1, "580.82.07", "8.9", "NVIDIA L4"))
    report = gpu_host.check(contract, gpus, archs)
    assert report.problems == [
        "GPU 0 (Tesla V100-SXM2-16GB): compute capability 7.0 is not among the architectures torch 2.9.0 in this "
        "image was compiled for (sm_80, sm_86, sm_90; no PTX)"
    ]
    assert "GPU 1 (NVIDIA L4): compute capability 8.9 runs torch 2.9.0's sm_86 cubin" in report.checks
    assert report.notes == []


def test_unknown_architectures_are_a_note_not_a_guess():
    contract = gpu.check(TORCH_CU12)
    gpus = (HostGpu(0, "580.82.07", "3.5", "Tesla K40"),)
    for archs in (None, {"framework": "torch", "version": "2.9.0", "sm": [], "ptx": []}):
        report = gpu_host.check(contract, gpus, archs)
        assert report.ok and len(report.notes) == 1
        assert report.notes[0].startswith("compute capability not checked: the GPU architectures")
        assert gpu_host.lines(report)[-1].startswith("note: compute capability not checked")
