"""``imagesmith inspect``: the parity manifest of an image or a lock, as data and as text."""

from __future__ import annotations

from typing import Any

from . import parity
from .engine import Engine
from .errors import VerifyError
from .facts import manifest_shape_problem
from .layout import (
    LABEL_BASE_NAME,
    LABEL_PARITY,
    LABEL_ROLE,
)
from .verify_source import open_source


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
