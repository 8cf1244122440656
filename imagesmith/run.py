"""``imagesmith run train|serve``: run a built image as ``docker run`` would, with the project's
artifacts folder mounted where the spec says (``artifacts``), the serve port published on
127.0.0.1 only, and the image's own ID passed in so the train stamp can record it
(a container cannot see its image's digest; see ``runtime/stamp.py``).

The container runs as the caller (``UID:GID`` of this process, ``--user`` to choose), not as
the image's own user: the artifacts folder is the caller's, bind-mounted, so what train writes
there is the caller's from the first byte (also when it is interrupted), and serve can read what
train wrote whatever the caller's umask. Chowning afterwards would need root, or a second
container, and would leave the files foreign when the run is cut short.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from . import gpu_host
from .engine import Engine
from .errors import PortInUseError, UsageError
from .layout import LABEL_ROLE, ROLES, image_ref
from .runtime.stamp import ALLOW_ENV, DIGEST_ENV, HOST_ENV, REF_ENV
from .spec import Spec

# docker's own rule for a container name (two characters at least), at most 128 of them
NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,127}", re.ASCII)
# docker run's --user: a name or number, and optionally a group
USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?", re.ASCII)


def caller_user() -> str:
    """``UID:GID`` of this process: whom ``imagesmith run`` runs the container as by default."""
    return f"{os.getuid()}:{os.getgid()}"


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


def artifacts_folder(path: Path, role: str, *, as_caller: bool = True) -> Path:
    """The host folder mounted at the spec's ``artifacts``, resolved (a link is followed, so the
    mount and the messages name the real folder): train's is created when it is missing; serve's
    must be there. A path that is not a folder (a file, a FIFO, a socket), or one that cannot be
    created, is a usage error naming it, never a traceback. Train's folder must be writable by
    the caller when the container runs as the caller (``as_caller``; a read-only folder or file
    system), refused before a long training run that could not save its model."""
    folder = path.resolve()
    if folder.exists() and not folder.is_dir():
        raise UsageError(
            f"{folder} is not a folder: "
            + ("train writes the model into a folder" if role == "train" else "there is no model to serve from it"),
            hint="pass --artifacts DIR, a folder (train creates it when it is missing)",
        )
    if role != "train":
        if not folder.is_dir():
            raise UsageError(
                f"the artifacts folder {folder} does not exist: there is no model to serve",
                hint="train first (`imagesmith run train`), or pass --artifacts DIR",
            )
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the artifacts folder {folder}: {exc.strerror or exc}",
            hint="pass --artifacts DIR, a folder you can write",
        ) from exc
    if as_caller and not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"the artifacts folder {folder} is not writable: train could not save the model there",
            hint="pass --artifacts DIR, a folder you can write (or make this one writable)",
        )
    return folder


def wants_gpus(spec: Spec, gpus: bool | None, machine_has_gpu=None) -> bool:
    """Whether the container gets this machine's GPUs: ``--gpus`` (True) always, ``--no-gpus``
    (False) never; by default when the project declares a GPU (``accelerator: gpu`` or a ``cuda``
    major) and this machine has one (``nvidia-smi`` lists a GPU: ``gpu_host.has_gpu``)."""
    if gpus is not None:
        return gpus
    if spec.accelerator != "gpu" and spec.cuda is None:
        return False
    return (machine_has_gpu or gpu_host.has_gpu)()


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
    user: str | None = None,
    gpus: bool | None = None,
) -> int:
    """Run the ``role`` image of ``spec`` in the foreground, as ``user`` (default: the caller,
    ``caller_user()``), with this machine's GPUs as ``wants_gpus`` decides; returns the
    container's exit code."""
    if role not in ROLES:
        raise UsageError(f"cannot run {role!r}: imagesmith images are train and serve")
    caller = caller_user()
    as_caller = user in (None, caller)
    user = user or caller
    if not USER_RE.fullmatch(user):
        raise UsageError(f"--user {user[:40]!r} is not USER or USER:GROUP (names or numbers)")
    if name is not None and not NAME_RE.fullmatch(name):
        raise UsageError(
            f"--name {name[:40]!r} is not a container name",
            hint="letters, digits, '_', '.' and '-', a letter or digit first",
        )
    if host_port is not None and not 1 <= host_port <= 65535:
        raise UsageError(f"--port {host_port} is not a port number", hint="a port from 1 to 65535")
    ref = image_ref(tag or spec.name, role)
    info = engine.image(ref)
    labelled = info.labels.get(LABEL_ROLE)
    if labelled != role:
        raise UsageError(
            f"{ref} is not an imagesmith {role} image (its {LABEL_ROLE} label is {labelled!r})",
            hint="build it with `imagesmith build`",
        )
    folder = artifacts_folder(
        Path(artifacts if artifacts is not None else default_artifacts(spec)), role, as_caller=as_caller
    )
    environment = dict(env or {})
    environment.update({DIGEST_ENV: info.id, REF_ENV: ref, HOST_ENV: str(folder)})
    if allow_mismatch:
        environment[ALLOW_ENV] = "1"
    ports = {}
    if role == "serve" and spec.serve.port:
        ports[spec.serve.port] = host_port or spec.serve.port
    elif host_port:
        raise UsageError("--port publishes the serve port; the train image has none")
    try:
        return engine.run_attached(
            ref,
            list(command),
            mounts={str(folder): spec.artifacts},
            ports=ports,
            environment=environment,
            name=name,
            user=user,
            **({"gpus": True} if wants_gpus(spec, gpus) else {}),
        )
    except PortInUseError as exc:
        inside = exc.container_port or spec.serve.port
        exc.hint = (
            f"choose another host port with --port (e.g. `imagesmith run {role} --port {exc.host_port % 65535 + 1}`; "
            f"the container still listens on {inside}), or stop what uses port {exc.host_port}"
        )
        raise
