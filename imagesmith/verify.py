"""Deploy-time checks of built images: the Python API behind ``imagesmith verify`` (and, with the
modules it is made of, ``inspect`` and ``diff``). An image is judged by its own facts, never by
re-rendering today's project: verify imports nothing from the build side and no spec.

A label is only a claim (and a child image inherits its parent's), so ``verify_image`` checks:

1. **The facts and labels** (``verify_source``, ``facts.py``): the manifest in the image facts
   file (read from outside a local image; a registry image's from its last layer, fetched alone
   without pulling) must hash to the parity label (``parity.digest``), and the parity is compared
   with one recomputed from a lock, an expected value from a pipeline, or the other image of a
   train/serve pair.
2. **The image config, whole** (``config_check``): Entrypoint, Cmd, User, WorkingDir, every
   variable, ports, volumes, labels, stop signal, health check against what the image plan in
   the facts sets for the image's role (``plan.ImagePlan.from_facts``) laid over the base image's
   config (``plan.expected_config``). A config-only child (a new CMD, an added ENV) differs here.
3. **The layers** (``layer_check``): the image has exactly the base's layers plus the ones the
   plan's steps add; any more is a child image, whatever its history or labels say. The build
   history is never read: whoever builds an image writes it. ``--pair`` compares the two images'
   layer lists (they share all of them).
4. **Files read from outside** (``verify_outside``; a container is created and never started):
   ``/etc/ld.so.preload`` (must be the base's, or absent) and the interpreter the venv's
   ``python`` resolves to (must be a link to the base's file, byte for byte).
5. **The content** (skipped with ``labels_only``; ``verify_probe``): ``runtime/probe.py`` runs
   inside a locked-down container of the image and reports every installed distribution with
   its files checked against its RECORD, stray files, stale bytecode, the preprocessing files,
   Debian packages and the Python version; these are compared with the manifest by
   ``compare.compare`` (``verify_views``), the same words ``diff`` uses. The probe runs the
   image's own interpreter, so it is a diagnostic, never the gate (``PROBE_NOTE``): the gate is
   the signature on the digest and the signed build record (``imagesmith verify --key``).

Registry references (``host[:port]/name:tag`` or ``@sha256:``) are read with ``docker buildx
imagetools``, without pulling, for the facts, label and config checks; the outside reads and the
content check pull the image by digest first (``--labels-only`` on a registry image pulls nothing).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from . import parity
from .compare import Change, View, compare
from .engine import Engine, ImageInfo
from .errors import UsageError, VerifyError
from .facts import manifest_of, read_facts
from .layout import (
    APP_DIR,
    FACTS_FILE,
    LABEL_PARITY,
    LABEL_PLATFORMS,
    LABEL_ROLE,
    LABEL_USER,
    OPTIONAL_LABELS,
    RESERVED_LABELS,
    ROLES,
    VENV,
    VENV_PYTHON,
)
from .plan import ImagePlan, expected_config, normalize_config, shared_layers
from .record import config_problems, read_app, source_problems
from .runtime.untrusted import MapOf, shape_problem
from .verify_base import BaseCheck, check_base
from .verify_inspect import inspect_lines, inspect_source
from .verify_outside import Outside, outside_checks, read_outside
from .verify_probe import PROBE_NOTE, run_probe
from .verify_report import Report, label_json
from .verify_source import Source, image_source, local_image, open_source
from .verify_views import CODE_SUFFIXES, claim_view, claimed_packages, image_view, project_name, source_view

if TYPE_CHECKING:
    from .runtime import stamp

# what the CLI and the deploy gate import from here, besides what is defined below
__all__ = ["Report", "inspect_lines", "inspect_source", "open_source", "load_view", "verify_image", "verify_model"]


# ------------------------------------------------------------------------------------------------
# the config: the image's, against what imagesmith's Dockerfile sets over the base's


def implied_config(info: ImageInfo, facts: dict | None) -> tuple[dict | None, str]:
    """The config imagesmith's Dockerfile sets for the image's role (the image plan's, read from
    the image-facts file, a file in a layer) and where it was read; None and "" when there is
    no record."""
    role = info.labels.get(LABEL_ROLE) or ""
    plan = expected_plan(facts)
    if plan is not None and isinstance(plan.configs.get(role), dict):
        return plan.configs[role], f"imagesmith's Dockerfile ({FACTS_FILE} in the image)"
    return None, ""


def user_labels(info: ImageInfo) -> dict[str, str]:
    """The user's own labels that the build listed in ``io.imagesmith.labels`` ({} when none);
    ValueError when the list is not a map of strings or names a label imagesmith sets itself."""
    value = label_json(info, LABEL_USER)
    if value is None:
        return {}
    problem = shape_problem(value, MapOf(str))
    if problem:
        raise ValueError(f"label {LABEL_USER} is not a map of labels ({problem})")
    assert isinstance(value, dict)
    own = sorted(k for k in value if k.startswith(RESERVED_LABELS))
    if own:
        raise ValueError(f"label {LABEL_USER} lists {', '.join(own)}, which imagesmith sets itself")
    return value


def config_check(report: Report, info: ImageInfo, facts: dict | None, base: BaseCheck) -> None:
    """Every field of the image's config against what imagesmith's Dockerfile sets for its role
    laid over its base's: Entrypoint, Cmd, User, WorkingDir, every variable, ports, volumes,
    labels, stop signal. A config-only child image (new CMD, an added ENV) differs here."""
    role = info.labels.get(LABEL_ROLE)
    if role not in ROLES:
        report.problems.append(f"label {LABEL_ROLE} is {role!r}, not one of {', '.join(ROLES)}")
        return
    implied, whose = implied_config(info, facts)
    if implied is None and whose:
        report.problems.append(f"the image config was not compared: {whose}")
        return
    if implied is None or not all(isinstance(implied.get(k), dict) for k in ("Env", "Labels")):
        report.notes.append(
            "the image config was not compared with imagesmith's Dockerfile: the image carries no record of it"
        )
        return
    implied = dict(implied)
    try:
        user = user_labels(info)
    except ValueError as exc:
        report.problems.append(str(exc)[:300])
        return
    if user:  # the build's --label labels, as the build listed them (build.image_labels)
        implied["Labels"] = {**implied["Labels"], **user, LABEL_USER: info.labels[LABEL_USER]}
    base_config = normalize_config(base.image.config) if base.image is not None else None
    want = expected_config(base_config, implied)
    problems = config_problems(
        want, normalize_config(info.config), base_known=base_config is not None, whose=whose, optional=OPTIONAL_LABELS
    )
    report.problems += problems
    if not problems:
        report.checks.append(
            f"the whole image config (entrypoint, command, user, working directory, {len(want.get('Env', {}))} "
            f"variables, ports, volumes, labels) is what {whose} sets"
            + (" over the base's" if base_config is not None else "")
        )


def layer_check(report: Report, info: ImageInfo, base: BaseCheck, facts: dict | None, strict: bool) -> None:
    """No filesystem layer beyond what imagesmith's Dockerfile makes (``layers_added``);
    ``strict``: not being able to tell is a problem too."""
    added = layers_added(info, base, facts)
    plan = expected_plan(facts)
    if added is None:
        why = "the base image could not be read" if base.image is None else f"the image has no readable {FACTS_FILE}"
        line = f"cannot tell whether filesystem layers were added on top of the built image: {why}"
        (report.problems if strict else report.notes).append(line)
    elif added > 0:
        report.problems.append(
            f"{added} filesystem layer{'s were' if added != 1 else ' was'} added on top of the image imagesmith "
            f"built ({len(info.layers)} layers: the base's {len(base.image.layers) if base.image else '?'} and "
            f"{plan.layers_over_base if plan else '?'} from imagesmith's Dockerfile): a child image"
        )
    elif added < 0:
        report.problems.append(
            f"the image has {-added} filesystem layer{'s' if added != -1 else ''} fewer than imagesmith's "
            "Dockerfile makes: not the image its label describes"
        )
    else:
        report.checks.append(
            f"{len(info.layers)} filesystem layers: the base's and the "
            f"{plan.layers_over_base if plan else '?'} imagesmith's Dockerfile adds, none on top"
        )


def expected_plan(facts: dict | None) -> ImagePlan | None:
    """The plan an image's facts file describes (None: no facts, or facts naming no plan)."""
    if not facts:
        return None
    try:
        return ImagePlan.from_facts(facts)
    except ValueError:
        return None


