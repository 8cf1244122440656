"""`imagesmith init`: write a commented spec for a project from what is in it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import command
from .options import JsonOpt, ProjectOpt, QuietOpt, VerboseOpt, project_dir
from .output import emit_json, say


@command()
def init(
    project: Path = ProjectOpt,
    pyproject: bool = typer.Option(
        False, "--pyproject", help="Write [tool.imagesmith] into pyproject.toml instead of imagesmith.yaml."
    ),
    print_only: bool = typer.Option(False, "--print", help="Show what would be written; write nothing."),
    base: Optional[str] = typer.Option(
        None,
        "--base",
        envvar="IMAGESMITH_BASE",
        help="The base image the spec names (its Python too, when the project names none).",
    ),
    python: Optional[str] = typer.Option(None, "--python", help="The images' Python (3.X), whatever the project says."),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Write a commented spec for this project from what is in it (never over an existing one)."""
    from ..init.write import write_spec

    path, text, proposal = write_spec(
        project_dir(project), pyproject=pyproject, dry_run=print_only, python=python, base=base
    )
    if as_json:
        emit_json(
            {
                "spec": str(path),
                "written": not print_only,
                "values": proposal.values,
                "reasons": proposal.reasons,
                "notes": proposal.notes,
            }
        )
    elif print_only:
        typer.echo(text, nl=False)
    from ..runtime.untrusted import printable

    for note in proposal.notes:  # a note quotes the project's files (its Dockerfile's CMD): one plain line each
        say(f"check: {printable(note)}")
    if not print_only:
        say(f"wrote {path}; next: `imagesmith build`")
