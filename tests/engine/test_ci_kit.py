"""The CI kit, run for real: every `run:` step of examples/ci/github-actions.yml and every
`script:` line of examples/ci/gitlab-ci.yml, in order and verbatim, in a committed copy of the
tiny-native project (a binary wheel, a pure one, a model trained, served and signed off with the
standard library: what the steps do is the same for any project), against the loopback registry and this machine's engine; and the pre-commit hooks
of .pre-commit-hooks.yaml, which must pass on a committed project and fail when it drifts.

What a real runner does before the steps (checkout, buildx and cosign set-up, login, `pip install`)
is already true here; the pipelines' own DOCKER_HOST (GitLab's dind) is left out, so the steps run
against this engine, and IMAGESMITH_BASE names the local base (nothing can be pulled here). The
secrets a pipeline is given (the cosign key and its password) come from a key pair made here, and
the project commits its cosign.pub, as the examples say."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECTS, REPO, copy_project
from tests.helpers import cli

pytestmark = [pytest.mark.engine, pytest.mark.registry]

SKIP = ("pip install", "apk add", "docker login", 'echo "$CI_REGISTRY_PASSWORD"')
PASSWORD = "imagesmith-ci-kit-password"


def github_steps(path: Path) -> list[str]:
    workflow = yaml.safe_load(path.read_text())
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def gitlab_steps(path: Path) -> list[str]:
    pipeline = yaml.safe_load(path.read_text())
    order = pipeline["stages"]
    jobs = [
        (order.index(job["stage"]), name, job)
        for name, job in pipeline.items()
        if isinstance(job, dict) and "script" in job
    ]
    return [line for _, _, job in sorted(jobs, key=lambda j: j[0]) for line in job["script"]]


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    """A folder with an `imagesmith` command that runs this checkout's code with this Python."""
    folder = tmp_path_factory.mktemp("bin")
    (folder / "imagesmith").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m imagesmith "$@"\n')
    (folder / "imagesmith").chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def cosign_keys(tmp_path_factory) -> tuple[Path, Path]:
    """A cosign key pair, as `cosign generate-key-pair` makes it for a pipeline's secrets."""
    folder = tmp_path_factory.mktemp("keys")
    env = {"COSIGN_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin", "HOME": str(folder)}
    subprocess.run(["cosign", "generate-key-pair"], cwd=folder, env=env, check=True, capture_output=True)
    return folder / "cosign.key", folder / "cosign.pub"


def committed_project(dest: Path, base_image: str, env: dict, pub: Path | None = None) -> Path:
    """The tiny-native project as a project has it in git: lock and Dockerfile made and committed (and the
    public key, `pub`, as cosign.pub)."""
    root = copy_project(PROJECTS / "tiny-native", dest)
    if pub is not None:
        (root / "cosign.pub").write_bytes(pub.read_bytes())
    for argv in (["lock"], ["render"]):
        proc = subprocess.run(
            [sys.executable, "-m", "imagesmith", *argv, "-p", str(root)], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
    generated = [
        n for n in ("imagesmith.lock", "requirements.lock", "Dockerfile", ".imagesmith") if (root / n).exists()
    ]
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "add", "-f", *generated], cwd=root, check=True)  # as a project's .gitignore may skip them
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "lock"],
        cwd=root,
        check=True,
    )
    return root


@pytest.fixture(scope="module")
def committed(tmp_path_factory, shim, base_image, cosign_keys) -> Path:
    """The tiny-native project as committed with the key pair's cosign.pub, locked and rendered
    once per worker: each test works in its own copy (``committed_copy``)."""
    env = pipeline_env(shim, base_image, "unused", "unused")
    return committed_project(tmp_path_factory.mktemp("committed") / "app", base_image, env, cosign_keys[1])


def committed_copy(committed: Path, dest: Path) -> Path:
    """A copy of the committed project (its git history with it), for a test to change."""
    return Path(shutil.copytree(committed, dest, symlinks=True))


