"""`imagesmith run`: the train or serve image like `docker run`, with the artifacts mounted.
Exits with the container's code, and with 125 for imagesmith's own failures (as ``docker run``
does), so a container's 2 is never mistaken for imagesmith's."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..engine import Engine
from ..spec.load import load_spec
from .base import command
from .options import ProjectOpt, QuietOpt, VerboseOpt
from .output import progress

RUN_OWN_ERROR = 125  # `imagesmith run`'s own failures (docker run's convention)

UserOpt = typer.Option(
    None,
    "--user",
    "-u",
    help="Run the container as USER[:GROUP] (default: you, UID:GID, so what train writes is yours; "
    "10001:10001 is the images' own user).",
)


@command(own_error_exit=RUN_OWN_ERROR)
def run(
    role: str = typer.Argument(..., help="train or serve."),
    command: Optional[List[str]] = typer.Argument(
        None, help="A command instead of the image's (put -- before it when it has options)."
    ),
    project: Path = ProjectOpt,
    tag: Optional[str] = typer.Option(
        None, "--tag", "-t", help="Repository of the images REPO:train / REPO:serve (default: the spec's name)."
    ),
    artifacts: Optional[Path] = typer.Option(
        None, "--artifacts", "-a", help="Host folder mounted at the spec's artifacts path (default: PROJECT/artifacts)."
    ),
    port: Optional[int] = typer.Option(
        None, "--port", help="Host port for the serve port, on 127.0.0.1 (default: the same number)."
    ),
    env: List[str] = typer.Option([], "--env", "-e", help="KEY=VALUE for the container (repeatable)."),
    allow_mismatch: bool = typer.Option(
        False, "--allow-mismatch", help="Serve a model whose stamp does not match the image (logged loudly)."
    ),
    name: Optional[str] = typer.Option(None, "--name", help="Name for the container."),
    user: Optional[str] = UserOpt,
    gpus: Optional[bool] = typer.Option(
        None,
        "--gpus/--no-gpus",
        help="Give the container this machine's GPUs (docker run --gpus all). Default: when the project "
        "declares a GPU (accelerator: gpu, or cuda) and nvidia-smi finds one.",
    ),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Run the train or serve image like `docker run`, with the artifacts folder mounted. Exits with the container's code (125: imagesmith's own failure)."""
    from ..run import parse_env, run_role

    spec = load_spec(project)
    code = run_role(
        spec,
        Engine(progress()),
        role,
        command or (),
        tag=tag,
        artifacts=artifacts,
        host_port=port,
        env=parse_env(env),
        allow_mismatch=allow_mismatch,
        name=name,
        user=user,
        gpus=gpus,
    )
    raise typer.Exit(code)
