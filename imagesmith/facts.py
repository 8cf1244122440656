"""An image's facts, read from outside it: the image plan's facts file (``imagesmith_image.json``
at ``layout.FACTS_PATH``, written by ``render.context_files`` and COPYed into the image's last
layer), which carries the parity manifest, the config each role's target sets and the steps.

Labels carry only the parity digest; the manifest is here, and must hash to that label
(``manifest_of``). A local image's file is copied out of a container that is created and never
started (``Engine.read_paths``); a registry image's is read from its top layer's blob without
pulling the image (``Engine.registry_top_layer``: checked against the manifest's digest and the
config's diff ID). What is read is untrusted input: bounded, then shape-checked
(``runtime/untrusted.py``). Reads are kept in the host's cache by image ID (content-addressed).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Protocol

from . import parity
from .engine import ImageInfo
from .engine.protocols import FileReader, ImageReader
from .errors import EngineError, FileWriteError
from .layout import FACTS_FILE, FACTS_PATH, LABEL_PARITY
from .plan import is_step_name
from .runtime.untrusted import MapOf, Opt, UntrustedInput, loads, printable, shape_problem

MAX_FACTS = 4 << 20  # bytes of a facts file (a large ML stack's manifest is under 1 MiB)
MAX_LAYER = 8 << 20  # bytes of the facts layer read from a registry (the file and its folders)
CONFIG_SHAPE = {
    "Env": MapOf(str),
    "Labels": MapOf((str, None)),
    "Entrypoint": Opt([str]),
    "Cmd": Opt([str]),
    "User": Opt(str),
    "WorkingDir": Opt(str),
    "ExposedPorts": Opt([str]),
}
FACTS_SHAPE = {
    "manifest": dict,
    "configs": MapOf(CONFIG_SHAPE),
    "steps": [str],
    "project": Opt(({"name": str}, None)),
    "platforms": Opt(MapOf(str)),
}


def parse_facts(data: bytes | str, where: str = "in the image") -> dict:
    """A facts file's content, parsed and shape-checked; UntrustedInput when it is not one."""
    facts = loads(data, what=f"{FACTS_FILE} {where}", max_bytes=MAX_FACTS)
    shape = shape_problem(facts, FACTS_SHAPE, "")
    if shape:
        raise UntrustedInput(f"{FACTS_FILE} {where} is not image facts ({shape})")
    assert isinstance(facts, dict)
    unknown = [s for s in facts["steps"] if not is_step_name(s)]
    if unknown:
        raise UntrustedInput(f"{FACTS_FILE} {where} names steps imagesmith does not make: {', '.join(unknown)[:200]}")
    return facts


MAX_DEPTH = 4  # layers read from a registry image's top looking for its facts (a child's are above)
# characters kept of why a registry image's facts blob could not be read: imagesmith's own message
# (the outside text in it is bounded where it was read), naming the registry host up to three times
# and the repository (a reference is under 256 characters), and ending with what to do about it:
# `docker login HOST` (an ECR host and a long repository passed 300)
MAX_READ_PROBLEM = 1200


def facts_from_layer(tar: bytes) -> dict | None:
    """The facts file in a layer's tar; None when the layer does not hold it; UntrustedInput when
    it holds it as anything but a small regular file, or removes it (a whiteout)."""
    import tarfile  # a registry image's layer only: a local image's file is read without it

    name = FACTS_PATH.lstrip("/")
    folder, _, base = name.rpartition("/")
    removed = (f"{folder}/.wh.{base}", f"{folder}/.wh..wh..opq")
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
            member = None
            for entry in archive:
                path = entry.name.lstrip("./")
                if path in removed:
                    raise UntrustedInput(f"a layer of the image removes {FACTS_PATH}")
                if path == name:
                    member = entry
                    break
            if member is None:
                return None
            if not member.isreg() or member.size > MAX_FACTS:
                raise UntrustedInput(f"{FACTS_PATH} in the image's top layer is not a small regular file")
            handle = archive.extractfile(member)
            assert handle is not None
            data = handle.read(MAX_FACTS + 1)
    except tarfile.TarError as exc:
        raise UntrustedInput(f"the image's top layer is not a tar archive ({exc})") from exc
    return parse_facts(data, "in the image's layer")


def _registry_facts(engine: Reader, info: ImageInfo) -> tuple[dict | None, str]:
    """The facts of a registry image, read layer by layer from its top (imagesmith's image has
    them in its last layer: found lower, the layers above were added on top of it)."""
    if not info.layers or not info.repo_digests:
        return None, "the registry image lists no layers"
    for depth in range(1, min(MAX_DEPTH, len(info.layers)) + 1):
        tar = engine.registry_top_layer(info.repo_digests[0], info.layers[-depth], MAX_LAYER, depth)
        facts = facts_from_layer(tar)
        if facts is not None:
            if depth == 1:
                return facts, ""
            added = depth - 1
            return facts, (
                f"{added} filesystem layer{'s were' if added != 1 else ' was'} added on top of the image "
                f"imagesmith built (its {FACTS_FILE} is {depth} layers from the top, not in the last): a child image"
            )
    return None, f"no {FACTS_PATH} in the image's top {MAX_DEPTH} layers: not an image imagesmith built"


