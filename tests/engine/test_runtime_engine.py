"""The runtime on the real engine: seeding in every process, the stamp written by train and
checked by serve and `verify --model`, the preprocessing wheel in the images.

Reuses the session builds (`iris_built`, `tiny_built`); builds one edited copy of `tiny` and one
derived image (FROM the iris serve image, adding a probe app for uvicorn).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from imagesmith import parity
from imagesmith.build import BuildOptions, build_project
from imagesmith.lock.lockfile import read_lock
from imagesmith.runtime.stamp import STAMP_FILE
from imagesmith.spec.load import load_spec
from tests.conftest import shared_repo
from tests.helpers import cli, docker_build

pytestmark = pytest.mark.engine

DRAW = """\
import importlib.util, json, random, subprocess, sys

# before this script imports anything heavy: the runtime's seed hook loaded none of it either
HEAVY = sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "sklearn", "torch", "tensorflow"))
HOOKED = any(type(f).__name__ == "SeedFinder" for f in sys.meta_path)
INSTALLED = importlib.util.find_spec("numpy") is not None

import numpy as np


def draws():
    return {"random": random.random(), "numpy": float(np.random.rand()), "hash": hash("imagesmith")}


if __name__ == "__main__":
    out = draws()
    out["imports"] = [HEAVY, INSTALLED, HOOKED]
    if "--child" not in sys.argv:  # a process the command starts is seeded too
        child = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True, check=True)
        out["child"] = json.loads(child.stdout)
    print(json.dumps(out, sort_keys=True))
"""

PROBE_APP = """\
import json, os, random
import numpy as np

VALUES = {"random": random.random(), "numpy": float(np.random.rand()), "hash": hash("imagesmith")}


