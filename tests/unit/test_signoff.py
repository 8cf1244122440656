"""Signoff logic without the engine: the comparison (tolerances, class agreement), percentiles,
the HTTP replay against a real local server, hardware differences, the deploy gate's reading
of a record, the GPU refusal and the spec keys."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from imagesmith import signoff as so
from imagesmith.errors import SpecError
from imagesmith.runtime import signoff_probe
from imagesmith.signoff import batch as so_batch
from imagesmith.signoff import check as so_check
from imagesmith.signoff import outputs as so_outputs
from imagesmith.signoff import replay as so_replay
from imagesmith.signoff import run as so_run
from imagesmith.spec.parse import parse_spec
from tests.fakes import FakeEngine, image_info
from tests.helpers import serving
from tests.socket_engine import Answering

FP32 = {"rtol": 1e-4, "atol": 1e-4}  # fp32-like tolerances for class scores


def scores(n: int, classes: int = 3, seed: int = 0) -> list[list[float]]:
    """n rows of class scores summing to 1 whose highest score leads the next by at least 0.3."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        top = rng.randrange(classes)
        row = [0.2 * rng.random() for _ in range(classes)]  # rng.uniform(0.0, 0.2)'s values, without its call
        row[top] += 0.6
        total = sum(row)
        rows.append([v / total for v in row])
    return rows


def drift(golden: list[list[float]], by: float, flips: list[int]) -> tuple[list[list[float]], list[list[float]]]:
    """(golden, now): every value of ``now`` differs from ``golden`` by ``by`` (a shift of the
    whole row, which keeps its top class), except the rows in ``flips``, which golden makes
    near-ties (the top class leads by ``by / 2``) and ``now`` tips over by moving ``by``."""
    golden = [list(r) for r in golden]
    now = []
    tipped = set(flips)
    for i, row in enumerate(golden):
        if i in tipped:
            golden[i] = row = [0.5 - by / 4, 0.5 + by / 4, 0.0]
            now.append([row[0] + by, row[1] - by, 0.0])
        else:
            sign = 1.0 if i % 2 else -1.0
            now.append([v + sign * by for v in row])
    return golden, now


def test_outputs_differing_by_5e5_pass_at_fp32_tolerances():
    golden, now = drift(scores(1000), 5e-5, [])
    result = so_outputs.compare(golden, now, **FP32)
    assert result.outputs_ok and result.classes_ok
    assert result.out_of_tolerance == 0 and result.values == 3000
    assert result.max_abs == pytest.approx(5e-5, rel=1e-6)
    assert "all 1000 predicted classes agree" in result.classes_detail()


def test_1_3e2_with_7_of_50k_flipped_classes_fails_naming_the_count():
    flipped = [3, 999, 12_345, 20_000, 31_337, 40_001, 49_999]
    golden, now = drift(scores(50_000, seed=1), 1.3e-2, flipped)
    result = so_outputs.compare(golden, now, **FP32)
    assert not result.outputs_ok and not result.classes_ok
    assert [f["sample"] for f in result.flipped] == flipped
    assert all((f["golden"], f["now"]) == (1, 0) for f in result.flipped)
    assert result.classes_detail().startswith("7 of 50000 predicted classes flipped: sample 3 (1 -> 0), ")
    assert result.classes_detail().endswith(", and 2 more")
    assert result.max_abs == pytest.approx(1.3e-2, rel=1e-6)
    assert "out of tolerance (rtol 0.0001, atol 0.0001); max abs error 0.013" in result.outputs_detail()


def test_0_19_with_95_flipped_fails_and_the_table_shows_what_moved():
    moved = list(range(0, 50_000, 526))[:95]
    golden, now = drift(scores(50_000, seed=2), 0.19, moved)
    result = so_outputs.compare(golden, now, **FP32)
    assert len(result.flipped) == 95
    assert "95 of 50000 predicted classes flipped" in result.classes_detail()
    assert "and 90 more" in result.classes_detail()
    assert result.max_abs == pytest.approx(0.19, rel=1e-6)
    record = {
        "checks": [
            {"check": "outputs", "ok": False, "detail": result.outputs_detail()},
            {"check": "classes", "ok": False, "detail": result.classes_detail()},
        ],
        "comparison": result.as_json(),
    }
    lines = so_run.table(record)
    assert lines[0].startswith("FAIL  outputs") and lines[1].startswith("FAIL  classes")
    assert lines[2] == f"outputs that moved (largest {so.WORST} of {result.out_of_tolerance}):"
    worst = result.worst[0]
    assert lines[4].split()[:2] == [str(worst["sample"]), str(worst["output"])]
    assert float(lines[4].split()[4]) == pytest.approx(0.19, rel=1e-2)
    assert record["comparison"]["flipped_count"] == 95 and len(record["comparison"]["flipped"]) == so.WORST