class Reader(ImageReader, FileReader, Protocol):
    """What ``read_facts`` needs of the engine."""


def read_facts(engine: Reader, info: ImageInfo) -> tuple[dict | None, str]:
    """The facts of the image ``info`` and "" , or None and why they cannot be used (read from
    its registry without pulling when ``info`` was read from one; there, facts found below the
    top layer come with the problem that layers were added on top)."""
    key = info.id if info.source != "registry" else info.id + ".registry"
    cached = cache_load("facts", key).get(FACTS_PATH)
    if isinstance(cached, dict):
        try:
            return parse_facts(json.dumps(cached)), ""
        except UntrustedInput:
            pass
    try:
        if info.source == "registry":
            facts, added = _registry_facts(engine, info)
            if facts is None or added:
                return facts, added
        else:
            entries = engine.read_paths(info.id, [FACTS_PATH], small=MAX_FACTS)[FACTS_PATH]
            if not entries:
                return None, f"the image has no {FACTS_PATH}: not built by this imagesmith"
            if entries[0].kind != "file":
                return None, f"{FACTS_PATH} in the image is not a regular file"
            if entries[0].data is None:
                return None, f"{FACTS_PATH} in the image is more than {MAX_FACTS >> 20} MiB: not read"
            facts = parse_facts(entries[0].data)
    except UntrustedInput as exc:
        return None, str(exc)[:300]
    except EngineError as exc:
        return None, f"the image's facts could not be read ({str(exc)[:MAX_READ_PROBLEM]})"
    cache_store("facts", key, {FACTS_PATH: facts})
    return facts, ""


def manifest_shape_problem(manifest: dict) -> str | None:
    """What is of the wrong type in a manifest read from an image (None: every field has its
    type): it is text anyone can write, and nothing downstream should trip over it."""

    def strings(value) -> bool:
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())

    checks = {
        "base": isinstance(manifest.get("base"), str),
        "python": isinstance(manifest.get("python"), str),
        "platform": isinstance(manifest.get("platform"), str),
        "packages": isinstance(manifest.get("packages"), dict)
        and all(
            isinstance(n, str)
            and isinstance(p, dict)
            and isinstance(p.get("version"), str)
            and isinstance(p.get("hashes", []), list)
            and all(isinstance(h, str) for h in p.get("hashes", []))
            for n, p in manifest["packages"].items()
        ),
        "system_packages": strings(manifest.get("system_packages")),
        "preprocessing": strings(manifest.get("preprocessing")),
        "preprocessing_version": manifest.get("preprocessing_version") is None
        or isinstance(manifest.get("preprocessing_version"), str),
        "seed": isinstance(manifest.get("seed"), int) and not isinstance(manifest.get("seed"), bool),
        "determinism": isinstance(manifest.get("determinism"), bool),
        "env": strings(manifest.get("env")),
    }
    wrong = [key for key, ok in checks.items() if not ok]
    return f"{', '.join(wrong)} of the wrong type" if wrong else None


def manifest_of(info: ImageInfo, facts: dict | None, problem: str = "") -> tuple[dict | None, list[str]]:
    """The parity manifest of an image: its facts' manifest when it hashes to its parity label,
    with the problems (none: it does). ``problem``: why the facts could not be read."""
    label = info.labels.get(LABEL_PARITY)
    if not label:
        return None, [f"label {LABEL_PARITY} is missing: not an imagesmith image"]
    if facts is None:
        return None, [problem or f"the image has no {FACTS_FILE}"]
    try:
        manifest = parity.parse_manifest(parity.canonical(facts["manifest"]))
    except (ValueError, RecursionError, TypeError) as exc:
        return None, [f"the manifest in {FACTS_FILE} is not a parity manifest: {str(exc)[:200]}"]
    shape = manifest_shape_problem(manifest)
    if shape:
        return None, [f"the manifest in {FACTS_FILE} is not a parity manifest: {shape}"]
    recomputed = parity.digest(manifest)
    if recomputed != label:
        return None, [
            f"label {LABEL_PARITY} is {printable(label)}, but the manifest in {FACTS_FILE} hashes to {recomputed} "
            "(forged or edited label, or replaced facts)"
        ]
    return manifest, []


# ------------------------------------------------------------------------------------------------
# the verifier's cache: what was read of an image, by its (content-addressed) ID


def _cache_file(kind: str, image_id: str) -> Path:
    from .cache import default_cache_dir

    return default_cache_dir() / kind / f"{image_id.rsplit(':', 1)[-1]}.json"


def cache_load(kind: str, image_id: str) -> dict:
    """What an earlier read of the image ``image_id`` found (its files never change), from the
    host's cache; {} when nothing is kept. The cache is the verifier's own."""
    try:
        data = json.loads(_cache_file(kind, image_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cache_store(kind: str, image_id: str, data: dict) -> None:
    from .fsutil import atomic_write

    path = _cache_file(kind, image_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(data, sort_keys=True))
    except (OSError, FileWriteError):
        pass  # a cache: reads work without it
