"""What an image is, in the terms a deploy gate compares: its config, field by field, its layer
list, and its ``/app`` tree, read from outside the image (nothing in it runs).

Two comparisons use these words:

- ``verify`` (``config_problems``) compares an image's config with the config imagesmith's
  Dockerfile implies for its role (the image plan's config, carried in the image-facts file
  and the ``io.imagesmith.config`` label) laid over its base image's config;
- the build record (``make_record``), written by ``imagesmith build`` right after the build and
  signed as the predicate of the parity attestation (type ``PARITY_PREDICATE``), is compared
  field by field with the image under test (``record_problems``). The signature on the digest is
  what decides; these differences say why an image is not the signed one.

A GPU image (one with the ``io.imagesmith.gpu`` label) also gets its GPU contract signed on its
own (``make_gpu_record``, type ``GPU_PREDICATE``), so that a deploy tool can read and check the
CUDA, minimum driver and architectures an image needs without reading the whole build record;
``gpu_record_problems`` compares it with the image's label and facts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from . import parity
from .engine import FileEntry, ImageInfo
from .engine.protocols import FileReader
from .fsutil import sha256_file
from .layout import APP_DIR, LABEL_GPU, LABEL_PARITY, LABEL_ROLE
from .plan import CONFIG_FIELDS, normalize_config, shared_layers

RECORD_VERSION = 1
PARITY_PREDICATE = "https://imagesmith.dev/parity/v1"
SIGNOFF_PREDICATE = "https://imagesmith.dev/signoff/v1"
GPU_PREDICATE = "https://imagesmith.dev/gpu/v1"
GPU_RECORD_VERSION = 1


def config_problems(
    want: dict[str, Any], have: dict[str, Any], *, base_known: bool, whose: str, optional: tuple[str, ...] = ()
) -> list[str]:
    """Every difference between a config ``want`` and an image's ``have`` (both normalized), one
    line each, naming the field and the variable or label. A label whose wanted value is None may
    have any value, and one also named in ``optional`` may be absent too. With ``base_known`` False,
    variables, labels, ports and volumes that ``want`` does not name are still differences: they
    cannot be told apart from the base's."""
    out = []
    unknown_base = "" if base_known else " (the base image could not be read to tell whether it sets it)"
    for key in CONFIG_FIELDS:
        a, b = want.get(key), have.get(key)
        if key in ("Env", "Labels"):
            word = "ENV" if key == "Env" else "LABEL"
            a, b = a or {}, b or {}
            for name in sorted(set(a) | set(b)):
                if name not in b:
                    if not (key == "Labels" and a[name] is None and name in optional):
                        out.append(f"{word} {name} is missing ({whose} sets {_short(a[name])})")
                elif name not in a:
                    out.append(f"{word} {name}={_short(b[name])} is not set by {whose}{unknown_base}")
                elif a[name] is not None and a[name] != b[name]:
                    out.append(f"{word} {name} is {_short(b[name])}, {whose} sets {_short(a[name])}")
        elif key in ("ExposedPorts", "Volumes"):
            extra, missing = sorted(set(b or ()) - set(a or ())), sorted(set(a or ()) - set(b or ()))
            if extra:
                out.append(f"{key} {', '.join(extra)} not set by {whose}{unknown_base}")
            if missing:
                out.append(f"{key} {', '.join(missing)} missing ({whose} sets {', '.join(a or ())})")
        elif key in want and a != b:
            out.append(f"{key} is {_short(json.dumps(b))}, {whose} sets {_short(json.dumps(a))}")
        elif key not in want and base_known and b != normalize_config({})[key]:
            out.append(f"{key} is {_short(json.dumps(b))}, set by neither {whose} nor the base")
    return out


def _short(text: str | None, limit: int = 120) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------------
# layers


def layer_problems(want: tuple[str, ...] | list[str], have: tuple[str, ...] | list[str], whose: str) -> list[str]:
    """The image's layer list ``have`` against the list ``want`` recorded at build time."""
    want, have = tuple(want), tuple(have)
    if want == have:
        return []
    common = shared_layers(want, have)
    if common == len(want):
        n = len(have) - len(want)
        return [f"{n} filesystem layer{'s were' if n != 1 else ' was'} added on top of {whose} (a child image)"]
    return [
        f"filesystem layers differ from {whose}: layer {common + 1} of {len(have)} is not the recorded one "
        f"({len(want)} recorded; a rebuilt or altered image)"
    ]


# ------------------------------------------------------------------------------------------------
# /app


