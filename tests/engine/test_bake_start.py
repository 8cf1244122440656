"""A bake started before the builder's driver is known (build.py's ``confirm``), on the real
buildx: a definition the answer replaces is stopped and the replacement built; a refusal stops
the bake before it names an image; the current builder that keeps images to itself is
refused with the same words as a named one."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from imagesmith.engine.buildx import Buildx
from tests.conftest import PROJECTS, copy_project
from tests.helpers import cli

pytestmark = pytest.mark.engine


def _definition(tmp_path, name: str, text: str) -> dict:
    return {
        "group": {"default": {"targets": ["image"]}},
        "target": {
            "image": {
                "context": str(tmp_path),
                "dockerfile-inline": text,
                "output": [f"type=image,name={name}"],
            }
        },
    }


def _image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def _running_in(folder) -> list[int]:
    """The processes whose working folder is ``folder`` (a bake's docker command and its buildx
    plugin run in the test's own tmp_path)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd") == str(folder):
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_a_replaced_definition_is_built_instead(tmp_path, engine, base_image):
    """The answer comes once the first definition's buildx is in its 10 s step: that bake is
    stopped (its processes gone within 3 s, its image never named) and the replacement built. A
    first bake left running would still be in its step when the 3 s are over."""
    token = uuid.uuid4().hex[:8]
    first, second = f"imagesmith-test/confirm-first:{token}", f"imagesmith-test/confirm-second:{token}"
    started = _definition(tmp_path, first, f"FROM {base_image}\nRUN echo {token} && sleep 10\nLABEL which=first\n")
    instead = _definition(tmp_path, second, f"FROM scratch\nLABEL which=second token={token}\n")

    def replace():
        time.sleep(2)
        return instead

    try:
        metadata = Buildx().bake(started, cwd=tmp_path, epoch=0, confirm=replace)
        assert metadata["image"]["containerimage.digest"].startswith("sha256:")
        deadline = time.monotonic() + 3
        while _running_in(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _running_in(tmp_path) == []
        assert _image_exists(second) and not _image_exists(first)
    finally:
        subprocess.run(["docker", "image", "rm", "-f", first, second], capture_output=True)


def test_a_refusal_stops_the_bake(tmp_path, engine, base_image):
    """The refusal comes once buildx has read its bake file and is building (a refusal at once
    would find nothing to stop: the bake file, in a folder removed on the way out, gone before
    buildx read it); the build's one step takes 5 s, so a buildx left running names the image
    within the 12 s waited here, and a stopped one never does."""
    token = uuid.uuid4().hex[:8]
    name = f"imagesmith-test/confirm-refused:{token}"

    def refuse():
        time.sleep(2)
        raise RuntimeError("refused")

    text = f"FROM {base_image}\nRUN echo {token} && sleep 5\nLABEL token={token}\n"
    try:
        with pytest.raises(RuntimeError, match="refused"):
            Buildx().bake(_definition(tmp_path, name, text), cwd=tmp_path, epoch=0, confirm=refuse)
        time.sleep(12)  # a buildx plugin left running would have built and named the image by now
        assert not _image_exists(name)
    finally:
        subprocess.run(["docker", "image", "rm", "-f", name], capture_output=True)


def test_a_current_builder_that_keeps_images_to_itself_is_refused(tmp_path, engine, base_image):
    """BUILDX_BUILDER names a builder (the remote driver: a definition only, nothing started)."""
    builder = f"imagesmith-test-remote-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(
        ["docker", "buildx", "create", "--name", builder, "--driver", "remote", "tcp://127.0.0.1:9"],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    try:
        project = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
        proc = cli("build", "-p", str(project), "--base", base_image, "--json", env={"BUILDX_BUILDER": builder})
        assert proc.returncode == 2, proc.stderr
        answer = json.loads(proc.stdout)
        assert "(driver remote) keeps images in its own cache" in answer["error"]
        assert "--load" in answer["hint"]
    finally:
        subprocess.run(["docker", "buildx", "rm", builder], capture_output=True)
