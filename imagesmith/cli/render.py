"""`imagesmith render`: the one multi-stage Dockerfile; `--check` says whether what is on disk
is current."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from ..spec.load import load_spec
from .base import command
from .options import BaseOpt, JsonOpt, ProjectOpt, QuietOpt, VerboseOpt
from .output import emit_json, fail_all, say


@command()
def render(
    project: Path = ProjectOpt,
    output: Optional[Path] = typer.Option(
        None,
        "--output",
        "-o",
        help="Where to write (default: the spec's dockerfile, Dockerfile in the project); - for stdout. "
        "Never over a file imagesmith did not write.",
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Exit 1 if the Dockerfile on disk (the project's, or -o FILE) differs from a fresh render.",
    ),
    base: Optional[str] = BaseOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Render the one multi-stage Dockerfile (train and serve targets) from the spec and lock,
    and write what it copies from .imagesmith/ in the project (the runtime wheel, the image facts)."""
    from .. import rendered
    from ..lock.update import ensure_fresh_all
    from ..render import dockerignore_path, write_context
    from ..render import render as render_text

    spec = load_spec(project)
    locks = ensure_fresh_all(spec, base)
    text = render_text(spec, locks)
    to_stdout = output is not None and str(output) == "-"
    if to_stdout and as_json:
        raise UsageError("--json and -o - both write to stdout", hint="use -o FILE with --json")
    # --check compares a file on disk: -o - (stdout) has none, so the project's Dockerfile is checked
    target = spec.dockerfile_path if (output is None or to_stdout) else output
    if check:
        problems = rendered.stale(spec, locks, text, target)
        if as_json:
            emit_json({"dockerfile": str(target), "up_to_date": not problems, "problems": problems})
        if problems:
            fail_all(problems, "run `imagesmith render` and commit the result")
        say(f"{target} is up to date")
        return
    if to_stdout:
        write_context(spec, locks)
        sys.stdout.write(text)
        return
    wheel_path = rendered.write(spec, locks, text, target)
    if as_json:
        emit_json({"dockerfile": str(target), "written": True, "runtime_wheel": str(wheel_path)})
    say(f"wrote {target} (and {dockerignore_path(target).name}, {wheel_path.relative_to(spec.root)})")