def app_tree(entries: tuple[FileEntry, ...] | None, root: str = APP_DIR) -> dict[str, str]:
    """``root``'s tree as {relative path: what it is}: "sha256:..." for a file (with " +x" when
    executable), "-> target" for a link, "dir" for a folder. Owners and times are left out (the
    build sets them)."""
    out: dict[str, str] = {}
    for e in entries or ():
        rel = e.path[len(root) :].lstrip("/") if e.path.startswith(root) else e.path
        if not rel:
            continue
        if e.kind == "file":
            out[rel] = e.sha256 + (" +x" if e.mode & 0o111 else "")
        elif e.kind in ("symlink", "hardlink"):
            out[rel] = f"-> {e.target}"
        else:
            out[rel] = e.kind
    return dict(sorted(out.items()))


def tree_digest(tree: dict[str, str]) -> str:
    text = "".join(f"{rel}\t{what}\n" for rel, what in sorted(tree.items()))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def read_app(engine: FileReader, image: str) -> dict[str, str] | None:
    """The image's ``/app`` tree, read from outside it (None: there is no /app)."""
    entries = engine.read_paths(image, [APP_DIR])[APP_DIR]
    return None if entries is None else app_tree(entries)


def tree_problems(want: dict[str, str], have: dict[str, str] | None, whose: str) -> list[str]:
    if have is None:
        return [f"{APP_DIR} is missing ({whose} has {len(want)} entries)"]
    changed = sorted(rel for rel in set(want) & set(have) if want[rel] != have[rel])
    added, removed = sorted(set(have) - set(want)), sorted(set(want) - set(have))
    out = []
    for words, names in (("changed", changed), ("added", added), ("removed", removed)):
        if names:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            out.append(f"{APP_DIR}: {shown} {words} since {whose}")
    return out


def source_problems(tree: dict[str, str] | None, root: Path) -> tuple[list[str], int]:
    """``/app`` (``app_tree``) against the project at ``root``: every file in /app must be the
    project's file at the same path, byte for byte (what the ignore rules kept out of the image
    is not looked for). Returns the problems and the number of files compared."""
    if tree is None:
        return [f"{APP_DIR} is missing from the image"], 0
    changed, foreign, n = [], [], 0
    for rel, what in tree.items():
        if what == "dir":
            continue
        path = root / rel
        if what.startswith("-> "):
            ok = path.is_symlink() and os.readlink(path) == what[3:]
        elif path.is_symlink() or not path.is_file():
            foreign.append(rel)
            continue
        else:
            ok = sha256_file(path) == what.split(" ", 1)[0]
        n += 1
        if not ok:
            changed.append(rel)
    out = []
    for one, many, names in (
        ("differs from the project's", "differ from the project's", changed),
        ("is not in the project", "are not in the project", foreign),
    ):
        if names:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            out.append(f"{APP_DIR}: {shown} {one if len(names) == 1 else many} ({root})")
    return out, n


# ------------------------------------------------------------------------------------------------
# the build record


def make_record(
    info: ImageInfo, manifest: dict[str, Any], *, app: dict[str, str] | None, lock_digest: str | None
) -> dict[str, Any]:
    """The build record of a freshly built image: the predicate of its parity attestation. It
    carries the image's whole parity manifest (``manifest``, its facts', which hashes to its
    parity label): the signed copy that ``verify --key`` reads."""
    labels = info.labels
    return {
        "imagesmith_record": RECORD_VERSION,
        "role": labels.get(LABEL_ROLE),
        "parity": labels.get(LABEL_PARITY),
        "manifest": manifest,
        "lock": lock_digest,
        "layers": list(info.layers),
        "config": normalize_config(info.config),
        "app": {"digest": tree_digest(app), "files": app} if app is not None else None,
        "source": {
            "revision": labels.get("org.opencontainers.image.revision"),
            "repository": labels.get("org.opencontainers.image.source"),
        },
    }


def record_shape_problem(record: Any) -> str | None:
    """What makes ``record`` unusable as a build record (None: it has every field's type)."""
    if not isinstance(record, dict) or record.get("imagesmith_record") != RECORD_VERSION:
        return f"not an imagesmith build record (version {RECORD_VERSION})"
    wrong = [
        key
        for key, ok in (
            ("layers", isinstance(record.get("layers"), list) and all(isinstance(x, str) for x in record["layers"])),
            ("config", isinstance(record.get("config"), dict)),
            ("parity", isinstance(record.get("parity"), str)),
            ("role", isinstance(record.get("role"), str)),
            ("manifest", isinstance(record.get("manifest"), dict)),
            ("app", record.get("app") is None or isinstance((record.get("app") or {}).get("files"), dict)),
        )
        if not ok
    ]
    return f"{', '.join(wrong)} of the wrong type" if wrong else None


