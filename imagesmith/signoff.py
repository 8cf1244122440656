"""Sign off on the serving hardware: golden outputs from training, the signoff run on the
serving machine, and the deploy gate that reads its record.

**Golden outputs** (``imagesmith golden``): after ``imagesmith run train``, the samples
(``signoff.samples``, JSON lines) go through the batch function (``signoff.predict``,
``module:function``) inside the TRAIN image, and the outputs are written next to the model as
``imagesmith-golden.json``::

    {"imagesmith_golden": 1, "predict": "app.predict:predict",
     "samples": {"file": "signoff/samples.jsonl", "sha256": "sha256:...", "count": 20},
     "model": {"parity": "sha256:...", "stamp": "sha256:<digest of imagesmith-stamp.json>"},
     "image": {"ref": "iris:train", "digest": "sha256:<image ID>"},
     "outputs": [[float, ...], ...], "hardware": {...}}

**The signoff** (``imagesmith signoff SERVE_IMAGE --model DIR``), run on the serving machine:

1. ``model``: the model's stamp matches the serve image (``stamp.verify_model``);
2. ``golden``: the golden file is there, made for this model's stamp and these samples;
3. ``accelerator``: with ``accelerator: gpu`` the machine must have a GPU (else a refusal,
   exit 2, before anything runs) and the containers get all GPUs and must see one;
4. ``http`` and ``latency``: the serve image starts as production runs it (its own entrypoint,
   command and user, the model copied in read-only at the spec's ``artifacts``, the serve port
   published on 127.0.0.1, or on a remote engine's own host), locked down (no capabilities, no
   new privileges, a read-only root with a /tmp in memory; so is the batch function's container
   in 5); its containers are removed however the run ends (Ctrl-C and SIGTERM included);
   each sample is POSTed to ``signoff.path`` (body ``[sample]`` with
   ``request: list``, the sample itself with ``request: object``), round after round until at
   least ``requests`` requests; every answer must be 2xx, and p99 must be within
   ``serve.latency_budget_ms`` when the spec sets one (p50/p95/p99 are recorded);
5. ``outputs`` and ``classes``: the batch function runs in the serve image on this machine;
   each value must satisfy ``|now - golden| <= atol + rtol * |golden|`` (numpy's ``allclose``
   rule) and, where rows have two or more values (class scores), the predicted class (the
   first highest score) must be the same for every sample.

The record, ``signoff.json`` (also what ``--json`` prints; keys sorted)::

    {"imagesmith_signoff": 1, "passed": bool,
     "image": {"ref", "digest", "parity"}, "model": {"parity", "stamp"},
     "golden": {"sha256", "samples", "train_image"}, "accelerator": "cpu"|"gpu"|null,
     "tolerances": {"rtol", "atol"},
     "comparison": {"samples", "values", "max_abs_error", "max_rel_error", "out_of_tolerance",
                    "classes_checked", "flipped": [{"sample", "golden", "now"}...],
                    "worst": [{"sample", "output", "golden", "now", "abs_error", "rel_error"}...]} | null,
     "latency": {"requests", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms", "budget_ms"} | null,
     "hardware": {<runtime/signoff_probe.py's record, read in the serve container>} | null,
     "checks": [{"check", "ok", "detail"}...]}

**The deploy gate** (``check_signoff``, ``imagesmith verify IMAGE --signoff signoff.json
--model DIR``) holds when the record says passed, its image digest is the image's and its model
stamp is the model's. When this machine's hardware (CPU model, ISA flags, CPU count, memory,
GPUs) differs from the one signed off on, it says so in notes: the numbers were checked there,
not here.
"""

from __future__ import annotations

import http.client
import json
import math
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .engine import Engine, ImageInfo
from .errors import EngineError, ImagesmithError
from .fsutil import atomic_write, sha256_file
from .layout import LABEL_PARITY, LABEL_ROLE, RUNTIME_MODULE
from .runtime import signoff_probe  # stdlib: the host's hardware record is read by the same code as the image's
from .runtime.stamp import GOLDEN_FILE, STAMP_FILE, read_stamp
from .runtime.untrusted import Opt, loads, read_regular, shape_problem
from .spec import Spec
from .verify import verify_model

