"""Signed build records and the deploy gate by signature.

Signing (``imagesmith build --sign``, ``sign``, ``signoff --sign``):

- ``sign_image``: the image's digest in its registry is signed, and its build record
  (``record.make_record``: the parity manifest, the lock's digest, the layers, the whole config,
  the role, ``/app``, the source revision), read from the image as built, is attached as an
  in-toto attestation of type ``record.PARITY_PREDICATE``; a GPU image's contract (its
  ``io.imagesmith.gpu`` label and its facts' ``gpu`` section, ``record.make_gpu_record``) is
  attached beside it as one of type ``record.GPU_PREDICATE``;
- ``sign_signoff``: the signoff record is attached to the serve image's digest as an attestation
  of type ``record.SIGNOFF_PREDICATE``, and ``signoff.json`` is signed as a file (``.sig`` next to it);
- ``sign_model``: the model stamp and the golden outputs are signed as files (``.sig`` next to each).

The gate (``gate_image``, what ``imagesmith verify REF --key PUB`` adds) trusts nothing the
image says about itself. It resolves REF to a digest in its registry and requires:

1. a signature by the key on that exact digest (an unsigned child, or one signed with another
   key, stops here);
2. a parity attestation by the key on that digest, whose record matches the image as it is:
   its layers and whole config read from the registry by digest, its ``/app`` read from outside
   (``record.read_app``: a container created, never started), compared by
   ``record.record_problems`` (a relabelled child, a swapped interpreter, ``LD_`` variables
   or any other config change show up here, named);
3. with ``signoff``: a signoff attestation by the key on the digest, that passed, and a signoff
   file whose signature verifies and whose content is the attested record;
4. for a GPU image (one with the ``io.imagesmith.gpu`` label): a GPU attestation by the key on
   the digest whose contract is the image's (``record.gpu_record_problems``); nothing for a
   CPU image;
5. with ``model``: a stamp whose signature verifies and whose parity is the signed record's, and
   golden outputs (when there are any) whose signature verifies.

Every check runs and every refusal is one line naming its cause. ``cosign verify --key`` and
``cosign verify-attestation --key --type …`` give the same answer for 1 and 2 (docs/guides/deploy-gate.md
shows them); the record comparison is imagesmith's.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine import Engine, ImageInfo, registry_host, repository
from .errors import ImagesmithError, SigningError, UsageError
from .facts import manifest_of, read_facts
from .findings import Findings
from .fsutil import sha256_file
from .pinned import Target, registry_target
from .record import (
    GPU_PREDICATE,
    PARITY_PREDICATE,
    SIGNOFF_PREDICATE,
    gpu_contract,
    gpu_record_problems,
    make_gpu_record,
    make_record,
    read_app,
    record_problems,
)
from .runtime.stamp import GOLDEN_FILE, STAMP_FILE, StampError, read_stamp
from .signing import Cosign, key_file, signature_path
from .signoff.check import read_signoff

if TYPE_CHECKING:
    from .build import BuildResult


@dataclass
class Signed:
    """What was signed: the pinned reference and the record attested (None: a file only)."""

    ref: str
    record: dict[str, Any] | None = None
    files: list[Path] = field(default_factory=list)
    gpu: dict[str, Any] | None = None  # the GPU contract attested (None: a CPU image, or a file)


@dataclass
class GateReport(Findings):
    key: str
    digest: str | None = None  # the digest checked (REF resolved in its registry)
    ref: str | None = None  # REPO@sha256:...

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "digest": self.digest,
            "ref": self.ref,
            "ok": self.ok,
            **self.findings_json(),
        }


# ------------------------------------------------------------------------------------------------
# where signatures live: the registry, by digest


def not_in_registry(image: str) -> str:
    return (
        f"{image} is not a registry reference: signatures and attestations live in a registry, beside "
        "the image's digest (push it: `imagesmith build --push REGISTRY/REPO --sign KEY`, then give "
        "REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:…)"
    )


def _require_pushed(image: str) -> None:
    """A local-only image is a UsageError: there is nowhere to attach a signature."""
    if not registry_host(image):
        raise UsageError(not_in_registry(image), hint="imagesmith signs pushed images: build with --push")


def pinned_image(engine: Engine, image: str, platform: str | None = None) -> tuple[str, ImageInfo]:
    """``image`` resolved in its registry (``pinned.registry_target``): (``REPO@sha256:…``, its
    labels, config and layers read by that digest; ``platform``'s entry when ``image`` names an
    index, else the registry reader's default). A local-only image is refused (``_require_pushed``)."""
    _require_pushed(image)
    target = registry_target(engine, image, platform)
    return target.pinned, target.info


def _app(engine: Engine, pinned: str) -> dict[str, str] | None:
    """``/app`` of the image, read from outside it (pulled by digest first when the engine lacks it)."""
    engine.runnable(pinned)
    return read_app(engine, pinned)


# ------------------------------------------------------------------------------------------------
# signing


def sign_image(engine: Engine, cosign: Cosign, image: str, key: Path, *, lock: Path | None = None) -> Signed:
    """Sign ``image``'s digest and attest its build record (read from the image as it is now).
    An image index: each platform's image is signed and attested, then the index's own digest is
    signed (a deploy may pull either; ``cosign verify`` of the index checks the latter)."""
    key = key_file(key, "private")
    _require_pushed(image)
    platforms = index_platforms(engine, image)
    index_digest, children = platforms if platforms is not None else ("", None)
    if children is None:
        # one image: read again by the digest just read (its manifest is not asked for twice, and
        # a tag moved meanwhile changes nothing)
        ref = f"{repository(image)}@{index_digest}" if index_digest else None
        return _sign_manifest(engine, cosign, image, key, lock, ref=ref)
    for platform in children:
        _sign_manifest(
            engine, cosign, registry_target(engine, f"{repository(image)}@{index_digest}", platform).pinned, key, lock
        )
    pinned = f"{repository(image)}@{index_digest}"
    cosign.sign(pinned, key)
    return Signed(ref=pinned)


def index_platforms(engine: Engine, image: str) -> tuple[str, list[str] | None] | None:
    """(the digest ``image`` names in its registry, the platforms its index has images for); the
    platforms are None for a single image's manifest; None for an answer that is no JSON object
    (the image's own read then says what is wrong). Attestation entries (``unknown/unknown``) are
    skipped."""
    raw, digest = engine.registry.raw(image)
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    if not isinstance(doc.get("manifests"), list):
        return digest, None
    seen: list[str] = []
    for entry in doc["manifests"]:
        plat = entry.get("platform") if isinstance(entry, dict) else None
        if isinstance(plat, dict) and plat.get("architecture") not in (None, "unknown"):
            name = f"{plat.get('os')}/{plat.get('architecture')}"
            if name not in seen:
                seen.append(name)
    return digest, seen


def _sign_manifest(
    engine: Engine, cosign: Cosign, image: str, key: Path, lock: Path | None, ref: str | None = None
) -> Signed:
    """Sign one image's manifest: ``image`` as the user named it, read as ``ref`` (default: ``image``)."""
    pinned, info = pinned_image(engine, ref or image)
    facts, problem = read_facts(engine, info)
    manifest, problems = manifest_of(info, facts, problem)
    if manifest is None:
        raise UsageError(f"{image}: {'; '.join(problems)}: not signing it", hint="sign what imagesmith built")
    contract, unusable = gpu_contract(info)
    if unusable:
        raise UsageError(f"{image}: {unusable}: not signing it", hint="sign what imagesmith built")
    record = make_record(info, manifest, app=_app(engine, pinned), lock_digest=sha256_file(lock) if lock else None)
    gpu_record = make_gpu_record(info, facts) if contract is not None else None
    cosign.sign(pinned, key)
    cosign.attest(pinned, key, PARITY_PREDICATE, record)
    if gpu_record is not None:
        cosign.attest(pinned, key, GPU_PREDICATE, gpu_record)
    return Signed(ref=pinned, record=record, gpu=gpu_record)


def sign_built(
    engine: Engine, cosign: Cosign, result: BuildResult, key: Path, *, lock: Path | None
) -> dict[str, Signed]:
    """Sign each image of a build (``imagesmith build --sign``): the digest it was pushed to with
    ``--push``, or else its registry tags (``-t REGISTRY/REPO``), pushed from the engine first. The
    registry's digest must be the one BuildKit reported: what is signed is what was built."""
    out = {}
    for role, img in result.images.items():
        ref = img.pushed
        if ref is None:
            tags = [t for t in img.tags if registry_host(t)]
            if not tags:
                raise UsageError(
                    f"the {role} image was neither pushed nor tagged for a registry: there is nothing to sign",
                    hint="build with --push REGISTRY/REPO (or -t REGISTRY/REPO, with --load on another builder)",
                )
            digests = {engine.push(t) for t in tags}
            if digests != {img.id}:
                raise SigningError(
                    f"pushing the {role} image gave {', '.join(sorted(digests))}, the build made {img.id}: not signing"
                )
            ref = f"{repository(tags[0])}@{img.id}"
        out[role] = sign_image(engine, cosign, ref, key, lock=lock)
    return out


def sign_signoff(engine: Engine, cosign: Cosign, record: dict[str, Any], path: Path, key: Path) -> Signed:
    """Attest the signoff ``record`` (written to ``path``) on its serve image's digest, and sign ``path``."""
    key = key_file(key, "private")
    image = str((record.get("image") or {}).get("ref"))
    # the platform the signoff ran on: an index's entry for it, not this machine's
    platform = record.get("platform") if isinstance(record.get("platform"), str) else None
    pinned, info = pinned_image(engine, image, platform)
    signed_digest = (record.get("image") or {}).get("digest")
    if signed_digest != info.id:
        raise SigningError(
            f"the signoff was made for {signed_digest}, but {image} is {info.id} in its registry",
            hint="run the signoff on the pushed image's reference",
        )
    if json.loads(Path(path).read_text(encoding="utf-8")) != record:
        raise SigningError(f"{path} is not the signoff record just made (changed while signing?)")
    cosign.attest(pinned, key, SIGNOFF_PREDICATE, record)
    sig = cosign.sign_blob(Path(path), key)
    return Signed(ref=pinned, record=record, files=[sig])


def model_files(folder: Path) -> list[Path]:
    """The files of a model folder that are signed: its stamp (required) and golden outputs (if any)."""
    stamp = Path(folder) / STAMP_FILE
    if not stamp.is_file():
        raise UsageError(
            f"{folder} holds no {STAMP_FILE}: there is no model stamp to sign",
            hint="sign the artifacts folder a train run wrote",
        )
    golden = Path(folder) / GOLDEN_FILE
    return [stamp] + ([golden] if golden.is_file() else [])


def sign_model(cosign: Cosign, folder: Path, key: Path) -> Signed:
    key = key_file(key, "private")
    files = [cosign.sign_blob(path, key) for path in model_files(folder)]
    return Signed(ref=str(folder), files=files)


# ------------------------------------------------------------------------------------------------
# the gate


def gate_image(
    engine: Engine,
    cosign: Cosign,
    ref: str,
    pub_key: Path,
    *,
    model: Path | None = None,
    signoff: Path | None = None,
    lock: Path | None = None,
    info: ImageInfo | None = None,
    role: str | None = None,
) -> GateReport:
    """The signature gate of ``ref`` (see the module docstring); every problem named. ``info``:
    the image already resolved (``deploy.resolve``; else ``ref`` is read from its registry here).
    With ``lock``, the signed record must name that lock file's digest too; with ``role``, the
    signed record must be of that role. When ``ref`` named an image index, the index's own digest
    must be signed too (what ``cosign verify`` of that reference checks)."""
    pub = key_file(pub_key, "public")
    report = GateReport(key=str(pub_key))
    if not registry_host(ref) or (info is not None and info.source != "registry"):
        report.problems.append(not_in_registry(ref))
        return report
    target = registry_target(engine, ref) if info is None else Target(ref=ref, info=info)
    info, pinned, digest = target.info, target.pinned, target.digest
    report.ref, report.digest = pinned, digest
    if "@" not in ref or info.index_digest:
        report.notes.append(f"{ref} resolves to {pinned} in its registry: that digest is what was checked")
    who = f"by {pub_key}"

    _signature(cosign, pinned, digest, pub, who, report)
    if info.index_digest:
        index_ref = f"{repository(pinned)}@{info.index_digest}"
        _signature(cosign, index_ref, info.index_digest, pub, who, report, what="the image index ")

    record = _parity_record(engine, cosign, pinned, digest, info, pub, who, report)
    _gpu(engine, cosign, pinned, digest, info, pub, who, report)
    if role is not None and record is not None:
        if record.get("role") == role:
            report.checks.append(f"the signed record is of a {role} image")
        else:
            report.problems.append(f"the signed record is of a {record.get('role')} image, not {role}")
    if lock is not None and record is not None:
        lock_digest = sha256_file(Path(lock))
        if record.get("lock") == lock_digest:
            report.checks.append(f"the signed record names {Path(lock).name} ({lock_digest[:19]}…)")
        else:
            report.problems.append(
                f"the signed record names lock {record.get('lock') or '(none)'}, {lock} is {lock_digest}"
            )
    if signoff is not None:
        _signoff(cosign, pinned, digest, pub, who, Path(signoff), report)
    if model is not None:
        _model(cosign, Path(model), pub, who, record, report)
    return report


def _signature(
    cosign: Cosign, pinned: str, digest: str, pub: Path, who: str, report: GateReport, what: str = ""
) -> None:
    """A signature by the key on ``digest`` (``pinned`` is its reference), as a check or a problem."""
    signature = cosign.verify(pinned, pub)
    if signature.ok and all(_claimed_digest(p) == digest for p in signature.payloads):
        report.checks.append(f"{what}signed {who}: a valid signature on {digest}")
    elif signature.ok:
        report.problems.append(f"{what}the signature {who} names another digest than {digest}")
    else:
        report.problems.append(f"no valid signature {who} on {what}{digest}: {signature.reason}")


def _claimed_digest(payload: dict[str, Any]) -> str | None:
    return ((payload.get("critical") or {}).get("image") or {}).get("docker-manifest-digest")


def _statements(cosign: Cosign, pinned: str, digest: str, pub: Path, kind: str, who: str, report: GateReport):
    """The verified statements of ``kind`` on ``digest`` (their predicates), or None (a problem said why)."""
    verdict = cosign.verify_attestations(pinned, pub, kind)
    name = {PARITY_PREDICATE: "parity", GPU_PREDICATE: "GPU"}.get(kind, "signoff")
    if not verdict.ok:
        report.problems.append(f"no {name} attestation {who} on {digest} ({kind}): {verdict.reason}")
        return None
    hexdigest = digest.split(":", 1)[-1]
    predicates = []
    for statement in verdict.payloads:
        subjects = statement.get("subject") or []
        if statement.get("predicateType") != kind or not any(
            (s.get("digest") or {}).get("sha256") == hexdigest for s in subjects if isinstance(s, dict)
        ):
            report.problems.append(f"a {name} attestation {who} is not about {digest} (type or subject differs)")
            return None
        if statement.get("predicate") not in predicates:
            predicates.append(statement.get("predicate"))
    return predicates


def _parity_record(engine, cosign, pinned, digest, info, pub, who, report) -> dict[str, Any] | None:
    predicates = _statements(cosign, pinned, digest, pub, PARITY_PREDICATE, who, report)
    if predicates is None:
        return None
    app = _app(engine, pinned) if any(isinstance(p, dict) and p.get("app") is not None for p in predicates) else None
    problems = [line for record in predicates for line in record_problems(record, info, app)]
    if problems:
        report.problems += [f"the parity attestation {who} says otherwise: {line}" for line in problems]
        return None
    record = predicates[-1]
    report.checks.append(
        f"the parity attestation {who} matches the image: parity {record['parity']}, role {record['role']}, "
        f"{len(record['layers'])} layers, the whole config"
        + (f", /app ({len(record['app']['files'])} entries)" if record.get("app") else "")
    )
    return record


def _gpu(engine, cosign, pinned, digest, info, pub, who, report: GateReport) -> None:
    """A GPU image's contract attested by the key on its digest, equal to the image's (its
    label, and its facts' gpu section when they can be read). A CPU image: nothing to check."""
    contract, unusable = gpu_contract(info)
    if unusable:
        report.problems.append(unusable)
        return
    if contract is None:
        return
    predicates = _statements(cosign, pinned, digest, pub, GPU_PREDICATE, who, report)
    if predicates is None:
        return
    facts, _ = read_facts(engine, info)
    problems = [line for gpu_record in predicates for line in gpu_record_problems(gpu_record, info, facts)]
    if problems:
        report.problems += [f"the GPU attestation {who} says otherwise: {line}" for line in problems]
        return
    report.checks.append(
        f"the GPU attestation {who} matches the image's contract: CUDA {contract.get('cuda')}, "
        f"NVIDIA driver {contract.get('min_driver')} or newer"
    )


def _signed_file(cosign, path: Path, pub, who: str, report: GateReport) -> None:
    """A file's signature (``<file>.sig`` beside it) by the key, as a check or a problem."""
    verdict = cosign.verify_blob(path, pub)
    if verdict.ok:
        report.checks.append(f"{path.name} is signed {who}")
    else:
        report.problems.append(f"{path} has no valid signature {who}: {verdict.reason}")


def _signoff(cosign, pinned, digest, pub, who, path: Path, report: GateReport) -> None:
    predicates = _statements(cosign, pinned, digest, pub, SIGNOFF_PREDICATE, who, report)
    try:
        data = read_signoff(path)  # first: a FIFO or a link to /dev/zero is refused before cosign reads it
    except ImagesmithError as exc:  # the file itself is unusable
        report.problems.append(str(exc))
        return
    _signed_file(cosign, path, pub, who, report)
    if predicates is None:
        return
    if data not in predicates:
        report.problems.append(
            f"{path} is not the signoff record attested {who} on {digest} (edited or another signoff)"
        )
        return
    if data.get("passed") is not True:
        report.problems.append(f"the signoff attested {who} did not pass")
    elif (data.get("image") or {}).get("digest") != digest:
        report.problems.append(f"the signoff attested {who} names image {(data.get('image') or {}).get('digest')}")
    else:
        report.checks.append(
            f"the signoff attestation {who} on {digest} passed and is {path.name}, byte for byte in content"
        )


def _model(cosign, folder: Path, pub, who, record, report: GateReport) -> None:
    stamp_path = folder / STAMP_FILE
    if not os.path.lexists(stamp_path):
        report.problems.append(f"{folder} holds no {STAMP_FILE}: no signed model stamp")
        return
    try:
        stamp = read_stamp(str(folder))  # first: only a regular file of bounded size goes to cosign
    except StampError as exc:
        report.problems.append(str(exc))
        return
    golden = folder / GOLDEN_FILE
    if os.path.lexists(golden) and not stat.S_ISREG(os.lstat(golden).st_mode):
        report.problems.append(f"{golden} is not a regular file: not read")
        return
    for path in [stamp_path] + ([golden] if os.path.lexists(golden) else []):
        _signed_file(cosign, path, pub, who, report)
    if stamp is None or record is None:
        return
    if stamp["parity"] == record["parity"]:
        report.checks.append(f"the model's stamp has the signed parity {record['parity']}")
    else:
        report.problems.append(
            f"the model's stamp has parity {stamp['parity']}, the image's signed record {record['parity']}"
        )


__all__ = [
    "GateReport",
    "Signed",
    "gate_image",
    "model_files",
    "pinned_image",
    "sign_built",
    "sign_image",
    "sign_model",
    "sign_signoff",
    "signature_path",
]
