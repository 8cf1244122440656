"""`imagesmith golden`: the signoff samples' outputs from the train image, stored with the model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..engine import Engine
from ..spec.load import load_spec
from .base import command
from .options import JsonOpt, ProjectOpt, QuietOpt, VerboseOpt
from .output import emit_json, progress


@command()
def golden(
    project: Path = ProjectOpt,
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="The artifacts folder train wrote (default: PROJECT/artifacts)."
    ),
    image: Optional[str] = typer.Option(
        None, "--image", help="The train image (default: REPO:train, REPO from --tag or the spec's name)."
    ),
    tag: Optional[str] = typer.Option(
        None, "--tag", "-t", help="Repository of the train image (default: the spec's name)."
    ),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Run the signoff samples through the batch function in the train image; store the outputs with the model."""
    from ..run import default_artifacts
    from ..signoff.golden import make_golden

    spec = load_spec(project)
    folder = model if model is not None else default_artifacts(spec)
    path, record = make_golden(Engine(progress()), spec, image or f"{tag or spec.name}:train", Path(folder))
    if as_json:
        emit_json(
            {
                "golden": str(path),
                "samples": record["samples"]["count"],
                "image": record["image"],
                "model": record["model"],
            }
        )
    else:
        typer.echo(
            f"wrote {path} ({record['samples']['count']} samples through {record['predict']} "
            f"in {record['image']['ref']})"
        )