def layers_added(info: ImageInfo, base: BaseCheck, facts: dict | None) -> int | None:
    """Filesystem layers on top of what imagesmith's Dockerfile makes (``ImagePlan.layers_added``,
    the plan read from the image-facts file, a file in a layer: a child cannot change it without
    adding one). None: cannot tell (the base or the facts file could not be read). Nothing here
    reads the build history, which whoever builds an image writes."""
    plan = expected_plan(facts)
    if base.verdict != "ok" or base.image is None or plan is None or not facts or "steps" not in facts:
        return None
    return plan.layers_added(info.layers, base.image.layers)


def load_view(
    engine: Engine, source: Source, *, labels_only: bool, detail: bool, preprocessing: tuple[str, ...], notes: list[str]
) -> View:
    """The View of a source for ``diff``: a lock as it is; an image as observed."""
    if source.kind == "lock":
        return source_view(source)
    if source.manifest is None:
        raise VerifyError(
            f"{source.name} has no usable parity manifest: {'; '.join(source.problems)}",
            hint="it was not built by imagesmith, or its labels were edited; `imagesmith verify` says more",
        )
    info = source.info
    assert info is not None
    base = check_base(engine, info, source.manifest["base"])
    if base.verdict == "unknown":
        notes.append(f"{source.name}: {base.detail}")
    facts = None
    if not labels_only:
        facts = run_probe(engine, local_image(engine, source, notes), preprocessing=preprocessing, detail=detail)
        if "start_error" in facts:
            notes.append(f"{source.name}: no Python environment to look into ({facts['start_error']})")
    project = project_name(source.facts)
    added = layers_added(info, base, source.facts)  # a registry image's layers are its config's: counted too
    if added:
        notes.append(
            f"{source.name}: {added} filesystem layer{'s' if added != 1 else ''} more than imagesmith's "
            "Dockerfile makes (a child image)"
        )
    return image_view(source, info, facts, base, project=project)


