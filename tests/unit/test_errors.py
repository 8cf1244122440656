"""Bad input: one readable error naming the problem and the fix, exit 2, no traceback, and no
lock or Dockerfile left half written (the previous ones stay byte-identical)."""

import shutil
from pathlib import Path

import pytest

from tests.helpers import cli

TINY = Path(__file__).resolve().parents[1] / "projects" / "tiny"


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "tiny"
    shutil.copytree(TINY, root)
    return root


def test_malformed_spec(project):
    (project / "imagesmith.yaml").write_text('name: tiny\npython: "3.11"\nbase: [unclosed\n')
    proc = cli("lock", "-p", str(project))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: imagesmith.yaml: not valid YAML (line")
    assert "hint:" in proc.stderr
    assert not (project / "imagesmith.lock").exists() and not (project / "Dockerfile").exists()


def test_typo_in_key(project):
    spec = project / "imagesmith.yaml"
    spec.write_text(spec.read_text().replace("preprocessing:", "preprocesing:"))
    proc = cli("render", "-p", str(project))
    assert proc.returncode == 2
    assert "preprocesing: unknown key (did you mean 'preprocessing'?)" in proc.stderr


def test_missing_requirements_file(project):
    spec = project / "imagesmith.yaml"
    text = spec.read_text().replace("requirements:\n  - six==1.17.0\n", "requirements: requirements.txt\n")
    spec.write_text(text)
    proc = cli("build", "-p", str(project))
    assert proc.returncode == 2
    assert "requirements: 'requirements.txt' does not exist in" in proc.stderr
    assert not (project / "imagesmith.lock").exists() and not (project / "Dockerfile").exists()


def test_render_without_lock_says_to_lock(project):
    proc = cli("render", "-p", str(project))
    assert proc.returncode == 2
    assert "imagesmith.lock does not exist" in proc.stderr and "imagesmith lock" in proc.stderr


def test_engine_down_is_one_clear_error(project):
    proc = cli("build", "-p", str(project), env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert proc.returncode == 2
    assert "Docker engine is not reachable" in proc.stderr and "hint:" in proc.stderr