GOLDEN_VERSION = 1
SIGNOFF_VERSION = 1
HELPER_MODULE = f"{RUNTIME_MODULE}.signoff_probe"  # run from the image's runtime wheel
SAMPLES_IN_CONTAINER = "/run/imagesmith-signoff/samples.jsonl"
WORST = 10  # deviations listed in the record and the table


class SignoffError(ImagesmithError):
    """Signoff cannot be carried out (not: it failed). Exit 2."""


# --------------------------------------------------------------------------------------------
# Comparing outputs (pure)


@dataclass
class Comparison:
    rtol: float
    atol: float
    samples: int = 0
    values: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    out_of_tolerance: int = 0
    worst: list[dict] = field(default_factory=list)  # the largest deviations beyond tolerance
    classes_checked: bool = False
    flipped: list[dict] = field(default_factory=list)  # {"sample", "golden", "now"}
    shape: list[str] = field(default_factory=list)  # rows that cannot be compared
    per_sample: list[dict] = field(default_factory=list)  # each sample's largest deviation

    @property
    def outputs_ok(self) -> bool:
        return not self.shape and self.out_of_tolerance == 0

    @property
    def classes_ok(self) -> bool:
        return not self.flipped

    def as_json(self) -> dict:
        return {
            "samples": self.samples,
            "values": self.values,
            "max_abs_error": self.max_abs,
            "max_rel_error": self.max_rel,
            "out_of_tolerance": self.out_of_tolerance,
            "classes_checked": self.classes_checked,
            "flipped": self.flipped[:WORST],
            "flipped_count": len(self.flipped),
            "worst": self.worst,
            "shape": self.shape,
            "per_sample": self.per_sample,
        }

    def outputs_detail(self) -> str:
        if self.shape:
            return "; ".join(self.shape[:3]) + (f" (and {len(self.shape) - 3} more)" if len(self.shape) > 3 else "")
        where = ""
        if self.worst:
            w = self.worst[0]
            where = f" at sample {w['sample']} output {w['output']}"
        head = (
            f"{self.out_of_tolerance} of {self.values} values out of tolerance"
            if self.out_of_tolerance
            else f"all {self.values} values within tolerance"
        )
        return (
            f"{head} (rtol {self.rtol:g}, atol {self.atol:g}); max abs error {self.max_abs:.3g}{where}, "
            f"max rel error {self.max_rel:.3g}"
        )

    def classes_detail(self) -> str:
        if not self.classes_checked:
            return "rows are single values: no classes to compare"
        if not self.flipped:
            return f"all {self.samples} predicted classes agree"
        shown = ", ".join(f"sample {f['sample']} ({f['golden']} -> {f['now']})" for f in self.flipped[:5])
        more = f", and {len(self.flipped) - 5} more" if len(self.flipped) > 5 else ""
        return f"{len(self.flipped)} of {self.samples} predicted classes flipped: {shown}{more}"


def _argmax(row: list[float]) -> int:
    best = 0
    for i, v in enumerate(row):
        if v > row[best] or (math.isnan(row[best]) and not math.isnan(v)):
            best = i
    return best