# ------------------------------------------------------------------------------------------------
# verify


def verify_image(
    engine: Engine,
    image: str,
    *,
    lock: Path | None = None,
    expect: str | None = None,
    pair: str | None = None,
    labels_only: bool = False,
    platform: str | None = None,
    info: ImageInfo | None = None,
) -> Report:
    """Check ``image`` (local, or a registry reference) against its own labels and, when given,
    a lock, an expected parity and its train/serve pair. See the module docstring. ``platform``:
    which image of a multi-platform index, and which section of a multi-platform lock (default:
    this machine's). ``info``: the image already resolved (``deploy.resolve``), read as it is."""
    source = open_source(engine, image, platform) if info is None else image_source(engine, image, info)
    if source.kind == "lock":
        raise UsageError(
            f"{image} is a lock file; verify checks an image",
            hint="give an image reference, or compare the lock with `imagesmith diff`",
        )
    info = source.info
    assert info is not None
    report = Report(
        image=image,
        image_id=info.id,
        parity=info.labels.get(LABEL_PARITY),
        role=info.labels.get(LABEL_ROLE),
        mode="labels" if labels_only else "content",
    )
    manifest = source.manifest
    report.problems += source.problems
    if manifest is not None:
        report.checks.append(f"the manifest in the image's {FACTS_FILE} hashes to its parity label")
    # read once: references, layer count; the section of the image's own platform
    locked = None
    if lock is not None:
        from .lock.lockfile import read_lock  # the lock package is the build side's: only with --lock

        locked = read_lock(lock, platform or info.platform or None)
    _check_references(engine, report, info, manifest, lock, locked, expect, pair, platform)
    if manifest is None:
        return report
    base = check_base(engine, info, manifest["base"])
    if base.verdict == "ok":
        report.checks.append(f"base: {base.detail}")
    elif base.verdict == "unknown":
        report.notes.append(f"base not checked: {base.detail}")
    local: ImageInfo | None = info
    if info.source == "registry":
        local = local_image(engine, source, report.notes) if not labels_only else None
    outside = read_outside(engine, local.id) if local is not None else Outside()
    if local is None:
        report.notes.append(
            f"labels only: the registry image was not pulled; of its files only {FACTS_FILE} (its top layer) was read"
        )
    config_check(report, info, source.facts, base)
    layer_check(report, info, base, source.facts, strict=lock is not None)
    if local is not None:
        outside_checks(engine, report, outside, base)
        if lock is not None:
            _source_check(engine, report, local, lock.resolve().parent)
    facts = None
    if not labels_only:
        assert local is not None
        facts = run_probe(engine, local, preprocessing=tuple(manifest["preprocessing"]))
        report.notes.append(PROBE_NOTE)
    _manifest_against_image(report, source, manifest, facts, base)
    return report


