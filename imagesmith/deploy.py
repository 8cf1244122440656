"""The deploy gate: what ``imagesmith verify`` runs, as one library call.

A deploy script asks one question: may THIS image run? The answer is only worth something if
every check looked at the very image a deploy then runs. So the reference is resolved ONCE
(``resolve``), before any check:

- a registry reference (``HOST[:PORT]/REPO:TAG`` or ``@sha256:…``) is read from its registry; an
  image index resolves to the entry Docker on the platform would run (normalised platform names,
  first match: ``platforms.index_candidates``), and an index with more than one entry Docker could
  take for the platform is refused. The result is ``REPO@sha256:<manifest>``;
- a name the local engine resolves is the engine's image ID.

Every step (labels, config and layers, the content probe, the model, the signoff, the signature
and the signed record) then reads that pinned image only, so a tag moved during the run changes
nothing, and the gate's answer names the digest a deploy must use (``Verdict.pinned``): the text
output's last line and ``--json``'s ``digest`` and ``ref``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine import Engine, registry_host
from .errors import UsageError
from .layout import LABEL_ROLE, ROLES
from .pinned import Target, local_of_platform, registry_target
from .platforms import same_platform

if TYPE_CHECKING:
    from .gate import GateReport
    from .signing import Cosign
    from .verify import Report


def platform_image(engine: Engine, image: str, platform: str) -> str:
    """``image`` narrowed to ``platform``: a registry reference becomes the digest reference of
    that platform's image in its index (read without pulling); a local image must be of it."""
    from .engine import repository
    from .platforms import emulation_problem

    problem = emulation_problem(platform)
    if problem:
        raise UsageError(problem)
    if registry_host(image):
        digest, _ = engine.registry_platform_digest(image, platform)
        return f"{repository(image)}@{digest}"
    local_of_platform(engine, image, platform)
    return image


def resolve(engine: Engine, ref: str, platform: str | None = None) -> Target:
    """``ref`` resolved once (see the module docstring). ``platform``: which image of an index
    (default: this machine's); an image that is not of it is refused."""
    from .platforms import machine_platform

    want = platform or machine_platform()
    if registry_host(ref):
        target = registry_target(engine, ref, want)
        info = target.info
        if platform and info.platform and not same_platform(info.platform, platform):
            raise UsageError(
                f"{ref} is a {info.platform} image, not {platform}",
                hint="name the platform the image is for, or give the reference of an index that has both",
            )
        return target
    return Target(ref=ref, info=local_of_platform(engine, ref, platform))


@dataclass
class Verdict:
    """The deploy gate's answer: the verify report, the signature gate's (with a key), and the
    image every check read."""

    target: Target
    report: Report
    signature: GateReport | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.report.ok and (self.signature is None or self.signature.ok)

    def as_json(self) -> dict[str, Any]:
        data = self.report.as_json()
        out = {
            **data,
            "ok": self.ok,
            "digest": self.target.digest,
            "ref": self.target.pinned,
            "index_digest": self.target.info.index_digest or None,
            "platform": self.target.info.platform or None,
        }
        if self.signature is not None:
            out["signature"] = self.signature.as_json()
        return out


def check(
    engine: Engine,
    ref: str,
    *,
    platform: str | None = None,
    role: str | None = None,
    lock: Path | None = None,
    expect: str | None = None,
    pair: str | None = None,
    model: Path | None = None,
    signoff: Path | None = None,
    key: Path | None = None,
    labels_only: bool = False,
    allow_extra_files: bool = False,
    cosign: Cosign | None = None,
) -> Verdict:
    """Every check ``imagesmith verify`` documents, on ``ref`` resolved once. ``allow_extra_files``:
    files in the ``model`` folder that its stamp does not list are allowed (else refused)."""
    from .verify import verify_image, verify_model

    if expect is not None and not (expect.startswith("sha256:") and len(expect) == 71):
        raise UsageError(f"--expect must be sha256:<64 hex digits>, not {expect!r}")
    if role is not None and role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    if signoff is not None and model is None:
        raise UsageError("--signoff needs --model DIR: a signoff holds for one image and one model")
    # the facts, the interpreter and /app of the image: one container of it, not one each
    with engine.keeping_readers():
        target = resolve(engine, ref, platform)
        info = target.info
        report = verify_image(
            engine, ref, info=info, lock=lock, expect=expect, pair=pair, labels_only=labels_only, platform=platform
        )
        if role is not None:
            got = info.labels.get(LABEL_ROLE)
            if got == role:
                report.checks.append(f"role: a {role} image, as this deploy expects")
            else:
                report.problems.append(f"role: {ref} is a {got or 'role-less'} image; this deploy expects {role}")
        elif key is not None:
            report.notes.append("role: not required; say what is deployed with --role serve (or train)")
        if model is not None:
            model_check = verify_model(engine, ref, model, platform, info=info, allow_extra=allow_extra_files)
            report.checks += [f"model: {line}" for line in model_check.checks]
            report.problems += [f"model: {line}" for line in model_check.problems]
        if signoff is not None:
            from .signoff.check import check_signoff

            assert model is not None
            gate = check_signoff(engine, ref, signoff, model, platform=platform, info=info)
            report.checks += [f"signoff: {line}" for line in gate.checks]
            report.problems += [f"signoff: {line}" for line in gate.problems]
            report.notes += [f"signoff: {line}" for line in gate.notes]
        signature = None
        if key is not None:
            from .gate import gate_image
            from .signing import Cosign

            signature = gate_image(
                engine, cosign or Cosign(), ref, key, info=info, role=role, model=model, signoff=signoff, lock=lock
            )
            report.checks += [f"signature: {line}" for line in signature.checks]
            report.problems += [f"signature: {line}" for line in signature.problems]
            report.notes += [f"signature: {line}" for line in signature.notes]
        return Verdict(target=target, report=report, signature=signature)