def test_tolerance_is_atol_plus_rtol_times_golden():
    assert so_outputs.compare([[100.0]], [[100.0 + 1e-2 - 1e-9]], rtol=1e-4, atol=0.0).outputs_ok
    assert not so_outputs.compare([[100.0]], [[100.0 + 1e-2 + 1e-9]], rtol=1e-4, atol=0.0).outputs_ok
    assert so_outputs.compare([[0.0]], [[1e-7]], rtol=0.0, atol=1e-6).outputs_ok
    r = so_outputs.compare([[0.0]], [[1e-5]], rtol=0.5, atol=1e-6)
    assert not r.outputs_ok and r.worst[0]["rel_error"] == float("inf")


def test_single_value_rows_have_no_classes_and_nan_only_matches_nan():
    r = so_outputs.compare([[1.0], [float("nan")]], [[1.0], [float("nan")]], rtol=0, atol=0)
    assert r.outputs_ok and not r.classes_checked
    assert "no classes" in r.classes_detail()
    r = so_outputs.compare([[1.0], [2.0]], [[1.0], [float("nan")]], rtol=1, atol=1)
    assert not r.outputs_ok and r.worst[0]["sample"] == 1


def test_shape_differences_fail():
    r = so_outputs.compare([[0.1, 0.9]] * 3, [[0.1, 0.9]] * 2, rtol=1, atol=1)
    assert not r.outputs_ok and "2 output rows for 3 golden rows" in r.outputs_detail()
    r = so_outputs.compare([[0.1, 0.9]], [[0.1, 0.8, 0.1]], rtol=1, atol=1)
    assert not r.outputs_ok and "sample 0: 3 values, golden has 2" in r.outputs_detail()


def test_rows_that_are_all_empty_compare_nothing_and_fail():
    """A function returning [] for every sample passed: "all 0 values within tolerance"."""
    result = so_outputs.compare([[], []], [[], []], rtol=1e-6, atol=1e-9)
    assert not result.outputs_ok
    assert result.outputs_detail() == "no values to compare: the batch function returned an empty row for all 2 samples"
    assert so_outputs.compare([[], [1.0]], [[], [1.0]], rtol=1e-6, atol=1e-9).outputs_ok  # one empty row is a row


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    random.Random(3).shuffle(values)
    assert so_replay.percentile(values, 50) == 50.0
    assert so_replay.percentile(values, 95) == 95.0
    assert so_replay.percentile(values, 99) == 99.0
    assert so_replay.percentile([7.0], 99) == 7.0


# --------------------------------------------------------------------------------------------
# The HTTP replay against a real server on 127.0.0.1


class _Handler(Answering):
    seen: list = []
    fail_every = 0

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        n = len(type(self).seen)
        self.answer(500 if self.fail_every and n % self.fail_every == 0 else 200, b'{"ok": true}')


@pytest.fixture
def server():
    """The port of ``_Handler`` on 127.0.0.1 (``helpers.serving``)."""
    _Handler.seen = []
    _Handler.fail_every = 0
    with serving(_Handler) as address:
        yield int(address.rsplit(":", 1)[1])


def test_replay_posts_every_sample_in_rounds_and_reports_percentiles(server):
    samples = [{"x": i} for i in range(7)]
    latency = so_replay.replay("127.0.0.1", server, "/predict", "list", samples, minimum=20, alive=lambda: True)
    assert latency["requests"] == 20 and latency["errors"] == {}
    assert _Handler.seen[0] == [{"x": 0}]  # the readiness request
    assert _Handler.seen[1:] == [[{"x": i % 7}] for i in range(20)]
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]


def test_replay_object_bodies_and_counts_errors(server):
    _Handler.fail_every = 4
    latency = so_replay.replay("127.0.0.1", server, "/p", "object", [{"x": 1}], minimum=12, alive=lambda: True)
    assert _Handler.seen[1] == {"x": 1}
    assert latency["errors"] == {"500": 3}


def test_replay_stops_when_the_server_is_gone():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    with pytest.raises(so.SignoffError, match="exited before it answered"):
        so_replay.replay("127.0.0.1", port, "/predict", "list", [{}], minimum=1, alive=lambda: False)


# --------------------------------------------------------------------------------------------
# Hardware, the gate, the GPU refusal


