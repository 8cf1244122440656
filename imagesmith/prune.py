"""``imagesmith prune``: remove a project's old parity-tagged images from the engine.

Every build tags its images ``REPO:train-<parity12>`` and ``REPO:serve-<parity12>`` as well
(``build.image_tags``), tags that no build from another lock overwrites, so they pile up as the
lock changes. ``plan_prune`` finds the engine's tags of that form for one repository and decides,
for each, to keep it or remove it. A tag is kept when its image

1. has a parity that the current lock gives (any platform's, or a multi-platform build's index
   digest);
2. has the parity, or is the image, that a record names: the model stamp in the project's
   artifacts folder and in each ``--model DIR`` (the model there was trained under it; the
   stamp may be signed, ``imagesmith sign --model``), and each signoff record (``--signoff FILE``,
   and ``signoff.json`` in the project when there is one);
3. is what ``REPO:train`` or ``REPO:serve`` names now (the latest build);
4. is used by a container, running or stopped;
5. is not a tag imagesmith made: its labels do not name that parity (``io.imagesmith.parity``,
   a platform's in ``io.imagesmith.platforms`` or their index digest) and role. Anyone can tag
   an image ``REPO:train-<12 hex>``; removing the user's only tag of their own image deletes it.
   The labels are read as untrusted input (bounded, shape-checked).

Everything else is removed by ``apply_prune``, tag by tag, as ``docker rmi TAG`` would (never
forced): the engine deletes an image with its last tag, and refuses to delete one a container
uses, so a container started between the plan and the removal keeps its image too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from . import parity
from .engine.protocols import ImagePruner
from .errors import EngineError, ImagesmithError, UsageError
from .layout import (
    LABEL_PARITY,
    LABEL_PLATFORMS,
    LABEL_ROLE,
    PARITY_TAG_RE,
    ROLES,
    checked_tag_option,
    image_ref,
    parity_short,
)
from .plan import parities as plan_parities
from .runtime.stamp import StampError, read_stamp
from .runtime.untrusted import UntrustedInput
from .spec import Spec
from .verify_report import label_json

PARITY_TAG = re.compile(PARITY_TAG_RE)
SIGNOFF_FILE = "signoff.json"  # what `imagesmith signoff` writes by default


@dataclass
class Kept:
    """Why images stay: parities (full ``sha256:…`` digests) and image IDs, each with its reason."""

    parities: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def parity(self, digest: object, why: str) -> None:
        if isinstance(digest, str) and digest.startswith("sha256:"):
            self.parities.setdefault(digest, why)

    def image(self, image_id: object, why: str) -> None:
        if isinstance(image_id, str) and image_id.startswith("sha256:"):
            self.images.setdefault(image_id, why)


@dataclass
class Decision:
    ref: str
    id: str
    why: str | None  # None: to remove


@dataclass
class Plan:
    repository: str
    keep: list[Decision] = field(default_factory=list)
    remove: list[Decision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def repository_of(spec: Spec, tag: str | None) -> str:
    """The repository whose parity tags are pruned: ``-t REPO`` (as build's first ``-t``; a
    ``REPO:TAG`` given is cut to REPO), else the spec's name."""
    return checked_tag_option(tag)[0] if tag else spec.name


def kept_by_records(
    spec: Spec, *, models: Sequence[Path] = (), signoffs: Sequence[Path] = (), default_artifacts: Path | None = None
) -> Kept:
    """What the current lock and the records on this machine name (rules 1 and 2 of the module
    docstring). A folder or file named on the command line must be readable; the project's own
    defaults are read when they are there."""
    kept = Kept()
    if spec.lock_path.is_file():
        from .lock.lockfile import read_locks

        locks = read_locks(spec.lock_path)
        parities = plan_parities(locks)
        for platform, digest in sorted(parities.items()):
            kept.parity(digest, f"the current lock's parity ({platform})")
        if len(parities) > 1:
            kept.parity(parity.index_digest(parities), "the current lock's parity (all platforms)")
    else:
        kept.notes.append(f"there is no {spec.lock_path.name}: no parity is kept for the current lock")

    folders = [(Path(m), True) for m in models]
    if default_artifacts is not None:
        folders.append((default_artifacts, False))
    for folder, given in folders:
        if not folder.is_dir():
            if given:
                what = "is not a folder" if folder.exists() else "does not exist"
                raise UsageError(f"--model {folder} {what}", hint="pass an artifacts folder train stamped")
            continue
        try:
            stamp = read_stamp(str(folder))
        except StampError as exc:
            raise UsageError(
                str(exc), hint="pass an artifacts folder train stamped, or remove the broken stamp"
            ) from exc
        if stamp is None:
            if given:
                kept.notes.append(f"{folder} holds no stamp: it keeps nothing")
            continue
        why = f"the model in {folder} was trained under it"
        kept.parity(stamp.get("parity"), why)
        kept.image((stamp.get("image") or {}).get("digest"), why)

    files = [(Path(s), True) for s in signoffs]
    if not signoffs and (spec.root / SIGNOFF_FILE).is_file():
        files.append((spec.root / SIGNOFF_FILE, False))
    for path, _given in files:
        from .signoff.check import read_signoff

        try:
            record = read_signoff(path)
        except ImagesmithError as exc:
            raise UsageError(str(exc), hint="pass a signoff record `imagesmith signoff` wrote") from exc
        image = record.get("image") or {}
        why = f"the signoff record {path} names it"
        kept.parity(image.get("parity"), why)
        kept.image(image.get("digest"), why)
    return kept


