"""Signoff on the real engine with the iris example: golden outputs made in the train image,
the serve image signed off through its own server, a patched numeric library and a perturbed
model caught with the outputs that moved, the deploy gate, and the refusal to sign off on CPU when
the spec declares a GPU. (A latency budget that cannot be met: tests/unit/test_signoff.py, against a
real HTTP server on 127.0.0.1; the replay on the real engine is the passing signoff's here.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from imagesmith.run import run_role
from imagesmith.runtime.stamp import GOLDEN_FILE, STAMP_FILE
from tests.conftest import shared_repo
from tests.helpers import cli, docker_build

pytestmark = pytest.mark.engine

# A deliberately different numeric library: scikit-learn's logistic regression with a softmax
# that leans towards the last class (the module is recompiled: the image runs unchecked .pyc).
PATCH = """
_imagesmith_softmax = softmax


def softmax(X, copy=True):
    p = _imagesmith_softmax(X, copy=copy)
    p[:, -1] *= 1.5
    p /= p.sum(axis=1, keepdims=True)
    return p
"""
PATCHED_DOCKERFILE = """FROM {image}
USER root
COPY patch.py /tmp/patch.py
RUN f=/opt/venv/lib/python3.11/site-packages/sklearn/linear_model/_logistic.py \\
 && cat /tmp/patch.py >> $f && rm /tmp/patch.py \\
 && /opt/venv/bin/python -m compileall -q -f --invalidation-mode unchecked-hash $f
