"""The signoff run (``imagesmith signoff SERVE_IMAGE --model DIR``) on the serving machine, its
record (``signoff.json``) and the human report of it (``table``). The checks are listed in the
package's docstring."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..engine import Engine
from ..errors import FileWriteError
from ..fsutil import FileTooLarge, atomic_write, check_output_file, read_bounded, sha256_file
from ..layout import LABEL_PARITY, LABEL_ROLE
from ..runtime.stamp import GOLDEN_FILE
from ..runtime.untrusted import loads
from ..spec import Spec
from ..verify import verify_model
from . import MAX_SIGNOFF, SIGNOFF_VERSION, SignoffError, image_platform, model_stamp
from .batch import read_samples, refuse_without_gpu, require_signoff_spec, run_predict, signoff_containers
from .golden import read_golden
from .outputs import compare
from .replay import serve_and_measure

Add = Callable[[str, bool, str], None]  # records one check: its name, whether it holds, what it found


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


def run_signoff(engine: Engine, spec: Spec, image: str, model: Path, *, requests: int = 200) -> Signoff:
    """The signoff of ``image`` with the model in ``model`` on this machine (see the package
    docstring); the record says whether it passed. Raises SignoffError when it cannot be run."""
    model = Path(model)
    samples_path = require_signoff_spec(spec)
    samples = read_samples(samples_path)
    if not spec.serve.port:
        raise SignoffError(
            f"{spec.origin} sets no serve.port: there is no endpoint to replay the samples through",
            hint="set serve.port to the port the server listens on",
        )
    refuse_without_gpu(spec)
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
        golden = _check_golden(spec, model, samples_path, record, add)
        with signoff_containers(engine) as run_id:
            serve_and_measure(engine, spec, info, model, samples, requests, gpus, record, add, run_id)
            data = run_predict(engine, info, spec, model, samples_path, gpus=gpus, run_id=run_id)
        _check_outputs(spec, golden, data, gpus, record, add)
    record["passed"] = all(c["ok"] for c in checks)
    return Signoff(record=record)


def _check_golden(spec: Spec, model: Path, samples_path: Path, record: dict, add: Add) -> dict:
    """The golden outputs in ``model``, and the ``golden`` check: made for this model's stamp,
    these samples and this batch function."""
    stamp, stamp_digest = model_stamp(model)
    record["model"] = {"parity": stamp["parity"], "stamp": stamp_digest}
    read = read_golden(model)
    if read is None:
        raise SignoffError(
            f"there are no golden outputs in {model} ({GOLDEN_FILE})",
            hint="make them with the train image after training: `imagesmith golden`",
        )
    golden, golden_digest = read
    record["golden"] = {
        "sha256": golden_digest,  # of the bytes compared, read once
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
    return golden


def _check_outputs(spec: Spec, golden: dict, data: dict, gpus: bool, record: dict, add: Add) -> None:
    """The ``accelerator``, ``outputs`` and ``classes`` checks of the batch function's result."""
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


def check_output(path: Path) -> None:
    """Refuse, before a signoff runs (minutes of serving), a ``-o`` it could not write afterwards
    or that holds a file of the user's: a link, a folder, a missing folder, or a file that is not
    a signoff record (an earlier record is replaced): not a regular file, not JSON with an
    ``imagesmith_signoff`` key, or larger than a record may be (``MAX_SIGNOFF``: refused from its
    size, unread). Raises ``FileWriteError``."""
    path = Path(path)
    check_output_file(path, "-o")
    if not path.exists():
        return
    why = ""
    try:  # a FIFO or device is never read (it could block): not a record
        ours = loads(read_bounded(path, MAX_SIGNOFF), what=str(path), max_bytes=MAX_SIGNOFF).get("imagesmith_signoff")
    except FileTooLarge as exc:
        ours, why = None, f" (it is {exc.size} bytes, more than the {MAX_SIGNOFF} a signoff record may be)"
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, JSON but not an object
        ours = None
    if ours is None:
        raise FileWriteError(
            f"{path} is not a signoff record (JSON with an imagesmith_signoff key){why}; imagesmith never "
            "overwrites a file of yours, so the signoff did not run",
            hint="give -o another path (only an earlier signoff record is replaced)",
        )


def write_signoff(result: Signoff, path: Path) -> None:
    atomic_write(path, json.dumps(result.record, indent=2, sort_keys=True) + "\n")
    result.path = path


def _g(value: float | str, width: int, digits: int) -> str:
    """A record's number in a column: ``NaN`` and the infinities are strings there (``finite``)."""
    return f"{value:>{width}.{digits}g}" if isinstance(value, (int, float)) else f"{value:>{width}}"


def table(record: dict) -> list[str]:
    """The human report: one line per check, then what moved (across platforms: every sample)."""
    width = max(len(c["check"]) for c in record["checks"]) if record["checks"] else 5
    lines = [f"{'ok  ' if c['ok'] else 'FAIL'}  {c['check']:<{width}}  {c['detail']}" for c in record["checks"]]
    comparison = record.get("comparison") or {}
    trained = (record.get("golden") or {}).get("platform")
    if trained and record.get("platform") and trained != record["platform"] and comparison.get("per_sample"):
        rows, count = comparison["per_sample"], comparison.get("per_sample_count", 0)
        which = f" (the {len(rows)} that moved most, of {count})" if count > len(rows) else ""
        lines.append(f"per sample, {record['platform']} against the {trained} golden outputs{which}:")
        lines.append(f"  {'sample':>6}  {'max abs err':>12}  {'max rel err':>12}  {'out of tol':>10}  class")
        for row in comparison["per_sample"]:
            flip = {True: "flipped", False: "same"}.get(row.get("class_flipped"), "-")
            lines.append(
                f"  {row['sample']:>6}  {_g(row['max_abs_error'], 12, 3)}  {_g(row['max_rel_error'], 12, 3)}  "
                f"{row['out_of_tolerance']:>10}  {flip}"
            )
    if comparison.get("worst"):
        lines.append(f"outputs that moved (largest {len(comparison['worst'])} of {comparison['out_of_tolerance']}):")
        lines.append(f"  {'sample':>6}  {'output':>6}  {'golden':>14}  {'now':>14}  {'abs err':>10}  {'rel err':>10}")
        for w in comparison["worst"]:
            lines.append(
                f"  {w['sample']:>6}  {w['output']:>6}  {_g(w['golden'], 14, 8)}  {_g(w['now'], 14, 8)}  "
                f"{_g(w['abs_error'], 10, 3)}  {_g(w['rel_error'], 10, 3)}"
            )
    return lines