def _manifest_against_image(
    report: Report, source: Source, manifest: dict, facts: dict | None, base: BaseCheck
) -> None:
    """The manifest against what the image has (``compare.compare`` of the two views): the
    probe's report ``facts`` (None: labels only, then only the config's variables are observed)."""
    info = source.info
    assert info is not None
    claimed = claim_view(manifest, "the manifest")
    observed = image_view(source, info, facts, base, code_only=True, project=project_name(source.facts))
    observed.name = "the image"
    changes = compare(claimed, observed)
    if facts is not None and "start_error" in facts:
        report.problems.append(
            f"the image has no Python environment where imagesmith puts it "
            f"({facts['start_error']}): it is not the image its label describes"
        )
        changes = [c for c in changes if c.group not in ("distributions", "python")]
    report.problems += [c.line("the manifest", "the image") for c in changes]
    if facts is not None and "start_error" not in facts:
        report.problems += _environment_problems(facts)
        _content_checks(report, facts, manifest, changes)
        data = sorted(
            rel for rel in facts["unrecorded"] if not rel.endswith(CODE_SUFFIXES) and not rel.startswith("imagesmith")
        )
        if data:
            report.notes.append(
                f"{len(data)} data file{'s' if len(data) != 1 else ''} in site-packages that no "
                f"distribution installed (not code, not compared): {', '.join(data[:5])}"
                + (" …" if len(data) > 5 else "")
            )
    elif facts is None:
        report.notes.append("labels only: the content probe did not run (run without --labels-only for that)")
    if not any(c.group == "seed_env" for c in changes):
        report.checks.append(
            "seed and environment: "
            + ", ".join(f"{k}={v}" for k, v in sorted(observed.env.items()) if k in observed.env_expected)
            + " as the manifest says"
        )


def _check_references(engine, report, info, manifest, lock, locked_file, expect, pair, platform=None) -> None:
    if lock is not None:
        locked = parity.manifest_from_lock(locked_file)
        want = parity.digest(locked)
        if manifest is not None and parity.digest(manifest) == want:
            report.checks.append(f"parity matches {lock.name} ({want})")
        elif manifest is not None:
            report.problems.append(f"parity {report.parity} does not match {lock.name} ({want}):")
            claimed = claim_view(locked, lock.name, "lock")
            report.problems += [
                "  " + c.line(lock.name, "the image") for c in compare(claimed, claim_view(manifest, "image"))
            ]
        elif report.parity != want:
            report.problems.append(f"parity label {report.parity} does not match {lock.name} ({want})")
    if expect is not None:
        if report.parity == expect and manifest is not None:
            report.checks.append(f"parity is the expected {expect}")
        elif report.parity != expect:
            report.problems.append(f"parity {report.parity} is not the expected {expect}")
    if pair is not None:
        other = open_source(engine, pair, platform).info
        assert other is not None
        if other.labels.get(LABEL_PARITY) != report.parity:
            report.problems.append(
                f"{pair} has parity {other.labels.get(LABEL_PARITY)}, {report.image} has {report.parity}"
            )
        else:
            report.checks.append(f"same parity as {pair}")
        if other.layers != info.layers:
            report.problems.append(_layer_difference(report.image, info.layers, pair, other.layers))
        else:
            report.checks.append(f"same {len(info.layers)} filesystem layers as {pair}")
        roles = {report.role, other.labels.get(LABEL_ROLE)}
        if roles != {"train", "serve"}:
            report.problems.append(f"a pair is one train and one serve image; roles are {sorted(map(str, roles))}")