def plan_prune(engine: ImagePruner, repository: str, kept: Kept) -> Plan:
    """Decide, for each parity tag of ``repository`` in the engine, to keep it (and why) or to
    remove it. Sorted by tag, so the same engine gives the same plan."""
    plan = Plan(repository, notes=list(kept.notes))
    tags = engine.repository_tags(repository)
    in_use = engine.images_in_use()
    current: dict[str, str] = {}
    for role in ROLES:
        ref = image_ref(repository, role)
        for tagged, image_id in tags:
            if tagged == ref:
                current.setdefault(image_id, f"{ref} names it (the latest build)")
    for ref, image_id in sorted(tags):
        if not PARITY_TAG.fullmatch(ref[len(repository) + 1 :]):
            continue
        why = _why_kept(engine, ref, image_id, kept, current, in_use)
        (plan.keep if why else plan.remove).append(Decision(ref, image_id, why))
    return plan


def _why_kept(
    engine: ImagePruner, ref: str, image_id: str, kept: Kept, current: dict[str, str], in_use: dict[str, list[str]]
) -> str | None:
    if image_id in in_use:
        return f"used by container {', '.join(sorted(in_use[image_id]))}"
    if image_id in kept.images:
        return kept.images[image_id]
    info = engine.image(ref)
    labels = info.labels
    platforms = _platform_parities(info)
    parities = {labels.get(LABEL_PARITY)} | set(platforms.values())
    tag_part = ref.rsplit("-", 1)[-1]
    own = {parity_short(p) for p in parities if isinstance(p, str)}
    if len(platforms) > 1:
        own.add(parity_short(parity.index_digest(platforms)))
    if tag_part not in own or labels.get(LABEL_ROLE) != ref.rsplit(":", 1)[-1].split("-", 1)[0]:
        return "not a tag imagesmith made: the image's labels do not name this parity and role (yours?)"
    for digest, why in kept.parities.items():
        if digest in parities or parity_short(digest) == tag_part:
            return why
    return current.get(image_id)


def _platform_parities(info) -> dict[str, str]:
    """The parities an image's platforms label (``{PLATFORM: parity}``) names: the label is
    anyone's (a tag of this repository can be any image), so it is read as verify reads labels
    (``verify_report.label_json``: bounded) and only its string values count; a label that is
    not such a map names none."""
    try:
        value = label_json(info, LABEL_PLATFORMS)
    except UntrustedInput:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, str) and v.startswith("sha256:")}


def apply_prune(engine: ImagePruner, plan: Plan) -> tuple[list[str], list[str]]:
    """Remove the plan's tags (``docker rmi TAG``, never forced); returns (removed, not removed
    with the engine's reason). A tag that is already gone counts as removed; one the engine
    cannot say anything of (it stopped answering) is not removed, with its reason. A tag that
    names another image than the plan saw (a build, say of an old lock, re-tagged it since) is
    kept, with a note in ``plan.notes``: the plan decided about that image, not about the new one."""
    removed: list[str] = []
    failed: list[str] = []
    for decision in plan.remove:
        try:
            found = engine.find_image(decision.ref)
        except ImagesmithError as exc:
            failed.append(f"{decision.ref}: {exc}")
            continue
        if found is None:  # gone since the plan
            removed.append(decision.ref)
            continue
        if found.id != decision.id:
            plan.notes.append(f"{decision.ref} names another image ({found.id[7:19]}) since the plan: kept")
            continue
        try:
            engine.remove_tag(decision.ref)
        except EngineError as exc:
            failed.append(f"{decision.ref}: {exc}")
        else:
            removed.append(decision.ref)
    return removed, failed


def plan_lines(plan: Plan, dry_run: bool) -> Iterable[str]:
    """The plan as lines for people: each tag kept (with why) and each removed."""
    for d in plan.keep:
        yield f"keep    {d.ref} ({d.id[7:19]}): {d.why}"
    verb = "would remove" if dry_run else "remove "
    for d in plan.remove:
        yield f"{verb} {d.ref} ({d.id[7:19]})"
