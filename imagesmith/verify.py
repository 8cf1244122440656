"""Deploy-time checks of built images: the Python API behind ``imagesmith verify`` and ``inspect``.

A label is only a claim (and a child image inherits its parent's), so ``verify_image`` checks:

1. **The labels.** The manifest label must hash to the parity label (``parity.digest``), and the
   parity is compared with one recomputed from a lock, an expected value from a pipeline, or the
   other image of a train/serve pair.
2. **The image config, whole** (``config_check``): Entrypoint, Cmd, User, WorkingDir, every
   variable, ports, volumes, labels, stop signal, health check against what imagesmith's
   Dockerfile sets for the image's role (``plan.role_config``) laid over the base image's
   config. The Dockerfile's part is read from the image-facts file, a file in a layer that a
   child image cannot change without adding a layer (the ``io.imagesmith.config`` label when the
   file cannot be read: a registry image with ``--labels-only``). A config-only child (a new
   CMD, an added ENV) differs here, with or without ``--lock``.
3. **The layers** (``layer_check``): the image has exactly the base's layers plus the number
   imagesmith's Dockerfile adds (the plan's steps, named in the facts file); any more is a child
   image, whatever its history or labels say. The build history is never read: whoever builds
   an image writes it. ``--pair`` compares the two images' layer lists (they share all of them).
4. **Files read from outside** (``read_outside``; a container is created and never started, so
   nothing in the image runs): the facts file (its manifest must be the label's),
   ``/etc/ld.so.preload`` (must be the base's, or absent), and the interpreter the venv's
   ``python`` resolves to (must be a link to the base's file, byte for byte).
5. **The content** (skipped with ``labels_only``): ``runtime/probe.py`` runs inside a container of the
   image (no network, read-only, entrypoint bypassed, ``LD_*`` and ``PYTHON*`` variables emptied)
   and reports every installed distribution with its files checked against its RECORD, files in
   site-packages that no distribution installed, stale bytecode, the preprocessing files, Debian
   packages and the Python version; these are compared with the manifest by ``compare.compare``,
   the same words ``diff`` uses. The probe runs the image's own interpreter, so it is a
   diagnostic that says what differs, never the gate: reports say so (``PROBE_NOTE``). The gate
   is the signature on the digest and the signed build record (``imagesmith verify --key``).
   imagesmith's own in-image code is the ``imagesmith-runtime`` distribution, pinned in the
   manifest and checked like the locked ones.

Registry references (``host[:port]/name:tag`` or ``@sha256:``) are read with ``docker buildx
imagetools``, without pulling, for the label and config checks; reading files and the content
check pull the image by digest first (``--labels-only`` on a registry image pulls nothing, so its
layers are not counted and its config is compared with its ``io.imagesmith.config`` label).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import parity
from .compare import SEED_ENV, WATCHED_ENV, Change, Dist, View, compare
from .engine import Engine, FileEntry, ImageInfo, first_line, registry_host
from .errors import EngineError, UsageError, VerifyError
from .facts import cache_load, cache_store, manifest_of, manifest_shape_problem, read_facts
from .layout import (
    APP_DIR,
    FACTS_FILE,
    LABEL_BASE_NAME,
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
from .lock import LOCK_FILE, Lock, read_lock
from .plan import ImagePlan, expected_config, manifest_env, normalize_config, shared_layers
from .platforms import machine_platform
from .record import config_problems, read_app, source_problems
from .runtime import stamp
from .runtime.untrusted import MapOf, Opt, UntrustedInput, loads, shape_problem

PROBE = Path(stamp.__file__).resolve().parent / "probe.py"  # the host's copy: never the image's
CODE_SUFFIXES = (".py", ".pth", ".pyc", ".so", ".pyd", ".zip", ".egg")  # what Python may import or run

# What is read from an image is untrusted input (runtime/untrusted.py): bounded, then shape-checked
MAX_LABEL = 4 << 20  # bytes of a JSON label imagesmith reads (the platforms', the user's labels)
PROBE_OUTPUT_LIMIT = 32 << 20  # bytes of the probe's report (a large ML image's is a few MiB)
PROBE_MAX_ITEMS = 2_000_000  # values in it (one per file with `diff --files`)
_DIST_SHAPE = {
    "version": (str, None),
    "files": int,
    "mismatched": [str],
    "missing": [str],
    "stale_bytecode": [str],
    "unhashed": Opt([str]),
    "error": Opt((str, None)),
    "content": str,
    "file_hashes": Opt(MapOf(str)),
}
PROBE_SHAPE = {
    "probe": int,
    "python": str,
    "platform": str,
    "path_python": Opt((str, None)),
    "pyvenv_cfg": Opt((MapOf(str), None)),
    "distributions": MapOf(_DIST_SHAPE),
    "duplicates": Opt([str]),
    "unrecorded": MapOf(str),
    "preprocessing": MapOf({"app": (str, None), "site": (str, None), "owner": Opt((str, None))}),
    "preprocessing_stale_bytecode": Opt([[str]]),
    "dpkg": MapOf(str),
}


def probe_report_problem(facts: object) -> str | None:
    """Why a probe report (parsed) is not of the shape ``probe.py`` prints (None: it is)."""
    problem = shape_problem(facts, PROBE_SHAPE, "")
    if problem:
        return problem
    assert isinstance(facts, dict)
    if "start_error" in facts:
        return "start_error: set by the probe (only verify sets it)"
    if any(len(pair) != 2 for pair in facts.get("preprocessing_stale_bytecode") or ()):
        return "preprocessing_stale_bytecode: not a list of pairs"
    return None


def label_json(info: ImageInfo, label: str) -> object:
    """The JSON value of ``label`` (None when it is not set); UntrustedInput when it is not
    bounded JSON (``untrusted.loads``)."""
    text = info.labels.get(label)
    if not text:
        return None
    return loads(text, what=f"label {label}", max_bytes=MAX_LABEL)


@dataclass
class Report:
    image: str
    image_id: str = ""
    parity: str | None = None
    role: str | None = None
    checks: list[str] = field(default_factory=list)  # what was checked and held
    problems: list[str] = field(default_factory=list)  # one line per difference
    notes: list[str] = field(default_factory=list)  # what could not be checked, or holds but is worth saying
    mode: str = "content"  # "content" or "labels" (--labels-only)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        return {
            "image": self.image,
            "id": self.image_id,
            "ok": self.ok,
            "parity": self.parity,
            "role": self.role,
            "mode": self.mode,
            "checks": self.checks,
            "problems": self.problems,
            "notes": self.notes,
        }


# ------------------------------------------------------------------------------------------------
# sources: an image (local or in a registry) or a lock


@dataclass
class Source:
    ref: str
    kind: str  # "image" or "lock"
    info: ImageInfo | None = None
    lock: Lock | None = None
    manifest: dict | None = None  # the claim: the image's manifest (its facts'), or the lock's
    problems: list[str] = field(default_factory=list)  # why the image's manifest is not a usable claim
    facts: dict | None = None  # the image's facts (``facts.read_facts``)

    @property
    def name(self) -> str:
        if self.kind == "lock":
            return f"lock {self.ref}"
        return f"{'registry image' if self.info and self.info.source == 'registry' else 'image'} {self.ref}"


def open_source(engine: Engine, ref: str, platform: str | None = None) -> Source:
    """An existing file (or a folder holding imagesmith.lock) is a lock; a reference naming a
    registry host is read from that registry without pulling; anything else is a local image.
    ``platform`` picks a multi-platform lock's section and a registry index's image (default:
    this machine's); a local image must be of it."""
    path = Path(ref)
    if path.is_dir() and (path / LOCK_FILE).is_file():
        path = path / LOCK_FILE
    if path.is_file():
        lock = read_lock(path, platform)
        return Source(ref=str(path), kind="lock", lock=lock, manifest=parity.manifest_from_lock(lock))
    if ref.endswith((".lock", ".json")) or "/" in ref and ref.startswith((".", "/")):
        raise UsageError(f"{ref} does not exist", hint="give an image, a registry reference or an imagesmith.lock")
    if registry_host(ref):
        info = engine.registry_image(ref, platform or machine_platform())
    else:
        info = engine.image(ref)
        if platform and info.platform and info.platform != platform:
            raise UsageError(
                f"the engine's image {ref} is its {info.platform} image, not {platform}",
                hint=f"give the image's registry reference to read its {platform} image without pulling",
            )
    return image_source(engine, ref, info)


def image_source(engine: Engine, ref: str, info: ImageInfo) -> Source:
    """The Source of an image already read: its facts (read from outside it, or from its
    registry without pulling) and their manifest, which must hash to its parity label."""
    facts, problem = read_facts(engine, info)
    manifest, problems = manifest_of(info, facts, problem)
    if facts is not None and problem:  # read, but not from where imagesmith puts them
        problems.append(problem)
    return Source(ref=ref, kind="image", info=info, manifest=manifest, problems=problems, facts=facts)


def local_image(engine: Engine, source: Source, notes: list[str]) -> ImageInfo:
    """The image in the local engine, pulled by digest when it was read from a registry."""
    info = source.info
    assert info is not None
    if info.source != "registry":
        return info
    pinned = info.repo_digests[0]
    local = engine.pull(pinned)
    notes.append(f"pulled {pinned} to look inside it")
    return local


# ------------------------------------------------------------------------------------------------
# read from outside: a container created and never started (nothing in the image runs)

PRELOAD = "/etc/ld.so.preload"
# Variables that change what the dynamic loader or Python loads: the probe runs with them empty
SCRUBBED_ENV = ("LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
PROBE_NOTE = (
    "the content probe runs the image's own Python: a diagnostic that says what differs, not a "
    "gate; the gate is a signature on the digest (`imagesmith verify --key`)"
)


@dataclass
class Outside:
    """Files read from outside an image (``Engine.reading``)."""

    preload: str | None = None  # the content of /etc/ld.so.preload (None: absent)
    interpreter: str = ""  # the file the venv's python resolves to, inside the image
    interpreter_sha256: str = ""
    interpreter_problem: str = ""  # why the venv's python is not a link to a file


def _resolve(read, path: str, limit: int = 16) -> tuple[str, tuple]:
    """Follow symbolic links from ``path`` inside an image, as the kernel would: the final path
    and its entries (empty: it does not exist, or the links loop)."""
    for _ in range(limit):
        entries = read(path, 1)
        if not entries:
            return path, ()
        top = entries[0]
        if top.kind != "symlink":
            return path, entries
        target = top.target
        path = target if target.startswith("/") else f"{path.rsplit('/', 1)[0]}/{target}"
        parts: list[str] = []
        for part in path.split("/"):
            if part == "..":
                parts = parts[:-1]
            elif part not in ("", "."):
                parts.append(part)
        path = "/" + "/".join(parts)
    return path, ()


def read_outside(engine: Engine, image: str) -> Outside:
    """/etc/ld.so.preload and the interpreter the venv's python is, read from outside ``image``
    (an image ID), or what an earlier read of the same image found."""
    cached = cache_load("outside", image).get(VENV_PYTHON)
    if isinstance(cached, dict):
        try:
            return Outside(**cached)
        except TypeError:
            pass
    out = _read_outside(engine, image)
    cache_store("outside", image, {VENV_PYTHON: dataclasses.asdict(out)})
    return out


def _read_outside(engine: Engine, image: str) -> Outside:
    out = Outside()
    with engine.reading(image) as read:
        preload = read(PRELOAD, 1)  # a folder in its place is refused by its first entry alone
        if preload:
            if preload[0].kind != "file":
                out.preload = f"? ({PRELOAD} is a {preload[0].kind}, not a file)"
            elif preload[0].data is None:
                out.preload = f"? ({PRELOAD} is a file too large to read)"
            else:
                out.preload = preload[0].data.decode("utf-8", "replace")
        first = read(VENV_PYTHON, 1)
        if first and first[0].kind != "symlink":
            out.interpreter_problem = (
                f"{VENV_PYTHON} is a {first[0].kind}, not the link to the base's Python a venv makes"
            )
        path, final = _resolve(read, VENV_PYTHON)
        if final and final[0].kind == "file":
            out.interpreter, out.interpreter_sha256 = path, final[0].sha256
        elif not out.interpreter_problem:
            out.interpreter_problem = f"{VENV_PYTHON} leads to no file ({path})"
    return out


def _base_files(engine: Engine, image_id: str, paths: list[str]) -> dict[str, tuple[FileEntry, ...] | None]:
    """The first entry of each path in a base image (``read_outside``'s way), kept in the host's
    cache by image ID, so that verify does not create a container of the base every time."""
    from base64 import b64decode, b64encode

    cached = cache_load("base-files", image_id)
    missing = [p for p in paths if p not in cached]
    if missing:
        for p, entries in engine.read_paths(image_id, missing).items():
            e = entries[0] if entries else None
            cached[p] = None if e is None else [e.path, e.kind, e.mode, e.uid, e.target, e.sha256]
            if e is not None and e.data is not None and len(e.data) <= 4096:
                cached[p].append(b64encode(e.data).decode())
        cache_store("base-files", image_id, cached)
    out: dict[str, tuple[FileEntry, ...] | None] = {}
    for p in paths:
        row = cached.get(p)
        try:
            if row is None:
                out[p] = None
            else:
                path_, kind, mode, uid, target, sha256 = row[:6]
                data = b64decode(row[6]) if len(row) > 6 else None
                out[p] = (FileEntry(path_, kind, int(mode), int(uid), target, sha256, data),)
        except (TypeError, ValueError):
            out[p] = engine.read_paths(image_id, [p])[p]
    return out


def outside_checks(engine: Engine, report: Report, outside: Outside, base: BaseCheck) -> None:
    """/etc/ld.so.preload and the interpreter, against the base image's (when it is in the engine)."""
    base_files: dict[str, tuple | None] = {}
    if base.image is not None and base.image.source != "registry":
        wanted = [PRELOAD] + ([outside.interpreter] if outside.interpreter else [])
        try:
            base_files = _base_files(engine, base.image.id, wanted)
        except EngineError as exc:
            report.notes.append(f"the base image's files could not be read ({first_line(exc)})")
    base_preload = base_files.get(PRELOAD)
    if outside.preload is not None:
        same = base_preload and (base_preload[0].data or b"").decode("utf-8", "replace") == outside.preload
        if same:
            report.notes.append(f"{PRELOAD} is the base image's")
        else:
            if outside.preload.startswith("? ("):  # not a small regular file: said, never read
                what = outside.preload[3:-1]
            else:
                what = f"{PRELOAD} loads {', '.join(outside.preload.split())[:200] or '(empty)'} into every process"
            report.problems.append(
                f"{what} (not in the base): nothing the image runs, the probe included, can be trusted"
            )
    elif base_files:
        report.checks.append(f"no {PRELOAD} (read from outside the image)")
    if outside.interpreter_problem:
        report.problems.append(outside.interpreter_problem)
    elif outside.interpreter and base_files:
        theirs = base_files.get(outside.interpreter)
        if not theirs or theirs[0].kind != "file":
            report.problems.append(f"the venv's python is {outside.interpreter}, which the base image does not have")
        elif theirs[0].sha256 != outside.interpreter_sha256:
            report.problems.append(
                f"the interpreter {outside.interpreter} differs from the base image's (replaced: "
                f"{outside.interpreter_sha256[:19]}…, the base has {theirs[0].sha256[:19]}…)"
            )
        else:
            report.checks.append(f"the interpreter {outside.interpreter} is the base image's (read from outside)")
    elif outside.interpreter:
        report.notes.append(f"the interpreter {outside.interpreter} was not compared: the base is not in the engine")


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


# ------------------------------------------------------------------------------------------------
# the probe


def run_probe(engine: Engine, info: ImageInfo, *, preprocessing: tuple[str, ...] = (), detail: bool = False) -> dict:
    """Facts from inside the image (see probe.py), or ``{"start_error": ...}`` when the image has
    no Python environment where imagesmith puts it. Raises VerifyError when the probe crashed.

    A report is kept in the host's cache under the image ID (content-addressed: the same files
    and config give the same facts) and the probe's own text and options, like the files read
    from outside: the image is probed once per machine, by this host's copy of the probe."""
    options = json.dumps(
        {
            "venv": VENV,
            "app": APP_DIR,
            "preprocessing": sorted(set(preprocessing)),
            "files": detail,
        }
    )
    script = PROBE.read_text(encoding="utf-8")
    key = probe_key(script, options)
    cached = cache_load("probe", info.id).get(key)
    if isinstance(cached, dict) and probe_report_problem(cached) is None:
        return cached
    run = engine.run_isolated(
        info.id,
        [VENV_PYTHON, "-I", "-S", "-c", script, options],
        environment={name: "" for name in SCRUBBED_ENV},
        output_limit=PROBE_OUTPUT_LIMIT,
    )
    if run.exit_code is None:
        return {"start_error": run.start_error}
    if run.truncated:
        raise VerifyError(
            f"the content probe printed more than {PROBE_OUTPUT_LIMIT >> 20} MiB inside {info.ref}: not a report "
            "of imagesmith's probe (it was stopped)",
            hint="the image's Python is not the interpreter it claims to be; do not deploy it",
        )
    if run.exit_code != 0:
        tail = run.stderr.strip().splitlines()[-1:] or [f"exit {run.exit_code}"]
        raise VerifyError(
            f"the content probe failed inside {info.ref}: {tail[0]}",
            hint="the image's Python cannot run a standard-library script; try --labels-only",
        )
    try:
        facts = loads(
            run.stdout,
            what=f"the content probe's report from {info.ref}",
            max_bytes=PROBE_OUTPUT_LIMIT,
            max_items=PROBE_MAX_ITEMS,
        )
    except UntrustedInput as exc:
        raise VerifyError(
            str(exc)[:300], hint="the image's Python is not the interpreter it claims to be; do not deploy it"
        ) from exc
    problem = probe_report_problem(facts)
    if problem:
        raise VerifyError(
            f"the content probe's report from {info.ref} is not of the probe's shape ({problem[:200]})",
            hint="the image's Python is not the interpreter it claims to be; do not deploy it",
        )
    assert isinstance(facts, dict)
    cache_store("probe", info.id, {**cache_load("probe", info.id), key: facts})
    return facts


def probe_key(script: str, options: str) -> str:
    """The cache key of a probe report: the probe's text and its options (never the image's)."""
    import hashlib

    return hashlib.sha256((script + "\0" + options).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------------
# views (see diff.View)


def claimed_packages(manifest: dict) -> dict[str, dict]:
    """The distributions a manifest pins: its packages and, from version 2, the runtime wheel."""
    packages = dict(manifest["packages"])
    runtime = manifest.get("runtime")
    if runtime:
        packages[runtime["name"]] = {"version": runtime["version"], "hashes": runtime.get("hashes", [])}
    return packages


def expected_env(manifest: dict) -> dict[str, str]:
    """The environment an image with this manifest is built with (``plan.manifest_env`` decides)."""
    return manifest_env(manifest)


def claim_view(manifest: dict, name: str, kind: str = "label", id: str = "") -> View:
    """What a manifest (a label's, or a lock's) says, as a View."""
    env = expected_env(manifest)
    return View(
        name=name,
        kind=kind,
        id=id,
        parity=parity.digest(manifest),
        base=manifest["base"],
        python=manifest["python"],
        platform=manifest["platform"],
        packages={n: Dist(p["version"], tuple(p.get("hashes", ()))) for n, p in claimed_packages(manifest).items()},
        system_packages=dict(manifest["system_packages"]),
        system_complete=False,
        preprocessing=dict(manifest["preprocessing"]),
        preprocessing_version=manifest.get("preprocessing_version"),
        seed=manifest["seed"],
        determinism=manifest["determinism"],
        env=env,
        env_expected=env,
        unrecorded={},
    )


def source_view(source: Source) -> View:
    if source.manifest is None:
        raise VerifyError(
            f"{source.name} has no usable parity manifest: {'; '.join(source.problems)}",
            hint="it was not built by imagesmith, or its labels were edited",
        )
    return claim_view(
        source.manifest,
        source.name,
        "lock" if source.kind == "lock" else "label",
        source.info.id if source.info else "",
    )


def config_env(info: ImageInfo) -> dict[str, str]:
    return normalize_config(info.config)["Env"]


@dataclass
class BaseCheck:
    verdict: str  # "ok", "mismatch" or "unknown"
    detail: str
    env: dict[str, str] = field(default_factory=dict)  # the base image's own environment, when found
    image: ImageInfo | None = None  # the base image, when found


def check_base(engine: Engine, info: ImageInfo, base: str) -> BaseCheck:
    """Do the image's layers start with the layers of the base image the manifest names?"""
    name = (info.labels.get(LABEL_BASE_NAME) or "").split("@", 1)[0]  # only a locator: the digest decides
    repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    found: ImageInfo | None = None
    for ref in (base, f"{repo}@{base}") if repo else (base,):
        try:
            found = engine.image(ref)  # a local base's digest is its image ID; a pulled one's, name@digest
            break
        except EngineError:
            continue
    if found is None and repo and registry_host(repo):
        try:
            found = engine.registry_image(f"{repo}@{base}")
        except EngineError as exc:
            return BaseCheck("unknown", f"the base {base[:19]}… could not be read from its registry ({exc})")
    if found is None:
        return BaseCheck(
            "unknown", f"the base {base[:19]}… is not in the engine, so the layers were not compared with it"
        )
    n = len(found.layers)
    if n and tuple(info.layers[:n]) == tuple(found.layers):
        return BaseCheck(
            "ok",
            f"the image's layers start with the {n} layer{'s' if n != 1 else ''} of the base {base[:19]}…",
            config_env(found),
            found,
        )
    return BaseCheck(
        "mismatch", f"its layers do not start with the layers of the base {base[:19]}…", config_env(found), found
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


def project_name(image_facts: dict | None) -> str | None:
    """The project's own distribution, installed from its wheel (``install_project``), as the
    image-facts file names it: code like ``/app``, so not one of the locked distributions."""
    project = (image_facts or {}).get("project")
    name = project.get("name") if isinstance(project, dict) else None
    return name if isinstance(name, str) else None


def image_view(
    source: Source,
    info: ImageInfo,
    facts: dict | None,
    base: BaseCheck,
    *,
    code_only: bool = False,
    project: str | None = None,
) -> View:
    """What the image really has, in manifest terms (``facts`` None: labels only, so everything
    inside the image is taken from its label and only the config is observed). ``project``: the
    project's own distribution (``project_name``), left out like the preprocessing wheel."""
    claim = source.manifest
    assert claim is not None
    view = claim_view(claim, source.name, "image" if facts else "label", info.id)
    view.base = claim["base"] if base.verdict != "mismatch" else f"not {claim['base']}"
    env_all = config_env(info)
    expected = view.env_expected
    relevant = set(expected) | set(WATCHED_ENV) | set(SEED_ENV)
    view.env = {
        k: env_all[k] for k in sorted(relevant) if k in env_all and (k in expected or base.env.get(k) != env_all[k])
    }  # a watched variable set by the base is the base's
    if "IMAGESMITH_SEED" in expected:
        try:
            view.seed = int(env_all["IMAGESMITH_SEED"])
        except (KeyError, ValueError):
            view.seed = None
    if "IMAGESMITH_DETERMINISM" in expected:
        view.determinism = {"on": True, "off": False}.get(env_all.get("IMAGESMITH_DETERMINISM", ""))
    if facts is None or "start_error" in facts:
        if facts is not None:
            view.packages, view.unrecorded, view.system_complete = {}, None, False
        return view
    python = facts.get("python") or ""
    view.python = claim["python"] if python.startswith(str(claim["python"]) + ".") else python
    view.platform = facts.get("platform")
    claimed = claimed_packages(claim)
    pre_paths = set(claim["preprocessing"])
    pre_owners = {e.get("owner") for e in facts["preprocessing"].values() if e.get("owner")}
    packages = {}
    for name, d in facts["distributions"].items():
        if name in pre_owners and name not in claimed:
            continue  # the preprocessing wheel: its files are the preprocessing group's
        if name == project and name not in claimed:
            continue  # the project's own wheel: its code, like /app (not in the parity)
        modified = (
            tuple(d["mismatched"])
            + tuple(f"{p} (missing)" for p in d["missing"])
            + tuple(f"{p} (no hash in the RECORD)" for p in d.get("unhashed") or ())
            + tuple(f"{p} (stale bytecode)" for p in d["stale_bytecode"])
            + ((d["error"],) if d.get("error") else ())
        )
        same = claimed.get(name, {}).get("version") == d["version"]
        packages[name] = Dist(
            d["version"] or "?",
            tuple(claimed[name]["hashes"]) if same else None,
            d["content"],
            d.get("file_hashes"),
            modified,
        )
    view.packages = packages
    unrecorded = {}
    for rel, digest in facts["unrecorded"].items():
        if not rel.endswith(CODE_SUFFIXES) and (code_only or rel.startswith("imagesmith")):
            continue  # data, not code; imagesmith's own (the image's facts) depends on the spec too
        unrecorded[rel] = digest
    view.unrecorded = unrecorded
    if facts["dpkg"]:
        view.system_packages, view.system_complete = dict(facts["dpkg"]), True
    else:
        view.system_packages = {}
    pre: dict[str, str | None] = {}
    for rel, entry in facts["preprocessing"].items():
        copies = [h for h in (entry.get("app"), entry.get("site")) if h]
        if not copies:
            pre[rel] = None
        elif len(set(copies)) == 1:
            pre[rel] = copies[0]
        else:
            pre[rel] = f"{entry['app']} in {APP_DIR}, {entry['site']} in site-packages"
    for rel, cached in facts.get("preprocessing_stale_bytecode") or []:
        if pre.get(rel):  # bytecode Python would run instead of the file: the file is not what runs
            pre[rel] = f"{pre[rel]} (stale bytecode {cached})"
    view.preprocessing = {rel: pre.get(rel) for rel in sorted(pre_paths | set(pre))}
    wheel = sorted(o for o in pre_owners if o in facts["distributions"] and o not in claimed)
    if wheel:  # installed as a distribution: its version is observed; copied files have none to observe
        view.preprocessing_version = facts["distributions"][wheel[0]]["version"]
    return view


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
    if info.source != "registry":
        added = layers_added(info, base, source.facts)
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
    locked = read_lock(lock, platform or info.platform or None) if lock is not None else None
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
    return report


def _check_references(engine, report, info, manifest, lock, locked_file, expect, pair, platform=None) -> None:
    if lock is not None:
        locked = parity.manifest_from_lock(locked_file)
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
        n = len(claimed_packages(manifest))  # the locked ones and, from parity version 2, the runtime
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
# inspect


def inspect_source(engine: Engine, ref: str, platform: str | None = None) -> dict[str, Any]:
    """The parity manifest of an image (local or registry, read without pulling) or a lock; of
    ``platform``'s image or section (default: this machine's)."""
    source = open_source(engine, ref, platform)
    info = source.info
    out: dict[str, Any] = {
        "source": source.ref,
        "kind": source.kind,
        "id": info.id if info else "",
        "platform": (info.platform if info else source.lock.platform if source.lock else "") or None,
        "parity": None,
        "role": None,
        "label_ok": source.manifest is not None,
        "problems": list(source.problems),
        "manifest": source.manifest,
    }
    if info is not None:
        out["parity"] = info.labels.get(LABEL_PARITY)
        out["role"] = info.labels.get(LABEL_ROLE)
        out["base_name"] = info.labels.get(LABEL_BASE_NAME)
        forged = (source.facts or {}).get("manifest")
        if source.manifest is None and isinstance(forged, dict) and manifest_shape_problem(forged) is None:
            out["manifest"] = forged  # shown anyway; label_ok says it is not to be trusted
    elif source.manifest is not None:
        out["parity"] = parity.digest(source.manifest)
        out["base_name"] = source.lock.base.name if source.lock else None
    if out["manifest"] is None:
        raise VerifyError(
            f"{source.name} has no parity manifest: {'; '.join(source.problems)}", hint="it was not built by imagesmith"
        )
    return out


def inspect_lines(data: dict[str, Any]) -> list[str]:
    """``inspect_source``'s answer as readable text."""
    m = data["manifest"]
    lines = [f"{data['kind']}: {data['source']}"]
    if data.get("id"):
        lines.append(f"id:       {data['id']}")
    lines.append(
        f"parity:   {data['parity']}"
        + ("" if data["label_ok"] else "  (DOES NOT MATCH the manifest: forged or edited)")
    )
    if data.get("role"):
        lines.append(f"role:     {data['role']}")
    base_name = data.get("base_name")
    lines.append(f"base:     {m.get('base')}" + (f" ({base_name})" if base_name else ""))
    lines.append(f"python:   {m.get('python')} on {m.get('platform')}")
    seed, det = m.get("seed"), m.get("determinism")
    lines.append(f"seed:     {seed}, determinism {'on' if det else 'off'}")
    env = m.get("env") or {}
    lines.append("env:      " + (", ".join(f"{k}={v}" for k, v in sorted(env.items())) or "(none)"))
    packages = m.get("packages") or {}
    lines.append(f"packages ({len(packages)}):")
    width = max((len(n) for n in packages), default=0)
    for name, p in sorted(packages.items()):
        hashes = p.get("hashes") or []
        lines.append(
            f"  {name.ljust(width)}  {p.get('version')}  ({len(hashes)} hash{'es' if len(hashes) != 1 else ''})"
        )
    system = m.get("system_packages") or {}
    lines.append(f"system packages ({len(system)}):" + ("" if system else " none"))
    lines += [f"  {n}={v}" for n, v in sorted(system.items())]
    pre = m.get("preprocessing") or {}
    version = m.get("preprocessing_version")
    lines.append(
        f"preprocessing ({len(pre)} files{', version ' + version if version else ''}):" + ("" if pre else " none")
    )
    lines += [f"  {p}  {h}" for p, h in sorted(pre.items())]
    runtime = m.get("runtime") or {}
    lines.append(f"runtime:  {runtime.get('name')} {runtime.get('version')}")
    return lines


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
