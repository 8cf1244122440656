"""Tags, labels and the version label on images built for real (issue 15)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import PROJECTS, copy_project
from tests.helpers import cli

pytestmark = pytest.mark.engine


def test_tags_labels_and_version_on_built_images(tmp_path, engine, base_image):
    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    subprocess.run(["git", "tag", "v9.9.1"], cwd=root, check=True)
    proc = cli(
        "build",
        "-p",
        str(root),
        "--base",
        base_image,
        "-t",
        "imagesmith-test/tagged",
        "-t",
        "imagesmith-test/tagged-extra:ci-42",
        "--label",
        "team=vision",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    short = result["parity"].split(":")[1][:12]
    for role in ("train", "serve"):
        image = result["images"][role]
        expected = [
            f"imagesmith-test/tagged:{role}",
            f"imagesmith-test/tagged-extra:ci-42-{role}",
            f"imagesmith-test/tagged:{role}-{short}",
        ]
        assert image["tags"] == expected and image["ref"] == expected[0]
        for tag in expected:
            info = engine.image(tag)
            assert info.id == image["digest"]
        labels = engine.image(expected[0]).labels
        assert labels["team"] == "vision" and labels["io.imagesmith.role"] == role
        assert labels["org.opencontainers.image.version"] == "v9.9.1"  # the release tag on HEAD
    refused = cli("build", "-p", str(root), "--base", base_image, "--label", "io.imagesmith.parity=x")
    assert refused.returncode == 2 and "set by imagesmith itself" in refused.stderr