HW = {
    "cpu": {"model": "Xeon A", "flags": ["avx", "avx2", "avx512f"], "logical_cpus": 8, "usable_cpus": 8},
    "memory_bytes": 32 * 2**30,
    "gpus": [],
    "cuda": None,
    "libraries": [],
}


def test_hardware_differences_name_what_differs():
    assert so_check.hardware_differences(HW, json.loads(json.dumps(HW))) == []
    here = json.loads(json.dumps(HW))
    here["cpu"].update(model="EPYC B", flags=["avx", "avx2"], logical_cpus=2)
    here["gpus"] = [{"name": "L4", "driver": "550.1", "memory": "23034 MiB"}]
    diffs = so_check.hardware_differences(HW, here)
    assert diffs == [
        "CPU model: 'EPYC B' here, 'Xeon A' signed off on",
        "CPU instruction sets: missing here: avx512f",
        "CPUs: 2 here, 8 signed off on",
        "GPUs: L4 (driver 550.1) here, none signed off on",
    ]


def test_the_hardware_probe_reads_this_machine():
    hw = signoff_probe.hardware()
    assert hw["cpu"]["logical_cpus"] >= 1 and hw["memory_bytes"] > 0
    assert set(hw) == {"cpu", "memory_bytes", "gpus", "cuda", "libraries"}


def _Engine(image_id: str) -> FakeEngine:
    """An engine whose every image has ``image_id``."""
    return FakeEngine(default=image_info(id=image_id))


def _model(tmp_path: Path) -> tuple[Path, str]:
    from imagesmith.fsutil import sha256_file
    from imagesmith.runtime.stamp import STAMP_FILE

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / STAMP_FILE).write_text(
        json.dumps({"imagesmith_stamp": 1, "parity": "sha256:" + "1" * 64, "manifest": {}, "artifacts": {}})
    )
    return folder, sha256_file(folder / STAMP_FILE)


def _record(tmp_path: Path, *, passed=True, digest="sha256:" + "a" * 64, stamp="", hardware=HW) -> Path:
    path = tmp_path / "signoff.json"
    path.write_text(
        json.dumps(
            {
                "imagesmith_signoff": 1,
                "passed": passed,
                "image": {"digest": digest},
                "model": {"stamp": stamp},
                "hardware": hardware,
                "checks": [{"check": c, "ok": True, "detail": ""} for c in so_check.RAN]
                + [{"check": "latency", "ok": passed, "detail": ""}],
            }
        )
    )
    return path


def test_gate_holds_for_the_signed_image_and_model(tmp_path):
    model, stamp = _model(tmp_path)
    gate = so_check.check_signoff(
        _Engine("sha256:" + "a" * 64), "x:serve", _record(tmp_path, stamp=stamp), model, here=HW
    )
    assert gate.problems == [] and gate.notes == []
    assert len(gate.checks) == 4


def test_gate_fails_for_another_image_another_model_or_a_failed_signoff(tmp_path):
    model, stamp = _model(tmp_path)
    gate = so_check.check_signoff(
        _Engine("sha256:" + "b" * 64), "x:serve", _record(tmp_path, stamp=stamp), model, here=HW
    )
    assert len(gate.problems) == 1 and "made for image sha256:aaaa" in gate.problems[0]
    gate = so_check.check_signoff(
        _Engine("sha256:" + "a" * 64), "x:serve", _record(tmp_path, stamp="sha256:0"), model, here=HW
    )
    assert gate.problems == [f"it was made for another model than the one in {model} (its stamp differs)"]
    gate = so_check.check_signoff(
        _Engine("sha256:" + "a" * 64), "x:serve", _record(tmp_path, passed=False, stamp=stamp), model, here=HW
    )
    assert gate.problems == [f"the signoff in {tmp_path / 'signoff.json'} did not pass (failed: latency)"]


@pytest.mark.parametrize(
    "edit, said",
    [
        (lambda r: r["checks"][-1].update(ok=False), "failed: latency"),  # passed left true by hand
        (lambda r: r["checks"].clear(), "missing: model, golden, http, outputs"),
        (lambda r: r["checks"].pop(3), "missing: outputs"),  # the failed check deleted
        (lambda r: r["checks"][0].pop("ok"), "failed: model"),
    ],
)
def test_a_record_that_says_it_passed_against_its_own_checks_fails_the_gate(tmp_path, edit, said):
    """A record edited by hand (or two merged) with "passed": true and a failed or missing check
    was an "ok" of the gate: it read "passed" alone."""
    model, stamp = _model(tmp_path)
    path = _record(tmp_path, stamp=stamp)
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    gate = so_check.check_signoff(_Engine("sha256:" + "a" * 64), "x:serve", path, model, here=HW)
    assert len(gate.problems) == 1 and "says it passed, but its own checks do not" in gate.problems[0]
    assert said in gate.problems[0]