def record_problems(
    record: dict[str, Any], info: ImageInfo, app: dict[str, str] | None, whose: str = "the signed build record"
) -> list[str]:
    """Every way ``info`` (and its /app tree, when read) differs from a build record."""
    shape = record_shape_problem(record)
    if shape:
        return [f"{whose} is unusable: {shape}"]
    out = []
    try:
        signed = parity.digest(record["manifest"])
    except (TypeError, ValueError):
        signed = None
    if signed != record["parity"]:
        out.append(f"{whose}'s manifest does not hash to its parity {record['parity']}")
    if info.labels.get(LABEL_PARITY) != record["parity"]:
        out.append(f"parity {info.labels.get(LABEL_PARITY)} is not {whose}'s {record['parity']}")
    if info.labels.get(LABEL_ROLE) != record["role"]:
        out.append(f"role {info.labels.get(LABEL_ROLE)} is not {whose}'s {record['role']}")
    out += layer_problems(record["layers"], info.layers, whose)
    want = normalize_config({})
    want.update(record["config"])
    out += config_problems(want, normalize_config(info.config), base_known=True, whose=whose)
    recorded_app = record.get("app")
    if recorded_app is not None and app is not None:
        out += tree_problems(recorded_app["files"], app, whose)
    return out


# ------------------------------------------------------------------------------------------------
# the GPU contract


def gpu_contract(info: ImageInfo) -> tuple[dict[str, Any] | None, str]:
    """The image's GPU contract (its ``io.imagesmith.gpu`` label, parsed bounded) and "", None
    and "" for an image without the label (no CUDA), or None and why the label is unusable."""
    from .runtime.untrusted import UntrustedInput, loads

    text = info.labels.get(LABEL_GPU)
    if text is None:
        return None, ""
    try:
        contract = loads(text, what=f"the {LABEL_GPU} label", max_bytes=1 << 20)
    except UntrustedInput as exc:
        return None, str(exc)[:300]
    if not isinstance(contract, dict):
        return None, f"the {LABEL_GPU} label is not a JSON object"
    return contract, ""


def make_gpu_record(info: ImageInfo, facts: dict[str, Any] | None) -> dict[str, Any] | None:
    """The predicate of a GPU image's ``GPU_PREDICATE`` attestation: its contract as its label
    states it (CUDA, minimum driver, architectures, glibc), the lock's whole ``gpu`` section from
    its facts (which packages bring which CUDA), and the parity and role it belongs to. None for
    an image without CUDA (nothing to attest)."""
    contract, _ = gpu_contract(info)
    if contract is None:
        return None
    section = (facts or {}).get("gpu")
    return {
        "imagesmith_gpu": GPU_RECORD_VERSION,
        "parity": info.labels.get(LABEL_PARITY),
        "role": info.labels.get(LABEL_ROLE),
        "contract": contract,
        "section": section if isinstance(section, dict) else None,
    }


def gpu_record_problems(
    record: Any, info: ImageInfo, facts: dict[str, Any] | None, whose: str = "the signed GPU contract"
) -> list[str]:
    """Every way a GPU image ``info`` (and its facts, when read) differs from a signed GPU record."""
    if not isinstance(record, dict) or record.get("imagesmith_gpu") != GPU_RECORD_VERSION:
        return [f"{whose} is unusable: not an imagesmith GPU record (version {GPU_RECORD_VERSION})"]
    contract, problem = gpu_contract(info)
    if contract is None:
        return [problem or f"the image has no {LABEL_GPU} label, but {whose} says it needs CUDA"]
    out = []
    want = record.get("contract")
    if want != contract:
        fields = sorted(
            k
            for k in set(contract) | set(want if isinstance(want, dict) else {})
            if not isinstance(want, dict) or want.get(k) != contract.get(k)
        )
        shown = ", ".join(
            f"{k} {json.dumps(contract.get(k))} (signed: {json.dumps(want.get(k) if isinstance(want, dict) else None)})"
            for k in fields
        )
        out.append(f"the image's GPU contract differs from {whose}: {_short(shown, 300)}")
    if info.labels.get(LABEL_PARITY) != record.get("parity"):
        out.append(f"parity {info.labels.get(LABEL_PARITY)} is not {whose}'s {record.get('parity')}")
    if info.labels.get(LABEL_ROLE) != record.get("role"):
        out.append(f"role {info.labels.get(LABEL_ROLE)} is not {whose}'s {record.get('role')}")
    section = (facts or {}).get("gpu") if facts is not None else None
    if facts is not None and section != record.get("section"):
        out.append(f"the gpu section of the image's facts is not {whose}'s")
    return out
