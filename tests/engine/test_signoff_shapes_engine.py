"""Signoff with batch functions and samples shaped like real ones, on the real engine, through
the CLI as a user runs it: one small tiny-native build (standard library model) shared by the
module. A predict that prints while it runs (a debugging habit) signs off on samples saved with a
BOM, CRLF line ends and a U+2028 inside a string; a classifier's string labels are one `error:`
line naming the sample, exit 2, never a traceback. (Every other shape: the helper run as the
image runs it, tests/unit/test_signoff_helper.py.)"""

from __future__ import annotations

import json

import pytest
import yaml

from imagesmith.build import BuildOptions, build_project
from imagesmith.run import run_role
from imagesmith.spec.load import load_spec
from tests.conftest import PROJECTS, _run_dir, copy_project, one_build_at_a_time, shared_repo
from tests.helpers import cli

pytestmark = pytest.mark.engine

FUNCTIONS = """

def chatty(samples):
    print("predicting", len(samples), "samples", end="")  # no newline: it was the result line's start
    return scores(load(), samples)


def labels(samples):
    model = load()
    return [model["classes"][p.index(max(p))] for p in scores(model, samples)]
"""


@pytest.fixture(scope="module")
def shapes(request, tmp_path_factory, engine, base_image):
    work = tmp_path_factory.mktemp("signoff-shapes")
    root = work / "tiny-native"
    copy_project(PROJECTS / "tiny-native", root, git=False)
    with open(root / "app" / "predict.py", "a") as fh:
        fh.write(FUNCTIONS)
    samples = [json.loads(line) for line in (root / "signoff" / "samples.jsonl").read_text().splitlines()]
    samples[0]["note"] = "caf\u00e9\u2028na\u00efve \u65e5\u672c"  # str.splitlines split the line here
    lines = "\r\n".join(json.dumps(s, ensure_ascii=False) for s in samples)
    (root / "signoff" / "samples.jsonl").write_text("\ufeff" + lines + "\r\n\r\n", encoding="utf-8", newline="")
    spec = load_spec(root)
    repo = shared_repo("signoff-shapes")
    with one_build_at_a_time(_run_dir(request.config, tmp_path_factory), repo):
        build_project(spec, engine, BuildOptions(base=base_image, tag=repo))
    model = work / "model"
    assert run_role(spec, engine, "train", tag=repo, artifacts=model) == 0
    return root, repo, model


def _predicting(root, function: str):
    data = yaml.safe_load((root / "imagesmith.yaml").read_text())
    data["signoff"]["predict"] = f"app.predict:{function}"
    (root / "imagesmith.yaml").write_text(yaml.safe_dump(data))
    return str(root)


def test_a_predict_that_prints_signs_off_on_samples_with_a_bom_and_crlf(shapes, tmp_path):
    root, repo, model = shapes
    project = _predicting(root, "chatty")
    proc = cli("golden", "-p", project, "--model", str(model), "--image", f"{repo}:train")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "12 samples through app.predict:chatty" in proc.stdout
    out = tmp_path / "signoff.json"
    proc = cli("signoff", f"{repo}:serve", "--model", str(model), "-p", project, "-o", str(out), "--requests", "12")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(out.read_text())["comparison"]["values"] == 36


def test_string_labels_are_one_error_line_naming_the_sample(shapes):
    root, repo, model = shapes
    proc = cli("golden", "-p", _predicting(root, "labels"), "--model", str(model), "--image", f"{repo}:train")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert error == [
        f"error: running app.predict:labels in {repo}:train failed (exit 2): the output for sample 0 is the string "
        "'wide': signoff compares numbers, within a tolerance; return the class scores (a classifier's "
        "predict_proba, not its predict) or the label's index"
    ], proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("hint:")
