"""Issue 27 on the real engine, on this x86-64 machine: a linux/arm64 image whose Python
environment is installed natively on linux/amd64 (python_env.py) is the image the emulated way
gives, bit for bit. The iris example for linux/arm64 alone, from the loopback registry's
two-platform base (its lock pins the base's amd64 image too: base.hosts), built twice with no
cache, once each way, each pushed to the registry: the same manifest digest for both roles."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from imagesmith.build import BuildOptions, build_project
from imagesmith.lock.lockfile import read_lock
from imagesmith.python_env import ON_TARGET
from imagesmith.spec.load import load_spec
from tests.conftest import EXAMPLES, REGISTRY_BASE, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.registry]


@pytest.fixture(scope="module")
def arm64_iris(tmp_path_factory, registry):
    root = copy_project(EXAMPLES / "iris", tmp_path_factory.mktemp("cross") / "iris")
    text = (root / "imagesmith.yaml").read_text()
    text = text.replace("platform: linux/amd64\n", "platform: linux/arm64\n")
    (root / "imagesmith.yaml").write_text(text.replace("base: python:3.11-slim\n", f"base: {REGISTRY_BASE}\n"))
    subprocess.run(["git", "commit", "-qam", "arm64"], cwd=root, check=True, capture_output=True)
    return load_spec(root)


def build(spec, engine, registry: str, **options):
    repo = f"{registry}/imagesmith-test/iris-cross-{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    result = build_project(
        spec,
        engine,
        BuildOptions(tag="imagesmith-test/iris-cross", push=repo, no_cache=True, **options),
        progress=lines.append,
    )
    return result, lines


@pytest.mark.xdist_group("python-env-cross")
def test_cross_installed_arm64_image_is_the_emulated_one_bit_for_bit(arm64_iris, engine, registry):
    cross, cross_lines = build(arm64_iris, engine, registry)
    lock = read_lock(arm64_iris.lock_path)
    assert lock.platform == "linux/arm64" and [p for p, _ in lock.base.hosts] == ["linux/amd64"]
    said = [line for line in cross_lines if line.startswith("linux/arm64: ")]
    assert said and "installed natively on linux/amd64" in said[0], cross_lines
    assert "the Python environment (" not in said[0]  # not among the emulated steps

    emulated, emulated_lines = build(arm64_iris, engine, registry, python_env=ON_TARGET)
    said = [line for line in emulated_lines if line.startswith("linux/arm64: ")]
    assert said and "the Python environment (IMAGESMITH_PYTHON_ENV=target)" in said[0], emulated_lines

    for role in ("train", "serve"):
        assert cross.images[role].pushed.split("@")[1] == emulated.images[role].pushed.split("@")[1], role
