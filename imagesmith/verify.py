"""Deploy-time checks of built images: the Python API behind ``imagesmith verify``.

``verify_image`` never trusts a label on its own: the manifest label must hash to the parity
label, and the parity is compared with one recomputed from a lock (``parity.py``), with an
expected value from a pipeline, or with the other image of a train/serve pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import parity
from .engine import Engine, ImageInfo
from .lock import read_lock

LABEL_PARITY = "io.imagesmith.parity"
LABEL_MANIFEST = "io.imagesmith.manifest"
LABEL_ROLE = "io.imagesmith.role"


@dataclass
class Report:
    image: str
    image_id: str = ""
    parity: str | None = None
    role: str | None = None
    checks: list[str] = field(default_factory=list)  # what was checked and held
    problems: list[str] = field(default_factory=list)  # one line per difference

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        return {"image": self.image, "id": self.image_id, "ok": self.ok, "parity": self.parity,
                "role": self.role, "checks": self.checks, "problems": self.problems}


def label_manifest(info: ImageInfo, report: Report) -> dict | None:
    """The image's manifest label, checked against its parity label; problems go to ``report``."""
    label = info.labels.get(LABEL_PARITY)
    text = info.labels.get(LABEL_MANIFEST)
    if not label:
        report.problems.append(f"label {LABEL_PARITY} is missing: not an imagesmith image")
        return None
    if not text:
        report.problems.append(f"label {LABEL_MANIFEST} is missing")
        return None
    try:
        manifest = parity.parse_manifest(text)
    except ValueError as exc:
        report.problems.append(f"label {LABEL_MANIFEST} is not a parity manifest: {exc}")
        return None
    recomputed = parity.digest(manifest)
    if recomputed != label:
        report.problems.append(f"label {LABEL_PARITY} is {label}, but the manifest label hashes to {recomputed} (forged or edited label)")
        return None
    report.checks.append("manifest label hashes to the parity label")
    return manifest


def verify_image(engine: Engine, image: str, *, lock: Path | None = None, expect: str | None = None,
                 pair: str | None = None) -> Report:
    info = engine.image(image)
    report = Report(image=image, image_id=info.id, parity=info.labels.get(LABEL_PARITY),
                    role=info.labels.get(LABEL_ROLE))
    manifest = label_manifest(info, report)
    if lock is not None:
        locked = parity.manifest_from_lock(read_lock(lock))
        want = parity.digest(locked)
        if manifest is not None and parity.digest(manifest) == want:
            report.checks.append(f"parity matches {lock.name} ({want})")
        elif manifest is not None:
            report.problems.append(f"parity {report.parity} does not match {lock.name} ({want}):")
            report.problems += ["  " + line for line in parity.compare(locked, manifest)]
        elif report.parity != want:
            report.problems.append(f"parity label {report.parity} does not match {lock.name} ({want})")
    if expect is not None:
        if report.parity == expect and manifest is not None:
            report.checks.append(f"parity is the expected {expect}")
        elif report.parity != expect:
            report.problems.append(f"parity {report.parity} is not the expected {expect}")
    if pair is not None:
        other = engine.image(pair)
        if other.labels.get(LABEL_PARITY) != report.parity:
            report.problems.append(f"{pair} has parity {other.labels.get(LABEL_PARITY)}, {image} has {report.parity}")
        else:
            report.checks.append(f"same parity as {pair}")
        if other.layers != info.layers:
            report.problems.append(_layer_difference(image, info.layers, pair, other.layers))
        else:
            report.checks.append(f"same {len(info.layers)} filesystem layers as {pair}")
        roles = {report.role, other.labels.get(LABEL_ROLE)}
        if roles != {"train", "serve"}:
            report.problems.append(f"a pair is one train and one serve image; roles are {sorted(map(str, roles))}")
    return report


def _layer_difference(a: str, la: tuple[str, ...], b: str, lb: tuple[str, ...]) -> str:
    common = 0
    for x, y in zip(la, lb):
        if x != y:
            break
        common += 1
    return (f"filesystem layers differ: {a} has {len(la)}, {b} has {len(lb)}, "
            f"the first {common} are shared (layers added or changed on top of a built image)")