def pipeline_env(shim: Path, base_image: str, registry: str, image: str, **secrets: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env.update(
        PATH=f"{shim}:{env['PATH']}", IMAGESMITH_BASE=base_image, REGISTRY=registry, IMAGE=image, PYTHONPATH=str(REPO)
    )
    env.update(secrets)
    return env


def assert_the_gate_is_signed(doc: dict, env: dict) -> None:
    """The deploy gate of a kit: the signed path (`--key`, `--role serve`), passed, on one digest."""
    assert doc["ok"] is True and doc["role"] == "serve" and doc["mode"] == "content", doc["problems"]
    assert doc["signature"]["ok"] is True and doc["signature"]["digest"] == doc["digest"]
    assert doc["ref"] == f"{env['REGISTRY']}/{env['IMAGE']}@{doc['digest']}"
    assert any(line.startswith("signature: signed by") for line in doc["checks"]), doc["checks"]
    assert "signature: the signed record is of a serve image" in doc["checks"]


def run_steps(steps: list[str], cwd: Path, env: dict) -> list[str]:
    ran = []
    for step in steps:
        if step.strip().startswith(SKIP):
            continue
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", step], cwd=cwd, env=env, capture_output=True, text=True, timeout=1500
        )
        assert proc.returncode == 0, (
            f"step failed ({proc.returncode}):\n{step}\n--- stdout\n{proc.stdout[-2000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
        ran.append(step)
    return ran


@pytest.mark.xdist_group("ci-kit-github")  # a long test; its module fixtures (a shim, a key pair) are cheap
def test_the_github_actions_pipeline_runs_step_by_step(tmp_path, shim, base_image, registry, cosign_keys, committed):
    key, _ = cosign_keys
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    env = pipeline_env(
        shim, base_image, f"{registry}/imagesmith-ci-{uuid.uuid4().hex[:8]}", "native",
        COSIGN_KEY=key.read_text(), COSIGN_PASSWORD=PASSWORD, RUNNER_TEMP=str(runner_temp),
    )  # fmt: skip
    root = committed_copy(committed, tmp_path / "app")
    ran = run_steps(github_steps(REPO / "examples" / "ci" / "github-actions.yml"), root, env)
    # lock check, render check, key, build+sign, verify, train/golden/sign/signoff, gate, deploy.ref
    assert len(ran) == 8
    assert not (root / "cosign.key").exists()  # the secret key stays out of the project (and the build context)
    build = json.loads((root / "build.json").read_text())
    assert build["imagesmith_json"] == 1
    assert build["images"]["serve"]["pushed"].startswith(f"{env['REGISTRY']}/native@sha256:")
    for role in ("train", "serve"):
        assert build["images"][role]["signed"]["ref"] == build["images"][role]["pushed"]
    gate = json.loads((root / "gate.json").read_text())
    assert_the_gate_is_signed(gate, env)
    assert gate["digest"] == build["images"]["serve"]["digest"]
    assert any(line.startswith("signoff: ") for line in gate["checks"])
    assert any(line.startswith("signature: signoff.json is signed by") for line in gate["checks"]), gate["checks"]
    # what the pipeline hands the deploy: the digest the gate read, never the tag
    assert (root / "deploy.ref").read_text() == gate["ref"] + "\n" == build["images"]["serve"]["pushed"] + "\n"
    # the build wrote one cache per target into the registry
    for role in ("train", "serve"):
        raw = subprocess.run(
            ["docker", "buildx", "imagetools", "inspect", "--raw", f"{env['REGISTRY']}/native:buildcache-{role}"],
            capture_output=True,
            text=True,
        )
        assert raw.returncode == 0, raw.stderr


def test_the_gitlab_pipeline_runs_step_by_step(tmp_path, shim, base_image, registry, cosign_keys, committed):
    key, _ = cosign_keys
    env = pipeline_env(
        shim, base_image, f"{registry}/imagesmith-ci-{uuid.uuid4().hex[:8]}", "app",
        COSIGN_KEY=str(key), COSIGN_PASSWORD=PASSWORD,  # GitLab gives a File variable as its path
    )  # fmt: skip
    root = committed_copy(committed, tmp_path / "app")
    ran = run_steps(gitlab_steps(REPO / "examples" / "ci" / "gitlab-ci.yml"), root, env)
    assert len(ran) == 6  # lock check, render check, build+sign, verify, gate, deploy.ref
    build = json.loads((root / "build.json").read_text())
    # the build job pushes only (--push-only): nothing of its images is stored in the engine
    assert all(build["images"][role]["ref"] is None for role in ("train", "serve"))
    verified = json.loads((root / "verify.json").read_text())
    assert_the_gate_is_signed(verified, env)
    assert verified["digest"] == build["images"]["serve"]["digest"]
    assert (root / "deploy.ref").read_text() == verified["ref"] + "\n" == build["images"]["serve"]["pushed"] + "\n"


def test_pre_commit_hooks_pass_on_a_committed_project_and_fail_on_drift(tmp_path, shim, base_image, committed):
    env = pipeline_env(shim, base_image, "unused", "unused")
    root = committed_copy(committed, tmp_path / "app")
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["imagesmith-lock-check", "imagesmith-render-check"]
    for hook in hooks:
        proc = subprocess.run(shlex.split(hook["entry"]), cwd=root, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, (hook["id"], proc.stderr)
    spec = root / "imagesmith.yaml"
    spec.write_text(spec.read_text().replace("  - six==1.17.0\n", "  - six==1.17.0\n  - idna\n"))
    lock_hook = subprocess.run(shlex.split(hooks[0]["entry"]), cwd=root, env=env, capture_output=True, text=True)
    assert lock_hook.returncode == 1 and "requirements" in lock_hook.stderr
    (root / "Dockerfile").write_text("FROM scratch\n")
    render_hook = subprocess.run(shlex.split(hooks[1]["entry"]), cwd=root, env=env, capture_output=True, text=True)
    assert render_hook.returncode != 0


def test_build_print_gives_a_bake_file_that_builds_the_same_images(tmp_path, base_image, tiny_built):
    """`build --print` for pipelines that drive buildx themselves: the printed definition (named
    contexts included) built with plain `docker buildx bake` gives imagesmith's digests (those of
    the worker's shared `tiny` build, ``tiny_built``, from the same project and base)."""
    spec, result = tiny_built
    root = spec.root
    printed = cli("build", "-p", str(root), "--base", base_image, "-t", "imagesmith-test/printed-bake", "--print")
    assert printed.returncode == 0, printed.stderr
    definition = json.loads(printed.stdout)
    assert set(definition["target"]) == {"train", "serve"} and "base" in definition["target"]["serve"]["contexts"]
    (tmp_path / "bake.json").write_text(printed.stdout)
    meta = tmp_path / "meta.json"
    epoch = subprocess.run(
        ["git", "log", "-1", "--format=%ct"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    proc = subprocess.run(
        [
            "docker",
            "buildx",
            "bake",
            "-f",
            str(tmp_path / "bake.json"),
            "--provenance=false",
            "--metadata-file",
            str(meta),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env=dict(os.environ, SOURCE_DATE_EPOCH=epoch, BUILDX_NO_DEFAULT_ATTESTATIONS="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = json.loads(meta.read_text())
    for role in ("train", "serve"):
        assert digests[role]["containerimage.digest"] == result.images[role].id
