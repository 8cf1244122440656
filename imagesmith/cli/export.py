"""`imagesmith export preprocessing`: the preprocessing wheel, for batch jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from ..spec.load import load_spec
from .base import command
from .options import BaseOpt, JsonOpt, ProjectOpt, QuietOpt, VerboseOpt
from .output import emit_json


@command()
def export(
    what: str = typer.Argument(..., help="What to export: preprocessing."),
    project: Path = ProjectOpt,
    output: Path = typer.Option(Path("."), "--output", "-o", help="Folder to write into."),
    base: Optional[str] = BaseOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Write the preprocessing wheel (version = content digest, as in the lock and both images) for batch jobs."""
    from ..fsutil import sha256_file
    from ..lock.update import ensure_fresh
    from ..preprocessing import distribution_name
    from ..preprocessing import export as export_wheel

    if what != "preprocessing":
        raise UsageError(f"cannot export {what!r}", hint="imagesmith export preprocessing [-o DIR]")
    spec = load_spec(project)
    lock = ensure_fresh(spec, base)
    path = Path(export_wheel(spec, lock, output))
    if as_json:
        emit_json(
            {
                "wheel": str(path),
                "name": distribution_name(spec.name),
                "version": lock.preprocessing_version,
                "sha256": sha256_file(path),
            }
        )
    else:
        typer.echo(str(path))
