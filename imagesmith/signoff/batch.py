"""Running the batch function (``signoff.predict``) on the samples in a container of an image,
locked down; and what every signoff container shares: the run's label, removed however it ends."""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..engine import Engine
from ..engine.containers import OUTPUT_LIMIT
from ..errors import ContainerTimeout, EngineError
from ..fsutil import read_user_text
from ..layout import RUNTIME_MODULE
from ..runtime import signoff_probe  # stdlib: the host's hardware record is read by the same code as the image's
from ..runtime.untrusted import loads, shape_problem
from ..spec import Spec
from . import SignoffError

HELPER_MODULE = f"{RUNTIME_MODULE}.signoff_probe"  # run from the image's runtime wheel
SAMPLES_IN_CONTAINER = "/run/imagesmith-signoff/samples.jsonl"


def require_signoff_spec(spec: Spec) -> Path:
    if not spec.signoff.predict or not spec.signoff.samples:
        raise SignoffError(
            f"{spec.origin} names no batch function and samples for signoff",
            hint="add signoff: {predict: 'module:function', samples: path/to/samples.jsonl} "
            "(see docs/guides/signoff.md)",
        )
    path = spec.root / spec.signoff.samples
    if not path.is_file():
        raise SignoffError(f"the samples file {path} does not exist", hint="signoff.samples names a JSON-lines file")
    return path


# Samples may be large (images as base64): read up to 1 GiB, more than the 64 MiB of other user files;
# a 2 GB sparse file is still refused unread.
MAX_SAMPLES = 1 << 30
# outputs (the helper's result, the golden file): a row for each sample, as many bytes as samples
MAX_OUTPUTS = MAX_SAMPLES
OUTPUTS_SHAPE = [[float]]  # a row of numbers for each sample (NaN among them)


def read_samples(path: Path) -> list:
    samples = []
    text = read_user_text(
        path, SignoffError, shown=str(path), hint="one JSON value per line (JSON lines), UTF-8", limit=MAX_SAMPLES
    )
    for number, line in signoff_probe.sample_lines(text):  # as the helper reads them
        try:
            samples.append(json.loads(line))
        except (ValueError, RecursionError) as exc:
            raise SignoffError(
                f"{path} line {number} is not JSON ({str(exc)[:160]})", hint="one JSON value per line (JSON lines)"
            ) from exc
    if not samples:
        raise SignoffError(f"{path} holds no samples", hint="one JSON value per line (JSON lines)")
    return samples


def serve_entrypoint(info) -> list[str]:
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
def signoff_containers(engine: Engine) -> Iterator[str]:
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
    try:
        run = engine.run_helper(
            info.id,
            ["python", "-m", HELPER_MODULE, options],
            entrypoint=serve_entrypoint(info),
            gpus=gpus,
            run_id=run_id,
            mounts={str(model.resolve()): spec.artifacts, str(samples_path.resolve()): SAMPLES_IN_CONTAINER},
            timeout=spec.signoff.timeout,
        )
    except ContainerTimeout as exc:  # the engine's own words name the entrypoint and the image ID
        raise SignoffError(
            f"{spec.signoff.predict} did not finish within {spec.signoff.timeout} s in {info.ref}: the container was stopped",
            hint="the batch function runs once on all the samples: sign off on fewer samples, look for what it "
            "waits on, or give it longer (signoff.timeout in the spec)",
        ) from exc
    if run.truncated:
        raise SignoffError(
            f"{spec.signoff.predict} in {info.ref} printed more than the signoff helper's result may be "
            f"({OUTPUT_LIMIT >> 20} MiB): the container was stopped",
            hint="sign off on fewer samples, or on fewer values per sample (a summary of a large output)",
        )
    if run.exit_code != 0:
        why = run.start_error or _helper_reason(run.stderr)
        if run.exit_code == 3:
            raise SignoffError(
                f"{info.ref} refused the model in {model}:\n{why}",
                hint="train the model with the image built from the same lock",
            )
        if not why and run.exit_code == 137:
            why = "the container was killed (SIGKILL), with nothing on stderr: out of memory?"
        sep = "\n" if "\n" in why else " "  # the helper's one line follows on the same line
        raise SignoffError(
            f"running {spec.signoff.predict} in {info.ref} failed (exit {run.exit_code}):{sep}{why or 'no output'}",
            hint=_failure_hint(why, spec),
        )
    what = f"the signoff helper's result in {info.ref}"
    lines = run.stdout.strip().splitlines()
    try:
        data = loads(lines[-1] if lines else "", what=what, max_bytes=MAX_OUTPUTS, max_items=MAX_OUTPUTS)
    except ValueError as exc:  # not JSON, or too large a structure (UntrustedInput)
        raise SignoffError(f"the signoff helper in {info.ref} printed no result ({str(exc)[:200]})") from exc
    problem = shape_problem(data, {"outputs": OUTPUTS_SHAPE, "hardware": dict})
    if problem:
        raise SignoffError(
            f"the signoff helper in {info.ref} printed a result imagesmith cannot compare ({problem[:200]})",
            hint=f"{spec.signoff.predict} returns one row of numbers for each sample",
        )
    return data


def _failure_hint(why: str, spec: Spec) -> str:
    """What to do about the batch function's failure, where its reason says something usual."""
    if "FileNotFoundError" in why:  # most often a model path relative to the working folder
        return (
            f"the model is at {spec.artifacts} in the container (the spec's artifacts), and the working "
            "folder is the image's: open the model by that absolute path"
        )
    if "Read-only file system" in why:
        return "the container's file system is read-only, as in production: write caches and scratch files under /tmp"
    if "out of memory?" in why:
        return "sign off on fewer samples, or give the engine more memory"
    return "check the batch function and the samples"


def _helper_reason(stderr: str) -> str:
    """The helper's one-line reason when it gave one (after whatever the project's code printed
    to stderr, perhaps without a newline), else the last lines of stderr (a crash)."""
    marker = "imagesmith signoff helper: "
    at = stderr.rfind(marker)
    if at >= 0:
        return stderr[at + len(marker) :].strip()
    return "\n".join(stderr.strip().splitlines()[-12:])


def _host_has_gpu() -> bool:
    return bool(signoff_probe.gpus()[0])


def refuse_without_gpu(spec: Spec) -> None:
    if spec.accelerator == "gpu" and not _host_has_gpu():
        raise SignoffError(
            f"{spec.origin} declares accelerator: gpu, but this machine has no GPU (nvidia-smi finds none): "
            "refusing to sign off on CPU",
            hint="run signoff on the serving machine with its GPU (and the NVIDIA container toolkit), "
            "or declare accelerator: cpu if the model is served on CPU",
        )
