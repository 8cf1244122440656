"""Issue 16 on the real engine, on this x86-64 machine with arm64 under QEMU (binfmt, set up by
scripts/setup-engine.sh): the tiny-native project (markupsafe's binary wheel, six, a model
trained and served with the standard library) built for linux/arm64 alone (from a local arm64
base) and for both platforms at once (from the loopback registry's two-platform base), pushed as one
image index per role; each platform's image carries its own parity; verify, inspect and diff
read each platform from the registry without pulling; a model trained on amd64 is signed off in
the arm64 serve image, which reports the difference sample by sample."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from imagesmith import parity
from imagesmith.build import BuildOptions, build_project
from imagesmith.engine.registry import Registry
from imagesmith.lock.lockfile import read_lock, read_locks
from imagesmith.spec.load import load_spec
from tests.conftest import ARM64_BASE_IMAGE, PROJECTS, REGISTRY_BASE, copy_project
from tests.helpers import cli, image_facts, machine_of

pytestmark = [pytest.mark.engine, pytest.mark.registry]


def with_platforms(root, line: str, base: str):
    text = (root / "imagesmith.yaml").read_text()
    text = text.replace("platform: linux/amd64\n", line).replace(
        "base: imagesmith-base:bookworm-py311\n", f"base: {base}\n"
    )
    (root / "imagesmith.yaml").write_text(text)
    subprocess.run(["git", "commit", "-qam", "platforms"], cwd=root, check=True, capture_output=True)
    return root


@pytest.fixture(scope="module")
def arm64_built(tmp_path_factory, engine, arm64_base):
    root = copy_project(PROJECTS / "tiny-native", tmp_path_factory.mktemp("arm64") / "tiny-native")
    with_platforms(root, "platform: linux/arm64\n", arm64_base)
    spec = load_spec(root)
    result = build_project(spec, engine, BuildOptions(tag="imagesmith-test/native-arm64"))
    return spec, result


@pytest.mark.xdist_group("platforms-arm64-alone")  # apart from the two-platform index
def test_arm64_alone_runs_aarch64_with_its_binary_wheel(arm64_built, engine):
    spec, result = arm64_built
    serve = engine.image(result.images["serve"].ref)
    assert serve.platform == "linux/arm64"
    assert machine_of(result.images["serve"].ref) == "aarch64"
    lock = read_lock(spec.lock_path)
    assert lock.platform == "linux/arm64" and lock.base.digest == engine.image(ARM64_BASE_IMAGE).id
    assert serve.labels["io.imagesmith.parity"] == parity.digest(parity.manifest_from_lock(lock)) == result.parity
    assert image_facts(engine, result.images["serve"].ref)["manifest"]["platform"] == "linux/arm64"
    dockerfile = spec.dockerfile_path.read_text()
    assert "FROM --platform=linux/arm64 ${IMAGESMITH_BASE} AS base\n" in dockerfile
    proc = cli("verify", result.images["serve"].ref, "--lock", str(spec.lock_path), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.xdist_group("platforms-arm64-alone")  # apart from the two-platform index
def test_a_local_base_of_another_platform_is_refused(tmp_path, base_image):
    root = copy_project(PROJECTS / "tiny-native", tmp_path / "tiny-native")
    with_platforms(root, "platform: linux/arm64\n", base_image)
    proc = cli("lock", "-p", str(root))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "is a linux/amd64 image, but the spec builds for linux/arm64" in proc.stderr
    assert not (root / "imagesmith.lock").exists()


@pytest.fixture(scope="module")
def both_pushed(tmp_path_factory, engine, registry):
    root = copy_project(PROJECTS / "tiny-native", tmp_path_factory.mktemp("both") / "tiny-native")
    with_platforms(root, "platforms: [linux/amd64, linux/arm64]\n", REGISTRY_BASE)
    spec = load_spec(root)
    repo = f"{registry}/imagesmith-test/native-both-{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    result = build_project(
        spec, engine, BuildOptions(tag="imagesmith-test/native-both", push=repo), progress=lines.append
    )
    # what runs emulated is said for the foreign platform only, never for the build platform's own
    said = [line for line in lines if line.startswith("linux/arm64: ")]
    assert len(said) == 1 and not any(line.startswith("linux/amd64: ") for line in lines), lines
    assert "installed natively on linux/amd64" in said[0], said
    return spec, result, repo


def test_both_platforms_push_one_index_per_role_each_with_its_own_parity(both_pushed):
    spec, result, repo = both_pushed
    locks = read_locks(spec.lock_path)
    assert list(locks) == ["linux/amd64", "linux/arm64"]
    assert {lock.base.index for lock in locks.values()} == {Registry().digest(locks["linux/amd64"].base.name)}
    assert locks["linux/amd64"].base.digest != locks["linux/arm64"].base.digest
    # no platform markers: the same pins, each listing every file of its version (as uv writes
    # them), from which each platform's wheel is taken (the arm64 image runs aarch64 markupsafe)
    assert locks["linux/amd64"].packages == locks["linux/arm64"].packages
    registry = Registry()
    for role in ("train", "serve"):
        index = json.loads(registry.raw(f"{repo}:{role}")[0])
        platforms = sorted(
            f"{m['platform']['os']}/{m['platform']['architecture']}"
            for m in index["manifests"]
            if m.get("platform", {}).get("architecture") != "unknown"
        )
        assert platforms == ["linux/amd64", "linux/arm64"]
        for platform, lock in locks.items():
            info = registry.image(f"{repo}:{role}", platform)
            assert info.platform == platform
            assert info.labels["io.imagesmith.parity"] == parity.digest(parity.manifest_from_lock(lock))
            assert "io.imagesmith.manifest" not in info.labels
            assert info.labels["io.imagesmith.role"] == role
    assert result.parity == parity.index_digest(result.platforms)
    assert set(result.platforms) == {"linux/amd64", "linux/arm64"}


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_verify_by_registry_reference_per_platform_without_pulling(both_pushed, engine, platform):
    spec, _, repo = both_pushed
    ref = f"{repo}:serve"
    if engine.has_image(ref):  # the build named its local image so too: untag it, keep the image
        subprocess.run(["docker", "rmi", ref], check=True, capture_output=True)
    proc = cli("verify", ref, "--platform", platform, "--labels-only", "--lock", str(spec.lock_path), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["parity"] == parity.digest(parity.manifest_from_lock(read_lock(spec.lock_path, platform)))
    assert report["id"] == Registry().platform_digest(ref, platform)[0]  # that platform's manifest
    assert not engine.has_image(ref)  # read from the registry, never pulled
    shown = json.loads(cli("inspect", ref, "--platform", platform, "--json").stdout)
    assert shown["platform"] == platform and shown["manifest"]["platform"] == platform


def test_verify_of_the_arm64_image_against_the_amd64_lock_fails(both_pushed):
    spec, _, repo = both_pushed
    amd64 = read_lock(spec.lock_path, "linux/amd64")
    proc = cli(
        "verify",
        f"{repo}:serve",
        "--platform",
        "linux/arm64",
        "--labels-only",
        "--expect",
        parity.digest(parity.manifest_from_lock(amd64)),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr


def test_diff_of_the_two_platforms_says_which_pins_differ_and_why(both_pushed):
    spec, _, _ = both_pushed
    proc = cli(
        "diff",
        str(spec.lock_path),
        str(spec.lock_path),
        "--platform",
        "linux/amd64",
        "--platform-b",
        "linux/arm64",
        "--json",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    groups = json.loads(proc.stdout)["groups"]
    assert any(c["name"] == "platform" for c in groups["python"])
    assert [c["detail"] for c in groups["base"]] == ["each platform's own base image (linux/amd64, linux/arm64)"]
    assert "distributions" not in groups  # no marker, no other version: the same pins


def test_train_on_amd64_and_signoff_of_the_arm64_serve_image(both_pushed, engine, tmp_path):
    spec, result, repo = both_pushed
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    artifacts.chmod(0o777)
    train = result.images["train"].ref  # the local index: this amd64 engine runs its amd64 image
    proc = cli(
        "run", "train", "-p", str(spec.root), "--tag", "imagesmith-test/native-both", "--artifacts", str(artifacts)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stamp = json.loads((artifacts / "imagesmith-stamp.json").read_text())
    assert stamp["manifest"]["platform"] == "linux/amd64"
    proc = cli("golden", "-p", str(spec.root), "--image", train, "--model", str(artifacts))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    golden = json.loads((artifacts / "imagesmith-golden.json").read_text())
    assert golden["platform"] == "linux/amd64"

    serve = f"{repo}:serve"
    out = tmp_path / "signoff.json"
    proc = cli(
        "signoff",
        serve,
        "--platform",
        "linux/arm64",
        "-p",
        str(spec.root),
        "--model",
        str(artifacts),
        "--requests",
        "20",
        "--output",
        str(out),
    )
    record = json.loads(out.read_text())
    assert record["platform"] == "linux/arm64" and record["golden"]["platform"] == "linux/amd64"
    assert len(record["comparison"]["per_sample"]) == record["comparison"]["samples"] > 0
    assert "per sample, linux/arm64 against the linux/amd64 golden outputs:" in proc.stdout
    checks = {c["check"]: c for c in record["checks"]}
    assert checks["model"]["ok"], checks["model"]["detail"]
    assert "trained under the linux/amd64 image of this image's build" in checks["model"]["detail"]
    assert checks["outputs"]["detail"].startswith("golden outputs from linux/amd64 training, served on linux/arm64")
    # the gate: a signoff made on arm64 holds for the arm64 image, never for the amd64 one
    ok = cli(
        "verify", serve, "--platform", "linux/arm64", "--labels-only", "--model", str(artifacts), "--signoff", str(out)
    )
    assert (ok.returncode == 0) == record["passed"], ok.stdout + ok.stderr
    refused = cli(
        "verify", serve, "--platform", "linux/amd64", "--labels-only", "--model", str(artifacts), "--signoff", str(out)
    )
    assert refused.returncode == 1
    assert "it was made on linux/arm64, and" in refused.stdout


def test_a_signed_index_passes_per_platform_and_an_unsigned_entry_never_does(both_pushed, tmp_path):
    """`imagesmith sign` of an index signs each platform's image (with its own build record) and the
    index; `verify --key --platform P` then checks P's entry, the one Docker on P runs. An index an
    attacker writes around a signed amd64 entry and an unsigned arm64 one passes for neither."""
    from tests.registry_api import entry, put_index

    _, _, repo = both_pushed
    keys = tmp_path / "keys"
    keys.mkdir()
    env = {"COSIGN_PASSWORD": "pw", "PATH": "/usr/bin:/bin", "HOME": str(keys)}
    subprocess.run(["cosign", "generate-key-pair"], cwd=keys, env=env, check=True, capture_output=True)
    proc = cli("sign", f"{repo}:serve", "--key", str(keys / "cosign.key"), env={"COSIGN_PASSWORD": "pw"})
    assert proc.returncode == 0, proc.stderr
    registry = Registry()
    index_digest = registry.digest(f"{repo}:serve")
    for platform in ("linux/amd64", "linux/arm64"):
        proc = cli(
            "verify", f"{repo}:serve", "--platform", platform, "--labels-only", "--key", str(keys / "cosign.pub"),
            "--role", "serve", "--json",
        )  # fmt: skip
        doc = json.loads(proc.stdout)
        assert proc.returncode == 0, doc["problems"]
        child = registry.image(f"{repo}:serve", platform)
        assert (doc["digest"], doc["index_digest"], doc["platform"]) == (child.id, index_digest, platform)
        assert (
            f"signature: the image index signed by {keys / 'cosign.pub'}: a valid signature on {index_digest}"
            in (doc["checks"])
        )
    # surgery: the signed amd64 serve image beside the unsigned arm64 train image, in a new index
    amd64 = registry.image(f"{repo}:serve", "linux/amd64").repo_digests[0]
    arm64 = registry.image(f"{repo}:train", "linux/arm64").repo_digests[0]
    forged = put_index(repo, "forged", [entry(amd64, "linux", "amd64"), entry(arm64, "linux", "arm64")])
    for platform, unsigned in (("linux/arm64", arm64), ("linux/amd64", forged)):
        proc = cli("verify", forged, "--platform", platform, "--labels-only", "--key", str(keys / "cosign.pub"))
        assert proc.returncode == 1, proc.stdout
        assert f"FAIL: signature: no valid signature by {keys / 'cosign.pub'} on " in proc.stdout
        assert unsigned.split("@")[1] in proc.stdout
