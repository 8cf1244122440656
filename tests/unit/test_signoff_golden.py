"""The golden file and the signoff helper's result, read as input from elsewhere: a model folder is
copied to the serving machine, and the serve image signed off prints the result. A FIFO, JSON
nested too deep and rows that are not numbers each get one SignoffError, never a hang or a
traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from imagesmith.fsutil import sha256_file
from imagesmith.layout import RUNTIME_MODULE
from imagesmith.runtime.stamp import GOLDEN_FILE
from imagesmith.signoff import SignoffError
from imagesmith.signoff.batch import run_predict
from imagesmith.signoff.golden import read_golden

GOLDEN = {
    "imagesmith_golden": 1,
    "predict": "app.predict:predict",
    "outputs": [[0.25, 0.75], [float("nan"), 1.0]],
    "model": {"stamp": "sha256:" + "1" * 64},
    "samples": {"sha256": "sha256:" + "2" * 64, "count": 2},
    "image": {"ref": "x:train", "digest": "sha256:" + "3" * 64},
    "platform": "linux/amd64",
}


def _write(folder: Path, value) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / GOLDEN_FILE
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def test_a_golden_file_is_read_once_with_the_digest_of_what_was_read(tmp_path):
    path = _write(tmp_path / "model", GOLDEN)
    data, digest = read_golden(tmp_path / "model")
    assert data["outputs"][0] == [0.25, 0.75] and digest == sha256_file(path)
    assert read_golden(tmp_path / "none") is None


def test_a_fifo_in_place_of_the_golden_file_is_refused_without_waiting_for_a_writer(tmp_path):
    """It hung for ever (read_text of a FIFO waits for a writer): run in a child with a deadline."""
    folder = tmp_path / "model"
    folder.mkdir()
    os.mkfifo(folder / GOLDEN_FILE)
    code = (
        "import sys; from pathlib import Path; from imagesmith.signoff.golden import read_golden\n"
        "from imagesmith.signoff import SignoffError\n"
        f"try: read_golden(Path({str(folder)!r}))\n"
        "except SignoffError as exc: print(exc); sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3 and "FIFO" in proc.stdout, proc


@pytest.mark.parametrize(
    "value, said",
    [
        ("[" * 100_000 + "]" * 100_000, "nested more than"),  # was a RecursionError traceback
        ({**GOLDEN, "outputs": [1.0, 2.0]}, "outputs[0]: not a list"),  # compare() tripped over it
        ({**GOLDEN, "outputs": [["0.25", 0.75]]}, "outputs[0][0]: not a number"),
        ({**GOLDEN, "model": "sha256:x"}, "model: not an object or null"),  # was an AttributeError
        ({**GOLDEN, "imagesmith_golden": "1"}, "version 1"),
    ],
)
def test_a_golden_file_of_another_shape_is_one_error(tmp_path, value, said):
    _write(tmp_path / "model", value)
    with pytest.raises(SignoffError, match="is not an imagesmith golden file|is not readable") as err:
        read_golden(tmp_path / "model")
    assert said in str(err.value) and err.value.hint == "make it again: `imagesmith golden`"


def test_a_golden_file_of_another_version_says_which(tmp_path):
    """It was "not an imagesmith golden file (version 1)", as for a file that is not one at all."""
    _write(tmp_path / "model", {**GOLDEN, "imagesmith_golden": 2})
    with pytest.raises(SignoffError, match="is a version 2 golden file; this imagesmith reads version 1"):
        read_golden(tmp_path / "model")


def _helper_printing(stdout: str):
    """An engine whose signoff helper container ends with exit 0 and prints ``stdout``."""
    run = SimpleNamespace(exit_code=0, stdout=stdout, stderr="", start_error=None, truncated=False)
    return SimpleNamespace(run_helper=lambda *a, **k: run)


@pytest.mark.parametrize(
    "stdout, said",
    [
        ("", "printed no result"),
        ("[" * 100_000, "printed no result"),  # was a RecursionError traceback
        (json.dumps({"outputs": [[1.0]]}), "hardware"),  # no hardware record
        (json.dumps({"outputs": [{"score": 1.0}], "hardware": {}}), "outputs[0]: not a list"),
        (json.dumps({"outputs": [[None]], "hardware": {}}), "outputs[0][0]: not a number"),
    ],
)
def test_a_helper_result_of_another_shape_is_one_error(tmp_path, stdout, said):
    spec = SimpleNamespace(signoff=SimpleNamespace(predict="app.predict:predict", timeout=600), artifacts="/artifacts")
    entrypoint = ["/opt/venv/bin/python", "-m", RUNTIME_MODULE, "train", "--"]
    info = SimpleNamespace(id="sha256:" + "4" * 64, ref="x:serve", config={"Entrypoint": entrypoint})
    samples = tmp_path / "samples.jsonl"
    samples.write_text("[1]\n")
    with pytest.raises(SignoffError, match="printed") as err:
        run_predict(_helper_printing(stdout), info, spec, tmp_path, samples, gpus=False, run_id="r")
    assert said in str(err.value)
