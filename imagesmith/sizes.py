"""``imagesmith inspect IMAGE --sizes``: where an image's bytes went, per layer and per
distribution, with the CUDA-bearing distributions summed.

- Layers: a local image's from the engine's build history (the bytes each step added,
  uncompressed; matched to the layers only when the non-empty steps are exactly the layers,
  ``Images.history``); a registry image's from its manifest (compressed blob sizes, what a push
  or pull sends), read without pulling.
- Distributions: a local image's read from outside it (a container created, never started:
  ``Engine.reading``), each the sum of the sizes its ``.dist-info/RECORD`` lists. A RECORD is text
  anyone can write, so it is read bounded (``MAX_RECORD``) and only its numbers are used; this is a
  report, never a check. A registry image's distributions are not read (that needs a pull).
- CUDA: the distributions ``gpu.classify`` says bring CUDA (``nvidia-*``, ``cuda-toolkit``, a
  ``+cuXYZ`` torch, ``cupy-cuda12x``, …), summed.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from . import gpu
from .engine import Engine
from .errors import EngineError, UsageError
from .facts import manifest_shape_problem
from .layout import site_packages
from .runtime.wheel import normalise
from .verify_source import Source, open_source

MAX_RECORD = 8 << 20  # bytes of one RECORD read (torch's is about 2 MiB)
MAX_FILE_SIZE = 1 << 40  # a size a RECORD states above this is not believed (counted as 0)


def record_bytes(text: str) -> tuple[int, int]:
    """(bytes, files) a RECORD's text states: the sum of its size column and the rows that have
    one (rows without a size, such as RECORD itself or bytecode compiled after install, add none)."""
    total = files = 0
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 3:
            continue
        size = row[2].strip()
        if size.isdigit() and len(size) <= 13 and int(size) <= MAX_FILE_SIZE:
            total += int(size)
            files += 1
    return total, files


def dist_info_names(name: str, version: str) -> list[str]:
    """The ``.dist-info`` folder names a distribution may have, most likely first: the wheel
    standard's spelling (PEP 491), then the name as pinned (older wheels keep its case)."""
    out: list[str] = []
    for spelled in (normalise(name), name, name.replace("-", "_")):
        folder = f"{spelled}-{version}.dist-info"
        if folder not in out:
            out.append(folder)
    return out


def _packages(source: Source, notes: list[str]) -> dict[str, str]:
    manifest = source.manifest
    if manifest is None:
        forged = (source.facts or {}).get("manifest")
        if isinstance(forged, dict) and manifest_shape_problem(forged) is None:
            manifest = forged
            notes.append("the image's manifest does not match its parity label: its package list is shown anyway")
    if manifest is None:
        return {}
    return {name: p["version"] for name, p in sorted((manifest.get("packages") or {}).items())}


def _layers(engine: Engine, source: Source, notes: list[str]) -> tuple[list[dict[str, Any]], bool]:
    """Each layer with its bytes and the step that made it (local: the build history), and
    whether the sizes are compressed (a registry manifest's)."""
    info = source.info
    assert info is not None
    if info.source == "registry":
        sizes = engine.registry_layer_sizes(info.repo_digests[0])
        if len(sizes) != len(info.layers):
            notes.append("the registry manifest lists a different number of layers than the image config")
            return [], True
        return [
            {"index": i + 1, "diff_id": diff_id, "bytes": size, "step": None}
            for i, (diff_id, size) in enumerate(zip(info.layers, sizes))
        ], True
    history = engine.history(info.id, len(info.layers))
    if history is None:
        notes.append("the engine's build history does not match the image's layers: layer sizes are not known")
        return [{"index": i + 1, "diff_id": d, "bytes": None, "step": None} for i, d in enumerate(info.layers)], False
    steps = [h for h in history if not h.empty_layer]
    return [
        {"index": i + 1, "diff_id": diff_id, "bytes": h.size, "step": " ".join(h.created_by.split())[:200] or None}
        for i, (diff_id, h) in enumerate(zip(info.layers, steps))
    ], False


