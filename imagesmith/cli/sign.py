"""`imagesmith sign`: sign an image's digest and attest its build record; sign a model's files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..engine import Engine
from ..errors import UsageError
from .base import command
from .options import JsonOpt, ProjectOpt, QuietOpt, VerboseOpt, in_project
from .output import emit_json, progress, say


def _and_gpu(signed) -> str:
    return " and its GPU contract" if signed.gpu is not None else ""


@command()
def sign(
    image: Optional[str] = typer.Argument(
        None,
        help="A pushed image (REGISTRY/REPO:TAG or @sha256:…): its digest is signed and its build record attested.",
    ),
    key: Path = typer.Option(..., "--key", help="The cosign private key (password in COSIGN_PASSWORD)."),
    lock_file: Optional[Path] = typer.Option(
        None, "--lock", help="The imagesmith.lock it was built from: its digest goes into the build record."
    ),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="Also sign this artifacts folder's stamp and golden outputs (.sig next to each)."
    ),
    project: Path = ProjectOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Sign an image's digest with cosign and attest its build record; sign a model's stamp and golden outputs."""
    from ..gate import sign_image, sign_model
    from ..signing import Cosign, key_file

    if image is None and model is None:
        raise UsageError("nothing to sign: give an IMAGE, --model DIR, or both")
    private = key_file(in_project(project, str(key)), "private")
    if lock_file is not None:
        lock_file = Path(in_project(project, str(lock_file)))
        if not lock_file.is_file():
            raise UsageError(f"{lock_file} does not exist", hint="give the imagesmith.lock the image was built from")
    cosign = Cosign()
    document: dict = {"key": str(key)}
    if image is not None:
        signed = sign_image(Engine(progress()), cosign, image, private, lock=lock_file)
        document["image"] = {"ref": signed.ref, "record": signed.record, "gpu": signed.gpu}
        say(f"imagesmith: signed {signed.ref} and attested its build record{_and_gpu(signed)}")
    if model is not None:
        folder = Path(in_project(project, str(model)))
        files = sign_model(cosign, folder, private).files
        document["signatures"] = [str(path) for path in files]
        say(f"imagesmith: signed {', '.join(path.name.removesuffix('.sig') for path in files)} in {folder}")
    if as_json:
        emit_json(document)
    elif image is not None:
        typer.echo(document["image"]["ref"])
