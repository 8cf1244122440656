"""Golden outputs (``imagesmith golden``): the samples through the batch function in the TRAIN
image, written next to the model as ``imagesmith-golden.json``."""

from __future__ import annotations

import json
from pathlib import Path

from ..engine import Engine
from ..fsutil import atomic_write, sha256_bytes, sha256_file
from ..runtime.stamp import GOLDEN_FILE
from ..runtime.untrusted import Opt, loads, read_regular, shape_problem
from ..spec import Spec
from ..verify import verify_model
from . import GOLDEN_VERSION, SignoffError, check_version, image_platform, model_stamp
from .batch import (
    MAX_OUTPUTS,
    OUTPUTS_SHAPE,
    read_samples,
    refuse_without_gpu,
    require_signoff_spec,
    run_predict,
    signoff_containers,
)

_TEXT = Opt((str, None))
GOLDEN_SHAPE = {
    "imagesmith_golden": int,
    "outputs": OUTPUTS_SHAPE,
    "predict": _TEXT,
    "platform": _TEXT,
    "model": Opt(({"stamp": _TEXT}, None)),
    "samples": Opt(({"sha256": _TEXT}, None)),
    "image": Opt(({"ref": _TEXT, "digest": _TEXT}, None)),
}


def make_golden(engine: Engine, spec: Spec, image: str, model: Path) -> tuple[Path, dict]:
    """Run the samples through the batch function in the train ``image`` and write the outputs
    into ``model`` as ``imagesmith-golden.json``; returns (path, record)."""
    samples_path = require_signoff_spec(spec)
    samples = read_samples(samples_path)
    info = engine.runnable(image)
    check = verify_model(engine, image, model)
    if not check.ok:
        raise SignoffError(
            f"the model in {model} does not match {image}:\n" + "\n".join(f"  {p}" for p in check.problems),
            hint="golden outputs come from the train image that trained the model",
        )
    stamp, stamp_digest = model_stamp(model)
    refuse_without_gpu(spec)
    with signoff_containers(engine) as run_id:
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


def read_golden(model: Path) -> tuple[dict, str] | None:
    """The golden outputs in ``model`` and the sha256 of the bytes read (None: there are none).
    The model folder comes from elsewhere (copied to the serving machine): a link, FIFO, device or
    folder there is refused unread, and so is a file over ``MAX_OUTPUTS`` or JSON nested too deep."""
    path = model / GOLDEN_FILE
    try:
        raw = read_regular(str(path), max_bytes=MAX_OUTPUTS, what=str(path))
        data = loads(raw, what=str(path), max_bytes=MAX_OUTPUTS, max_items=MAX_OUTPUTS)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # UntrustedInput is a ValueError
        raise SignoffError(f"{path} is not readable ({exc})", hint="make it again: `imagesmith golden`") from exc
    check_version(
        data,
        "imagesmith_golden",
        GOLDEN_VERSION,
        path,
        "golden file",
        other=lambda found: "make it again with this imagesmith: `imagesmith golden`",
        plain="make it again: `imagesmith golden`",
    )
    problem = shape_problem(data, GOLDEN_SHAPE)
    if problem:
        raise SignoffError(
            f"{path} is not an imagesmith golden file ({problem[:200]})", hint="make it again: `imagesmith golden`"
        )
    return data, sha256_bytes(raw)
