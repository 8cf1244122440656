"""The base check: do an image's layers start with the layers of the base its manifest names?"""

from __future__ import annotations

from dataclasses import dataclass, field

from .engine import Engine, ImageInfo, registry_host
from .errors import EngineError
from .layout import (
    LABEL_BASE_NAME,
)
from .plan import normalize_config


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