def _distributions(
    engine: Engine, source: Source, packages: dict[str, str], notes: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    info = source.info
    if not packages:
        return {}, {}
    if info is None or info.source == "registry":
        notes.append("a registry image's distributions are read from the engine: pull it, then inspect it by tag")
        return {}, {}
    python = ((source.manifest or (source.facts or {}).get("manifest") or {}).get("python")) or ""
    site = site_packages(str(python))
    sizes: dict[str, dict[str, Any]] = {}
    unread: dict[str, str] = {}
    with engine.reading(info.id) as read:
        for name, version in packages.items():
            why = f"no {dist_info_names(name, version)[0]}/RECORD in {site}"
            for folder in dist_info_names(name, version):
                entries = read(f"{site}/{folder}/RECORD", small=MAX_RECORD)
                if not entries:
                    continue
                entry = entries[0]
                if entry.kind != "file" or entry.data is None:
                    why = f"{folder}/RECORD is not a regular file of at most {MAX_RECORD >> 20} MiB"
                    break
                total, files = record_bytes(entry.data.decode("utf-8", "replace"))
                sizes[name] = {"version": version, "bytes": total, "files": files}
                break
            if name not in sizes:
                unread[name] = why
    return sizes, unread


def image_sizes(engine: Engine, ref: str, platform: str | None = None) -> dict[str, Any]:
    """Where the bytes of image ``ref`` (local, or a registry reference read without pulling)
    went: its layers, its distributions and the CUDA among them (see the module's docstring)."""
    source = open_source(engine, ref, platform)
    if source.kind != "image" or source.info is None:
        raise UsageError(f"--sizes reads an image, and {ref} is a lock", hint="give an image or a registry reference")
    info = source.info
    notes: list[str] = list(source.problems)
    packages = _packages(source, notes)
    layers, compressed = _layers(engine, source, notes)
    try:
        dists, unread = _distributions(engine, source, packages, notes)
    except EngineError as exc:
        dists, unread = {}, {}
        notes.append(f"the distributions could not be read ({str(exc)[:300]})")
    cuda = sorted(n for n, d in dists.items() if gpu.classify(n, d["version"]) is not None)
    known = [layer["bytes"] for layer in layers if layer["bytes"] is not None]
    return {
        "source": source.ref,
        "kind": "registry image" if info.source == "registry" else "image",
        "id": info.id,
        "platform": info.platform or None,
        "compressed": compressed,
        "total": sum(known) if layers and len(known) == len(layers) else None,
        "layers": layers,
        "distributions": dists,
        "distributions_total": sum(d["bytes"] for d in dists.values()),
        "unread": unread,
        "cuda": {"bytes": sum(dists[n]["bytes"] for n in cuda), "distributions": cuda},
        "notes": notes,
    }


def human(size: int | None) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, as registries and ``docker images`` show)."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def sizes_lines(data: dict[str, Any]) -> list[str]:
    """``image_sizes``'s answer as readable text: the largest distributions first."""
    kind = "compressed, as pushed" if data["compressed"] else "uncompressed"
    lines = [f"{data['kind']}: {data['source']}", f"id:       {data['id']}"]
    layers = data["layers"]
    lines.append(f"layers ({len(layers)}, {human(data['total'])} {kind}):")
    for layer in layers:
        step = f"  {layer['step']}" if layer["step"] else f"  {layer['diff_id'][:19]}"
        lines.append(f"  {layer['index']:>3}  {human(layer['bytes']):>9}{step[:110]}")
    dists = data["distributions"]
    cuda = set(data["cuda"]["distributions"])
    lines.append(f"distributions ({len(dists)}, {human(data['distributions_total'])} as their RECORDs list):")
    width = max((len(n) for n in dists), default=0)
    for name, d in sorted(dists.items(), key=lambda item: (-item[1]["bytes"], item[0])):
        tag = "  CUDA" if name in cuda else ""
        lines.append(f"  {name.ljust(width)}  {human(d['bytes']):>9}  {d['version']}  ({d['files']} files){tag}")
    for name, why in sorted(data["unread"].items()):
        lines.append(f"  {name}: not read ({why})")
    if cuda:
        names = ", ".join(sorted(cuda))
        lines.append(
            f"CUDA:     {human(data['cuda']['bytes'])} in {len(cuda)} distribution{'s' if len(cuda) != 1 else ''} ({names})"
        )
    else:
        lines.append("CUDA:     none (no distribution brings CUDA)")
    lines += [f"note: {n}" for n in data["notes"]]
    return lines
