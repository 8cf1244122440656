"""`imagesmith diff`: what differs between two images, registry references or locks."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..engine import Engine
from .base import command
from .options import JsonOpt, PlatformOpt, ProjectOpt, QuietOpt, VerboseOpt, given_platform, in_project
from .output import emit_json, line, progress


@command()
def diff(
    a: str = typer.Argument(..., help="An image, a registry reference, or an imagesmith.lock."),
    b: str = typer.Argument(..., help="An image, a registry reference, or an imagesmith.lock."),
    labels_only: bool = typer.Option(
        False, "--labels-only", help="Compare labels and image config only; do not look inside images."
    ),
    platform: Optional[str] = PlatformOpt,
    platform_b: Optional[str] = typer.Option(
        None, "--platform-b", help="Another platform for B (e.g. a lock's linux/amd64 against its linux/arm64)."
    ),
    project: Path = ProjectOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """List what differs between two images, registry references or locks, grouped. Exit 0 parity-equal, 1 not."""
    from ..diff import diff as diff_sources

    result = diff_sources(
        Engine(progress()),
        in_project(project, a),
        in_project(project, b),
        labels_only=labels_only,
        platform=given_platform(platform),
        platform_b=given_platform(platform_b),
    )
    if as_json:
        data = result.as_json()
        for side in ("a", "b"):
            if isinstance(data.get(side), dict):
                data[side] = {**data[side], "id": data[side].get("id") or None, "digest": data[side].get("id") or None}
        emit_json(data)
    else:
        for text in result.lines():
            line(text)
    raise typer.Exit(0 if result.equal else 1)
