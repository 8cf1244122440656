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

The package: ``outputs`` compares outputs (pure); ``batch`` runs the batch function in an image;
``golden`` makes and reads the golden outputs; ``replay`` serves the model and measures it;
``run`` is the signoff run and its record; ``check`` is the deploy gate's reading of a record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import ImagesmithError
from ..fsutil import sha256_file
from ..runtime.stamp import STAMP_FILE, read_stamp

GOLDEN_VERSION = 1
SIGNOFF_VERSION = 1
# bytes of a signoff record (a few KiB: the worst deviations, not every output): the most the deploy
# gate reads (check.read_signoff), and the most a file may hold for signoff -o to replace it
MAX_SIGNOFF = 4 << 20
WORST = 10  # deviations (and rows of the wrong shape) listed in the record and the table
# samples listed in the record's ``per_sample`` (and the table across platforms): every sample up
# to this many, else the ones that moved most. 200 rows are ~40 KiB of the record; a row for each
# of 30,000 samples was more than MAX_SIGNOFF, which the deploy gate then refused to read
PER_SAMPLE = 200


class SignoffError(ImagesmithError):
    """Signoff cannot be carried out (not: it failed). Exit 2."""


def check_version(
    data: object, key: str, version: int, path: Path, kind: str, *, other: Callable[[int], str], plain: str | None
) -> None:
    """Refuse (``SignoffError``) ``data`` unless it is an object whose ``key`` is ``version``: a
    file of another format version says which one (``other(found)``: the hint), anything else is
    not such a ``kind`` at all (``plain``: its hint)."""
    found = data.get(key) if isinstance(data, dict) else None
    if isinstance(found, int) and not isinstance(found, bool) and found != version:
        raise SignoffError(
            f"{path} is a version {found} {kind}; this imagesmith reads version {version}", hint=other(found)
        )
    if found != version:
        raise SignoffError(f"{path} is not an imagesmith {kind} (version {version})", hint=plain)


def model_stamp(model: Path) -> tuple[dict, str]:
    stamp = read_stamp(str(model)) if model.is_dir() else None
    if stamp is None:
        raise SignoffError(f"there is no {STAMP_FILE} in {model}", hint="train first: `imagesmith run train`")
    return stamp, sha256_file(model / STAMP_FILE)


def image_platform(info) -> str | None:
    """The platform an image is for: its config's (os/architecture)."""
    return info.platform or None
