"""`imagesmith prune`: remove old parity-tagged images (a dry run unless --yes)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..engine import Engine
from ..errors import EngineError
from ..spec.load import load_spec
from .base import command
from .options import JsonOpt, ProjectOpt, QuietOpt, VerboseOpt, in_project
from .output import emit_json, line, progress, say

ModelOpt = typer.Option(
    [],
    "--model",
    "-m",
    help="An artifacts folder whose stamp's image and parity are kept (repeatable; PROJECT/artifacts is read too).",
)
SignoffOpt = typer.Option(
    [],
    "--signoff",
    help="A signoff record whose image and parity are kept (repeatable; default: PROJECT/signoff.json when there).",
)


@command()
def prune(
    project: Path = ProjectOpt,
    tag: Optional[str] = typer.Option(
        None, "--tag", "-t", help="Repository whose parity tags are pruned (default: the spec's name)."
    ),
    model: List[Path] = ModelOpt,
    signoff_file: List[Path] = SignoffOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove them; without it, only list what would go."),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Remove old parity-tagged images (REPO:train-<parity12>, REPO:serve-<parity12>), keeping what the current lock, a model stamp or a signoff names, the latest build and any image a container uses. A dry run unless --yes."""
    from ..prune import apply_prune, kept_by_records, plan_lines, plan_prune, repository_of
    from ..run import default_artifacts

    spec = load_spec(project)
    images = Engine(progress()).images
    kept = kept_by_records(
        spec,
        models=[Path(in_project(project, str(m))) for m in model],
        signoffs=[Path(in_project(project, str(f))) for f in signoff_file],
        default_artifacts=default_artifacts(spec),
    )
    plan = plan_prune(images, repository_of(spec, tag), kept)
    removed, failed = apply_prune(images, plan) if yes else ([], [])
    if as_json:
        emit_json(
            {
                "repository": plan.repository,
                "dry_run": not yes,
                "keep": [{"ref": d.ref, "id": d.id, "why": d.why} for d in plan.keep],
                "remove": [{"ref": d.ref, "id": d.id} for d in plan.remove],
                "removed": removed,
                "failed": failed,
                "notes": plan.notes,
            }
        )
    else:
        for text in plan_lines(plan, dry_run=not yes):
            line(text)
    for note in plan.notes:
        say(f"note: {note}")
    if failed:
        raise EngineError(
            f"{len(failed)} tag(s) not removed:\n" + "\n".join(f"  {item}" for item in failed),
            hint="each line says why: stop or remove a container that uses the image (`docker ps -a`), or check "
            "that the engine answers (`docker info`), then prune again",
        )
    if not yes:
        say(
            f"dry run: {len(plan.remove)} tag(s) of {plan.repository} would be removed, {len(plan.keep)} kept"
            + ("; `imagesmith prune --yes` removes them" if plan.remove else "")
        )
    else:
        say(f"removed {len(removed)} tag(s) of {plan.repository}, kept {len(plan.keep)}")
