"""Tags, labels and the version label on images built for real (issue 15)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import PROJECTS, copy_project
from tests.helpers import cli

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, engine, base_image):
    """`tiny` built once, at a release tag, with two -t tags and a user's --label: (project root,
    `build --json`'s result). The tests below only read it."""
    root = copy_project(PROJECTS / "tiny", tmp_path_factory.mktemp("tags") / "tiny")
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
    return root, json.loads(proc.stdout)


def test_tags_labels_and_version_on_built_images(tagged, engine, base_image):
    root, result = tagged
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


def test_user_labels_verify_and_a_label_added_later_does_not(tagged, tmp_path, engine):
    """Issue 23: the user's own --label labels are part of what was built (listed in
    io.imagesmith.labels), so verify passes; a label a child image adds later still fails."""
    root, result = tagged
    ref = result["images"]["serve"]["ref"]
    # labels and config are read from outside: --labels-only (no probe of the files, which no
    # label changes)
    ok = cli("verify", ref, "--labels-only", "--lock", str(root / "imagesmith.lock"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert engine.image(ref).labels["io.imagesmith.labels"] == '{"team":"vision"}'
    child = tmp_path / "child"
    child.mkdir()
    (child / "Dockerfile").write_text(f"FROM {ref}\nLABEL org.example.extra=y\n")
    subprocess.run(
        ["docker", "build", "-q", "-t", "imagesmith-test/tagged:child", str(child)],
        check=True,
        capture_output=True,
    )
    bad = cli("verify", "imagesmith-test/tagged:child", "--labels-only")
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
    ok = cli("verify", "imagesmith-test/no-git:serve", "--labels-only", "--lock", str(root / "imagesmith.lock"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
