"""`imagesmith verify`: the deploy gate (``deploy.check``), or with --host this machine against an
image's GPU contract."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..engine import Engine
from .base import command
from .options import JsonOpt, PlatformOpt, ProjectOpt, QuietOpt, VerboseOpt, given_platform, project_path
from .output import emit_json, line, progress

KeyOpt = typer.Option(
    None,
    "--key",
    help="A cosign public key: require its signature on the image's digest, the parity attestation matching the image, and signed --model/--signoff files.",
)
RoleOpt = typer.Option(
    None,
    "--role",
    help="What this deploy runs: train or serve. The image (and with --key its signed record) must be of that role.",
)
HostOpt = typer.Option(
    False,
    "--host",
    help="Check THIS machine against the image's GPU contract instead: NVIDIA driver and GPUs (nvidia-smi). Exit 1: the driver is too old; 2: no NVIDIA GPU.",
)


@command()
def verify(
    image: str = typer.Argument(
        ..., help="Image in the local engine, or a registry reference (HOST[:PORT]/NAME:TAG or @sha256:...)."
    ),
    lock_file: Optional[Path] = typer.Option(
        None, "--lock", help="Recompute the parity from this imagesmith.lock and compare; fail on layers added on top."
    ),
    expect: Optional[str] = typer.Option(None, "--expect", help="The parity the image must have (sha256:...)."),
    pair: Optional[str] = typer.Option(
        None, "--pair", help="The other image of a train/serve pair: same parity, same layers."
    ),
    model: Optional[Path] = typer.Option(
        None, "--model", help="An artifacts folder train stamped: the model must match this image."
    ),
    labels_only: bool = typer.Option(
        False, "--labels-only", help="Check labels and image config only; do not look inside the image (fast, no pull)."
    ),
    allow_extra_files: bool = typer.Option(
        False,
        "--allow-extra-files",
        help="Allow files in the --model folder that its stamp does not list (refused by default).",
    ),
    signoff_file: Optional[Path] = typer.Option(
        None, "--signoff", help="A signoff.json: it must have passed for this image and the --model (deploy gate)."
    ),
    key: Optional[Path] = KeyOpt,
    role: Optional[str] = RoleOpt,
    host: bool = HostOpt,
    platform: Optional[str] = PlatformOpt,
    project: Path = ProjectOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Check an image really holds what its label says, and against a lock, digest, pair, model or
    signoff. The reference is resolved once; every check reads that digest, and the last line (and
    --json's digest and ref) names it: deploy that. Without --key, a diagnostic an image with the same
    layer count can fool; a deploy gates on --key PUB --role serve. Exit 0 holds, 1 not."""
    from ..deploy import check

    if host:
        _host(image, platform, as_json)
    verdict = check(
        Engine(progress()),
        image,
        platform=given_platform(platform),
        role=role,
        lock=project_path(project, lock_file),
        expect=expect,
        pair=pair,
        model=project_path(project, model),
        signoff=project_path(project, signoff_file),
        key=project_path(project, key),
        labels_only=labels_only,
        allow_extra_files=allow_extra_files,
    )
    report = verdict.report
    if as_json:
        emit_json(verdict.as_json())
    else:
        if not quiet:
            for text in report.checks:
                line(f"ok: {text}")
        for text in report.problems:
            line(f"FAIL: {text}")
        if not quiet:
            for text in report.notes:
                line(f"note: {text}")
        line(
            f"{image}: {'verified' if verdict.ok else 'NOT verified'} (parity {report.parity}) as {verdict.target.pinned}"
        )
    raise typer.Exit(0 if verdict.ok else 1)


def _host(image: str, platform: str | None, as_json: bool) -> None:
    """`verify --host`: whether this machine can run the image (exits)."""
    from .. import gpu_host

    host_report = gpu_host.host_report(Engine(progress()), image, given_platform(platform))
    if as_json:
        emit_json({"host": host_report.as_json()})
    else:
        for text in gpu_host.lines(host_report):
            line(text)
        line(f"{image}: {'this machine can run it' if host_report.ok else 'this machine can NOT run it'}")
    raise typer.Exit(0 if host_report.ok else 1)