USER 10001:10001
"""
PERTURB = """
import joblib
b = joblib.load('/artifacts/model.joblib')
b['model'].coef_[2, 2] += 0.3  # class 2's weight of the petal length
joblib.dump(b, '/artifacts/model.joblib')
"""


@pytest.fixture(scope="module")
def trained(iris_built, iris_trained):
    """(spec, train ref, serve ref, artifacts folder with the model and its golden outputs): the
    run's one training of iris and its golden outputs (``iris_trained``, shared with
    test_runtime_engine.py)."""
    spec, result = iris_built
    return spec, result.images["train"].ref, result.images["serve"].ref, iris_trained


def signoff(spec_root: Path, image: str, model: Path, out: Path, *extra: str):
    return cli(
        "signoff", image, "--model", str(model), "-p", str(spec_root), "-o", str(out), "--requests", "60", *extra
    )


def project_with(spec_root: Path, dest: Path, **changes) -> Path:
    """A copy of the project whose imagesmith.yaml has ``changes`` (dotted keys) applied."""
    shutil.copytree(spec_root, dest, ignore=shutil.ignore_patterns("artifacts", ".git"))
    data = yaml.safe_load((dest / "imagesmith.yaml").read_text())
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[last] = value
    (dest / "imagesmith.yaml").write_text(yaml.safe_dump(data))
    return dest


def test_golden_outputs_are_made_in_the_train_image(trained, engine):
    spec, train_ref, _, folder = trained
    golden = json.loads((folder / GOLDEN_FILE).read_text())
    assert golden["image"] == {"ref": f"{shared_repo('iris')}:train", "digest": engine.image(train_ref).id}
    assert golden["predict"] == "app.predict:predict" and golden["samples"]["count"] == 20
    assert len(golden["outputs"]) == 20
    for row in golden["outputs"]:
        assert len(row) == 3 and sum(row) == pytest.approx(1.0)
    assert golden["outputs"][0].index(max(golden["outputs"][0])) == 0  # a setosa is a setosa
    stamp = json.loads((folder / STAMP_FILE).read_text())
    assert golden["model"]["parity"] == stamp["parity"]
    kinds = {lib["kind"] for lib in golden["hardware"]["libraries"]}
    assert "blas" in kinds and "openmp" in kinds


def test_signoff_of_the_serve_image_passes_and_the_gate_holds(trained, engine, tmp_path):
    spec, _, serve_ref, folder = trained
    out = tmp_path / "signoff.json"
    proc = signoff(spec.root, serve_ref, folder, out, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(proc.stdout)
    assert record.pop("imagesmith_json") == 1  # every --json document says its format
    assert record == json.loads(out.read_text())  # the rest is the signoff record, as written
    assert record["passed"] is True
    assert [c["check"] for c in record["checks"]] == ["model", "golden", "http", "latency", "outputs", "classes"]
    assert all(c["ok"] for c in record["checks"])
    assert record["image"]["digest"] == engine.image(serve_ref).id
    assert record["latency"]["requests"] == 60 and record["latency"]["errors"] == {}
    assert record["latency"]["budget_ms"] == 250.0
    assert record["comparison"]["out_of_tolerance"] == 0 and record["comparison"]["flipped_count"] == 0
    assert record["hardware"]["cpu"]["logical_cpus"] >= 1
    assert any("openblas" in lib["path"] for lib in record["hardware"]["libraries"])

    gate = cli("verify", serve_ref, "--labels-only", "--signoff", str(out), "--model", str(folder), in_process=True)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "ok: signoff: the signoff in" in gate.stdout and "FAIL" not in gate.stdout

    # another image digest: the same serve image with one more label
    other = "imagesmith-test/iris-signoff-other:serve"
    docker_build(f"FROM {serve_ref}\nLABEL io.example.rebuilt=1\n", other, tmp_path / "other")
    gate = cli("verify", other, "--labels-only", "--signoff", str(out), "--model", str(folder), in_process=True)
    assert gate.returncode == 1
    assert f"FAIL: signoff: it was made for image {record['image']['digest']}, {other} is " in gate.stdout

    # the gate needs the model it holds for
    gate = cli("verify", serve_ref, "--labels-only", "--signoff", str(out), in_process=True)
    assert gate.returncode == 2 and "--signoff needs --model" in gate.stderr


def test_a_patched_numeric_library_fails_with_the_outputs_that_moved(trained, tmp_path):
    spec, _, serve_ref, folder = trained
    patched = "imagesmith-test/iris-signoff-patched:serve"
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "patch.py").write_text(PATCH)
    docker_build(PATCHED_DOCKERFILE.format(image=serve_ref), patched, tmp_path / "ctx")
    out = tmp_path / "signoff.json"
    proc = signoff(spec.root, patched, folder, out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ok    model") and lines[1].startswith("ok    golden")
    outputs = next(line for line in lines if " outputs " in line)
    assert outputs.startswith("FAIL") and "values out of tolerance (rtol 1e-06, atol 1e-09)" in outputs
    assert any(line.startswith("outputs that moved (largest 10 of ") for line in lines)
    assert lines[-1] == f"{patched}: NOT signed off ({out})"
    record = json.loads(out.read_text())
    assert record["passed"] is False
    worst = record["comparison"]["worst"]
    assert worst and all(w["abs_error"] > 1e-3 for w in worst)
    assert {w["output"] for w in worst} <= {0, 1, 2}
    golden = json.loads((folder / GOLDEN_FILE).read_text())["outputs"]
    assert all(w["golden"] == golden[w["sample"]][w["output"]] for w in worst)


def test_a_perturbed_model_fails_naming_the_outputs_and_the_stale_golden(trained, engine, tmp_path):
    spec, _, serve_ref, folder = trained
    model = tmp_path / "artifacts"
    shutil.copytree(folder, model)
    # retrained, in effect: the train image re-stamps the altered coefficients (the stamp is valid)
    assert run_role(spec, engine, "train", ["python", "-c", PERTURB], tag=shared_repo("iris"), artifacts=model) == 0
    out = tmp_path / "signoff.json"
    proc = signoff(spec.root, serve_ref, model, out, "--json")
    assert proc.returncode == 1, proc.stderr
    record = json.loads(proc.stdout)
    checks = {c["check"]: c for c in record["checks"]}
    assert checks["model"]["ok"] and checks["http"]["ok"], checks
    assert not checks["golden"]["ok"] and "made for another model" in checks["golden"]["detail"]
    assert not checks["outputs"]["ok"]
    assert record["comparison"]["out_of_tolerance"] > 0 and record["comparison"]["max_abs_error"] > 1e-3


def test_a_model_changed_after_its_stamp_fails_before_anything_runs(trained, tmp_path):
    spec, _, serve_ref, folder = trained
    model = tmp_path / "artifacts"
    shutil.copytree(folder, model)
    with open(model / "model.joblib", "ab") as fh:
        fh.write(b"\0")
    proc = signoff(spec.root, serve_ref, model, tmp_path / "signoff.json", "--json")
    assert proc.returncode == 1, proc.stderr
    record = json.loads(proc.stdout)
    assert [(c["check"], c["ok"]) for c in record["checks"]] == [("model", False)]
    assert "model file model.joblib changed since training" in record["checks"][0]["detail"]
    assert record["latency"] is None and record["comparison"] is None


def test_a_declared_gpu_on_a_machine_without_one_is_refused(trained, tmp_path):
    spec, _, serve_ref, folder = trained
    assert shutil.which("nvidia-smi") is None, "this test needs a machine without a GPU"
    root = project_with(spec.root, tmp_path / "iris", accelerator="gpu")
    out = tmp_path / "signoff.json"
    proc = signoff(root, serve_ref, folder, out)
    assert proc.returncode == 2
    assert "error: imagesmith.yaml declares accelerator: gpu, but this machine has no GPU" in proc.stderr
    assert "refusing to sign off on CPU" in proc.stderr and "hint:" in proc.stderr
    assert not out.exists()
    proc = cli("golden", "-p", str(root), "--model", str(folder), "--tag", shared_repo("iris"))
    assert proc.returncode == 2 and "accelerator: gpu" in proc.stderr