def _environment_problems(facts: dict) -> list[str]:
    out = []
    cfg = facts.get("pyvenv_cfg")
    if cfg is None:
        out.append(f"{VENV}/pyvenv.cfg is missing: {VENV} is not the virtual environment imagesmith made")
    elif str(cfg.get("include-system-site-packages", "false")).lower() == "true":
        out.append(f"{VENV} also sees the system site-packages (include-system-site-packages = true)")
    path_python = facts.get("path_python")
    if path_python and path_python != VENV_PYTHON:
        out.append(f"python on the image's PATH is {path_python}, not the environment's {VENV_PYTHON}")
    for name in facts.get("duplicates") or ():
        out.append(f"distributions: {name} is installed twice (two .dist-info folders)")
    return out


def _source_check(engine: Engine, report: Report, info: ImageInfo, root: Path) -> None:
    """With ``--lock``: /app (read from outside the image) against the project beside the lock."""
    if not any((root / name).is_file() for name in ("imagesmith.yaml", "pyproject.toml")):
        report.notes.append(f"{APP_DIR} was not compared with the project: no spec beside the lock in {root}")
        return
    problems, n = source_problems(read_app(engine, info.id), root)
    report.problems += problems
    if not problems:
        report.checks.append(f"{APP_DIR}: {n} files, each the project's (read from outside the image)")


def _content_checks(report: Report, facts: dict, manifest: dict, changes: list[Change]) -> None:
    groups = {c.group for c in changes}
    dists = facts["distributions"]
    if "distributions" not in groups:
        files = sum(d["files"] for d in dists.values())
        n = len(claimed_packages(manifest))  # the locked ones and the runtime
        report.checks.append(
            f"{n} distribution{'s' if n != 1 else ''} installed as the manifest pins "
            f"{'them' if n != 1 else 'it'}; {files} installed files match their RECORD"
        )
    if "python" not in groups:
        report.checks.append(f"Python {facts['python']} on {facts['platform']}")
    if "preprocessing" not in groups and manifest["preprocessing"]:
        report.checks.append(f"{len(manifest['preprocessing'])} preprocessing files match the manifest")
    if "system_packages" not in groups and manifest["system_packages"]:
        report.checks.append(f"{len(manifest['system_packages'])} system packages at their pinned versions")


def _layer_difference(a: str, la: tuple[str, ...], b: str, lb: tuple[str, ...]) -> str:
    common = shared_layers(la, lb)
    return (
        f"filesystem layers differ: {a} has {len(la)}, {b} has {len(lb)}, "
        f"the first {common} are shared (layers added or changed on top of a built image)"
    )


# ------------------------------------------------------------------------------------------------
# the model: ``imagesmith verify SERVE_IMAGE --model DIR``


def verify_model(
    engine: Engine,
    image: str,
    folder,
    platform: str | None = None,
    *,
    info: ImageInfo | None = None,
    allow_extra: bool = False,
) -> stamp.Check:
    """The same check as the serve runtime's (``stamp.check_model``), against ``image``'s labels
    (``info`` when already resolved; else from the engine, or read from the registry for a
    registry reference the engine lacks: its ``platform`` image, for an index). Files in the
    folder that the stamp does not list are problems, unless ``allow_extra``."""
    from .runtime import stamp  # the model check's alone: a verify without --model reads no stamp

    if info is None:
        info = engine.lookup(image, platform) if platform else engine.lookup(image)
    label = info.labels.get(LABEL_PARITY)
    pre: list[str] = []
    facts, problem = read_facts(engine, info) if label else (None, "")
    manifest, problems = manifest_of(info, facts, problem)
    pre += [f"{image}: {line}" for line in problems]
    if not os.path.isdir(folder):
        raise stamp.StampError(
            f"{folder} {'is not a folder' if os.path.exists(folder) else 'does not exist'}",
            hint=f"pass the artifacts folder train wrote (it holds {stamp.STAMP_FILE})",
        )
    siblings: dict | None = None
    if info.labels.get(LABEL_PLATFORMS):
        try:
            value = label_json(info, LABEL_PLATFORMS)
        except ValueError as exc:
            pre.append(str(exc)[:300])
        else:
            if isinstance(value, dict) and shape_problem(value, MapOf(str)) is None:
                siblings = value
            else:
                pre.append(f"label {LABEL_PLATFORMS} of {image} is not a map of platforms to parities")
    result = stamp.check_model(
        str(folder), label or "", manifest, require_model=True, siblings=siblings, allow_extra=allow_extra
    )
    result.problems[:0] = pre
    return result
