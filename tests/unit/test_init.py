"""`imagesmith init` on small projects made here: what it proposes and why, that the result is a
spec the parser accepts, that it never overwrites, and the [tool.imagesmith] form."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from imagesmith.init.propose import propose
from imagesmith.init.write import write_spec
from imagesmith.spec.load import load_spec
from tests.helpers import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_iris_example_gets_its_own_spec_back(tmp_path):
    root = tmp_path / "iris"
    shutil.copytree(
        EXAMPLES / "iris",
        root,
        ignore=shutil.ignore_patterns("imagesmith.yaml", "imagesmith.lock", "requirements.lock", "Dockerfile"),
    )
    values = propose(root).values
    own = yaml.safe_load((EXAMPLES / "iris" / "imagesmith.yaml").read_text())
    for key in ("python", "requirements", "preprocessing", "source", "train", "artifacts"):
        assert values[key] == own[key], key
    assert values["serve"] == {"command": own["serve"]["command"], "port": own["serve"]["port"]}
    proc = cli("init", "-p", str(root), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["written"] is True
    assert load_spec(root).name == "iris"
    again = cli("init", "-p", str(root))
    assert again.returncode == 2 and "never overwrites" in again.stderr


def test_src_layout_with_pyproject_dependencies_and_flask(tmp_path):
    root = tmp_path / "proj"
    (root / "src" / "shop" / "features").mkdir(parents=True)
    (root / "src" / "shop" / "__init__.py").write_text("")
    (root / "src" / "shop" / "train.py").write_text("print('train')\n")
    (root / "src" / "shop" / "web.py").write_text("from flask import Flask\napi = Flask(__name__)\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("")
    (root / ".python-version").write_text("3.12.4\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "Shop_Model"\nversion = "1.0"\n'
        'requires-python = ">=3.10"\ndependencies = ["flask", "gunicorn"]\n'
    )
    p = propose(root)
    assert p.values["name"] == "shop_model" and p.values["python"] == "3.12"
    # no [build-system]: installed by the standard's fallback (setuptools), so no source is copied
    assert p.values["requirements"] == {"pyproject": True} and "source" not in p.values
    assert p.values["train"] == {"command": ["python", "-m", "shop.train"]}
    assert p.values["serve"]["command"] == ["gunicorn", "-b", "0.0.0.0:8000", "shop.web:api"]
    assert any("src layout, installable (setuptools.build_meta:__legacy__)" in n for n in p.notes)
    path, text, _ = write_spec(root, pyproject=True)
    assert path.name == "pyproject.toml" and "[tool.imagesmith]" in path.read_text()
    assert load_spec(root).serve.port == 8000
    assert cli("init", "-p", str(root), "--pyproject").returncode == 2  # never overwrites


def test_print_writes_nothing_and_no_requirements_is_a_clear_error(tmp_path):
    (tmp_path / "requirements.txt").write_text("six\n")
    proc = cli("init", "-p", str(tmp_path), "--print")
    assert proc.returncode == 0 and 'requirements: "requirements.txt"' in proc.stdout
    assert not (tmp_path / "imagesmith.yaml").exists()
    assert "no training script found" in proc.stderr and "no server found" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli("init", "-p", str(empty))
    assert proc.returncode == 2 and "found no requirements" in proc.stderr


def test_init_takes_the_project_s_own_lock_and_dynamic_dependencies(tmp_path):
    from imagesmith.init.propose import propose

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\ndependencies = ["six"]\n')
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "uv.lock").write_text("version = 1\n")
    assert propose(tmp_path).values["requirements"] == {"uv_lock": True}  # the lock beats requirements.txt
    (tmp_path / "uv.lock").unlink()
    assert propose(tmp_path).values["requirements"] == {"pyproject": True}  # declared beats a requirements file
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\n')
    assert propose(tmp_path).values["requirements"] == "requirements.txt"  # nothing declared
    (tmp_path / "requirements.txt").unlink()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\ndynamic = ["dependencies"]\n')
    proposal = propose(tmp_path)
    assert proposal.values["requirements"] == {"pyproject": True}
    assert "build backend" in proposal.reasons["requirements"]


def test_a_project_with_its_own_dockerfile_gets_imagesmith_s_written_beside_it(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "requirements.txt").write_text("six==1.17.0\n")
    (root / "train.py").write_text("print('train')\n")
    (root / "Dockerfile").write_text("FROM python:3.11-slim\n")
    proc = cli("init", "-p", str(root))
    assert proc.returncode == 0, proc.stderr
    spec = load_spec(root)
    assert spec.dockerfile == "imagesmith.Dockerfile" and spec.dockerfile_path == root / "imagesmith.Dockerfile"
    assert "its own Dockerfile" in (root / "imagesmith.yaml").read_text()
    other = tmp_path / "generated"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns("imagesmith.yaml"))
    (other / "Dockerfile").write_text("# Generated by imagesmith 0.1 from imagesmith.yaml\nFROM scratch\n")
    assert "dockerfile" not in propose(other).values  # imagesmith's own file: replaced as before
