"""A GPU project on the real engine, without a GPU: `gpu-tiny` pins one small real CUDA wheel
(``nvidia-cuda-runtime-cu12``, from the package index as pip's defaults reach it). Its lock names
CUDA 12.x and the driver that needs; both images carry the contract (image facts and the
``io.imagesmith.gpu`` label); ``verify IMAGE --host`` against a fake ``nvidia-smi`` on PATH
(tests/fake_nvidia_smi.py, the real tool's query formats) refuses a driver too old for it, accepts
a new enough one, and says when this machine has no GPU.

Builds the project once for this module under a tag of its own (``imagesmith-test/gpu-tiny``)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from imagesmith import gpu, layout, record, sizes
from imagesmith.build import BuildOptions, build_project
from imagesmith.engine.attached import run_argv
from imagesmith.facts import manifest_of, read_facts
from imagesmith.plan import ImagePlan
from imagesmith.run import wants_gpus
from imagesmith.runtime import nvidia_smi
from imagesmith.signing import Cosign
from imagesmith.spec.load import load_spec
from tests.conftest import BASE_IMAGE, PROJECTS, copy_project
from tests.fake_nvidia_smi import FakeGpu, install, path_with
from tests.helpers import image_facts, remove_tags

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


def _facts(engine, ref: str) -> dict:
    """The image facts file of ``ref``, read from its layers (no container started: the bytes a
    container of it would read at layout.FACTS_PATH)."""
    return image_facts(engine, ref)


def test_each_image_carries_the_contract_in_its_facts_and_label(gpu_tiny, engine):
    _, lock, result = gpu_tiny
    for role in ("train", "serve"):
        ref = result.images[role].ref
        assert ref is not None
        label = json.loads(engine.image(ref).labels[layout.LABEL_GPU])
        assert label == {
            "archs": None,
            "cuda": lock["gpu"]["cuda"],
            "glibc": "2.36",
            "major": 12,
            "min_driver": "525.60.13",
        }
        assert _facts(engine, ref)["gpu"] == lock["gpu"]
    for role in ("train", "serve"):  # the label is what the Dockerfile implies; the image holds what it says
        done = _imagesmith("verify", result.images[role].ref)
        assert done.returncode == 0, done.stdout + done.stderr


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
    assert (bindir / "nvidia-smi.log").read_text().startswith(" ".join(nvidia_smi.arguments()))


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
    # the runtime wheel carries no GPU code: the compute capability is not checked, and it says why
    assert host["contract"]["archs"] is None
    assert host["notes"] == [
        "compute capability not checked: the GPU architectures of this image's code are unknown "
        "(no framework with compiled GPU code in the lock, e.g. CUDA libraries alone)"
    ]


def test_verify_host_without_a_gpu_says_so(gpu_tiny, tmp_path):
    _, _, result = gpu_tiny
    bindir = tmp_path / "bin"
    install(bindir, [])  # nvidia-smi present, no driver to talk to
    done = _imagesmith("verify", result.images["serve"].ref, "--host", path=path_with(bindir))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: this machine has no NVIDIA GPU (nvidia-smi: NVIDIA-SMI has failed" in done.stderr


def test_run_passes_the_gpus_as_the_engines_device_request(gpu_tiny, tmp_path):
    """The command line `imagesmith run` uses, created (not started) on the real engine: with
    GPUs the container asks the engine for every GPU; without, for none."""
    _, _, result = gpu_tiny
    ref = result.images["train"].ref
    for gpus, want in ((True, [{"Count": -1, "Capabilities": [["gpu"]]}]), (False, None)):
        argv = run_argv(ref, ["true"], verb="create", gpus=gpus, name=f"imagesmith-test-gpu-{uuid.uuid4().hex[:8]}")
        created = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        assert created.returncode == 0, created.stderr
        cid = created.stdout.strip()
        try:
            inspected = subprocess.run(
                ["docker", "inspect", "-f", "{{json .HostConfig.DeviceRequests}}", cid], capture_output=True, text=True
            )
            requests = json.loads(inspected.stdout)
        finally:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        if want is None:
            assert requests is None
        else:
            assert [{k: r[k] for k in ("Count", "Capabilities")} for r in requests] == want


def test_run_gives_a_gpu_project_the_gpus_when_the_machine_has_one(gpu_tiny, tmp_path):
    """gpu-tiny declares accelerator: gpu. With a GPU on the machine (the fake nvidia-smi) `run`
    asks the engine for it, and this engine, which has no NVIDIA runtime, refuses: the refusal
    is the proof the request was made, said in one error line. Without one it asks for none;
    --no-gpus never asks (and runs as usual); --gpus always asks."""
    root, _, _ = gpu_tiny
    bindir = tmp_path / "bin"
    install(bindir, [FakeGpu("NVIDIA H100 80GB HBM3", "580.82.07", "9.0")])
    asked = _imagesmith("run", "train", "-p", str(root), "-t", TAG, path=path_with(bindir))
    assert asked.returncode == 125, asked.stdout + asked.stderr
    assert "error: the engine cannot give the container this machine's GPUs (" in asked.stderr
    assert (
        "could not select device driver" in asked.stderr
        and "hint: install the NVIDIA Container Toolkit" in asked.stderr
    )
    refused = _imagesmith("run", "train", "-p", str(root), "-t", TAG, "--no-gpus", path=path_with(bindir))
    assert refused.returncode == 0, refused.stderr
    assert "train nvidia-cuda-runtime-cu12 12." in refused.stdout
    no_gpu = tmp_path / "nogpu"
    install(no_gpu, [])
    # without one, the default asks for none (decided by the same nvidia-smi, in this process: the
    # run itself is the --no-gpus run's above, which was started a second time here)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", path_with(no_gpu))
        assert not wants_gpus(load_spec(root), None) and wants_gpus(load_spec(root), True)
    forced = _imagesmith("run", "train", "-p", str(root), "-t", TAG, "--gpus", path=path_with(no_gpu))
    assert forced.returncode == 125 and "could not select device driver" in forced.stderr


CUDA_BASE_DOCKERFILE = """\
FROM {base}
ENV CUDA_VERSION=12.4.1
RUN mkdir -p /usr/local/cuda-12.4/lib64 \\
 && head -c 3000000 /dev/zero > /usr/local/cuda-12.4/lib64/libcudart.so.12.4.127 \\
 && echo '{{"cuda": {{"name": "CUDA SDK", "version": "12.4.1"}}}}' > /usr/local/cuda-12.4/version.json \\
 && ln -s cuda-12.4 /usr/local/cuda
