"""The deploy gate's reading of a signoff record (``check_signoff``, ``imagesmith verify IMAGE
--signoff signoff.json --model DIR``): it passed, for this image's digest, platform and model
stamp; how this machine's hardware differs from the one signed off on is a note."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import gpu
from ..engine import Engine, ImageInfo
from ..errors import ImagesmithError
from ..layout import LABEL_GPU
from ..runtime import signoff_probe  # stdlib: the host's hardware record is read by the same code as the image's
from ..runtime.untrusted import Opt, loads, read_regular, shape_problem
from . import MAX_SIGNOFF, SIGNOFF_VERSION, SignoffError, check_version, image_platform, model_stamp


@dataclass
class GateResult:
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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


# The checks every signoff that ran to its end records (run.py): a record that says it passed
# without one of them, or with one that failed, is not a passed signoff.
RAN = ("model", "golden", "http", "outputs")


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
    check_version(
        data,
        "imagesmith_signoff",
        SIGNOFF_VERSION,
        path,
        "signoff record",
        other=lambda found: (
            "sign off again with this imagesmith"
            if found < SIGNOFF_VERSION
            else "read it with the imagesmith that made it (a newer one), or sign off again with this one"
        ),
        plain=None,
    )
    problem = shape_problem(data, SIGNOFF_SHAPE)
    if problem:
        raise SignoffError(f"{path} is not an imagesmith signoff record ({problem[:200]})")
    return data


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
    failed = [str(c.get("check")) for c in data["checks"] if c.get("ok") is not True]
    recorded = {c.get("check") for c in data["checks"]}
    missing = [name for name in RAN if name not in recorded]
    if data.get("passed") is True and not failed and not missing:
        result.checks.append(f"the signoff in {path} passed")
    elif data.get("passed") is True:  # a record edited by hand, or two merged: its checks say otherwise
        disagree = "; ".join(
            filter(
                None,
                (f"failed: {', '.join(failed)}" if failed else "", f"missing: {', '.join(missing)}" if missing else ""),
            )
        )
        result.problems.append(
            f"the signoff in {path} says it passed, but its own checks do not ({disagree}): "
            "it was edited or is damaged; sign off again"
        )
    else:
        result.problems.append(f"the signoff in {path} did not pass (failed: {', '.join(failed) or 'unknown'})")
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
        _, digest = model_stamp(Path(model))
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
    else:  # every signoff records it: removed by hand, or a damaged record
        result.notes.append("the record holds no hardware: this machine was not compared with the one signed off on")
    contract = _gpu_contract(info)
    if contract is not None:
        checks, problems, notes = gpu.signed_hardware(contract, data.get("hardware"))
        result.checks += checks
        result.problems += problems
        result.notes += notes
    return result


def _gpu_contract(info) -> dict | None:
    """The image's GPU contract (``io.imagesmith.gpu``), None for an image without CUDA."""
    try:
        contract = loads(info.labels.get(LABEL_GPU) or "null", what=f"the {LABEL_GPU} label", max_bytes=1 << 20)
    except ValueError:
        return None
    return contract if isinstance(contract, dict) else None


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
    out += gpu_differences(signed.get("gpus"), here.get("gpus"))
    if signed.get("cuda") != here.get("cuda") and (signed.get("cuda") or here.get("cuda")):
        out.append(f"CUDA: {here.get('cuda')} here, {signed.get('cuda')} signed off on")
    return out


def _gpus(record) -> list[dict]:
    return [g for g in record or () if isinstance(g, dict)] if isinstance(record, list) else []


def _listed(values: list) -> str:
    """Values one per GPU, in order; "A (x2)" when every GPU has the same one."""
    shown = [str(v) if v is not None else "unknown" for v in values]
    if len(set(shown)) == 1 and len(shown) > 1:
        return f"{shown[0]} (x{len(shown)})"
    return ", ".join(shown)


def gpu_differences(signed, here) -> list[str]:
    """What differs between the GPUs a signoff ran on and this machine's, each part named: the
    GPUs themselves (model names), the NVIDIA driver, the compute capability (compared only
    when both records state it: records made before it was recorded do not)."""
    s, h = _gpus(signed), _gpus(here)
    if not s and not h:
        return []
    if not s or not h:

        def whole(gpus: list[dict]) -> str:
            return ", ".join(f"{g.get('name')} (driver {g.get('driver')})" for g in gpus) or "none"

        return [f"GPUs: {whole(h)} here, {whole(s)} signed off on"]
    out = []
    for key, what in (("name", "GPU"), ("driver", "NVIDIA driver"), ("compute_cap", "GPU compute capability")):
        a, b = [g.get(key) for g in h], [g.get(key) for g in s]
        if key == "compute_cap" and (None in a or None in b):
            continue
        if a != b:
            out.append(f"{what}: {_listed(a)} here, {_listed(b)} signed off on")
    return out


def _gib(n) -> str:
    return f"{n / 2**30:.1f} GiB" if isinstance(n, int) else "unknown"
