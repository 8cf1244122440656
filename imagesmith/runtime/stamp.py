"""Models bound to the environment they were trained in: the stamp, and the check against it.

When ``train`` succeeds, the runtime in the image writes ``imagesmith-stamp.json`` into the
artifacts folder (the spec's ``artifacts`` path)::

    {"imagesmith_stamp": 1,
     "parity": "sha256:<the training image's parity digest>",
     "manifest": {<its parity manifest, so a refusal can name what differs>},
     "preprocessing": {"name": "iris-preprocessing", "version": "0+sha256.<12 hex>"} | null,
     "seed": 42,
     "determinism": false,
     "image": {"digest": "sha256:<image ID>" | null, "ref": "iris:train" | null},
     "command": ["python", "train.py"],
     "artifacts": {"<path relative to the artifacts folder>": "sha256:<hex>", ...}}

``artifacts`` covers every file in the folder except the stamp. The keys are sorted and the
stamp holds no time, so the same training run gives the same stamp.

**The image digest.** A container cannot see the ID of its own image, so ``imagesmith run``
passes it in (``IMAGESMITH_IMAGE_DIGEST``, ``IMAGESMITH_IMAGE_REF``); a container started some
other way records ``null``. Nothing trusts that value: the check compares parities, and
``imagesmith verify SERVE_IMAGE --model DIR`` reads the serve image's labels from the engine.

**Where the user looks.** ``imagesmith run`` mounts a host folder at the artifacts path and
passes its host path in (``IMAGESMITH_ARTIFACTS_HOST``); the runtime's messages name that folder
(``host_path``), where the user acts, not the path inside the container.

**The check** (``check_model``), made by the serve runtime before the server starts and by
``verify --model`` from the host, holds when

1. the artifacts folder is empty or absent (nothing to serve, nothing to check), or
2. the stamp is there, its manifest hashes to its parity (``parity.digest``), that parity is
   the image's (or, for an image of a multi-platform build, the parity of that build's image
   for the platform the stamp's manifest names: facts ``platforms``, label
   ``io.imagesmith.platforms``), and every file it lists is present with the same sha256.

Anything else is a problem, named line by line (each manifest difference from
``parity.compare``, each changed or missing file). The serve runtime then refuses to start
(exit 3) unless ``IMAGESMITH_ALLOW_MISMATCH=1`` is set (``imagesmith run serve
--allow-mismatch``), which it logs loudly on stderr.

The image knows its own parity from ``imagesmith_image.json``, which the Dockerfile writes into
the venv's folder (the image plan's facts, ``plan.ImagePlan.facts`` on the host): the parity, its
manifest, the preprocessing wheel, the seed and the artifacts path.

Standard library only (part of the ``imagesmith-runtime`` wheel); the host's
``verify.verify_model`` runs ``check_model`` against an image's facts.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field

from . import FACTS_FILE, parity
from .errors import ImagesmithError
from .files import sha256_fd, write_atomic
from .untrusted import MapOf, UntrustedInput, kind, loads, open_regular, printable, read_regular, shape_problem

__all__ = [
    "FACTS_FILE",
    "STAMP_FILE",
    "Check",
    "StampError",
    "check_model",
    "host_path",
    "make_stamp",
    "read_facts",
    "read_stamp",
    "write_stamp",
]

STAMP_VERSION = 1
STAMP_FILE = "imagesmith-stamp.json"
GOLDEN_FILE = "imagesmith-golden.json"  # written beside the stamp by `imagesmith golden`
# Files imagesmith itself writes into a model folder after the stamp (not model files)
COMPANIONS = (STAMP_FILE, STAMP_FILE + ".sig", STAMP_FILE + ".tmp", GOLDEN_FILE, GOLDEN_FILE + ".sig")
MAX_STAMP = 32 << 20  # bytes of a stamp (one line per model file: 100,000 files is about 10 MiB)
MAX_FACTS = 4 << 20  # bytes of the image-facts file
MAX_ODD_SHOWN = 20  # entries of a model folder that are not model files, named one a line; the rest counted
STAMP_SHAPE = {"imagesmith_stamp": int, "parity": str, "manifest": dict, "artifacts": MapOf(str)}
ALLOW_ENV = "IMAGESMITH_ALLOW_MISMATCH"
DIGEST_ENV = "IMAGESMITH_IMAGE_DIGEST"
REF_ENV = "IMAGESMITH_IMAGE_REF"
HOST_ENV = "IMAGESMITH_ARTIFACTS_HOST"  # the host folder mounted at the artifacts path (messages only)


class StampError(ImagesmithError):
    """A stamp or an image-facts file that cannot be read."""


# --------------------------------------------------------------------------------------------
# What the image knows about itself (written into it at build time)


def read_facts(path: str) -> dict:
    try:
        facts = loads(read_regular(path, max_bytes=MAX_FACTS), what=path, max_bytes=MAX_FACTS)
        for key in ("artifacts", "manifest", "parity", "seed"):
            facts[key]
    except FileNotFoundError:
        raise StampError(f"{path} is missing: this image was not built by imagesmith") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StampError(f"{path} is not readable image facts ({exc})") from exc
    return facts


def host_path(path: str, folder: str, host: str | None) -> str:
    """``path`` (inside the container) as the user sees it: under ``host``, the host folder
    mounted at ``folder``; as it is when there is no host folder or it lies outside ``folder``."""
    if not host:
        return path
    rel = os.path.relpath(path, folder)
    if rel == ".":
        return host
    if rel == ".." or rel.startswith(".." + os.sep):
        return path
    return os.path.join(host, rel)


# --------------------------------------------------------------------------------------------
# Writing the stamp


def artifact_digests(folder: str) -> dict[str, str]:
    """``{relative posix path: sha256}`` of the model files under ``folder``: what a stamp lists,
    exactly what ``scan_model`` (and so every check) finds; links, FIFOs and devices are not model
    files, and the check names them."""
    return scan_model(folder)[0]


def make_stamp(
    facts: dict,
    folder: str,
    *,
    image_digest: str | None = None,
    image_ref: str | None = None,
    command: list[str] | None = None,
    files: dict[str, str] | None = None,
) -> dict:
    """The stamp of the model in ``folder`` (``files``: its ``artifact_digests``, when known)."""
    return {
        "imagesmith_stamp": STAMP_VERSION,
        "parity": facts["parity"],
        "manifest": facts["manifest"],
        "preprocessing": facts.get("preprocessing"),
        "seed": facts["seed"],
        "determinism": facts.get("determinism", False),
        "image": {"digest": image_digest or None, "ref": image_ref or None},
        "command": list(command or []),
        "artifacts": artifact_digests(folder) if files is None else files,
    }


def write_stamp(folder: str, stamp: dict) -> str:
    """Write the stamp atomically (readers see the old one or the new one); returns its path."""
    text = json.dumps(stamp, indent=2, sort_keys=True) + "\n"
    return write_atomic(os.path.join(folder, STAMP_FILE), text.encode("utf-8"))


def read_stamp(folder: str, *, shown: str | None = None) -> dict | None:
    """The stamp in ``folder``; None when there is none; StampError when it is unreadable: not a
    regular file (a link, a FIFO, a device: refused before a byte is read), over ``MAX_STAMP``
    bytes, too deeply nested, or not of a stamp's shape (``untrusted``). Messages name it under
    ``shown``, the folder as the user sees it, when given."""
    name = os.path.join(folder, STAMP_FILE)
    path = os.path.join(shown, STAMP_FILE) if shown else name
    try:
        stamp = loads(
            read_regular(name, max_bytes=MAX_STAMP, what=path), what=path, max_bytes=MAX_STAMP, max_items=2_000_000
        )
    except FileNotFoundError:
        return None
    except UntrustedInput as exc:
        raise StampError(f"{path} is not a readable stamp: {exc}") from exc
    except OSError as exc:
        raise StampError(f"{path} is not a readable stamp ({exc})") from exc
    if not isinstance(stamp, dict) or stamp.get("imagesmith_stamp") != STAMP_VERSION:
        raise StampError(f"{path} is not an imagesmith stamp (version {STAMP_VERSION})")
    problem = shape_problem(stamp, STAMP_SHAPE)
    if problem:
        raise StampError(f"{path} lacks a valid {problem.split(':', 1)[0].split('.', 1)[0]!r} ({problem[:200]})")
    return stamp


def scan_model(folder: str) -> tuple[dict[str, str], list[str]]:
    """``{relative posix path: sha256}`` of every regular file under ``folder`` but the
    ``COMPANIONS``, and one line for each entry that is neither a regular file nor a folder (a
    symbolic link, a FIFO, a device, a socket: never opened, so nothing hangs on them; the first
    ``MAX_ODD_SHOWN`` of them, then one line counting the rest). Each file
    is opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked to be regular before it is read."""
    files: dict[str, str] = {}
    odd: list[str] = []
    if not os.path.isdir(folder):
        return files, odd
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, folder).replace(os.sep, "/")
            try:
                mode = os.lstat(full).st_mode
            except OSError as exc:
                odd.append(f"{printable(rel)} cannot be read ({exc.strerror or exc})")
                continue
            if stat.S_ISDIR(mode) or _companion(rel):
                continue
            if not stat.S_ISREG(mode):
                odd.append(f"{printable(rel)} is {kind(mode)}: a model folder holds regular files only")
                continue
            try:
                files[rel] = _sha256_regular(full)
            except (OSError, UntrustedInput) as exc:
                odd.append(f"{printable(rel)} cannot be read ({getattr(exc, 'strerror', None) or exc})")
    if len(odd) > MAX_ODD_SHOWN:  # 100,000 links printed 100,000 lines (8 MB)
        odd = odd[:MAX_ODD_SHOWN] + [f"and {len(odd) - MAX_ODD_SHOWN} more entries that are not regular files"]
    return dict(sorted(files.items())), odd


def _companion(rel: str) -> bool:
    """One of the ``COMPANIONS``, or the temporary file of one that a killed write left behind
    (``.NAME.XXXXXXXX.tmp``: ``files.write_atomic`` and the host's ``atomic_write`` name them so)."""
    return rel in COMPANIONS or (
        "/" not in rel and rel.endswith(".tmp") and any(rel.startswith(f".{name}.") for name in COMPANIONS)
    )  # at the folder's top, where the companions are: ``.imagesmith-golden.json.d/w.tmp`` is a model file


def _sha256_regular(path: str) -> str:
    fd = open_regular(path)
    try:
        return sha256_fd(fd, os.fstat(fd).st_size)  # bounded: a file kept growing is refused
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# The check


@dataclass
class Check:
    folder: str
    stamp: dict | None = None
    checks: list[str] = field(default_factory=list)  # what was checked and held
    problems: list[str] = field(default_factory=list)  # one line per difference

    @property
    def ok(self) -> bool:
        return not self.problems


def check_model(
    folder: str,
    image_parity: str,
    image_manifest: dict | None,
    *,
    require_model: bool = False,
    siblings: dict | None = None,
    shown: str | None = None,
    allow_extra: bool = False,
) -> Check:
    """Check the model in ``folder`` against an image's parity and manifest (the module
    docstring lists the rules). With ``require_model``, an empty folder is a problem too.
    ``siblings``: ``{platform: parity}`` of a multi-platform build the image is part of; a
    model trained in another platform's image of that build holds too (the same lock, resolved
    for that platform), with a line saying so: its numbers are ``imagesmith signoff``'s to check.
    ``shown``: the folder as the user sees it (see ``host_path``), named in every message.
    Only regular files are read (``scan_model``); a file the stamp does not list is a problem
    unless ``allow_extra``."""
    where = shown or folder
    result = Check(folder=where)
    files, odd = scan_model(folder)
    try:
        stamp = read_stamp(folder, shown=shown) if os.path.isdir(folder) else None
    except StampError as exc:
        result.problems.append(str(exc))
        return result
    result.problems += odd
    result.stamp = stamp
    if stamp is None:
        if files:
            result.problems.append(
                f"{where} holds {len(files)} file(s) but no {STAMP_FILE}: the model was not written by "
                "a successful train run of an imagesmith image (or the stamp was removed)"
            )
        elif require_model:
            result.problems.append(f"no model in {where}: it holds no files and no {STAMP_FILE}")
        else:
            result.checks.append(f"no model in {where}: nothing to check")
        return result

    if parity.digest(stamp["manifest"]) != stamp["parity"]:
        result.problems.append(f"the stamp's manifest does not hash to its parity {stamp['parity']} (edited stamp)")
    trained_on = (stamp["manifest"] or {}).get("platform")
    if stamp["parity"] == image_parity:
        result.checks.append(f"the model was trained under this image's parity ({image_parity})")
    elif (
        isinstance(siblings, dict)
        and image_parity in siblings.values()
        and trained_on in siblings
        and siblings[trained_on] == stamp["parity"]
    ):
        result.checks.append(
            f"the model was trained under the {trained_on} image of this image's build (parity "
            f"{stamp['parity']}); this is its {(image_manifest or {}).get('platform') or 'other'} image: "
            "the same lock for another platform, so its outputs are checked by a signoff on this platform"
        )
    else:
        result.problems.append(
            f"the model was trained under parity {stamp['parity']}, this image has "
            f"parity {image_parity}; what differs (this image's value, expected the model's):"
        )
        if image_manifest is not None:
            result.problems += ["  " + line for line in parity.compare(stamp["manifest"], image_manifest)]

    changed = []
    for rel, digest in sorted(stamp["artifacts"].items()):
        if rel not in files:
            changed.append(f"{printable(rel)} is missing (the stamp lists it)")
        elif files[rel] != digest:
            changed.append(
                f"{printable(rel)} changed since training ({files[rel][:19]}..., the stamp has {digest[:19]}...)"
            )
    extra = sorted(set(files) - set(stamp["artifacts"]))
    if changed:
        result.problems += [f"model file {line}" for line in changed]
    elif not odd:
        result.checks.append(f"{len(stamp['artifacts'])} model file(s) match the digests in the stamp")
    if extra:
        listed = ", ".join(printable(name) for name in extra[:5]) + (
            f" and {len(extra) - 5} more" if len(extra) > 5 else ""
        )
        if allow_extra:
            result.checks.append(f"{len(extra)} file(s) the stamp does not list, allowed: {listed}")
        else:
            result.problems.append(
                f"{len(extra)} file(s) in {where} that the stamp does not list (added since training): {listed}"
            )
    return result


def override_banner(check: Check) -> str:
    """The loud message the serve runtime prints when the override is set."""
    bar = "!" * 78
    lines = [bar, f"imagesmith: {ALLOW_ENV}=1 is set: SERVING A MODEL THAT DOES NOT MATCH THIS IMAGE", bar]
    lines += [f"imagesmith:   {p}" for p in check.problems]
    lines.append(bar)
    return "\n".join(lines) + "\n"


def refusal(check: Check) -> str:
    lines = [f"imagesmith: refusing to serve the model in {check.folder}:"]
    lines += [f"imagesmith:   {p}" for p in check.problems]
    lines.append(
        f"imagesmith: retrain it with this image (`imagesmith run train`), serve it with the image it "
        f"was trained for, or set {ALLOW_ENV}=1 to serve it anyway (logged)"
    )
    return "\n".join(lines) + "\n"
