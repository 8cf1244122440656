"""A GPU project on the real engine, without a GPU: `gpu-tiny` pins one small real CUDA wheel
(``nvidia-cuda-runtime-cu12``, from the package index as pip's defaults reach it). Its lock names
CUDA 12.x and the driver that needs; both images carry the contract (image facts and the
``io.imagesmith.gpu`` label); ``verify IMAGE --host`` against a fake ``nvidia-smi`` on PATH
(tests/fake_nvidia_smi.py, the real tool's query formats) refuses a driver too old for it, accepts
a new enough one, and says when this machine has no GPU.

Builds the project once for this module under a tag of its own (``imagesmith-test/gpu-tiny``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagesmith import gpu, layout
from imagesmith.build import BuildOptions, build_project
from imagesmith.spec import load_spec
from tests.conftest import PROJECTS, copy_project
from tests.fake_nvidia_smi import FakeGpu, install, path_with

pytestmark = pytest.mark.engine

TAG = "imagesmith-test/gpu-tiny"
RUNTIME_WHEEL = "nvidia-cuda-runtime-cu12"


def _imagesmith(*args: str, path: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "imagesmith", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


@pytest.fixture(scope="module")
def gpu_tiny(tmp_path_factory, engine, base_image):
    """(project root, the lock's JSON, BuildResult): locked with `imagesmith lock`, then built."""
    root = copy_project(PROJECTS / "gpu-tiny", tmp_path_factory.mktemp("gpu") / "gpu-tiny")
    done = _imagesmith("lock", "-p", str(root), "--base", base_image)
    assert done.returncode == 0, done.stderr
    lock = json.loads((root / "imagesmith.lock").read_text())
    result = build_project(load_spec(root), engine, BuildOptions(base=base_image, tag=TAG, locked=True))
    return root, lock, result


def test_the_lock_names_cuda_12_and_its_minimum_driver(gpu_tiny):
    _, lock, _ = gpu_tiny
    section = lock["gpu"]
    pinned = next(p for p in lock["packages"] if p["name"] == RUNTIME_WHEEL)
    assert pinned["version"].startswith("12.")
    assert section["major"] == 12
    assert section["cuda"] == ".".join(pinned["version"].split(".")[:2])
    assert section["min_driver"] == gpu.MIN_DRIVER[12] == "525.60.13"
    assert section["majors"] == {"12": [RUNTIME_WHEEL]}
    assert section["archs"] is None  # the runtime wheel carries no GPU code: unknown, not guessed


def _facts(ref: str) -> dict:
    path = f"{layout.site_packages('3.11')}/{layout.FACTS_FILE}"
    done = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "cat", ref, path], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_each_image_carries_the_contract_in_its_facts_and_label(gpu_tiny, engine):
    _, lock, result = gpu_tiny
    for role in ("train", "serve"):
        ref = result.images[role].ref
        assert ref is not None
        label = json.loads(engine.image(ref).labels[layout.LABEL_GPU])
        assert label == {"archs": None, "cuda": lock["gpu"]["cuda"], "major": 12, "min_driver": "525.60.13"}
        assert _facts(ref)["gpu"] == lock["gpu"]
    done = _imagesmith("verify", result.images["serve"].ref, "--labels-only")
    assert done.returncode == 0, done.stdout + done.stderr  # the label is what the Dockerfile implies


@pytest.mark.parametrize(
    "driver, cap",
    [("515.43.04", "8.6"), ("470.82.01", "7.5")],  # R470 does not know compute_cap: the query asks again
)
def test_verify_host_refuses_a_driver_too_old(gpu_tiny, tmp_path, driver, cap):
    _, lock, result = gpu_tiny
    bindir = tmp_path / "bin"
    install(bindir, [FakeGpu("NVIDIA GeForce RTX 3090", driver, cap)])
    done = _imagesmith("verify", result.images["serve"].ref, "--host", path=path_with(bindir))
    assert done.returncode == 1, done.stdout + done.stderr
    cuda = lock["gpu"]["cuda"]
    assert f"driver {driver} is older than 525.60.13 that CUDA {cuda} in this image needs" in done.stdout
    assert done.stdout.rstrip().endswith("this machine can NOT run it")
    assert (bindir / "nvidia-smi.log").read_text().startswith("--query-gpu=driver_version,compute_cap,name")


def test_verify_host_accepts_a_new_enough_driver(gpu_tiny, tmp_path):
    _, lock, result = gpu_tiny
    bindir = tmp_path / "bin"
    install(bindir, [FakeGpu("NVIDIA H100 80GB HBM3", "580.82.07", "9.0")] * 2)
    done = _imagesmith("verify", result.images["train"].ref, "--host", "--json", path=path_with(bindir))
    assert done.returncode == 0, done.stdout + done.stderr
    host = json.loads(done.stdout)["host"]
    assert host["ok"] is True and host["problems"] == []
    assert [g["driver"] for g in host["gpus"]] == ["580.82.07", "580.82.07"]
    assert host["contract"]["cuda"] == lock["gpu"]["cuda"] and host["contract"]["min_driver"] == "525.60.13"


def test_verify_host_without_a_gpu_says_so(gpu_tiny, tmp_path):
    _, _, result = gpu_tiny
    bindir = tmp_path / "bin"
    install(bindir, [])  # nvidia-smi present, no driver to talk to
    done = _imagesmith("verify", result.images["serve"].ref, "--host", path=path_with(bindir))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: this machine has no NVIDIA GPU (nvidia-smi: NVIDIA-SMI has failed" in done.stderr
