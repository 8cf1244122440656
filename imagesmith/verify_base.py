"""The base check: do an image's layers start with the layers of the base its manifest names?

The base is named by digest (a local base's image ID, a pulled one's manifest digest), so what
it is (its layers and config) never changes: once read, it is kept in the verifier's cache
(``facts.cache_load``) by that digest and the platform it was read for, and a verify run again
does not ask the engine (or the registry) for it again."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from .engine import Engine, ImageInfo, registry_host
from .errors import EngineError
from .facts import cache_load, cache_store
from .layout import (
    LABEL_BASE_NAME,
)
from .plan import normalize_config
from .runtime.untrusted import MapOf, shape_problem

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# An ImageInfo as the cache keeps it (its history is never kept: the base check does not read it)
_CACHED_SHAPE = {
    "ref": str,
    "id": str,
    "labels": MapOf(str),
    "layers": [str],
    "repo_digests": [str],
    "config": dict,
    "size": int,
    "created": str,
    "source": str,
    "platform": str,
    "index_digest": str,
}


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
    found = _cached_base(base, info.platform)
    if found is None:
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
        if found is not None:
            _keep_base(base, info.platform, found)
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


def _cached_base(base: str, platform: str) -> ImageInfo | None:
    """The base ``base`` as an earlier check read it for an image of ``platform`` (None: not kept,
    or not what the cache should hold: then it is read again)."""
    if not _DIGEST.fullmatch(base):  # read from the image's facts: only a digest names a cache file
        return None
    entry = cache_load("base-image", base).get(platform or "-")
    if not isinstance(entry, dict) or shape_problem(entry, _CACHED_SHAPE) is not None:
        return None
    fields = {k: entry[k] for k in _CACHED_SHAPE}
    return ImageInfo(**{**fields, "layers": tuple(fields["layers"]), "repo_digests": tuple(fields["repo_digests"])})


def _keep_base(base: str, platform: str, found: ImageInfo) -> None:
    if not _DIGEST.fullmatch(base):
        return
    kept = cache_load("base-image", base)
    entry = dataclasses.asdict(found)
    entry.pop("history", None)
    kept[platform or "-"] = entry
    cache_store("base-image", base, kept)
