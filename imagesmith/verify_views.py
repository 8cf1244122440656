"""Views (``compare.View``) of a manifest (what it claims) and of an image (what the probe and
its config observed), in the words ``compare.compare`` and ``diff`` use."""

from __future__ import annotations

from . import parity
from .compare import SEED_ENV, WATCHED_ENV, Dist, View
from .engine import ImageInfo
from .errors import VerifyError
from .layout import (
    APP_DIR,
)
from .plan import manifest_env
from .verify_base import BaseCheck, config_env
from .verify_source import Source

CODE_SUFFIXES = (".py", ".pth", ".pyc", ".so", ".pyd", ".zip", ".egg")  # what Python may import or run


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


def project_name(image_facts: dict | None) -> str | None:
    """The project's own distribution, installed from its wheel (``install_project``), as the
    image-facts file names it: code like ``/app``, so not one of the locked distributions."""
    project = (image_facts or {}).get("project")
    name = project.get("name") if isinstance(project, dict) else None
    return name if isinstance(name, str) else None


def _observed_packages(facts: dict, claimed: dict[str, dict], own: set[str]) -> dict[str, Dist]:
    """The distributions the probe found, as ``Dist``s with what differs from their RECORD; those
    named in ``own`` and not claimed (the preprocessing wheel: its files are the preprocessing
    group's; the project's own wheel: its code, like /app) are left out."""
    packages = {}
    for name, d in facts["distributions"].items():
        if name in own and name not in claimed:
            continue
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
    return packages


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
    view.packages = _observed_packages(facts, claimed, {o for o in pre_owners if o} | {project or ""})
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