"""


CUDA_BASE = "imagesmith-test/cuda-base:12.4"


@pytest.fixture
def cuda_base(engine, base_image, tmp_path):
    """A base like a CUDA image (CUDA_VERSION in its env, a toolkit folder at /usr/local/cuda),
    built here FROM the test base, never pulled. Kept under one name, like the module's TAG, not
    removed: a later build of it finds its step cached, and removing it was an image delete at
    every run (12-22 s on this engine, 2026-12-07)."""
    (tmp_path / "Dockerfile").write_text(CUDA_BASE_DOCKERFILE.format(base=base_image))
    done = subprocess.run(
        ["docker", "build", "-q", "-t", CUDA_BASE, str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return CUDA_BASE


def test_lock_on_a_cuda_base_warns_cuda_twice(cuda_base, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a wheel cache of its own: empty at first
    root = copy_project(PROJECTS / "gpu-tiny", tmp_path / "gpu-tiny")
    done = _imagesmith("lock", "-p", str(root), "--base", cuda_base)
    assert done.returncode == 0, done.stderr
    cuda = json.loads((root / "imagesmith.lock").read_text())["gpu"]
    assert cuda["base"]["cuda"] == {
        "version": "12.4.1",
        "env": "12.4.1",
        "path": "/usr/local/cuda-12.4",
        "bytes": cuda["base"]["cuda"]["bytes"],
    }
    assert 3_000_000 < cuda["base"]["cuda"]["bytes"] < 3_001_000
    assert cuda["base"]["glibc"] == "2.36"  # bookworm's
    assert (
        f"warning: CUDA twice: the base image {cuda_base} carries CUDA 12.4.1 (/usr/local/cuda-12.4, 3 MB, "
        f"CUDA_VERSION=12.4.1) and the lock's wheels bring CUDA {cuda['cuda']} (nvidia-cuda-runtime-cu12; "
        "their bytes known once they are downloaded)"
    ) in done.stderr
    assert "Use a plain Python base" in done.stderr
    # the wheel in the cache (as a build downloads it): the warning gives the bytes it installs
    from imagesmith.gpu_arch import installed_bytes
    from imagesmith.lock.lockfile import read_lock
    from imagesmith.wheels import WheelCache

    lock = read_lock(root / "imagesmith.lock")
    pin = next(p for p in lock.packages if p.name == RUNTIME_WHEEL)
    wheel = WheelCache(tmp_path / "cache" / "imagesmith").wheel_file(pin, lock)
    again = _imagesmith("lock", "-p", str(root), "--base", cuda_base)  # recorded: said again, not read again
    assert again.returncode == 0, again.stderr
    assert f"(nvidia-cuda-runtime-cu12; {installed_bytes(wheel) / 1e6:,.0f} MB installed)" in again.stderr


def test_a_plain_base_records_its_glibc_and_no_cuda(gpu_tiny):
    _, lock, _ = gpu_tiny
    assert lock["gpu"]["base"]["cuda"] is None and lock["gpu"]["base"]["glibc"] == "2.36"
    assert lock["gpu"]["base"]["digest"] == lock["base"]["digest"]


def test_inspect_sizes_shows_the_cuda_wheel_and_each_layer(gpu_tiny, engine):
    """`inspect --sizes` on the built image: the CUDA runtime wheel's bytes are the sizes of the
    files its RECORD lists as they are in the image (stat'ed inside a container here), summed
    under CUDA; one row per layer of the image, each with the bytes the engine says it added."""
    root, lock, result = gpu_tiny
    ref = result.images["serve"].ref
    assert ref is not None
    of_lock = _imagesmith("inspect", str(root / "imagesmith.lock"), "--sizes")
    assert of_lock.returncode == 2 and of_lock.stderr.startswith("error: --sizes reads an image"), of_lock.stderr
    done = _imagesmith("inspect", ref, "--sizes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    site = layout.site_packages("3.11")
    stat = (
        "import csv, os, sys\n"
        "site, folder = sys.argv[1], sys.argv[2]\n"
        "rows = list(csv.reader(open(os.path.join(site, folder, 'RECORD'))))\n"
        "print(sum(os.path.getsize(os.path.join(site, r[0])) for r in rows if r[2]))\n"
    )
    version = next(p["version"] for p in lock["packages"] if p["name"] == RUNTIME_WHEEL)
    folder = f"nvidia_cuda_runtime_cu12-{version}.dist-info"
    inside = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", layout.VENV_PYTHON, ref, "-c", stat, site, folder],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert inside.returncode == 0, inside.stderr
    wheel = report["distributions"][RUNTIME_WHEEL]
    assert wheel["bytes"] == int(inside.stdout) > 100_000 and wheel["version"] == version
    assert report["cuda"] == {"bytes": wheel["bytes"], "distributions": [RUNTIME_WHEEL]}
    assert set(report["distributions"]) | set(report["unread"]) == {p["name"] for p in lock["packages"]}
    assert report["unread"] == {} and report["notes"] == []
    info = engine.image(ref)
    assert [layer["diff_id"] for layer in report["layers"]] == list(info.layers)
    assert report["compressed"] is False and report["total"] == sum(layer["bytes"] for layer in report["layers"])
    assert max(layer["bytes"] for layer in report["layers"]) > wheel["bytes"]
    # the text form of this report (what `inspect --sizes` prints without --json: sizes_lines; it
    # was a second read of the image)
    text = "\n".join(sizes.sizes_lines(report))
    assert f"CUDA:     {sizes.human(wheel['bytes'])} in 1 distribution ({RUNTIME_WHEEL})" in text
    assert f"  {RUNTIME_WHEEL}  " in text and text.rstrip().endswith(f"({RUNTIME_WHEEL})")


# ------------------------------------------------------------------------------------------------
# the GPU contract as its own signed attestation, and a registry image's sizes

PASSWORD = "imagesmith-test-password"


@pytest.fixture(scope="module")
def gpu_pushed(gpu_tiny, engine, registry, tmp_path_factory):
    """The serve image pushed to the loopback registry under three repositories (signed by
    `imagesmith sign`; left unsigned for the tests to sign by hand), and a cosign key pair."""
    _, _, result = gpu_tiny
    image_id = result.images["serve"].id
    keys = tmp_path_factory.mktemp("gpu-keys")
    env = {"COSIGN_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin", "HOME": str(keys)}
    subprocess.run(["cosign", "generate-key-pair"], cwd=keys, env=env, check=True, capture_output=True)
    run = uuid.uuid4().hex[:10]
    refs, tags = {}, []
    for name in ("signed", "no-gpu-attestation", "forged-gpu-attestation"):
        tag = f"{registry}/imagesmith-test/gpu-{name}-{run}:serve"
        engine.tag(image_id, tag)
        tags.append(tag)
        refs[name] = f"{tag.rsplit(':', 1)[0]}@{engine.push(tag)}"
    yield {"refs": refs, "key": keys / "cosign.key", "pub": keys / "cosign.pub", "home": keys}
    for tag in tags:
        subprocess.run(["docker", "image", "rm", tag], capture_output=True)


def _signing_env() -> dict[str, str]:
    return {**os.environ, "COSIGN_PASSWORD": PASSWORD}


def test_sign_attests_the_gpu_contract_and_verify_key_checks_it(gpu_tiny, gpu_pushed):
    _, lock, _ = gpu_tiny
    ref, key, pub = gpu_pushed["refs"]["signed"], gpu_pushed["key"], gpu_pushed["pub"]
    done = subprocess.run(
        [sys.executable, "-m", "imagesmith", "sign", ref, "--key", str(key), "--json"],
        capture_output=True, text=True, env=_signing_env(), stdin=subprocess.DEVNULL, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"imagesmith: signed {ref} and attested its build record and its GPU contract" in done.stderr
    attested = json.loads(done.stdout)["image"]["gpu"]
    assert attested["contract"] == {
        "archs": None,
        "cuda": lock["gpu"]["cuda"],
        "glibc": "2.36",
        "major": 12,
        "min_driver": "525.60.13",
    }
    assert attested["section"] == lock["gpu"] and attested["role"] == "serve"
    verified = _imagesmith("verify", ref, "--labels-only", "--key", str(pub))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (
        f"ok: signature: the GPU attestation by {pub} matches the image's contract: "
        f"CUDA {lock['gpu']['cuda']}, NVIDIA driver 525.60.13 or newer"
    ) in verified.stdout
    # the standard tool alone reads it, by its predicate type
    alone = subprocess.run(
        ["cosign", "verify-attestation", "--key", str(pub), "--insecure-ignore-tlog=true", "--allow-http-registry",
         "--type", record.GPU_PREDICATE, ref],
        capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(gpu_pushed["home"]), "TUF_ROOT": str(gpu_pushed["home"] / "tuf")},
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    statement = json.loads(base64.b64decode(json.loads(alone.stdout.splitlines()[0])["payload"]))
    assert statement["predicateType"] == record.GPU_PREDICATE and statement["predicate"] == attested


@pytest.fixture(scope="module")
def gpu_build_signed(gpu_tiny, gpu_pushed, registry, base_image):
    """`imagesmith build --push REPO --sign KEY --json` of the module's project, once: its JSON's
    images and its stderr. Both images pushed to the loopback registry are also the "plain"
    project's of the CUDA-layer test (test_a_new_small_pin_keeps_the_cuda_layer_…)."""
    root, _, _ = gpu_tiny
    repo = f"{registry}/imagesmith-test/gpu-build-sign-{uuid.uuid4().hex[:10]}"
    done = subprocess.run(
        [sys.executable, "-m", "imagesmith", "build", "-p", str(root), "--base", base_image, "-t", TAG,
         "--push", repo, "--sign", str(gpu_pushed["key"]), "--json"],
        capture_output=True, text=True, env=_signing_env(), stdin=subprocess.DEVNULL, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["images"], done.stderr


def test_build_sign_attests_each_images_gpu_contract(gpu_tiny, gpu_pushed, gpu_build_signed):
    _, lock, _ = gpu_tiny
    pub = gpu_pushed["pub"]
    images, stderr = gpu_build_signed
    for role in ("train", "serve"):
        ref = images[role]["pushed"]
        assert f"imagesmith: signed {ref} and attested its build record and its GPU contract" in stderr
        verified = _imagesmith("verify", ref, "--labels-only", "--role", role, "--key", str(pub))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert (
            f"ok: signature: the GPU attestation by {pub} matches the image's contract: CUDA {lock['gpu']['cuda']},"
            in (verified.stdout)
        )


def test_verify_key_refuses_a_gpu_image_without_or_with_another_gpu_attestation(gpu_pushed, engine):
    """Signed and attested (parity) as an imagesmith without GPU attestations did: refused, the
    attestation named; then a GPU attestation by the real key with a contract that says an older
    driver will do: refused, the field named."""
    pub, key = gpu_pushed["pub"], gpu_pushed["key"]
    cosign = Cosign(env={"COSIGN_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"})
    for name in ("no-gpu-attestation", "forged-gpu-attestation"):
        ref = gpu_pushed["refs"][name]
        info = engine.registry_image(ref)
        facts, problem = read_facts(engine, info)
        manifest, _ = manifest_of(info, facts, problem)
        assert manifest is not None
        cosign.sign(ref, key)
        cosign.attest(ref, key, record.PARITY_PREDICATE, record.make_record(info, manifest, app=None, lock_digest=None))
        if name == "forged-gpu-attestation":
            forged = record.make_gpu_record(info, facts)
            assert forged is not None
            forged["contract"] = {**forged["contract"], "min_driver": "450.80.02"}
            cosign.attest(ref, key, record.GPU_PREDICATE, forged)
    missing = _imagesmith("verify", gpu_pushed["refs"]["no-gpu-attestation"], "--labels-only", "--key", str(pub))
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert f"FAIL: signature: no GPU attestation by {pub} on sha256:" in missing.stdout
    assert f"({record.GPU_PREDICATE})" in missing.stdout
    assert "ok: signature: the parity attestation by" in missing.stdout  # only the GPU part is missing
    other = _imagesmith("verify", gpu_pushed["refs"]["forged-gpu-attestation"], "--labels-only", "--key", str(pub))
    assert other.returncode == 1, other.stdout + other.stderr
    assert (
        f"FAIL: signature: the GPU attestation by {pub} says otherwise: the image's GPU contract differs from "
        'the signed GPU contract: min_driver "525.60.13" (signed: "450.80.02")'
    ) in other.stdout


def test_inspect_sizes_of_a_registry_image_reads_its_manifest(gpu_pushed, engine):
    ref = gpu_pushed["refs"]["signed"]
    done = _imagesmith("inspect", ref, "--sizes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    info = engine.registry_image(ref)
    assert report["kind"] == "registry image" and report["compressed"] is True
    assert [layer["diff_id"] for layer in report["layers"]] == list(info.layers)
    assert all(layer["bytes"] > 0 and layer["step"] is None for layer in report["layers"])
    assert report["total"] == sum(layer["bytes"] for layer in report["layers"])
    assert report["distributions"] == {} and report["cuda"] == {"bytes": 0, "distributions": []}
    assert report["notes"] == [
        "a registry image's distributions are read from the engine: pull it, then inspect it by tag"
    ]


# ------------------------------------------------------------------------------------------------
# the CUDA wheel in a layer of its own (plan.heavy_groups)

HEAVY_STEP = f"heavy:{RUNTIME_WHEEL}"
# this run's own tags; the module's images are read by ID (the shared TAG may be rebuilt meanwhile
# by another checkout's run of this module on the same engine)
OWN = f"{TAG}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def own_tags():
    """Removes this run's own tags (``OWN``-*) when the module's tests are done."""
    yield
    remove_tags(f"{OWN}-*")


def _locked_copy(root: Path, dest: Path) -> Path:
    """A fresh copy of a locked project (new files, new times) with the very same lock."""
    copy = copy_project(PROJECTS / "gpu-tiny", dest)
    for lock_file in [*root.glob("*.lock")]:
        shutil.copy2(lock_file, copy / lock_file.name)
    return copy


def _layer_of(engine, ref: str, step: str) -> int:
    """The index in ``ref``'s layers of the one its plan's ``step`` adds (the plan from its facts)."""
    steps = [s.name for s in ImagePlan.from_facts(_facts(engine, ref)).steps if s.layer]
    return len(engine.image(BASE_IMAGE).layers) + steps.index(step)


def _saved_layers(ref: str, tmp: Path) -> list[list[str]]:
    """The file names of each of ``ref``'s layers, bottom first, from `docker save`."""
    archive = tmp / "image.tar"
    done = subprocess.run(["docker", "save", "-o", str(archive), ref], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = []
    with tarfile.open(archive) as image:
        manifest = json.load(image.extractfile("manifest.json"))  # type: ignore[arg-type]
        for name in manifest[0]["Layers"]:
            with tarfile.open(fileobj=image.extractfile(name), mode="r:*") as layer:  # type: ignore[arg-type]
                out.append([m.name for m in layer.getmembers() if not m.isdir()])
    return out


def test_the_cuda_wheel_is_a_layer_of_its_own_and_a_clean_build_is_the_same_image(gpu_tiny, engine, tmp_path, own_tags):
    """The module's build (cached steps where an earlier build left them) and one built here
    with no cache from a fresh copy (new file times), later: the same image IDs."""
    root, _, result = gpu_tiny
    serve = result.images["serve"].id
    facts = _facts(engine, serve)
    assert facts["steps"].index(HEAVY_STEP) + 1 == facts["steps"].index("python-env")
    at = _layer_of(engine, serve, HEAVY_STEP)
    layers = _saved_layers(serve, tmp_path)
    site = layout.site_packages("3.11").lstrip("/")
    assert any(n.endswith("/nvidia/cuda_runtime/lib/libcudart.so.12") for n in layers[at])
    assert all(n.startswith((f"{site}/nvidia/", f"{site}/nvidia_cuda_runtime_cu12-")) for n in layers[at])
    rest = [n for i, files in enumerate(layers) if i != at for n in files]
    assert not [n for n in rest if "cuda_runtime" in n], "the CUDA wheel's files are in its layer only"
    assert f"{site}/six.py" not in layers[at]
    copy = _locked_copy(root, tmp_path / "clean")
    built = build_project(
        load_spec(copy), engine, BuildOptions(base=BASE_IMAGE, tag=f"{OWN}-clean", locked=True, no_cache=True)
    )
    for role in ("train", "serve"):
        assert built.images[role].id == result.images[role].id, role


def _pushed_layers(pinned: str) -> list[str]:
    """The blob digests of a pushed single-platform image's layers, bottom first (skopeo)."""
    done = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{pinned}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    raw = json.loads(done.stdout)
    if "manifests" in raw:  # an index (attestations beside the image): the amd64 image's manifest
        entry = next(m for m in raw["manifests"] if (m.get("platform") or {}).get("architecture") == "amd64")
        return _pushed_layers(f"{pinned.split('@', 1)[0]}@{entry['digest']}")
    return [layer["digest"] for layer in raw["layers"]]


@pytest.mark.registry
def test_a_new_small_pin_keeps_the_cuda_layer_and_its_pushed_blob_and_verify_counts_it(
    gpu_tiny, gpu_build_signed, engine, registry, tmp_path, own_tags
):
    """The project (pushed to the loopback registry by ``gpu_build_signed``), then the project with
    a new small pin, built and pushed to the same registry: below the venv's layer (the base, the
    user, the CUDA wheel) the images share their layers in the engine and their blobs in the
    registry (a registry that has the CUDA wheel's is not sent it again); the venv's layer
    differs; verify passes on both new images."""
    root, _, result = gpu_tiny
    plain = gpu_build_signed[0]["serve"]
    blobs, at = [_pushed_layers(plain["pushed"])], [_layer_of(engine, plain["id"], HEAVY_STEP)]
    copy = _locked_copy(root, tmp_path / "bumped")
    spec = copy / "imagesmith.yaml"
    spec.write_text(spec.read_text().replace("requirements:\n", "requirements:\n  - six==1.17.0\n"))
    done = _imagesmith("lock", "-p", str(copy), "--base", BASE_IMAGE)
    assert done.returncode == 0, done.stderr
    repo = f"{registry}/imagesmith-test/gpu-heavy-{uuid.uuid4().hex[:8]}"
    built = build_project(
        load_spec(copy), engine, BuildOptions(base=BASE_IMAGE, tag=f"{OWN}-push-bumped", locked=True, push=repo)
    )
    pinned, ref = built.images["serve"].pushed, built.images["serve"].ref
    assert pinned is not None and ref is not None
    blobs.append(_pushed_layers(pinned))
    at.append(_layer_of(engine, ref, HEAVY_STEP))
    assert at[0] == at[1] == _layer_of(engine, result.images["serve"].id, HEAVY_STEP)
    assert blobs[0][: at[0] + 1] == blobs[1][: at[0] + 1]  # the CUDA wheel's blob: pushed once
    assert blobs[0][at[0] + 1] != blobs[1][at[0] + 1]
    before, after = result.images["serve"].id, built.images["serve"].ref
    old, new = engine.image(before).layers, engine.image(after).layers
    assert new[: at[1] + 1] == old[: at[1] + 1]  # the base, the user, the CUDA wheel: reused as they were
    assert new[at[1] + 1] != old[at[1] + 1]  # the venv's layer has six now
    for ref in (after, built.images["train"].ref):
        check = _imagesmith("verify", str(ref))
        assert check.returncode == 0, check.stdout + check.stderr