def test_a_record_without_hardware_is_a_note_not_a_silent_pass(tmp_path):
    model, stamp = _model(tmp_path)
    gate = so_check.check_signoff(
        _Engine("sha256:" + "a" * 64), "x:serve", _record(tmp_path, stamp=stamp, hardware=None), model, here=HW
    )
    assert gate.problems == []
    assert gate.notes == ["the record holds no hardware: this machine was not compared with the one signed off on"]


def test_gate_notes_other_hardware(tmp_path):
    model, stamp = _model(tmp_path)
    here = json.loads(json.dumps(HW))
    here["memory_bytes"] = 16 * 2**30
    gate = so_check.check_signoff(
        _Engine("sha256:" + "a" * 64), "x:serve", _record(tmp_path, stamp=stamp), model, here=here
    )
    assert gate.problems == []
    assert gate.notes == [
        "this machine differs from the one signed off on: memory: 16.0 GiB here, 32.0 GiB signed off on"
    ]


def test_gate_rejects_what_is_not_a_signoff_record(tmp_path):
    (tmp_path / "s.json").write_text('{"passed": true}')
    with pytest.raises(so.SignoffError, match="not an imagesmith signoff record"):
        so_check.read_signoff(tmp_path / "s.json")
    with pytest.raises(so.SignoffError, match="does not exist"):
        so_check.read_signoff(tmp_path / "missing.json")


@pytest.mark.parametrize("version, hint", [(2, "the imagesmith that made it"), (0, "sign off again")])
def test_a_record_of_another_version_says_which(tmp_path, version, hint):
    """A record of another format version was "not an imagesmith signoff record (version 1)"."""
    (tmp_path / "s.json").write_text(json.dumps({"imagesmith_signoff": version, "passed": True}))
    with pytest.raises(
        so.SignoffError, match=f"is a version {version} signoff record; this imagesmith reads version 1"
    ) as err:
        so_check.read_signoff(tmp_path / "s.json")
    assert hint in err.value.hint


def _spec(tmp_path: Path, **changes):
    (tmp_path / "samples.jsonl").write_text('{"a": 1}\n')
    data = {
        "name": "p",
        "python": "3.11",
        "base": "python:3.11-slim",
        "requirements": ["six"],
        "train": {"command": "true"},
        "serve": {"command": "true", "port": 8000},
        "signoff": {"predict": "m:f", "samples": "samples.jsonl"},
    }
    data.update(changes)
    return parse_spec(data, tmp_path)


def test_declared_gpu_on_a_machine_without_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(signoff_probe, "gpus", lambda: ([], None))
    spec = _spec(tmp_path, accelerator="gpu")
    with pytest.raises(so.SignoffError, match="declares accelerator: gpu, but this machine has no GPU") as info:
        so_run.run_signoff(_Engine("sha256:" + "a" * 64), spec, "x:serve", tmp_path)
    assert "accelerator: cpu" in info.value.hint


def test_spec_signoff_path_and_request(tmp_path):
    spec = _spec(tmp_path)
    assert (spec.signoff.path, spec.signoff.request) == ("/predict", "list")
    spec = _spec(
        tmp_path, signoff={"predict": "m:f", "samples": "samples.jsonl", "path": "/v1/score", "request": "object"}
    )
    assert (spec.signoff.path, spec.signoff.request) == ("/v1/score", "object")
    with pytest.raises(SpecError) as info:
        _spec(tmp_path, signoff={"path": "predict", "request": "batch"})
    assert len(info.value.problems) == 2
    assert "signoff.path" in info.value.problems[0] and "signoff.request" in info.value.problems[1]


def test_a_spec_without_predict_cannot_sign_off(tmp_path):
    spec = _spec(tmp_path, signoff={})
    with pytest.raises(so.SignoffError, match="names no batch function"):
        so_run.run_signoff(_Engine("x"), spec, "x:serve", tmp_path)


# --------------------------------------------------------------------------------------------
# The served container is removed however the run ends


class _GoneEngine(FakeEngine):
    """A served container that exits at once (nothing listens on the port it reports)."""

    def service_exit_code(self, container_id: str) -> int | None:
        return 1


