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


def test_user_labels_verify_and_a_label_added_later_does_not(tmp_path, engine, base_image):
    """Issue 23: the user's own --label labels are part of what was built (listed in
    io.imagesmith.labels), so verify passes; a label a child image adds later still fails."""
    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    built = cli(
        "build", "-p", str(root), "--base", base_image, "-t", "imagesmith-test/user-labels",
        "--label", "org.example.team=x", "--target", "serve", "--json",
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    ref = json.loads(built.stdout)["images"]["serve"]["ref"]
    ok = cli("verify", ref, "--lock", str(root / "imagesmith.lock"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert engine.image(ref).labels["io.imagesmith.labels"] == '{"org.example.team":"x"}'
    child = tmp_path / "child"
    child.mkdir()
    (child / "Dockerfile").write_text(f"FROM {ref}\nLABEL org.example.extra=y\n")
    subprocess.run(
        ["docker", "build", "-q", "-t", "imagesmith-test/user-labels:child", str(child)],
        check=True,
        capture_output=True,
    )
    bad = cli("verify", "imagesmith-test/user-labels:child")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "LABEL org.example.extra=y is not set by imagesmith's Dockerfile" in bad.stdout


def test_a_build_outside_git_has_no_revision_source_or_version_label(tmp_path, engine, base_image):
    """Issue 23: a label with no value is left out (OCI annotations), not written as `unknown`;
    verify does not miss it."""
    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny", git=False)
    built = cli("build", "-p", str(root), "--base", base_image, "-t", "imagesmith-test/no-git", "--target", "serve")
    assert built.returncode == 0, built.stderr
    labels = engine.image("imagesmith-test/no-git:serve").labels
    assert labels["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"
    for name in ("revision", "source", "version"):
        assert f"org.opencontainers.image.{name}" not in labels, labels
    assert "unknown" not in labels.values()
    ok = cli("verify", "imagesmith-test/no-git:serve", "--lock", str(root / "imagesmith.lock"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
