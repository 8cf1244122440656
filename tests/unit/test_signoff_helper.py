"""The signoff helper (``runtime/signoff_probe.py``) with batch functions shaped like real ones,
run as the image runs it (``python -m ...signoff_probe OPTIONS`` in the project's folder): what
cannot be compared (a string label, None, a dict, a nested list) and a function that raises,
exits or prints are each one line on stderr and exit 2, never a traceback or a corrupted
result; and the host's reading of that line and of the samples file."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from imagesmith.errors import ContainerTimeout, EngineError
from imagesmith.layout import RUNTIME_MODULE
from imagesmith.signoff import SignoffError
from imagesmith.signoff.batch import _helper_reason, read_samples, run_predict

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = """
import os, sys

def scores(samples): return [[0.25, 0.75] for _ in samples]
def labels(samples): return ["setosa" for _ in samples]
def one_none(samples): return [[1.0]] * (len(samples) - 1) + [None]
def dicts(samples): return [{"label": "setosa", "score": 0.9} for _ in samples]
def masks(samples): return [[[0, 1], [1, 0]] for _ in samples]
def rows(samples): return ((1, True, 2.5) for _ in samples)
def exits(samples): sys.exit(0)
def relative(samples): open("artifacts/model.json")
def cache(samples):
    import json
    return json.loads("{")  # raised in the standard library, from this line
def nothing(samples): pass
def one_float(samples): return 3.0
class Frame:  # as a pandas DataFrame: iterating yields the column names, to_numpy() the rows
    def __iter__(self): return iter(["score_a", "score_b"])
    def to_numpy(self): return Rows()
class Rows:
    def tolist(self): return [[0.5, 0.5], [0.25, 0.75]]
def frame(samples): return Frame()
def pandas_frame(samples):
    import pandas
    return pandas.DataFrame({"score_a": [0.5, 0.25], "score_b": [0.5, 0.75]})
def numpy_rows(samples):
    import numpy
    return numpy.array([[0.5, numpy.nan], [0.25, 0.75]], dtype=numpy.float32)
def numpy_labels(samples):
    import numpy
    return numpy.array(["setosa", "virginica"])
def numpy_per_sample(samples):
    import numpy
    return [numpy.array([[0.5, 0.5]]) for _ in samples]
def batches(samples):
    out = []
    while samples:  # consumes its list, 32 at a time
        out += [[1.0] for _ in samples[:32]]
        del samples[:32]
    return out
def zero_d(samples):
    import numpy
    return [[numpy.array(0.5), numpy.float32(0.25)] for _ in samples]  # as t[i][j] of a tensor gives
def huge(samples): return [[10 ** 400] for _ in samples]
class Predictor:  # a model object the module makes, its method named in the spec (module:object.method)
    def predict(self, samples): return [[0.5, 0.5] for _ in samples]
    @property
    def broken(self): raise RuntimeError("no model loaded")
predictor = Predictor()
def prints(samples):
    print("batch of", len(samples), end="")
    os.write(1, b"from C code\\n")
    sys.stderr.write("warning " * 1000)
    return [[float(len(s))] for s in samples]
