"""`imagesmith build`: lock if needed, render, and build the train and serve images."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..engine import Engine
from ..errors import UsageError
from ..fsutil import atomic_write, check_output_file
from ..spec.load import load_spec
from .base import command
from .options import BaseOpt, JsonOpt, ProjectOpt, QuietOpt, VerboseOpt, in_project
from .output import detail, emit_json, json_text, progress, say

TagOpt = typer.Option(
    [],
    "--tag",
    "-t",
    help="REPO (tags REPO:train, REPO:serve) or REPO:TAG (tags REPO:TAG-train, REPO:TAG-serve); repeatable. Default: the spec's name.",
)
PushOpt = typer.Option(
    None,
    "--push",
    help="Push both images to REGISTRY/REPO (tags train and serve, and the parity tags) from the build, and print their digests.",
)
LoadOpt = typer.Option(
    False, "--load", help="Put the images into the engine also when the builder is not the engine's own."
)
PushOnlyOpt = typer.Option(
    False,
    "--push-only",
    help="With --push: push the images from the build and keep them out of the engine (nothing stored or unpacked there); the fastest on a CI runner that only builds and pushes.",
)
CacheFromOpt = typer.Option(
    [],
    "--cache-from",
    help="Build cache to read (buildx syntax, e.g. type=registry,ref=REG/APP:cache); each target reads its own and the other's.",
)
CacheToOpt = typer.Option(
    [],
    "--cache-to",
    help="Build cache to write (buildx syntax); one cache per target: ref REG/APP:cache becomes REG/APP:cache-train and ...-serve.",
)
InstallOpt = typer.Option(
    None,
    "--install",
    help="hermetic (wheels fetched on the host, no network in the build) or online (pip downloads inside the build); default: the spec's.",
)
PythonEnvOpt = typer.Option(
    "build",
    "--python-env",
    help="Where a non-native platform's Python environment is installed: build (natively, on this machine's platform, when the lock pins the base for it) or target (emulated); the image is the same.",
)
ProgressOpt = typer.Option(
    "auto",
    "--progress",
    help="BuildKit's log: auto (tty on a terminal, else plain), plain (grouped per step, with timings), tty (BuildKit's own display), quiet.",
)
PrintOpt = typer.Option(
    False,
    "--print",
    help="Print the bake definition (with its named contexts) instead of building; `docker buildx bake -f FILE` builds it.",
)
SignOpt = typer.Option(
    None,
    "--sign",
    help="Sign each image's digest in its registry with this cosign private key and attest its build record (with --push, or registry tags, pushed first; password in COSIGN_PASSWORD).",
)


def _check_metadata_file(path: Optional[Path]) -> None:
    """--metadata-file is refused before the build when it could not be written after it (and
    after its push and signatures): a link, a folder, a folder that does not exist."""
    if path is not None:
        check_output_file(path, "--metadata-file")


def _check_choices(**given: Optional[str]) -> None:
    """A UsageError for an option given a value it does not take (None: not given)."""
    choices = {
        "install": ("hermetic", "online"),
        "python-env": ("build", "target"),
        "progress": ("auto", "plain", "tty", "quiet"),
    }
    for name, value in given.items():
        option = name.replace("_", "-")
        allowed = choices[option]
        if value is not None and value not in allowed:
            words = ", ".join(allowed[:-1]) + (" or " if len(allowed) > 1 else "") + allowed[-1]
            raise UsageError(f"--{option} must be {words}, not {value!r}")


@command()
def build(
    project: Path = ProjectOpt,
    base: Optional[str] = BaseOpt,
    locked: bool = typer.Option(False, "--locked", help="Refuse to build from a stale lock instead of re-locking."),
    tag: List[str] = TagOpt,
    label: List[str] = typer.Option([], "--label", help="KEY=VALUE label on both images (repeatable)."),
    target: List[str] = typer.Option([], "--target", help="Build only this target (train or serve; repeatable)."),
    push: Optional[str] = PushOpt,
    load: bool = LoadOpt,
    push_only: bool = PushOnlyOpt,
    cache_from: List[str] = CacheFromOpt,
    cache_to: List[str] = CacheToOpt,
    builder: Optional[str] = typer.Option(
        None, "--builder", help="The buildx builder to use (any driver; see docs/guides/engines.md)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Build every step again."),
    install: Optional[str] = InstallOpt,
    python_env: str = PythonEnvOpt,
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", envvar="IMAGESMITH_CACHE_DIR", help="Wheel cache (default ~/.cache/imagesmith)."
    ),
    progress_mode: str = ProgressOpt,
    print_bake: bool = PrintOpt,
    metadata_file: Optional[Path] = typer.Option(
        None, "--metadata-file", help="Also write the result (the --json document: digests, refs, parity) to this file."
    ),
    sign: Optional[Path] = SignOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Lock if needed, render, and build the train and serve images reproducibly."""
    key = _sign_key(project, sign, push, tag)
    _check_choices(install=install, python_env=python_env, progress=progress_mode)
    _check_metadata_file(metadata_file)
    spec = load_spec(project)
    engine = Engine(progress())
    engine.buildx_prefetch(builder)  # buildx's start-up runs beside the imports and the lock check
    from ..build import ROLES, BuildOptions, build_project, parse_labels
    from ..progress import build_log

    options = BuildOptions(
        base=base,
        locked=locked,
        tags=tuple(tag),
        labels=parse_labels(label),
        no_cache=no_cache,
        builder=builder,
        cache_from=tuple(cache_from),
        cache_to=tuple(cache_to),
        push=push,
        load=load,
        push_only=push_only,
        targets=tuple(target) or ROLES,
        install=install,
        python_env=python_env,
        cache_dir=cache_dir,
        print_only=print_bake,
    )
    mode = "quiet" if quiet else progress_mode
    if mode == "auto":
        mode = "tty" if sys.stderr.isatty() else "plain"
    log = build_log(mode, lambda line: typer.echo(line, err=True))
    try:
        result = build_project(spec, engine, options, progress=progress(), echo=log.echo, passthrough=mode == "tty")
    finally:
        log.close()
    if print_bake:
        typer.echo(json.dumps(result.bake, indent=2, sort_keys=True))
        return
    document = result.as_json()
    if key is not None:
        _sign(result, key, spec.lock_path, document)
    if metadata_file is not None:
        atomic_write(metadata_file, json_text(document) + "\n")
    if as_json:
        emit_json(document)
    else:
        _print_result(result)


