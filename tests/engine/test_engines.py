"""Issue 10 on the real engine: paths a fresh machine and other engines take.

- A build from a base image this engine has never built from (a new image made in the test):
  the first build on a fresh machine. Pinned by digest, never resolved through a registry.
- A base tag moved to another image is refused, with a hint that names the way out.
- A second, empty engine (a stand-in for a remote one: its own store, cache and containerd)
  builds the tiny-native project (a binary wheel, a pure one, a model served with the standard
  library) from a registry base, writes a registry build cache per target and
  pushes both images straight from the build; the first engine verifies them by registry
  reference without pulling; golden and signoff run against the second engine.
- A third, fresh engine with ``--cache-from`` and ``--push-only`` rebuilds the same digests with
  every step cached, pushing them without storing them in the engine.
- A fresh engine that pulls the pushed serve image for verify reports the pull's steps.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

import pytest

from imagesmith.lock.lockfile import read_lock
from tests.conftest import PROJECTS, copy_project
from tests.engines import start_second_engine
from tests.helpers import cli, skopeo_inspect

pytestmark = [pytest.mark.engine]


def _fresh_base(engine, base_image: str) -> tuple[str, str]:
    """A new image (a commit of the base with a unique label): no build has ever used it."""
    nonce = uuid.uuid4().hex[:12]
    container = engine.client.containers.create(base_image, ["true"])
    try:
        image = container.commit(
            repository=f"imagesmith-fresh-{nonce}", tag="bookworm", changes=[f"LABEL io.imagesmith.test.nonce={nonce}"]
        )
    finally:
        container.remove(force=True)
    return f"imagesmith-fresh-{nonce}:bookworm", image.id


def _rmi(*refs: str) -> None:
    subprocess.run(["docker", "rmi", "-f", *refs], capture_output=True)


@pytest.mark.xdist_group("engines-local-base")  # not the second engines' chain below
def test_first_build_from_a_base_the_engine_never_built_from(tmp_path, engine, base_image):
    name, image_id = _fresh_base(engine, base_image)
    project = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    tag = f"imagesmith-test/{name.split(':')[0]}"
    try:
        proc = cli("build", "-p", str(project), "--base", name, "-t", tag, "--json")
        assert proc.returncode == 0, proc.stderr
        lock = read_lock(project / "imagesmith.lock")
        assert (lock.base.source, lock.base.digest) == ("local", image_id)
        # the Dockerfile still names the exact image for readers and plain BuildKit
        assert f"ARG IMAGESMITH_BASE={name}@{image_id}" in (project / "Dockerfile").read_text()
        built = json.loads(proc.stdout)["images"]
        base_layers = engine.image(image_id).layers
        for role in ("train", "serve"):
            info = engine.image(built[role]["ref"])
            assert info.id == built[role]["digest"]  # BuildKit's metadata digest is the engine's ID
            assert info.layers[: len(base_layers)] == base_layers
            assert info.labels["org.opencontainers.image.base.digest"] == image_id
        out = engine.run(f"{tag}:train", [], entrypoint=None)
        assert out.startswith("train 1.17.0")

        # The tag now names another image: refused (exit 2), nothing rebuilt from a guess.
        subprocess.run(["docker", "tag", base_image, name], check=True, capture_output=True)
        again = cli("build", "-p", str(project), "--base", name, "-t", tag)
        assert again.returncode == 2, again.stderr
        assert f"the base image {name} now names" in again.stderr
        assert "imagesmith lock --upgrade-base" in again.stderr
        # ... and re-pinning takes the image the tag names now
        repin = cli("lock", "-p", str(project), "--base", name, "--upgrade-base")
        assert repin.returncode == 0, repin.stderr
        assert read_lock(project / "imagesmith.lock").base.digest == engine.image(base_image).id
    finally:
        _rmi(name, image_id, f"{tag}:train", f"{tag}:serve")


@pytest.mark.xdist_group("engines-local-base")  # not the second engines' chain below
def test_an_unknown_builder_and_a_builder_that_keeps_images_to_itself(tmp_path, engine, base_image):
    project = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    proc = cli("build", "-p", str(project), "--base", base_image, "--builder", "no-such-builder")
    assert proc.returncode == 2
    assert "there is no buildx builder named 'no-such-builder'" in proc.stderr
    assert "spec" not in proc.stderr  # an engine problem gets an engine hint


# --------------------------------------------------------------------------------------------
# A second engine, a registry cache, push from the build, verify by reference


@pytest.fixture(scope="module")
def registry_base(engine, base_image, registry) -> str:
    """The base image in the loopback registry (what a second engine can pull). Single-platform,
    under a test name: the base's own name there is setup-engine.sh's multi-platform index."""
    ref = f"{registry}/imagesmith-test/base:bookworm-py311"
    subprocess.run(["docker", "tag", base_image, ref], check=True, capture_output=True)
    proc = subprocess.run(["docker", "push", ref], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ref


@pytest.fixture(scope="module")
def remote_build(tmp_path_factory, engine, registry_base, registry):
    """tiny-native locked on the first engine against the registry base, then built on an empty second
    engine with a per-target registry cache and pushed from the build. Returns a dict."""
    nonce = uuid.uuid4().hex[:8]
    root = copy_project(PROJECTS / "tiny-native", tmp_path_factory.mktemp("remote") / "tiny-native")
    locked = cli("lock", "-p", str(root), "--base", registry_base)
    assert locked.returncode == 0, locked.stderr
    push = f"{registry}/imagesmith-test/native-remote-{nonce}"
    cache = f"{registry}/imagesmith-test/native-cache-{nonce}:build"
    second = start_second_engine(11)
    try:
        proc = cli(
            "build",
            "-p",
            str(root),
            "--base",
            registry_base,
            "--locked",
            "--push",
            push,
            "--cache-to",
            f"type=registry,ref={cache},mode=max",
            "--json",
            env=second.env,
        )
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        artifacts = root / "artifacts"
        train = second.docker(  # as this user, as `imagesmith run` does: the folder is ours
            "run",
            "--rm",
            "--user",
            f"{os.getuid()}:{os.getgid()}",
            "-v",
            f"{artifacts}:/artifacts",
            result["images"]["train"]["pushed"],
            check=False,
        )
        assert train.returncode == 0, train.stderr
        yield {"root": root, "push": push, "cache": cache, "result": result, "second": second, "artifacts": artifacts}
    finally:
        second.stop()


def test_a_second_engine_pushes_both_images_from_the_build(remote_build, engine):
    result = remote_build["result"]
    for role in ("train", "serve"):
        img = result["images"][role]
        assert img["pushed"] == f"{remote_build['push']}@{img['digest']}"
        data = skopeo_inspect(f"{remote_build['push']}:{role}")
        assert data["Digest"] == img["digest"]
        assert data["Labels"]["io.imagesmith.parity"] == result["parity"]
        assert data["Labels"]["io.imagesmith.role"] == role
    # one cache per target in the registry
    for role in ("train", "serve"):
        assert skopeo_inspect(f"{remote_build['cache']}-{role}", raw=True)


def test_the_first_engine_verifies_by_registry_reference_without_pulling(remote_build, engine):
    result = remote_build["result"]
    serve, train = result["images"]["serve"]["pushed"], result["images"]["train"]["pushed"]
    proc = cli(
        "verify",
        serve,
        "--labels-only",
        "--lock",
        str(remote_build["root"] / "imagesmith.lock"),
        "--pair",
        train,
        "--json",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
    assert not engine.has_image(serve) and not engine.has_image(train)  # read from the registry only
    inspected = cli("inspect", serve, "--json")
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["parity"] == result["parity"]


def test_golden_and_signoff_run_against_the_second_engine(remote_build, tmp_path):
    """The model is copied into the containers (a remote engine cannot see this machine's
    folders), and the server is reached where that engine publishes it."""
    second, root, artifacts = remote_build["second"], remote_build["root"], remote_build["artifacts"]
    images = remote_build["result"]["images"]
    golden = cli(
        "golden", "-p", str(root), "--model", str(artifacts), "--image", images["train"]["pushed"], env=second.env
    )
    assert golden.returncode == 0, golden.stderr
    out = tmp_path / "signoff.json"
    proc = cli(
        "signoff",
        images["serve"]["pushed"],
        "--model",
        str(artifacts),
        "-p",
        str(root),
        "-o",
        str(out),
        "--requests",
        "30",
        env=second.env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(out.read_text())
    assert record["passed"] is True
    assert record["image"]["digest"] == images["serve"]["digest"]
    gate = cli("verify", images["serve"]["pushed"], "--model", str(artifacts), "--signoff", str(out), env=second.env)
    assert gate.returncode == 0, gate.stdout + gate.stderr


def _cached_rebuild(remote_build, number: int, push: str, *options: str) -> tuple[subprocess.CompletedProcess, list]:
    """`imagesmith build --locked` of the remote build's project on a new, empty engine
    (``start_second_engine(number)``) with the remote build's registry cache (``--cache-from``),
    pushed to ``push``, the plain log on stderr: the process and the names that engine stored."""
    root = remote_build["root"]
    fresh = start_second_engine(number)
    try:
        proc = cli(
            "build",
            "-p",
            str(root),
            "--locked",
            "--push",
            push,
            *options,
            "--json",
            "--progress",
            "plain",
            "--cache-from",
            f"type=registry,ref={remote_build['cache']}",
            "--base",
            read_lock(root / "imagesmith.lock").base.name,
            env=fresh.env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        stored = fresh.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    finally:
        fresh.stop()
    return proc, stored


def _ran_again(log: str) -> list[str]:
    """The RUN steps BuildKit's plain log (imagesmith.progress) shows running, not cached:
    "==> [stage i/n] RUN ..." when a step starts, then "    [stage i/n] cached" or
    "... done in 1.2s" when it ends. At least one RUN step must be in the log."""
    steps, cached = {}, set()
    for line in log.splitlines():
        if line.startswith("==> [") and " RUN " in line:
            steps[line[4 : line.index("]") + 1]] = line
        elif line.startswith("    [") and line.endswith("] cached"):
            cached.add(line.strip()[: -len(" cached")])
    assert steps, log[-3000:]
    return [label for label in steps if label not in cached]


def test_push_only_on_a_fresh_engine_reuses_the_registry_cache_and_stores_nothing_in_it(remote_build, tmp_path):
    """`--push-only` with --cache-from on a third, empty engine (a CI runner that builds and
    pushes): the same digests, and (BuildKit's plain log) no RUN step executes again; BuildKit's
    exporter pushes both images and neither stores nor unpacks them in the engine (no
    `unpacking to`, no second push `with docker`); the registry holds every blob (a full copy)
    and the first engine verifies the pushed pair in full. (An empty engine's build that stores
    its images, the default exporter, is the remote build's own.)"""
    result, push = remote_build["result"], remote_build["push"] + "-push-only"
    proc, stored = _cached_rebuild(remote_build, 12, push, "--push-only")
    ran = _ran_again(proc.stderr)
    assert not ran, "\n".join(line[:160] for line in proc.stderr.splitlines() if any(r in line for r in ran))
    again = json.loads(proc.stdout)
    for role in ("train", "serve"):
        img = again["images"][role]
        assert img["digest"] == result["images"][role]["digest"], role
        assert img["ref"] is None and img["tags"] == [] and img["pushed"] == f"{push}@{img['digest']}"
        assert skopeo_inspect(f"{push}:{role}")["Digest"] == img["digest"], role
    assert not [name for name in stored if name.startswith(push)], stored
    assert not re.search(rf"unpacking to {re.escape(push)}|with docker", proc.stderr), proc.stderr[-3000:]
    copied = subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", f"docker://{push}:serve", f"dir:{tmp_path / 'serve'}"],
        capture_output=True,
        text=True,
    )
    assert copied.returncode == 0, copied.stderr
    serve, train = again["images"]["serve"]["pushed"], again["images"]["train"]["pushed"]
    verified = cli("verify", serve, "--lock", str(remote_build["root"] / "imagesmith.lock"), "--pair", train)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_pull_reports_its_steps(remote_build):
    """verify's content check pulls a registry image into an engine that lacks it: one line when
    it starts, one per layer, one when it ends (a pull of gigabytes is never a silent wait). The
    image: the remote build's serve image (tiny-native), which no engine but the second, stopped
    since, ever stored."""
    serve = remote_build["result"]["images"]["serve"]["pushed"]
    fresh = start_second_engine(14)
    try:
        proc = cli("verify", serve, env=fresh.env)
    finally:
        fresh.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"imagesmith: pulling {serve}" in proc.stderr
    assert re.search(r"imagesmith:   layer [0-9a-f]{12}: (download|pull) complete", proc.stderr), proc.stderr
    assert re.search(rf"imagesmith: pulled {re.escape(serve)} \(\d+ layers fetched\)", proc.stderr), proc.stderr


@pytest.mark.registry
@pytest.mark.xdist_group("engines-classic")  # an engine of its own: runs beside the others
def test_the_classic_image_store_push_names_what_the_registry_has_and_push_only_is_refused(
    tmp_path, registry, registry_base
):
    """Docker's classic image store (overlay2, the default before the containerd store), one
    engine for both cases:

    - Its BuildKit reads no OCI layout as a named context: the staged source (source_context.py)
      is dropped and the Dockerfile's own source stage runs, said so, once the build finds out.
    - `build --push` pushes through the engine and then names the images locally. The classic
      store knows an image by its config digest, not by the manifest digest the build reports:
      tagging by the latter failed with "No such image" after both images were pushed. Now the
      local names exist, and the digests the build reports are the ones the registry serves.
    - Its exporter does not push for `--push-only` (buildx pushes through the engine only for a
      non-empty `push=true`): the build must say so (exit 2) instead of reporting pushed digests
      the registry does not have."""
    from imagesmith.engine.registry import Registry

    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    push = f"{registry}/imagesmith-test/classic-{uuid.uuid4().hex[:8]}"
    classic = start_second_engine(15, containerd_store=False)
    try:
        built = cli("build", "-p", str(root), "--base", registry_base, "--push", push, "--json", env=classic.env)
        assert built.returncode == 0, built.stderr[-3000:]
        assert "the builder reads no OCI layout (the classic image store)" in built.stderr, built.stderr[-3000:]
        images = json.loads(built.stdout)["images"]
        local = classic.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.split("\n")
        push_only = f"{registry}/imagesmith-test/classic-push-only-{uuid.uuid4().hex[:8]}"
        refused = cli(
            "build", "-p", str(root), "--base", registry_base, "--push", push_only, "--push-only", env=classic.env
        )
    finally:
        classic.stop()
    for role in ("train", "serve"):
        name, _, digest = images[role]["pushed"].partition("@")
        assert Registry().digest(f"{push}:{role}") == digest, (role, images[role])
        assert any(line.startswith(f"tiny:{role} ") for line in local), local
    assert refused.returncode == 2, refused.stdout + refused.stderr[-3000:]
    assert "error: --push-only: the build made the train image sha256:" in refused.stderr, refused.stderr[-3000:]
    assert (
        "the builder did not push it" in refused.stderr
        and "\nhint: --push-only needs the engine's containerd" in refused.stderr
    )