"""


def helper(tmp_path: Path, function: str, samples: str = '{"x": 1}\n[2]\n') -> subprocess.CompletedProcess:
    (tmp_path / "user_predict.py").write_text(FUNCTIONS)
    (tmp_path / "samples.jsonl").write_text(samples, encoding="utf-8")
    options = {"mode": "predict", "predict": f"user_predict:{function}", "samples": "samples.jsonl"}
    return subprocess.run(
        [sys.executable, "-m", "imagesmith.runtime.signoff_probe", json.dumps(options)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "function, said",
    [
        ("labels", "the output for sample 0 is the string 'setosa': signoff compares numbers"),
        ("one_none", "the output for sample 1 is None, not a number"),
        ("dicts", "the output for sample 0 is a dict (keys label, score)"),
        ("masks", "the output for sample 0 value 0 is a list inside the row"),
        ("exits", "user_predict:exits called sys.exit(0) instead of returning"),
        ("relative", "user_predict:relative raised FileNotFoundError: [Errno 2] No such file or directory"),
        ("nothing", "user_predict:nothing returned None"),
        ("huge", "the output for sample 0 value 0 is an integer too large for a float"),
        (
            "cache",
            "user_predict:cache raised JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1) (%s, line 14)",
        ),
        ("one_float", "user_predict:one_float returned float"),
        ("missing", "cannot import user_predict:missing: user_predict has no function missing"),
        (
            "predictor.missing",
            "cannot import user_predict:predictor.missing: user_predict has no function predictor.missing",
        ),
        (
            "predictor.broken.x",
            "reading user_predict:predictor.broken.x raised RuntimeError: no model loaded (%s, line",
        ),
    ],
)
def test_what_cannot_be_compared_is_one_line_and_exit_2(tmp_path, function, said):
    proc = helper(tmp_path, function)
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert "Traceback" not in proc.stderr
    assert _helper_reason(proc.stderr).startswith(said.replace("%s", str(tmp_path / "user_predict.py"))), proc.stderr


def test_a_method_of_an_object_the_module_makes_is_called(tmp_path):
    """``module:object.method``, an entry point's object reference (``serve:predictor.predict``):
    the method of the module's own object is the batch function."""
    proc = helper(tmp_path, "predictor.predict")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outputs"] == [[0.5, 0.5], [0.5, 0.5]]


def test_printing_does_not_corrupt_the_result_line(tmp_path):
    """A debugging print without a newline (and C code writing to fd 1) went before the result on
    its one line: the host read "printed no result"."""
    proc = helper(tmp_path, "prints")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outputs"] == [[1.0], [1.0]]
    assert "batch of 2" in proc.stderr and "from C code" in proc.stderr


@pytest.mark.parametrize("function", ["frame", "pandas_frame"])
def test_a_data_frame_is_its_rows_not_its_column_names(tmp_path, function):
    """Iterating a DataFrame yields its column names: "the output for sample 0 is the string 'score_a'"
    (a stand-in of that shape, and a real pandas DataFrame: pandas is in the test extra)."""
    proc = helper(tmp_path, function)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outputs"] == [[0.5, 0.5], [0.25, 0.75]]


@pytest.mark.parametrize(
    "function, said",
    [
        ("numpy_rows", None),
        ("zero_d", None),
        ("numpy_labels", "the output for sample 0 is the string 'setosa'"),
        ("numpy_per_sample", "the output for sample 0 value 0 is a list inside the row"),  # predict_proba(x[None])
    ],
)
def test_numpy_results(tmp_path, function, said):
    proc = helper(tmp_path, function)
    if function == "zero_d":  # 0-d arrays were "a list inside the row"
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["outputs"] == [[0.5, 0.25], [0.5, 0.25]]
    elif said is None:
        assert proc.returncode == 0, proc.stderr
        (a, b), second = json.loads(proc.stdout)["outputs"]
        assert a == 0.5 and math.isnan(b) and second == [0.25, 0.75]  # float32 0.25 and 0.75 are exact
    else:
        assert proc.returncode == 2 and _helper_reason(proc.stderr).startswith(said), proc.stderr


def test_a_function_that_consumes_its_list_is_counted_against_the_samples(tmp_path):
    """The count was taken after the call: "returned 2 outputs for 0 samples"."""
    proc = helper(tmp_path, "batches")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outputs"] == [[1.0], [1.0]]


def test_tuples_generators_ints_and_bools_are_rows_of_numbers(tmp_path):
    proc = helper(tmp_path, "rows")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outputs"] == [[1.0, 1.0, 2.5], [1.0, 1.0, 2.5]]


SAMPLES = '\ufeff{"text": "caf\u00e9\u2028na\u00efve \x85 \u65e5\u672c"}\r\n[2]\r\n\r\n'


def test_samples_with_a_bom_crlf_and_line_separators_in_strings_are_two_samples(tmp_path):
    """str.splitlines split the first line at U+2028 and \\x85 (JSON strings may hold them as they
    are): "line 1 is not JSON"; a BOM (Notepad's UTF-8) was "line 1 is not JSON" as well."""
    proc = helper(tmp_path, "prints", SAMPLES)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["outputs"]) == 2
    path = tmp_path / "host.jsonl"
    path.write_text(SAMPLES, encoding="utf-8", newline="")
    assert read_samples(path) == [{"text": "caf\u00e9\u2028na\u00efve \x85 \u65e5\u672c"}, [2]]


