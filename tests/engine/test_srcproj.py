"""Issue 14, bullet 2, project (a) on the real engine: the project itself, installed.

tests/projects/srcproj is a src-layout project with `[project].dependencies`, a setuptools
build backend, console scripts for train and serve and package data read with
importlib.resources. `imagesmith init --pyproject` writes its [tool.imagesmith] table, then
`imagesmith build` builds its wheel (backend pinned and hashed in the lock) and installs it into
both images as the last layer: train writes a model, serve answers one prediction, verify passes,
the project's wheel built again gives identical images, and a one-line code edit rebuilds that one layer only."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from imagesmith.build import BuildOptions, build_project
from imagesmith.spec.load import load_spec
from tests.conftest import PROJECTS, copy_project
from tests.helpers import cli, serve_one

pytestmark = pytest.mark.engine

TAG = "imagesmith-test/srcproj"


@pytest.fixture(scope="module")
def srcproj(tmp_path_factory, engine, base_image):
    root = copy_project(PROJECTS / "srcproj", tmp_path_factory.mktemp("srcproj") / "srcproj")
    proc = cli("init", "--pyproject", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = cli("build", "--base", base_image, "--tag", TAG, "--json", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, json.loads(proc.stdout)


def _python(engine, ref: str, code: str) -> str:
    return engine.run(ref, ["-c", code], entrypoint=["/opt/venv/bin/python"]).strip()


def test_init_names_the_console_scripts_and_the_lock_pins_the_backend(srcproj):
    root, _ = srcproj
    spec = load_spec(root)
    assert spec.project is not None and spec.project.name == "srcproj"
    assert spec.train.command == ("srcproj-train",) and spec.serve.command == ("srcproj-serve",)
    assert spec.source == ()  # the code reaches the images as the project's wheel, not copied to /app
    lock = json.loads((root / "imagesmith.lock").read_text())
    assert [p["name"] for p in lock["packages"]] == ["six"]  # the backend is not an image dependency
    assert [p["name"] for p in lock["build_system"]] == ["setuptools"]
    assert all(h.startswith("sha256:") for p in lock["build_system"] for h in p["hashes"])


def test_the_project_is_installed_with_its_scripts_and_data(srcproj, engine):
    _, result = srcproj
    code = (
        "import json, shutil, importlib.metadata as m, srcproj; "
        "print(json.dumps([srcproj.__file__, m.version('srcproj'), shutil.which('srcproj-train'), "
        "shutil.which('srcproj-serve'), srcproj.weights()]))"
    )
    for role in ("train", "serve"):
        found = json.loads(_python(engine, result["images"][role]["ref"], code))
        assert found[0] == "/opt/venv/lib/python3.11/site-packages/srcproj/__init__.py", found
        assert found[1:4] == ["0.1.0", "/opt/venv/bin/srcproj-train", "/opt/venv/bin/srcproj-serve"], found
        assert found[4] == [0.5, 2.0, -1.0]  # package data through importlib.resources
    installed = json.loads(
        _python(
            engine,
            result["images"]["serve"]["ref"],
            "print(open('/opt/venv/lib/python3.11/site-packages/imagesmith_project.json').read())",
        )
    )
    assert installed["name"] == "srcproj" and installed["sha256"].startswith("sha256:")


def test_train_then_serve_one_prediction_then_verify(srcproj, engine, tmp_path):
    root, result = srcproj
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    proc = cli("run", "train", "--tag", TAG, "--artifacts", str(artifacts), cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((artifacts / "model.json").read_text()) == {
        "weights": [1.0, 4.0, -2.0],
        "offset": 0.0,
        "six": "1.17.0",
    }
    answer = serve_one(engine, result["images"]["serve"]["ref"], artifacts, b"[1, 1, 1]")
    assert answer == {"prediction": 3.0}
    for role in ("train", "serve"):
        proc = cli("verify", result["images"][role]["ref"], "--lock", str(root / "imagesmith.lock"), cwd=root)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "2 distributions installed as the manifest pins them" in proc.stdout  # six and the runtime


def test_the_project_s_wheel_built_again_gives_identical_images(srcproj, tmp_path, engine, base_image):
    """Another clone (other file times) with a file the wheel does not take: the project's wheel
    is built again (its step runs, and says the wheel it wrote) and both images are identical to
    the first build's, IDs included. The other steps are cached: that a clean build of every step
    is reproducible is test_build_repro.py's two clean builds of tiny."""
    root, result = srcproj
    other = Path(shutil.copytree(root, tmp_path / "srcproj"))
    (other / "src" / "srcproj" / "train.py").touch()
    # in the build context, new for each run (BuildKit's cache keys on content): the step runs again
    (other / "NOTES.txt").write_text(f"not in the wheel: {uuid.uuid4().hex}\n")
    log: list[str] = []
    again = build_project(load_spec(other), engine, BuildOptions(base=base_image, tag=f"{TAG}-again"), echo=log.append)
    assert [line for line in log if line.rstrip().endswith("/wheel/srcproj-0.1.0-py3-none-any.whl")], log[-40:]
    for role in ("train", "serve"):
        assert again.images[role].id == result["images"][role]["id"], role