def compare(
    golden: list[list[float]], now: list[list[float]], *, rtol: float, atol: float, worst: int = WORST
) -> Comparison:
    """Compare outputs row by row, value by value (``|now - golden| <= atol + rtol * |golden|``;
    NaN only matches NaN), and the predicted classes of rows with two or more values."""
    result = Comparison(rtol=rtol, atol=atol, samples=len(golden))
    if len(golden) != len(now):
        result.shape.append(f"{len(now)} output rows for {len(golden)} golden rows")
        return result
    deviations = []
    classes = bool(golden) and all(len(r) >= 2 for r in golden)
    result.classes_checked = classes
    for i, (g_row, n_row) in enumerate(zip(golden, now)):
        if len(g_row) != len(n_row):
            result.shape.append(f"sample {i}: {len(n_row)} values, golden has {len(g_row)}")
            continue
        row = {"sample": i, "max_abs_error": 0.0, "max_rel_error": 0.0, "out_of_tolerance": 0}
        result.per_sample.append(row)
        for j, (g, n) in enumerate(zip(g_row, n_row)):
            result.values += 1
            if math.isnan(g) or math.isnan(n):
                ok = math.isnan(g) and math.isnan(n)
                err = 0.0 if ok else math.inf
            else:
                err = abs(n - g)
                ok = err <= atol + rtol * abs(g)
            rel = err / abs(g) if g and not math.isnan(g) else (0.0 if err == 0 else math.inf)
            if err > result.max_abs:
                result.max_abs = err
            if rel > result.max_rel:
                result.max_rel = rel
            row["max_abs_error"] = max(row["max_abs_error"], err)
            row["max_rel_error"] = max(row["max_rel_error"], rel)
            if not ok:
                row["out_of_tolerance"] += 1
                result.out_of_tolerance += 1
                deviations.append({"sample": i, "output": j, "golden": g, "now": n, "abs_error": err, "rel_error": rel})
        if classes:
            row["class_flipped"] = _argmax(g_row) != _argmax(n_row)
        if classes and _argmax(g_row) != _argmax(n_row):
            result.flipped.append({"sample": i, "golden": _argmax(g_row), "now": _argmax(n_row)})
    deviations.sort(key=lambda d: (-d["abs_error"], d["sample"], d["output"]))
    result.worst = deviations[:worst]
    return result


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of non-empty ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def hardware_differences(signed: dict, here: dict) -> list[str]:
    """What differs between two hardware records, in the parts a host can see (CPU, memory, GPUs)."""
    out = []
    sc, hc = signed.get("cpu") or {}, here.get("cpu") or {}
    if sc.get("model") != hc.get("model"):
        out.append(f"CPU model: {hc.get('model')!r} here, {sc.get('model')!r} signed off on")
    missing = sorted(set(sc.get("flags") or ()) - set(hc.get("flags") or ()))
    extra = sorted(set(hc.get("flags") or ()) - set(sc.get("flags") or ()))
    if missing or extra:
        out.append(
            "CPU instruction sets: "
            + "; ".join(
                part
                for part in (
                    (f"missing here: {' '.join(missing)}" if missing else ""),
                    (f"only here: {' '.join(extra)}" if extra else ""),
                )
                if part
            )
        )
    if sc.get("logical_cpus") != hc.get("logical_cpus"):
        out.append(f"CPUs: {hc.get('logical_cpus')} here, {sc.get('logical_cpus')} signed off on")
    if signed.get("memory_bytes") != here.get("memory_bytes"):
        out.append(f"memory: {_gib(here.get('memory_bytes'))} here, {_gib(signed.get('memory_bytes'))} signed off on")
    g_signed = [g.get("name") + " (driver " + str(g.get("driver")) + ")" for g in signed.get("gpus") or ()]
    g_here = [g.get("name") + " (driver " + str(g.get("driver")) + ")" for g in here.get("gpus") or ()]
    if g_signed != g_here:
        out.append(f"GPUs: {', '.join(g_here) or 'none'} here, {', '.join(g_signed) or 'none'} signed off on")
    if signed.get("cuda") != here.get("cuda") and (signed.get("cuda") or here.get("cuda")):
        out.append(f"CUDA: {here.get('cuda')} here, {signed.get('cuda')} signed off on")
    return out


def _gib(n) -> str:
    return f"{n / 2**30:.1f} GiB" if isinstance(n, int) else "unknown"


# --------------------------------------------------------------------------------------------
# Running the batch function in an image


def _require_signoff_spec(spec: Spec) -> Path:
    if not spec.signoff.predict or not spec.signoff.samples:
        raise SignoffError(
            f"{spec.origin} names no batch function and samples for signoff",
            hint="add signoff: {predict: 'module:function', samples: path/to/samples.jsonl} "
            '(README: "Signing off on the serving hardware")',
        )
    path = spec.root / spec.signoff.samples
    if not path.is_file():
        raise SignoffError(f"the samples file {path} does not exist", hint="signoff.samples names a JSON-lines file")
    return path