SPEC = SimpleNamespace(signoff=SimpleNamespace(predict="app.predict:predict", timeout=600), artifacts="/artifacts")
INFO = SimpleNamespace(
    id="sha256:" + "4" * 64,
    ref="x:serve",
    config={"Entrypoint": ["/opt/venv/bin/python", "-m", RUNTIME_MODULE, "train", "--"]},
)


def _run(exit_code: int, stdout: str = "", stderr: str = "", truncated: bool = False) -> dict | SignoffError:
    run = SimpleNamespace(exit_code=exit_code, stdout=stdout, stderr=stderr, start_error=None, truncated=truncated)
    spec, info = SPEC, INFO
    with pytest.raises(SignoffError) as err:
        run_predict(
            SimpleNamespace(run_helper=lambda *a, **k: run), info, spec, Path("/m"), Path("/s"), gpus=False, run_id="r"
        )
    return err.value


def test_the_helpers_reason_is_the_error_after_whatever_the_function_wrote_to_stderr():
    err = _run(
        2, stderr="warning " * 5000 + "imagesmith signoff helper: the output for sample 0 is None, not a number\n"
    )
    assert str(err) == (
        "running app.predict:predict in x:serve failed (exit 2): the output for sample 0 is None, not a number"
    )


def test_a_model_file_not_found_hints_where_the_model_is():
    err = _run(2, stderr="imagesmith signoff helper: app.predict:predict raised FileNotFoundError: [Errno 2] ...\n")
    assert err.hint.startswith("the model is at /artifacts in the container")
    assert (
        _run(2, stderr="imagesmith signoff helper: x raised KeyError: 'a'\n").hint
        == "check the batch function and the samples"
    )


def test_a_read_only_file_system_and_a_kill_are_named_with_what_to_do():
    err = _run(
        2, stderr="imagesmith signoff helper: f raised OSError: [Errno 30] Read-only file system: '/home/u/.cache'\n"
    )
    assert "under /tmp" in err.hint
    err = _run(137)  # nothing on stderr: the reason was empty
    assert str(err).endswith(
        "failed (exit 137): the container was killed (SIGKILL), with nothing on stderr: out of memory?"
    )
    assert "fewer samples" in err.hint


def test_outputs_larger_than_the_engine_keeps_are_named_not_printed_no_result():
    err = _run(137, truncated=True)
    assert "printed more than the signoff helper's result may be (64 MiB)" in str(err) and "fewer" in err.hint


def test_a_batch_function_that_does_not_finish_is_named_not_the_entrypoint(monkeypatch):
    """The engine's error named `/opt/venv/bin/python -m imagesmith_runtime serve --` and the image ID."""
    spec = SimpleNamespace(signoff=SimpleNamespace(predict="app.predict:predict", timeout=3), artifacts="/artifacts")

    def run_helper(*args, **options):
        assert options["timeout"] == 3  # the spec's signoff.timeout
        raise ContainerTimeout(
            "`/opt/venv/bin/python -m imagesmith_runtime serve --` in sha256:4444 did not finish within 3 s"
        )

    with pytest.raises(SignoffError) as err:
        run_predict(SimpleNamespace(run_helper=run_helper), INFO, spec, Path("/m"), Path("/s"), gpus=False, run_id="r")
    assert str(err.value) == "app.predict:predict did not finish within 3 s in x:serve: the container was stopped"
    assert "fewer samples" in err.value.hint and "signoff.timeout" in err.value.hint


def test_an_engine_lost_while_the_batch_function_runs_is_not_called_its_timeout():
    """Only ContainerTimeout is the function's time; another EngineError (the engine gone) stays."""

    def run_helper(*args, **options):
        raise EngineError("waiting for `python` in sha256:4444 failed: Connection aborted.")

    with pytest.raises(EngineError, match="Connection aborted") as err:
        run_predict(SimpleNamespace(run_helper=run_helper), INFO, SPEC, Path("/m"), Path("/s"), gpus=False, run_id="r")
    assert not isinstance(err.value, SignoffError)
