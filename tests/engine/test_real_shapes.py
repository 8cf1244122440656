"""Five projects shaped like public ML repositories (issue 24, and the init audit), none written for imagesmith,
go the way a new user goes: `imagesmith init` (its spec used as written: no hand edit), `build`,
`run train`, the serve image answering one prediction over HTTP with the model train wrote, and
`verify --model`. The shapes: a FastAPI app made by a factory with its trainer in scripts/ (and a
Dockerfile of its own, left as it is); two apps in one repository (a health app and the
prediction app); `src/` used as a package by a Flask app, with a CSV beside the code; a uv project
pinned to another Python than the newest its requires-python allows; a FastAPI app in a folder
that is no package, importing the module beside it by its own name, served from that folder."""

from __future__ import annotations

import json
import subprocess

import pytest

from imagesmith.lock.uv_resolver import uv_bin
from imagesmith.spec.load import load_spec
from tests.conftest import PROJECTS, copy_project
from tests.helpers import cli, serve_one

pytestmark = pytest.mark.engine

SHAPES = {
    # fixture: (request path, request body, expected answer)
    "real-factory": ("/predict", {"size": 70}, {"price": 210.0}),
    "real-twoapps": ("/v1/predict", {"text": "a great day"}, {"score": 4, "label": "positive"}),
    "real-srcpkg": ("/predict", {"petal_length": 1.4, "petal_width": 0.2}, {"species": "setosa"}),
    "real-uvpinned": ("/predict", {"x": 10}, {"distance": 5.0}),
    "real-appfolder": ("/predict", {"x": 10}, {"y": 30.0}),
}


# Two xdist groups of shapes, by the dependencies their images share (FastAPI and
# uvicorn; Flask), so the module is two ~50 s units instead of one ~100 s one, and each pair's
# second build still finds the first's layers in BuildKit's cache. No module fixture is shared.
GROUPS = {
    "real-factory": "fastapi",
    "real-twoapps": "fastapi",
    "real-srcpkg": "flask",
    "real-uvpinned": "flask",
    "real-appfolder": "flask",  # FastAPI's layers, but the fastapi group has two already
}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.xdist_group(f"real-shapes-{GROUPS[n]}")) for n in sorted(SHAPES)]
)
def test_init_build_train_serve_verify_with_no_hand_edit(name, tmp_path, engine, base_image):
    root = copy_project(PROJECTS / name, tmp_path / name)
    own_dockerfile = (root / "Dockerfile").read_bytes() if (root / "Dockerfile").exists() else None
    if (root / "pyproject.toml").is_file():
        subprocess.run([uv_bin(), "lock", "--quiet"], cwd=root, check=True)  # as the project's developer does
    proc = cli("init", "--base", base_image, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = (root / "imagesmith.yaml").read_text()
    spec = load_spec(root)
    if name == "real-uvpinned":
        assert spec.requirements.lock == "uv_lock" and spec.python == "3.11"

    tag = f"imagesmith-test/{name}"
    built = cli("build", "-t", tag, "--json", cwd=root)
    assert built.returncode == 0, built.stderr[-3000:]
    images = json.loads(built.stdout)["images"]
    if own_dockerfile is not None:  # the project's own Dockerfile, untouched
        assert (root / "Dockerfile").read_bytes() == own_dockerfile

    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    trained = cli("run", "train", "--tag", tag, "--artifacts", str(artifacts), cwd=root)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert (artifacts / "imagesmith-stamp.json").is_file()

    path, body, expected = SHAPES[name]
    answer = serve_one(
        engine, images["serve"]["ref"], artifacts, json.dumps(body).encode(), path=path, at=spec.artifacts, tries=150
    )
    assert answer == expected

    # serve: its files probed against the lock; train: its own config, labels and model stamp,
    # and (--pair) the serve image's very layers, so probing its files again would prove nothing
    serve, train = images["serve"]["ref"], images["train"]["ref"]
    for ref, extra in ((serve, ()), (train, ("--labels-only", "--pair", serve))):
        proc = cli("verify", ref, *extra, "--lock", "imagesmith.lock", "--model", str(artifacts), "--json", cwd=root)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        checks = json.loads(proc.stdout)["checks"]
        assert ref == serve or any(c.endswith(f" filesystem layers as {serve}") for c in checks), checks
    assert (root / "imagesmith.yaml").read_text() == written  # nothing edited it on the way
