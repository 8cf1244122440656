"""Real projects as they come (issue 14), on the real engine: a uv project whose uv.lock is the
source of truth, its spec in [tool.imagesmith] with no requirements key."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from imagesmith.build import BuildOptions, build_project
from imagesmith.lock.uv_resolver import uv_bin
from imagesmith.spec.load import load_spec
from tests.conftest import PROJECTS, copy_project
from tests.helpers import cli, serve_one

TAG = "imagesmith-test/uvproj"
# The uv project's tests and the dynamic project's tests are xdist groups of their own, each with
# every user of its module fixture (so that fixture is still made once): three units of this
# module that workers can take at once, not one.
UV_GROUP = pytest.mark.xdist_group("projects-uv")
DYNAMIC_GROUP = pytest.mark.xdist_group("projects-dynamic")


def _uv_lock(root: Path) -> None:
    """uv.lock as the project's developer makes it (uv's default index; nothing is committed)."""
    subprocess.run([uv_bin(), "lock", "--quiet"], cwd=root, check=True)


def _init(root: Path) -> None:
    """`imagesmith init --pyproject`, as a new user starts: it writes [tool.imagesmith]."""
    proc = cli("init", "--pyproject", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[tool.imagesmith]" in (root / "pyproject.toml").read_text()


@pytest.fixture(scope="module")
def uvproj(tmp_path_factory, engine, base_image):
    root = copy_project(PROJECTS / "uvproj", tmp_path_factory.mktemp("uvproj") / "uvproj", git=False)
    _uv_lock(root)
    _init(root)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    spec = load_spec(root)
    assert spec.requirements.lock == "uv_lock"  # init chose the project's lock
    assert spec.train.command == ("python", "train.py") and spec.serve.command == ("python", "serve.py")
    result = build_project(spec, engine, BuildOptions(base=base_image, tag=TAG))
    return spec, result


def _in_image(engine, ref: str, code: str) -> str:
    return engine.run(ref, ["-c", code], entrypoint=["/opt/venv/bin/python"]).strip()


@UV_GROUP
def test_the_images_carry_exactly_the_uv_lock_pins(uvproj, engine):
    spec, result = uvproj
    locked = json.loads(spec.lock_path.read_text())
    assert {p["name"]: p["version"] for p in locked["packages"]} == {"six": "1.16.0"}  # not colorama, not the dev group
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps(sorted((d.metadata['Name'].lower(), d.version) for d in m.distributions())))"
    )
    for role in ("train", "serve"):
        installed = dict(json.loads(_in_image(engine, result.images[role].ref, code)))
        assert installed.get("six") == "1.16.0"
        assert "colorama" not in installed and "iniconfig" not in installed, installed
    proc = cli("verify", result.images["serve"].ref, "--lock", str(spec.lock_path), "--json", cwd=spec.root)
    assert proc.returncode == 0, proc.stdout


@UV_GROUP
def test_lock_check_fails_when_uv_lock_changes(uvproj, tmp_path, base_image):
    spec, _ = uvproj
    root = Path(shutil.copytree(spec.root, tmp_path / "changed"))  # with its imagesmith.lock
    assert cli("lock", "--check", "--base", base_image, cwd=root).returncode == 0
    text = (root / "pyproject.toml").read_text().replace("six==1.16.0", "six==1.17.0")
    (root / "pyproject.toml").write_text(text)
    _uv_lock(root)
    proc = cli("lock", "--check", "--base", base_image, cwd=root)
    assert proc.returncode == 1 and "requirements" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def _train_serve_verify(spec, result, engine, tag: str, artifacts: Path) -> None:
    """Train, serve one prediction from the model, verify both images: what a user does next."""
    artifacts.mkdir()
    proc = cli("run", "train", "--tag", tag, "--artifacts", str(artifacts), cwd=spec.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((artifacts / "model.json").read_text()) == {"six": "1.16.0"}
    answer = serve_one(engine, result.images["serve"].ref, artifacts, b"[]")
    assert answer == {"model": {"six": "1.16.0"}, "serving": "1.16.0"}
    for role in ("train", "serve"):
        proc = cli("verify", result.images[role].ref, "--lock", str(spec.lock_path), cwd=spec.root)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@UV_GROUP
def test_uv_project_trains_serves_and_verifies(uvproj, engine, tmp_path):
    spec, result = uvproj
    _train_serve_verify(spec, result, engine, TAG, tmp_path / "artifacts")


@UV_GROUP
def test_lock_writes_a_pylock_with_exactly_its_pins(uvproj, tmp_path, base_image):
    from imagesmith.lock.existing import pylock_pins, target_environment

    spec, _ = uvproj
    root = Path(shutil.copytree(spec.root, tmp_path / "pylock"))
    proc = cli("lock", "--base", base_image, "--pylock", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    locked = json.loads((root / "imagesmith.lock").read_text())["packages"]
    pins = pylock_pins(root / "pylock.toml", target_environment("3.11.2", "linux/amd64"))
    assert [(p.name, p.version) for p in pins] == [(p["name"], p["version"]) for p in locked]
    assert all(set(p.hashes) & set(q["hashes"]) for p, q in zip(pins, locked))
    assert (root / "pylock.toml").read_text().startswith("# Generated by imagesmith ")  # never over a user's own


# --- dynamic dependencies: read by the build backend in a container of the base ----------------


@pytest.fixture(scope="module")
def dynproj(tmp_path_factory, engine, base_image):
    """Locked with an empty cache, as a base's first lock on a machine: pip-compile's pip-tools venv
    is made in the base's container (lock/piptools_venv.py) and kept there for the next lock."""
    work = tmp_path_factory.mktemp("dynproj")
    root = copy_project(PROJECTS / "dynproj", work / "dynproj", git=False)
    _init(root)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    spec = load_spec(root)
    assert spec.requirements.pyproject and not spec.requirements.lock
    assert spec.train.command == ("python", "-m", "train")  # installed with the project
    env = {"XDG_CACHE_HOME": str(work / "cache")}
    proc = cli("lock", "--base", base_image, cwd=root, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = build_project(spec, engine, BuildOptions(base=base_image, tag="imagesmith-test/dynproj"))
    return spec, result, env


@DYNAMIC_GROUP
def test_dynamic_dependencies_come_from_the_backend(dynproj, engine, base_image, tmp_path):
    """The backend's dependencies are pinned; when what it reads changes, the lock is stale, and a
    second lock pins the new ones, running pip-compile from the venv the first lock kept (not
    made or installed again)."""
    from imagesmith.lock.piptools_venv import COMPLETE

    spec, result, env = dynproj
    locked = json.loads(spec.lock_path.read_text())
    assert {p["name"] for p in locked.get("build_system", [])} >= {"setuptools"}  # its backend, pinned
    assert {p["name"]: p["version"] for p in locked["packages"]} == {"six": "1.16.0"}
    assert _in_image(engine, result.images["train"].ref, "import six; print(six.__version__)") == "1.16.0"
    assert cli("lock", "--check", "--base", base_image, cwd=spec.root).returncode == 0
    venvs = Path(env["XDG_CACHE_HOME"]) / "imagesmith" / "pip-tools-venvs"
    (kept,) = [p for p in venvs.iterdir() if p.is_dir()]  # made by the first lock, whole
    made = (kept / COMPLETE).stat()
    changed = Path(shutil.copytree(spec.root, tmp_path / "changed"))
    (changed / "requirements.in").write_text("six==1.17.0\n")  # what the backend reads changed
    proc = cli("lock", "--check", "--base", base_image, cwd=changed)
    assert proc.returncode == 1 and "requirements" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    proc = cli("lock", "--base", base_image, cwd=changed, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    locked = json.loads((changed / "imagesmith.lock").read_text())
    assert {p["name"]: p["version"] for p in locked["packages"]} == {"six": "1.17.0"}
    assert [p for p in venvs.iterdir() if p.is_dir()] == [kept]  # no other venv, no staging left
    again = (kept / COMPLETE).stat()
    assert (again.st_ino, again.st_mtime_ns) == (made.st_ino, made.st_mtime_ns)


@DYNAMIC_GROUP
def test_dynamic_project_trains_serves_and_verifies(dynproj, engine, tmp_path):
    spec, result, _ = dynproj
    _train_serve_verify(spec, result, engine, "imagesmith-test/dynproj", tmp_path / "artifacts")


# --- a project with a Dockerfile of its own ----------------------------------------------------


def test_build_never_overwrites_the_project_s_own_dockerfile(tmp_path, base_image, engine):
    """`build` refuses, before anything runs, while the project's own Dockerfile is where it would
    write; with the spec's `dockerfile` it writes its own beside it and builds, the user's file
    byte for byte as it was."""
    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    own = b'FROM python:3.11-slim\nCOPY app /app\nCMD ["python", "-m", "app.main"]\n'
    (root / "Dockerfile").write_bytes(own)
    (root / "Dockerfile.dockerignore").write_bytes(b"data/\n")
    refused = cli("build", "-p", str(root), "--base", base_image, "-t", "imagesmith-test/own-dockerfile")
    assert refused.returncode == 2 and "was not written by imagesmith" in refused.stderr, refused.stderr
    assert "dockerfile: imagesmith.Dockerfile" in refused.stderr and not (root / "imagesmith.lock").exists()
    spec = root / "imagesmith.yaml"
    spec.write_text(spec.read_text() + "dockerfile: imagesmith.Dockerfile\n")
    built = cli("build", "-p", str(root), "--base", base_image, "-t", "imagesmith-test/own-dockerfile", "--json")
    assert built.returncode == 0, built.stderr
    assert (root / "Dockerfile").read_bytes() == own and (root / "Dockerfile.dockerignore").read_bytes() == b"data/\n"
    assert (root / "imagesmith.Dockerfile").read_text().startswith("# Generated by imagesmith ")
    ref = json.loads(built.stdout)["images"]["serve"]["ref"]
    assert cli("verify", ref, "--lock", str(root / "imagesmith.lock"), cwd=root).returncode == 0