def test_code_edit_rebuilds_only_the_project_s_layer(srcproj, tmp_path, engine, base_image):
    """The project's wheel is the last layer but the image facts' (which a code edit leaves as they were)."""
    root, result = srcproj
    edited = Path(shutil.copytree(root, tmp_path / "edited"))
    init = edited / "src" / "srcproj" / "__init__.py"
    init.write_text(init.read_text().replace("OFFSET = 0.0", "OFFSET = 1.0"))
    assert "OFFSET = 1.0" in init.read_text()
    proc = cli("lock", "--check", "--base", base_image, cwd=edited)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # a code edit does not make the lock stale
    after = build_project(load_spec(edited), engine, BuildOptions(base=base_image, tag=f"{TAG}-edited"))
    assert after.parity == result["parity"]  # the project's code is not in the parity
    for role in ("train", "serve"):
        old = engine.image(result["images"][role]["ref"]).layers
        new = engine.image(after.images[role].ref).layers
        assert len(old) == len(new)
        assert old[:-2] == new[:-2] and old[-2] != new[-2] and old[-1] == new[-1], role
    assert _python(engine, after.images["serve"].ref, "import srcproj; print(srcproj.OFFSET)") == "1.0"


def test_online_install_builds_the_same_layers(srcproj, tmp_path, engine, base_image):
    """--install online: the wheel-download stage fetches the backend's pinned wheels too."""
    root, result = srcproj
    other = Path(shutil.copytree(root, tmp_path / "online"))
    online = build_project(
        load_spec(other), engine, BuildOptions(base=base_image, tag=f"{TAG}-online", install="online")
    )
    assert engine.image(online.images["serve"].ref).layers == engine.image(result["images"]["serve"]["ref"]).layers


def test_a_flat_layout_with_another_backend(srcproj, tmp_path, engine, base_image):
    """The same code in the flat layout, built by hatchling (whose own dependencies are pinned
    too): `python -m srcproj.train` and its package data work in the image, and verify passes."""
    root, _ = srcproj
    flat = Path(
        shutil.copytree(root, tmp_path / "flat", ignore=shutil.ignore_patterns("imagesmith.lock", "requirements.lock"))
    )
    shutil.move(flat / "src" / "srcproj", flat / "srcproj")
    (flat / "src").rmdir()
    text = (flat / "pyproject.toml").read_text()
    text = text.replace('requires = ["setuptools>=68"]', 'requires = ["hatchling"]')
    text = text.replace('"setuptools.build_meta"', '"hatchling.build"')
    text = text.replace(
        'train = { command = ["srcproj-train"] }', 'train = { command = ["python", "-m", "srcproj.train"] }'
    )
    (flat / "pyproject.toml").write_text(text)
    spec = load_spec(flat)
    assert spec.project is not None and spec.project.backend == "hatchling.build"
    assert spec.train.command == ("python", "-m", "srcproj.train")
    result = build_project(spec, engine, BuildOptions(base=base_image, tag=f"{TAG}-flat"))
    backend = {p["name"] for p in json.loads((flat / "imagesmith.lock").read_text())["build_system"]}
    assert "hatchling" in backend and len(backend) > 1  # with its own dependencies, each hashed
    code = "import srcproj, json; print(json.dumps([srcproj.__file__, srcproj.weights()]))"
    found = json.loads(_python(engine, result.images["train"].ref, code))
    assert found == ["/opt/venv/lib/python3.11/site-packages/srcproj/__init__.py", [0.5, 2.0, -1.0]]
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    proc = cli("run", "train", "--tag", f"{TAG}-flat", "--artifacts", str(artifacts), cwd=flat)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((artifacts / "model.json").read_text())["weights"] == [1.0, 4.0, -2.0]
    proc = cli("verify", result.images["serve"].ref, "--lock", str(flat / "imagesmith.lock"), cwd=flat)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_backend_failure_is_named_after_install_project(srcproj, tmp_path, base_image):
    root, _ = srcproj
    broken = Path(shutil.copytree(root, tmp_path / "broken"))
    # setup.cfg is not a lock input of a project with static dependencies: the lock is still
    # fresh, so the build reaches the project's step without locking again
    (broken / "setup.cfg").write_text("[options]\npackages = no_such_package\n")
    proc = cli("build", "--base", base_image, "--tag", f"{TAG}-broken", cwd=broken)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "failed at install_project (srcproj: building its wheel failed)" in proc.stderr, proc.stderr


def test_a_src_layout_without_build_system_is_installed_and_importable(tmp_path, engine, base_image):
    """tests/projects/srcnobackend: [project] and no [build-system]. The packaging standards'
    fallback (setuptools' legacy backend, as pip does) builds and installs it, so its package
    is importable in both images and `python -m srcnobackend.train` runs; verify passes."""
    root = copy_project(PROJECTS / "srcnobackend", tmp_path / "srcnobackend")
    proc = cli("init", "--pyproject", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spec = load_spec(root)
    assert spec.project is not None and spec.project.backend == "setuptools.build_meta:__legacy__"
    assert spec.train.command == ("python", "-m", "srcnobackend.train") and spec.source == ()
    tag = "imagesmith-test/srcnobackend"
    proc = cli("build", "--base", base_image, "--tag", tag, "--json", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    code = "import json, srcnobackend, importlib.metadata as m; print(json.dumps([srcnobackend.__file__, m.version('srcnobackend')]))"
    for role in ("train", "serve"):
        found = json.loads(_python(engine, result["images"][role]["ref"], code))
        assert found == ["/opt/venv/lib/python3.11/site-packages/srcnobackend/__init__.py", "0.2.0"], found
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    proc = cli("run", "train", "--tag", tag, "--artifacts", str(artifacts), cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (artifacts / "model.txt").read_text() == "installed"
    proc = cli("verify", result["images"]["serve"]["ref"], "--lock", str(root / "imagesmith.lock"), cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