def read_samples(path: Path) -> list:
    samples = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SignoffError(
            f"{path} is not UTF-8 text (byte {exc.start})", hint="one JSON value per line (JSON lines), UTF-8"
        ) from exc
    except OSError as exc:
        raise SignoffError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                samples.append(json.loads(line))
            except (ValueError, RecursionError) as exc:
                raise SignoffError(
                    f"{path} line {number} is not JSON ({str(exc)[:160]})", hint="one JSON value per line (JSON lines)"
                ) from exc
    if not samples:
        raise SignoffError(f"{path} holds no samples", hint="one JSON value per line (JSON lines)")
    return samples


def _serve_entrypoint(info) -> list[str]:
    """The image's runtime entrypoint in the serve role: the seed is put in force and the model
    is checked against the image, and (unlike the train role) nothing is re-stamped."""
    entry = list(info.config.get("Entrypoint") or [])
    if RUNTIME_MODULE not in entry:
        raise SignoffError(
            f"{info.ref} does not start through imagesmith's runtime (entrypoint {entry})",
            hint="build it with `imagesmith build`",
        )
    return entry[: entry.index(RUNTIME_MODULE) + 1] + ["serve", "--"]


@contextmanager
def _containers(engine: Engine) -> Iterator[str]:
    """A signoff run's ID, the label value of every container it starts; when the block ends, by
    success, an error, Ctrl-C or SIGTERM (the CLI turns it into an exception), all of them are
    removed with their volumes, also one whose creation was interrupted. After a success, a
    container the engine could not remove is an error (nothing is left behind unsaid)."""
    run_id = uuid.uuid4().hex
    try:
        yield run_id
    except BaseException:
        try:
            engine.remove_signoff(run_id)
        except EngineError:
            pass  # the engine went away: the error already on its way says more
        raise
    engine.remove_signoff(run_id)


def run_predict(engine: Engine, info, spec: Spec, model: Path, samples_path: Path, *, gpus: bool, run_id: str) -> dict:
    """Run the batch function on the samples in a container of ``info``; ``{"outputs", "hardware"}``."""
    options = json.dumps({"mode": "predict", "predict": spec.signoff.predict, "samples": SAMPLES_IN_CONTAINER})
    run = engine.run_helper(
        info.id,
        ["python", "-m", HELPER_MODULE, options],
        entrypoint=_serve_entrypoint(info),
        gpus=gpus,
        run_id=run_id,
        mounts={str(model.resolve()): spec.artifacts, str(samples_path.resolve()): SAMPLES_IN_CONTAINER},
    )
    if run.exit_code != 0:
        why = run.start_error or "\n".join(run.stderr.strip().splitlines()[-12:])
        if run.exit_code == 3:
            raise SignoffError(
                f"{info.ref} refused the model in {model}:\n{why}",
                hint="train the model with the image built from the same lock",
            )
        raise SignoffError(
            f"running {spec.signoff.predict} in {info.ref} failed (exit {run.exit_code}):\n{why}",
            hint="check the batch function and the samples",
        )
    try:
        data = json.loads(run.stdout.strip().splitlines()[-1])
        data["outputs"], data["hardware"]
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise SignoffError(f"the signoff helper in {info.ref} printed no result") from exc
    return data


def _model_stamp(model: Path) -> tuple[dict, str]:
    stamp = read_stamp(str(model)) if model.is_dir() else None
    if stamp is None:
        raise SignoffError(f"there is no {STAMP_FILE} in {model}", hint="train first: `imagesmith run train`")
    return stamp, sha256_file(model / STAMP_FILE)


def _host_has_gpu() -> bool:
    return bool(signoff_probe.gpus()[0])


def _refuse_without_gpu(spec: Spec) -> None:
    if spec.accelerator == "gpu" and not _host_has_gpu():
        raise SignoffError(
            f"{spec.origin} declares accelerator: gpu, but this machine has no GPU (nvidia-smi finds none): "
            "refusing to sign off on CPU",
            hint="run signoff on the serving machine with its GPU (and the NVIDIA container toolkit), "
            "or declare accelerator: cpu if the model is served on CPU",
        )


# --------------------------------------------------------------------------------------------
# Golden outputs


