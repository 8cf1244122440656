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
        "this machine differs from the one signed off on: GPUs: NVIDIA L4 (driver 580.82.07) here, "
        "NVIDIA L4 (driver 550.54.15) signed off on"
    ]


def test_without_a_gpu_a_note_and_without_cuda_nothing(tmp_path):
    model, stamp = _model(tmp_path)
    gate = so.check_signoff(_gpu_engine(), "x:serve", _record(tmp_path, stamp=stamp), model, here=HW)
    assert gate.problems == []
    assert gate.notes == ["it was signed off without a GPU: this image's CUDA 12.9 code was not exercised there"]
    plain = so.check_signoff(_gpu_engine(None), "x:serve", _record(tmp_path, stamp=stamp), model, here=HW)
    assert plain.problems == [] and plain.notes == [] and len(plain.checks) == 4
