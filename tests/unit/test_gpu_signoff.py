"""verify --signoff on an image that ships CUDA: the GPU and driver the signoff ran on against the
image's contract (its io.imagesmith.gpu label). A driver older than the contract's minimum could not
have run the image's CUDA: that signoff is refused; without a GPU it is a note."""

from __future__ import annotations

import json

from imagesmith import layout
from imagesmith.signoff import check as so
from tests.fakes import FakeEngine, image_info
from tests.unit.test_signoff import HW, _model, _record

DIGEST = "sha256:" + "a" * 64
CONTRACT = {"archs": None, "cuda": "12.9", "glibc": "2.36", "major": 12, "min_driver": "525.60.13"}


def _gpu_engine(contract: dict | None = CONTRACT) -> FakeEngine:
    labels = {layout.LABEL_GPU: json.dumps(contract)} if contract else {}
    return FakeEngine(default=image_info(id=DIGEST, labels=labels))


def _on(driver: str) -> dict:
    return {**HW, "gpus": [{"name": "NVIDIA L4", "driver": driver, "memory": "23034 MiB"}], "cuda": "12.4"}


def test_a_signoff_on_a_driver_too_old_for_the_image_is_refused(tmp_path):
    model, stamp = _model(tmp_path)
    record = _record(tmp_path, stamp=stamp, hardware=_on("515.43.04"))
    gate = so.check_signoff(_gpu_engine(), "x:serve", record, model, here=_on("515.43.04"))
    assert gate.problems == [
        "it was signed off on NVIDIA L4 with driver 515.43.04, older than 525.60.13 that CUDA 12.9 in this image "
        "needs: that run cannot have used this image's CUDA; sign off again on a driver 525.60.13 or newer"
    ]


def test_a_signoff_on_a_new_enough_driver_holds_and_another_driver_here_is_named(tmp_path):
    model, stamp = _model(tmp_path)
    record = _record(tmp_path, stamp=stamp, hardware=_on("550.54.15"))
    gate = so.check_signoff(_gpu_engine(), "x:serve", record, model, here=_on("580.82.07"))
    assert gate.problems == []
    assert "it was signed off on NVIDIA L4 with driver 550.54.15, which runs CUDA 12.9 (needs 525.60.13)" in gate.checks
    assert gate.notes == [
        "this machine differs from the one signed off on: NVIDIA driver: 580.82.07 here, 550.54.15 signed off on"
    ]


def test_without_a_gpu_a_note_and_without_cuda_nothing(tmp_path):
    model, stamp = _model(tmp_path)
    gate = so.check_signoff(_gpu_engine(), "x:serve", _record(tmp_path, stamp=stamp), model, here=HW)
    assert gate.problems == []
    assert gate.notes == ["it was signed off without a GPU: this image's CUDA 12.9 code was not exercised there"]
    plain = so.check_signoff(_gpu_engine(None), "x:serve", _record(tmp_path, stamp=stamp), model, here=HW)
    assert plain.problems == [] and plain.notes == [] and len(plain.checks) == 4


TORCH_ARCHS = {"framework": "torch", "version": "2.9.0", "sm": ["8.0", "9.0"], "ptx": []}


def _gpu(name: str, driver: str, cap: str | None) -> dict:
    return {"name": name, "driver": driver, "memory": "23034 MiB", "compute_cap": cap}


def _hw(*gpus: dict) -> dict:
    return {**HW, "gpus": list(gpus), "cuda": "12.9"}


def test_a_signoff_on_a_gpu_the_framework_was_not_compiled_for_is_refused(tmp_path):
    model, stamp = _model(tmp_path)
    engine = _gpu_engine({**CONTRACT, "archs": TORCH_ARCHS})
    t4 = _hw(_gpu("Tesla T4", "550.54.15", "7.5"))
    gate = so.check_signoff(engine, "x:serve", _record(tmp_path, stamp=stamp, hardware=t4), model, here=t4)
    assert gate.problems == [
        "it was signed off on Tesla T4, compute capability 7.5, which is not among the architectures torch 2.9.0 "
        "in this image was compiled for (sm_80, sm_90; no PTX): that run cannot have used this image's GPU code; "
        "sign off again on a GPU of one of these architectures"
    ]
    # an A10G (8.6) runs the sm_80 cubin: binary compatible within the major
    a10 = _hw(_gpu("NVIDIA A10G", "550.54.15", "8.6"))
    gate = so.check_signoff(engine, "x:serve", _record(tmp_path, stamp=stamp, hardware=a10), model, here=a10)
    assert gate.problems == []
    assert (
        "it was signed off on NVIDIA A10G, compute capability 8.6, which runs torch 2.9.0's sm_80 cubin" in gate.checks
    )


def test_a_signoff_that_does_not_state_the_compute_capability_is_a_note(tmp_path):
    model, stamp = _model(tmp_path)
    engine = _gpu_engine({**CONTRACT, "archs": TORCH_ARCHS})
    old = _on("550.54.15")  # a record made before the compute capability was recorded
    gate = so.check_signoff(engine, "x:serve", _record(tmp_path, stamp=stamp, hardware=old), model, here=old)
    assert gate.problems == []
    assert gate.notes == [
        "the signoff does not say NVIDIA L4's compute capability: not checked against the architectures "
        "torch 2.9.0 in this image was compiled for (sm_80, sm_90; no PTX)"
    ]


def test_verify_signoff_names_the_gpu_driver_and_compute_capability_that_differ_here(tmp_path):
    model, stamp = _model(tmp_path)
    signed = _hw(_gpu("NVIDIA H100 80GB HBM3", "580.82.07", "9.0"), _gpu("NVIDIA H100 80GB HBM3", "580.82.07", "9.0"))
    here = _hw(_gpu("NVIDIA A100-SXM4-80GB", "570.124.06", "8.0"))
    gate = so.check_signoff(_gpu_engine(), "x:serve", _record(tmp_path, stamp=stamp, hardware=signed), model, here=here)
    assert gate.notes == [
        "this machine differs from the one signed off on: GPU: NVIDIA A100-SXM4-80GB here, "
        "NVIDIA H100 80GB HBM3 (x2) signed off on",
        "this machine differs from the one signed off on: NVIDIA driver: 570.124.06 here, 580.82.07 (x2) signed off on",
        "this machine differs from the one signed off on: GPU compute capability: 8.0 here, 9.0 (x2) signed off on",
    ]
    # the same GPUs here: nothing differs
    same = so.check_signoff(
        _gpu_engine(), "x:serve", _record(tmp_path, stamp=stamp, hardware=signed), model, here=signed
    )
    assert "this machine's CPU, memory and GPUs are the ones signed off on" in same.checks


def test_gpu_differences_without_a_gpu_on_one_side_and_from_hostile_records():
    assert so.gpu_differences([], [_gpu("NVIDIA L4", "550.54.15", "8.9")]) == [
        "GPUs: NVIDIA L4 (driver 550.54.15) here, none signed off on"
    ]
    assert so.gpu_differences(None, None) == []
    # names and drivers that are not strings, entries that are not objects: named, never a crash
    assert so.gpu_differences([{"name": None, "driver": 5}, "x"], [_gpu("NVIDIA L4", "550.54.15", None)]) == [
        "GPU: NVIDIA L4 here, unknown signed off on",
        "NVIDIA driver: 550.54.15 here, 5 signed off on",
    ]
    # a record without compute capabilities (made before they were recorded) is not compared on them
    assert so.gpu_differences([_gpu("NVIDIA L4", "550.54.15", None)], [_gpu("NVIDIA L4", "550.54.15", "8.9")]) == []