def _sign_key(project: Path, sign: Path | None, push: str | None, tags: list[str]) -> Path | None:
    """``--sign``'s private key, read from the project; refused before anything is built when
    the images will not be in a registry."""
    if sign is None:
        return None
    from ..engine import registry_host
    from ..signing import key_file

    if not push and not any(registry_host(t) for t in tags):
        raise UsageError(
            "--sign needs --push or a registry tag: signatures are attached to the image's digest in its registry",
            hint="imagesmith build --push REGISTRY/REPO --sign cosign.key",
        )
    return key_file(in_project(project, str(sign)), "private")


def _sign(result, key: Path, lock: Path, document: dict) -> None:
    from ..gate import sign_built
    from ..signing import Cosign

    for role, signed in sign_built(Engine(progress()), Cosign(), result, key, lock=lock).items():
        document["images"][role]["signed"] = {"ref": signed.ref, "key": str(key)}
        say(
            f"imagesmith: signed {signed.ref} and attested its build record"
            + (" and its GPU contract" if signed.gpu is not None else "")
        )


def _print_result(result) -> None:
    typer.echo(f"parity {result.parity}")
    for role, img in result.images.items():
        typer.echo(
            f"{role}: {img.ref or '(not in the engine)'} {img.id}" + (f" pushed {img.pushed}" if img.pushed else "")
        )
        for extra in img.tags[1:]:
            detail(f"  also tagged {extra}")