async def app(scope, receive, send):
    body = json.dumps(dict(VALUES, pid=os.getpid()), sort_keys=True).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"""

# The same draws seeded by hand, with the runtime's hook switched off (empty IMAGESMITH_SEED).
EXPLICIT = (
    "import json, random, numpy as np; random.seed(42); np.random.seed(42); "
    "print(json.dumps({'random': random.random(), 'numpy': float(np.random.rand()), "
    "'hash': hash('imagesmith')}, sort_keys=True))"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, path: str = "/", body=None, deadline: float = 180.0):
    """GET (or POST JSON) on 127.0.0.1:port, retrying until the server answers."""
    data = json.dumps(body).encode() if body is not None else None
    end = time.monotonic() + deadline
    while True:
        try:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}", data=data, headers={"content-type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.5)


class Server:
    """`imagesmith run serve ...` in the background; removed by name afterwards."""

    def __init__(self, *args: str, name: str):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imagesmith", "run", "serve", "--name", name, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)
        try:
            self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="module")
def expected(iris_built, engine):
    _, result = iris_built
    out = engine.run(
        result.images["train"].ref,
        ["-c", EXPLICIT],
        entrypoint=["env", "IMAGESMITH_SEED=", "PYTHONHASHSEED=42", "/opt/venv/bin/python"],
    )
    return json.loads(out)


@pytest.fixture(scope="module")
def iris_model(iris_trained):
    """The iris example trained once per run in its train image through `imagesmith run train`
    (``iris_trained``, shared with test_signoff_engine.py: its folder also holds golden outputs)."""
    return iris_trained


# --------------------------------------------------------------------------------------------
# Seeds


def test_unseeded_draws_are_the_spec_seed_s_in_every_run_image_and_child(iris_built, engine, expected, tmp_path):
    _, result = iris_built
    (tmp_path / "draw.py").write_text(DRAW)
    tmp_path.chmod(0o755)  # readable by the images' non-root user
    vol = {str(tmp_path): {"bind": "/probe", "mode": "ro"}}
    runs = [
        json.loads(engine.run(result.images[role].ref, ["python", "/probe/draw.py"], volumes=vol))
        for role in ("train", "train", "serve")
    ]
    for run in runs:
        child = run.pop("child")
        # a command that imports nothing heavy does not load numpy (the hook waits for its import)
        assert run.pop("imports") == child.pop("imports") == [[], True, True], run
        assert run == expected and child == expected
    # the expected values are not what an unseeded interpreter gives
    loose = engine.run(
        result.images["train"].ref,
        ["-c", "import random; print(random.random())"],
        entrypoint=["env", "IMAGESMITH_SEED=", "PYTHONHASHSEED=random", "/opt/venv/bin/python"],
    )
    assert float(loose) != expected["random"]


def test_uvicorn_workers_see_the_seeded_state(iris_built, expected, tmp_path):
    spec, result = iris_built
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "probe_app.py").write_text(PROBE_APP)
    docker_build(
        f"FROM {result.images['serve'].ref}\nCOPY probe_app.py /probe/probe_app.py\n",
        "imagesmith-test/iris-probe:serve",
        tmp_path / "ctx",
    )
    empty = tmp_path / "artifacts"
    empty.mkdir()
    port = free_port()
    name = f"imagesmith-test-uvicorn-{port}"
    with Server(
        "-p",
        str(spec.root),
        "-t",
        "imagesmith-test/iris-probe",
        "--artifacts",
        str(empty),
        "--port",
        str(port),
        "--",
        "uvicorn",
        "probe_app:app",
        "--app-dir",
        "/probe",
        "--host",
        "0.0.0.0",
        "--port",
        str(spec.serve.port),
        "--workers",
        "2",
        "--lifespan",
        "off",
        name=name,
    ):
        answers = [http(port) for _ in range(6)]
        published = subprocess.run(["docker", "port", name, str(spec.serve.port)], capture_output=True, text=True)
        assert published.stdout.strip() == f"127.0.0.1:{port}"
    for answer in answers:
        answer.pop("pid")
        assert answer == expected


# --------------------------------------------------------------------------------------------
# Train, stamp, serve


def test_iris_trains_is_stamped_and_served(iris_built, iris_model, engine):
    spec, result = iris_built
    lock = read_lock(spec.lock_path)
    stamp = json.loads((iris_model / STAMP_FILE).read_text())
    assert stamp["parity"] == result.parity == parity.digest(stamp["manifest"])
    assert stamp["preprocessing"] == {"name": "iris-preprocessing", "version": lock.preprocessing_version}
    assert stamp["manifest"]["preprocessing_version"] == lock.preprocessing_version
    assert stamp["seed"] == 42
    assert stamp["image"] == {"digest": result.images["train"].id, "ref": f"{shared_repo('iris')}:train"}
    assert set(stamp["artifacts"]) == {"metrics.json", "model.joblib"}
    from imagesmith.fsutil import sha256_file

    assert stamp["artifacts"]["model.joblib"] == sha256_file(iris_model / "model.joblib")

    port = free_port()
    with Server(
        "-p",
        str(spec.root),
        "-t",
        shared_repo("iris"),
        "--artifacts",
        str(iris_model),
        "--port",
        str(port),
        name=f"imagesmith-test-iris-{port}",
    ):
        answer = http(
            port, "/predict", [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]
        )
    assert answer["classes"] == ["setosa"]

    ok = cli("verify", f"{shared_repo('iris')}:serve", "--model", str(iris_model))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok: model: the model was trained under this image's parity" in ok.stdout


def test_model_stamped_under_another_parity_is_refused(iris_built, iris_model, tmp_path):
    spec, _ = iris_built
    other = tmp_path / "artifacts"
    shutil.copytree(iris_model, other)
    stamp = json.loads((other / STAMP_FILE).read_text())
    stamp["manifest"]["packages"]["numpy"]["version"] = "1.0.0"
    stamp["parity"] = parity.digest(stamp["manifest"])
    (other / STAMP_FILE).write_text(json.dumps(stamp))
    run = ["run", "serve", "-p", str(spec.root), "-t", shared_repo("iris"), "--artifacts", str(other)]

    refused = cli(*run, "--", "python", "-c", "print('started')")
    assert refused.returncode == 3 and "started" not in refused.stdout
    assert f"the model was trained under parity {stamp['parity']}" in refused.stderr
    assert "packages: numpy is" in refused.stderr and "expected 1.0.0" in refused.stderr

    # the model check is the same with or without the content probe (the full verify of this image
    # with a model: test_iris_trains_is_stamped_and_served)
    verified = cli("verify", f"{shared_repo('iris')}:serve", "--labels-only", "--model", str(other), in_process=True)
    assert verified.returncode == 1
    assert "FAIL: model:   packages: numpy is" in verified.stdout and "expected 1.0.0" in verified.stdout

    forced = cli(*run, "--allow-mismatch", "--", "python", "-c", "print('started')")
    assert forced.returncode == 0 and forced.stdout.strip() == "started"
    assert "SERVING A MODEL THAT DOES NOT MATCH THIS IMAGE" in forced.stderr


def test_editing_preprocessing_changes_its_version_and_refuses_the_old_model(tiny_built, engine, base_image, tmp_path):
    spec, result = tiny_built
    art = tmp_path / "artifacts"
    trained = cli(
        "run",
        "train",
        "-p",
        str(spec.root),
        "-t",
        shared_repo("tiny"),
        "--artifacts",
        str(art),
        "--",
        "python",
        "-c",
        "open('/artifacts/model.txt', 'w').write('m')",
    )
    assert trained.returncode == 0, trained.stderr
    old_version = read_lock(spec.lock_path).preprocessing_version
    assert json.loads((art / STAMP_FILE).read_text())["preprocessing"]["version"] == old_version
    model_check = ("--labels-only", "--model", str(art))  # the content probe is not what this is about
    assert cli("verify", f"{shared_repo('tiny')}:serve", *model_check, in_process=True).returncode == 0

    # the project as the user has it, lock and all: the edit re-locks only its preprocessing
    root = Path(shutil.copytree(spec.root, tmp_path / "edited"))
    prep = root / "app" / "prep.py"
    prep.write_text(prep.read_text().replace("divide by the largest value", "divide by the maximum"))
    edited = load_spec(root)
    build_project(edited, engine, BuildOptions(base=base_image, tag="imagesmith-test/tiny-edited", targets=("serve",)))
    new_version = read_lock(edited.lock_path).preprocessing_version
    assert new_version != old_version and new_version.startswith("0+sha256.")

    refused = cli("run", "serve", "-p", str(root), "-t", "imagesmith-test/tiny-edited", "--artifacts", str(art))
    assert refused.returncode == 3
    assert f"preprocessing_version: '{new_version}', expected '{old_version}'" in refused.stderr
    assert "preprocessing: app/prep.py is sha256:" in refused.stderr
    verified = cli("verify", "imagesmith-test/tiny-edited:serve", *model_check, in_process=True)
    assert verified.returncode == 1 and f"expected '{old_version}'" in verified.stdout


def test_the_image_s_preprocessing_wheel_is_the_exported_wheel(tiny_built, engine, tmp_path):
    spec, result = tiny_built
    version = read_lock(spec.lock_path).preprocessing_version
    exported = cli("export", "preprocessing", "-p", str(spec.root), "-o", str(tmp_path / "export"), "--json")
    assert exported.returncode == 0, exported.stderr
    info = json.loads(exported.stdout)
    assert info["version"] == version and info["name"] == "tiny-preprocessing"
    wheel = Path(info["wheel"])
    # the stage the images install from, built by plain BuildKit from the rendered Dockerfile
    subprocess.run(
        [
            "docker",
            "buildx",
            "build",
            "-q",
            "--target",
            "preprocessing",
            "--output",
            f"type=local,dest={tmp_path / 'stage'}",
            "-f",
            str(spec.dockerfile_path),
            str(spec.root),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (tmp_path / "stage" / wheel.name).read_bytes() == wheel.read_bytes()
    code = "import importlib.metadata as m; print(m.version('tiny-preprocessing'))"
    for role in ("train", "serve"):
        assert engine.run(result.images[role].ref, ["python", "-c", code]).strip() == version