def make_golden(engine: Engine, spec: Spec, image: str, model: Path) -> tuple[Path, dict]:
    """Run the samples through the batch function in the train ``image`` and write the outputs
    into ``model`` as ``imagesmith-golden.json``; returns (path, record)."""
    samples_path = _require_signoff_spec(spec)
    samples = read_samples(samples_path)
    info = engine.runnable(image)
    check = verify_model(engine, image, model)
    if not check.ok:
        raise SignoffError(
            f"the model in {model} does not match {image}:\n" + "\n".join(f"  {p}" for p in check.problems),
            hint="golden outputs come from the train image that trained the model",
        )
    stamp, stamp_digest = _model_stamp(model)
    _refuse_without_gpu(spec)
    with _containers(engine) as run_id:
        data = run_predict(engine, info, spec, model, samples_path, gpus=spec.accelerator == "gpu", run_id=run_id)
    if len(data["outputs"]) != len(samples):
        raise SignoffError(f"{spec.signoff.predict} returned {len(data['outputs'])} rows for {len(samples)} samples")
    record = {
        "imagesmith_golden": GOLDEN_VERSION,
        "predict": spec.signoff.predict,
        "samples": {"file": spec.signoff.samples, "sha256": sha256_file(samples_path), "count": len(samples)},
        "model": {"parity": stamp["parity"], "stamp": stamp_digest},
        "image": {"ref": image, "digest": info.id},
        "platform": image_platform(info),
        "outputs": data["outputs"],
        "hardware": data["hardware"],
    }
    path = model / GOLDEN_FILE
    atomic_write(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path, record


def read_golden(model: Path) -> dict | None:
    path = model / GOLDEN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SignoffError(f"{path} is not readable ({exc})", hint="make it again: `imagesmith golden`") from exc
    if (
        not isinstance(data, dict)
        or data.get("imagesmith_golden") != GOLDEN_VERSION
        or not isinstance(data.get("outputs"), list)
    ):
        raise SignoffError(
            f"{path} is not an imagesmith golden file (version {GOLDEN_VERSION})",
            hint="make it again: `imagesmith golden`",
        )
    return data


# --------------------------------------------------------------------------------------------
# The signoff run


@dataclass
class Signoff:
    record: dict
    path: Path | None = None

    @property
    def passed(self) -> bool:
        return bool(self.record["passed"])

    @property
    def failed(self) -> list[dict]:
        return [c for c in self.record["checks"] if not c["ok"]]


def replay(
    host: str, port: int, path: str, request: str, samples: list, *, minimum: int, alive, ready_timeout: float = 120.0
) -> dict:
    """POST the samples to ``host``:``port`` ``path`` (one connection, kept alive), round after
    round until at least ``minimum`` requests, after one request that waits for readiness.
    ``alive()`` says whether the server still runs. Returns the latency record (statuses too)."""

    def body(sample) -> bytes:
        return json.dumps([sample] if request == "list" else sample).encode("utf-8")

    headers = {"Content-Type": "application/json"}
    deadline = time.monotonic() + ready_timeout
    while True:  # readiness: the first answer of any kind
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.request("POST", path, body=body(samples[0]), headers=headers)
            conn.getresponse().read()
            break
        except (OSError, http.client.HTTPException):
            conn.close()
            if not alive():
                raise SignoffError("the serve container exited before it answered") from None
            if time.monotonic() > deadline:
                raise SignoffError(
                    f"the server did not answer on {host}:{port}{path} within {ready_timeout:.0f} s",
                    hint="check serve.port and signoff.path in the spec",
                ) from None
            time.sleep(0.25)
    times: list[float] = []
    errors: dict[str, int] = {}
    count = max(minimum, len(samples))
    try:
        for i in range(count):
            payload = body(samples[i % len(samples)])
            start = time.perf_counter()
            try:
                conn.request("POST", path, body=payload, headers=headers)
                response = conn.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                status = type(exc).__name__
            times.append((time.perf_counter() - start) * 1000.0)
            if not status.startswith("2"):
                errors[status] = errors.get(status, 0) + 1
    finally:
        conn.close()
    return {
        "requests": len(times),
        "errors": dict(sorted(errors.items())),
        "p50_ms": round(percentile(times, 50), 3),
        "p95_ms": round(percentile(times, 95), 3),
        "p99_ms": round(percentile(times, 99), 3),
        "max_ms": round(max(times), 3),
    }


def run_signoff(engine: Engine, spec: Spec, image: str, model: Path, *, requests: int = 200) -> Signoff:
    """The signoff of ``image`` with the model in ``model`` on this machine (see the module
    docstring); the record says whether it passed. Raises SignoffError when it cannot be run."""
    model = Path(model)
    samples_path = _require_signoff_spec(spec)
    samples = read_samples(samples_path)
    if not spec.serve.port:
        raise SignoffError(
            f"{spec.origin} sets no serve.port: there is no endpoint to replay the samples through",
            hint="set serve.port to the port the server listens on",
        )
    _refuse_without_gpu(spec)
    gpus = spec.accelerator == "gpu"
    info = engine.runnable(image)
    if info.labels.get(LABEL_ROLE) != "serve":
        raise SignoffError(
            f"{image} is not an imagesmith serve image (role {info.labels.get(LABEL_ROLE)!r})",
            hint="sign off on the serve image: imagesmith signoff NAME:serve --model DIR",
        )
    if not model.is_dir():
        what = "is not a folder" if model.exists() else "does not exist"
        raise SignoffError(f"{model} {what}", hint="pass the artifacts folder train wrote")
    checks: list[dict] = []

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    record = {
        "imagesmith_signoff": SIGNOFF_VERSION,
        "image": {"ref": image, "digest": info.id, "parity": info.labels.get(LABEL_PARITY)},
        "platform": image_platform(info),
        "model": None,
        "golden": None,
        "accelerator": spec.accelerator,
        "tolerances": {"rtol": spec.signoff.rtol, "atol": spec.signoff.atol},
        "comparison": None,
        "latency": None,
        "hardware": None,
        "checks": checks,
    }

    model_check = verify_model(engine, image, model)
    add(
        "model",
        model_check.ok,
        "; ".join(model_check.problems) if model_check.problems else "; ".join(model_check.checks),
    )
    if model_check.ok:
        stamp, stamp_digest = _model_stamp(model)
        record["model"] = {"parity": stamp["parity"], "stamp": stamp_digest}
        golden = read_golden(model)
        if golden is None:
            raise SignoffError(
                f"there are no golden outputs in {model} ({GOLDEN_FILE})",
                hint="make them with the train image after training: `imagesmith golden`",
            )
        record["golden"] = {
            "sha256": sha256_file(model / GOLDEN_FILE),
            "samples": len(golden["outputs"]),
            "train_image": (golden.get("image") or {}).get("digest"),
            "platform": golden.get("platform"),
        }
        stale = []
        if (golden.get("model") or {}).get("stamp") != stamp_digest:
            stale.append("they were made for another model (its stamp differs)")
        if (golden.get("samples") or {}).get("sha256") != sha256_file(samples_path):
            stale.append(f"they were made from other samples than {spec.signoff.samples}")
        if golden.get("predict") != spec.signoff.predict:
            stale.append(f"they were made with {golden.get('predict')}, the spec names {spec.signoff.predict}")
        add(
            "golden",
            not stale,
            "; ".join(stale) + " (run `imagesmith golden` again)"
            if stale
            else f"{len(golden['outputs'])} golden rows made in {(golden.get('image') or {}).get('ref')} for this model",
        )
        with _containers(engine) as run_id:
            _serve_and_measure(engine, spec, info, model, samples, requests, gpus, record, add, run_id)
            data = run_predict(engine, info, spec, model, samples_path, gpus=gpus, run_id=run_id)
        record["hardware"] = data["hardware"]
        if gpus:
            seen = data["hardware"].get("gpus") or []
            add(
                "accelerator",
                bool(seen),
                f"the container saw {', '.join(g['name'] for g in seen)}"
                if seen
                else "accelerator: gpu, but the container saw no GPU",
            )
        comparison = compare(golden["outputs"], data["outputs"], rtol=spec.signoff.rtol, atol=spec.signoff.atol)
        record["comparison"] = comparison.as_json()
        across = ""
        if golden.get("platform") and record["platform"] and golden["platform"] != record["platform"]:
            across = f"golden outputs from {golden['platform']} training, served on {record['platform']}: "
        add("outputs", comparison.outputs_ok, across + comparison.outputs_detail())
        if comparison.classes_checked:
            add("classes", comparison.classes_ok, comparison.classes_detail())
    record["passed"] = all(c["ok"] for c in checks)
    return Signoff(record=record)


def _serve_and_measure(engine, spec, info, model, samples, requests, gpus, record, add, run_id) -> None:
    """Serve the model from the image under test (locked down: see ``Engine.start_service``) and
    replay the samples; the caller's ``_containers`` block removes the container on any error."""
    container, host, port = engine.start_service(
        info.id, port=spec.serve.port, gpus=gpus, mounts={str(model.resolve()): spec.artifacts}, run_id=run_id
    )
    try:
        latency = replay(
            host,
            port,
            spec.signoff.path,
            spec.signoff.request,
            samples,
            minimum=requests,
            alive=lambda: engine.service_exit_code(container) is None,
        )
    except SignoffError as exc:
        code = engine.service_exit_code(container)
        logs = engine.stop_service(container)
        tail = "\n".join(logs.strip().splitlines()[-12:])
        raise SignoffError(
            f"{exc}{f' (exit {code})' if code is not None else ''}; its last output:\n{tail}",
            hint=exc.hint or "run the serve image with `imagesmith run serve` to see why",
        ) from exc
    engine.stop_service(container)
    latency["budget_ms"] = spec.serve.latency_budget_ms
    record["latency"] = latency
    bad = sum(latency["errors"].values())
    add(
        "http",
        bad == 0,
        f"{latency['requests']} requests to POST {spec.signoff.path}, all answered 2xx"
        if not bad
        else f"{bad} of {latency['requests']} requests to POST {spec.signoff.path} failed: "
        + ", ".join(f"{n}x {s}" for s, n in latency["errors"].items()),
    )
    measured = f"p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms"
    budget = spec.serve.latency_budget_ms
    if budget is None:
        add("latency", True, f"{measured} (no serve.latency_budget_ms in the spec)")
    else:
        add(
            "latency",
            latency["p99_ms"] <= budget,
            f"{measured}; p99 {'within' if latency['p99_ms'] <= budget else 'OVER'} the budget of {budget:g} ms",
        )


def write_signoff(result: Signoff, path: Path) -> None:
    atomic_write(path, json.dumps(result.record, indent=2, sort_keys=True) + "\n")
    result.path = path


def table(record: dict) -> list[str]:
    """The human report: one line per check, then what moved (across platforms: every sample)."""
    width = max(len(c["check"]) for c in record["checks"]) if record["checks"] else 5
    lines = [f"{'ok  ' if c['ok'] else 'FAIL'}  {c['check']:<{width}}  {c['detail']}" for c in record["checks"]]
    comparison = record.get("comparison") or {}
    trained = (record.get("golden") or {}).get("platform")
    if trained and record.get("platform") and trained != record["platform"] and comparison.get("per_sample"):
        lines.append(f"per sample, {record['platform']} against the {trained} golden outputs:")
        lines.append(f"  {'sample':>6}  {'max abs err':>12}  {'max rel err':>12}  {'out of tol':>10}  class")
        for row in comparison["per_sample"]:
            flip = {True: "flipped", False: "same"}.get(row.get("class_flipped"), "-")
            lines.append(
                f"  {row['sample']:>6}  {row['max_abs_error']:>12.3g}  {row['max_rel_error']:>12.3g}  "
                f"{row['out_of_tolerance']:>10}  {flip}"
            )
    if comparison.get("worst"):
        lines.append(f"outputs that moved (largest {len(comparison['worst'])} of {comparison['out_of_tolerance']}):")
        lines.append(f"  {'sample':>6}  {'output':>6}  {'golden':>14}  {'now':>14}  {'abs err':>10}  {'rel err':>10}")
        for w in comparison["worst"]:
            lines.append(
                f"  {w['sample']:>6}  {w['output']:>6}  {w['golden']:>14.8g}  {w['now']:>14.8g}  "
                f"{w['abs_error']:>10.3g}  {w['rel_error']:>10.3g}"
            )
    return lines


# --------------------------------------------------------------------------------------------
# The deploy gate


@dataclass
class GateResult:
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


MAX_SIGNOFF = 4 << 20  # bytes of a signoff record (a few KiB: the worst deviations, not every output)
SIGNOFF_SHAPE = {
    "imagesmith_signoff": int,
    "image": {"digest": Opt((str, None))},
    "checks": [dict],
    "passed": Opt((bool, None)),
    "platform": Opt((str, None)),
    "model": Opt(({"stamp": Opt((str, None))}, None)),
    "hardware": Opt(
        (
            {
                "cpu": Opt(({"model": Opt((str, None)), "flags": Opt(([str], None))}, None)),
                "gpus": Opt(([{"name": str}], None)),
                "memory_bytes": Opt((int, float, None)),
            },
            None,
        )
    ),
}


def read_signoff(path: Path) -> dict:
    """A signoff record: a regular file of at most ``MAX_SIGNOFF`` bytes (a link, a FIFO or a
    device is refused before a byte is read), bounded JSON of the record's shape."""
    try:
        data = loads(
            read_regular(str(path), max_bytes=MAX_SIGNOFF, what=str(path)), what=str(path), max_bytes=MAX_SIGNOFF
        )
    except FileNotFoundError:
        raise SignoffError(
            f"{path} does not exist", hint="run `imagesmith signoff SERVE_IMAGE --model DIR` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise SignoffError(f"{path} is not readable ({exc})") from exc
    if not isinstance(data, dict) or data.get("imagesmith_signoff") != SIGNOFF_VERSION:
        raise SignoffError(f"{path} is not an imagesmith signoff record (version {SIGNOFF_VERSION})")
    problem = shape_problem(data, SIGNOFF_SHAPE)
    if problem:
        raise SignoffError(f"{path} is not an imagesmith signoff record ({problem[:200]})")
    return data


def image_platform(info) -> str | None:
    """The platform an image is for: its config's (os/architecture)."""
    return info.platform or None


def check_signoff(
    engine: Engine,
    image: str,
    path: Path,
    model: Path,
    *,
    here: dict | None = None,
    platform: str | None = None,
    info: ImageInfo | None = None,
) -> GateResult:
    """The deploy gate: the signoff in ``path`` passed, for ``image``'s digest and ``model``'s stamp,
    on ``image``'s platform (``platform`` picks it from a multi-platform index; ``info``: the image
    already resolved). Hardware differences between this machine and the signed-off one are notes."""
    data = read_signoff(path)
    result = GateResult()
    if data.get("passed") is True:
        result.checks.append(f"the signoff in {path} passed")
    else:
        failed = [c.get("check") for c in data["checks"] if not c.get("ok")]
        result.problems.append(
            f"the signoff in {path} did not pass (failed: {', '.join(map(str, failed)) or 'unknown'})"
        )
    if info is None:
        info = engine.lookup(image, platform) if platform else engine.lookup(image)
    signed_on, this = data.get("platform"), image_platform(info)
    if signed_on and this and signed_on != this:
        result.problems.append(
            f"it was made on {signed_on}, and {image} is a {this} image: sign off on {this} "
            f"(`imagesmith signoff` of the {this} image on that hardware)"
        )
    elif signed_on:
        result.checks.append(f"it was made on {signed_on}, this image's platform")
    signed = data["image"].get("digest")
    if signed == info.id:
        result.checks.append(f"it was made for this image ({info.id})")
    else:
        result.problems.append(f"it was made for image {signed}, {image} is {info.id}: sign off on this image")
    try:
        _, digest = _model_stamp(Path(model))
    except ImagesmithError as exc:
        result.problems.append(f"model: {exc}")
    else:
        if (data.get("model") or {}).get("stamp") == digest:
            result.checks.append(f"it was made for this model (stamp {digest[:19]}...)")
        else:
            result.problems.append(f"it was made for another model than the one in {model} (its stamp differs)")
    if isinstance(data.get("hardware"), dict):
        diffs = hardware_differences(data["hardware"], here if here is not None else signoff_probe.hardware())
        for line in diffs:
            result.notes.append(f"this machine differs from the one signed off on: {line}")
        if not diffs:
            result.checks.append("this machine's CPU, memory and GPUs are the ones signed off on")
    return result