def _serve(engine, tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    with so_batch.signoff_containers(engine) as run_id:
        so_replay.serve_and_measure(engine, spec, image_info(), tmp_path, [{}], 1, False, {}, lambda *a: None, run_id)


class _ServedEngine(FakeEngine):
    """A served container that is ``server``, the real HTTP server on 127.0.0.1 (its port)."""

    def __init__(self, port: int) -> None:
        super().__init__(default=image_info())
        self.port = port

    def start_service(self, image: str, **options) -> tuple[str, str, int]:
        super().start_service(image, **options)
        return "c0ffee", "127.0.0.1", self.port


@pytest.mark.parametrize("budget, ok", [(0.001, False), (60_000.0, True), (None, True)])
def test_the_latency_check_holds_p99_against_the_specs_budget(tmp_path, server, budget, ok):
    """A budget below what is measured fails the latency check alone (every answer 2xx), saying
    OVER; within it, or with none, it passes. (Moved from the engine tier, where the same decision
    took a full signoff of the iris serve image: test_signoff_engine.py proves the replay there.)"""
    serve = {"command": "true", "port": 8000, **({"latency_budget_ms": budget} if budget is not None else {})}
    spec = _spec(tmp_path, serve=serve)
    record: dict = {}
    checks: list = []
    engine = _ServedEngine(server)
    so_replay.serve_and_measure(
        engine, spec, image_info(), tmp_path, [{"x": 1}], 20, False, record, lambda *c: checks.append(c), "run"
    )
    assert [(name, good) for name, good, _ in checks] == [("http", True), ("latency", ok)]
    assert record["latency"]["requests"] == 20 and record["latency"]["budget_ms"] == budget
    detail = checks[1][2]
    if budget is None:
        assert detail.endswith("(no serve.latency_budget_ms in the spec)"), detail
    else:
        assert f"p99 {'within' if ok else 'OVER'} the budget of {budget:g} ms" in detail, detail
    assert record["latency"]["p99_ms"] > 0.001
    assert [c[1] for c in engine.called("stop_service")] == ["c0ffee"]


def test_a_failed_serve_removes_its_containers(tmp_path):
    engine = _GoneEngine(default=image_info())
    with pytest.raises(so.SignoffError, match="exited before it answered"):
        _serve(engine, tmp_path)
    run_id = engine.called("start_service")[0][2]["run_id"]
    assert len(run_id) == 32
    assert [c[1] for c in engine.called("remove_signoff")] == [run_id]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit, RuntimeError])
def test_ctrl_c_or_any_error_during_the_replay_removes_its_containers(tmp_path, monkeypatch, interrupt):
    def replay(*args, **kwargs):
        raise interrupt()

    monkeypatch.setattr(so_replay, "replay", replay)
    engine = FakeEngine(default=image_info())
    with pytest.raises(interrupt):
        _serve(engine, tmp_path)
    assert engine.called("stop_service") == []  # no graceful stop: removed at once, by label
    run_id = engine.called("start_service")[0][2]["run_id"]
    assert [c[1] for c in engine.called("remove_signoff")] == [run_id]


def test_each_run_has_its_own_label(tmp_path):
    engine = FakeEngine(default=image_info())
    with so_batch.signoff_containers(engine) as first, so_batch.signoff_containers(engine) as second:
        assert first != second
    assert {c[1] for c in engine.called("remove_signoff")} == {first, second}


def test_files_go_into_one_volume_per_folder(tmp_path):
    """The model folder and the samples file become two volumes (the folder itself, the file's
    folder); a path inside another volume's folder goes into that volume; "/" is refused."""
    from imagesmith.engine.container_files import file_volumes, volume_roots
    from imagesmith.errors import EngineError

    model = tmp_path / "model"
    model.mkdir()
    samples = tmp_path / "samples.jsonl"
    samples.write_text("[1]\n")
    files = {str(model): "/artifacts", str(samples): "/run/imagesmith-signoff/samples.jsonl"}
    assert volume_roots(files) == {
        "/artifacts": [(str(model), ".")],
        "/run/imagesmith-signoff": [(str(samples), "samples.jsonl")],
    }
    mounts = file_volumes(files)
    assert [(m["Target"], m["Type"], m["Source"], m["VolumeOptions"]) for m in mounts] == [
        ("/artifacts", "volume", None, {"NoCopy": True}),
        ("/run/imagesmith-signoff", "volume", None, {"NoCopy": True}),
    ]
    nested = {str(model): "/data", str(samples): "/data/in/samples.jsonl"}
    assert volume_roots(nested) == {"/data": [(str(model), "."), (str(samples), "in/samples.jsonl")]}
    with pytest.raises(EngineError, match="root folder"):
        volume_roots({str(samples): "/samples.jsonl"})
