"""``imagesmith run train|serve``: run a built image as ``docker run`` would, with the project's
artifacts folder mounted where the spec says (``artifacts``), the serve port published on
127.0.0.1 only, and the image's own ID passed in so the train stamp can record it
(a container cannot see its image's digest; see ``runtime/stamp.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .engine import Engine
from .errors import UsageError
from .layout import LABEL_ROLE, ROLES, image_ref
from .runtime.stamp import ALLOW_ENV, DIGEST_ENV, REF_ENV
from .spec import Spec


def default_artifacts(spec: Spec) -> Path:
    """``artifacts/`` in the project folder (``./artifacts`` when run from the project)."""
    return spec.root / "artifacts"


def parse_env(items: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {item!r} is not KEY=VALUE")
        env[key] = value
    return env


def run_role(
    spec: Spec,
    engine: Engine,
    role: str,
    command: Sequence[str] = (),
    *,
    tag: str | None = None,
    artifacts: Path | None = None,
    host_port: int | None = None,
    env: dict[str, str] | None = None,
    allow_mismatch: bool = False,
    name: str | None = None,
) -> int:
    """Run the ``role`` image of ``spec`` in the foreground; returns the container's exit code."""
    if role not in ROLES:
        raise UsageError(f"cannot run {role!r}: imagesmith images are train and serve")
    ref = image_ref(tag or spec.name, role)
    info = engine.image(ref)
    labelled = info.labels.get(LABEL_ROLE)
    if labelled != role:
        raise UsageError(
            f"{ref} is not an imagesmith {role} image (its {LABEL_ROLE} label is {labelled!r})",
            hint="build it with `imagesmith build`",
        )
    folder = Path(artifacts if artifacts is not None else default_artifacts(spec)).resolve()
    if role == "train":
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise UsageError(
            f"there is no artifacts folder {folder} to serve from",
            hint="train first (`imagesmith run train`), or pass --artifacts DIR",
        )
    environment = dict(env or {})
    environment.update({DIGEST_ENV: info.id, REF_ENV: ref})
    if allow_mismatch:
        environment[ALLOW_ENV] = "1"
    ports = {}
    if role == "serve" and spec.serve.port:
        ports[spec.serve.port] = host_port or spec.serve.port
    elif host_port:
        raise UsageError("--port publishes the serve port; the train image has none")
    return engine.run_attached(
        ref, list(command), mounts={str(folder): spec.artifacts}, ports=ports, environment=environment, name=name
    )
