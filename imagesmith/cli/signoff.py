"""`imagesmith signoff`: run the serve image on this machine against the golden outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..engine import Engine
from ..errors import UsageError
from ..spec.load import load_spec
from .base import command
from .options import JsonOpt, ProjectOpt, QuietOpt, VerboseOpt, in_project, platform_option
from .output import emit_json, progress, say

SignOpt = typer.Option(
    None,
    "--sign",
    help="When it passes: attest the record on the (pushed) serve image's digest and sign the file, with this cosign private key.",
)
PlatformOpt = typer.Option(
    None,
    "--platform",
    help="Which image of a multi-platform index to sign off on (run under emulation when it is not this machine's).",
)


@command()
def signoff(
    image: str = typer.Argument(..., help="The serve image, as it will run in production."),
    model: Path = typer.Option(
        ..., "--model", "-m", help="The artifacts folder train wrote (with its golden outputs)."
    ),
    project: Path = ProjectOpt,
    output: Path = typer.Option(Path("signoff.json"), "--output", "-o", help="Where to write the signoff record."),
    requests: int = typer.Option(
        200, "--requests", min=1, help="Replay the samples until at least this many requests."
    ),
    sign: Optional[Path] = SignOpt,
    platform: Optional[str] = PlatformOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Run the serve image on this machine: latency, outputs against the golden ones, hardware. Exit 0 passed, 1 not."""
    from ..signoff.run import check_output, run_signoff, table, write_signoff

    spec = load_spec(project)
    check_output(output)  # before the run: its record must not be lost nor written over a file of yours
    engine = Engine(progress())
    if platform is not None:
        from ..deploy import platform_image

        image = platform_image(engine, image, platform_option(platform))
    key = _sign_key(project, sign, image)
    result = run_signoff(engine, spec, image, model, requests=requests)
    write_signoff(result, output)
    if key is not None and result.passed:
        from ..gate import sign_signoff
        from ..signing import Cosign

        signed = sign_signoff(engine, Cosign(), result.record, output, key)
        say(f"imagesmith: attested the signoff on {signed.ref} and signed {output}")
    elif key is not None:
        say("imagesmith: the signoff did not pass: nothing signed")
    if as_json:
        emit_json(result.record)
    else:
        for line in table(result.record):
            typer.echo(line)
        typer.echo(f"{image}: {'signed off' if result.passed else 'NOT signed off'} ({output})")
    raise typer.Exit(0 if result.passed else 1)


def _sign_key(project: Path, sign: Path | None, image: str) -> Path | None:
    """``--sign``'s private key, read from the project; refused before the signoff runs when the
    image is not in a registry."""
    if sign is None:
        return None
    from ..engine import registry_host
    from ..gate import not_in_registry
    from ..signing import key_file

    key = key_file(in_project(project, str(sign)), "private")
    if not registry_host(image):
        raise UsageError(not_in_registry(image), hint="sign off on the pushed serve image's reference")
    return key
