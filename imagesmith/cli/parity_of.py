"""`imagesmith parity-of`: the parity digest a lock gives."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import parity
from ..plan import parities as plan_parities
from .base import command
from .options import JsonOpt, ProjectOpt, QuietOpt, VerboseOpt, in_project, platform_option
from .output import emit_json


@command("parity-of")
def parity_of(
    lock_file: Path = typer.Argument(Path("imagesmith.lock"), help="An imagesmith.lock (read from the project, -p)."),
    project: Path = ProjectOpt,
    platform: Optional[str] = typer.Option(
        None, "--platform", help="One platform of a multi-platform lock (default: the digest of them all)."
    ),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Print the parity digest a lock gives (what build will stamp; for a lock of several
    platforms, the index's digest over each platform's parity, unless --platform names one)."""
    from ..lock.lockfile import read_lock, read_locks

    path = Path(in_project(project, str(lock_file)))
    locks = read_locks(path)
    if platform is not None or len(locks) == 1:
        manifest = parity.manifest_from_lock(
            read_lock(path, platform_option(platform)) if platform else next(iter(locks.values()))
        )
        if as_json:
            emit_json({"parity": parity.digest(manifest), "manifest": manifest})
        else:
            typer.echo(parity.digest(manifest))
        return
    parities = plan_parities(locks)
    if as_json:
        emit_json({"parity": parity.index_digest(parities), "platforms": parities})
    else:
        typer.echo(parity.index_digest(parities))
