"""`imagesmith inspect`: the parity manifest of an image or a lock."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..engine import Engine
from .base import command
from .options import JsonOpt, PlatformOpt, ProjectOpt, QuietOpt, VerboseOpt, given_platform, in_project
from .output import emit_json, line, progress


@command()
def inspect(
    image: str = typer.Argument(..., help="Image in the local engine, registry reference, or imagesmith.lock."),
    platform: Optional[str] = PlatformOpt,
    project: Path = ProjectOpt,
    sizes: bool = typer.Option(
        False, "--sizes", help="Bytes per layer and per distribution, the CUDA libraries summed (an image only)."
    ),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Show the parity manifest of an image (read without pulling) or a lock. Exit 1 if its labels do not match.
    With --sizes: where the image's bytes went."""
    if sizes:
        from ..sizes import image_sizes, sizes_lines

        report = image_sizes(Engine(progress()), in_project(project, image), given_platform(platform))
        if as_json:
            emit_json(report)
        else:
            for text in sizes_lines(report):
                line(text)
        raise typer.Exit(0)
    from ..verify import inspect_lines, inspect_source

    data = inspect_source(Engine(progress()), in_project(project, image), given_platform(platform))
    if as_json:
        emit_json({**data, "id": data.get("id") or None, "digest": data.get("id") or None})  # a lock has neither
    else:
        for text in inspect_lines(data):
            line(text)
    raise typer.Exit(0 if data["label_ok"] else 1)
