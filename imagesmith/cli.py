"""The command line: parse arguments, call the library, print. Nothing else lives here.

Exit codes (a public contract, see README): 0 success / check holds; 1 a check does not hold
(stale lock or Dockerfile, failed verification, parity differs); 2 usage, spec, lock, engine
or build errors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import parity
from .engine import Engine
from .errors import FileWriteError, ImagesmithError, StaleLockError, UsageError
from .fsutil import atomic_write
from .spec import load_spec

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="One pinned, reproducible image for training and serving, verified at deploy time.",
)

ProjectOpt = typer.Option(Path("."), "--project", "-p", help="Project directory (or its spec file).")
BaseOpt = typer.Option(None, "--base", envvar="IMAGESMITH_BASE",
                       help="Use this base image instead of the spec's (for this run; recorded in the lock).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _fail(exc: ImagesmithError) -> None:
    typer.echo(f"error: {exc}", err=True)
    if exc.hint:
        typer.echo(f"hint: {exc.hint}", err=True)
    raise typer.Exit(exc.exit_code)


def _emit_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def _progress(quiet: bool):
    return (lambda msg: None) if quiet else (lambda msg: _say(f"imagesmith: {msg}"))


@app.command()
def lock(
    project: Path = ProjectOpt,
    base: Optional[str] = BaseOpt,
    resolver: Optional[str] = typer.Option(None, "--resolver", help="uv (default) or pip-tools; overrides the spec."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the lock is stale; write nothing."),
    upgrade: bool = typer.Option(False, "--upgrade", help="Resolve the newest allowed versions of everything."),
    upgrade_package: List[str] = typer.Option([], "--upgrade-package", "-P", help="Upgrade only this package (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Resolve a complete, hashed lock for the image's Python and platform."""
    from .lock import check_lock, lock_project

    try:
        spec = load_spec(project)
        if resolver is not None and resolver not in ("uv", "pip-tools"):
            raise UsageError(f"--resolver must be uv or pip-tools, not {resolver!r}")
        if check:
            if resolver is not None and resolver != spec.resolver:
                from dataclasses import replace

                spec = replace(spec, resolver=resolver)
            changed = check_lock(spec, base)
            if changed:
                raise StaleLockError(spec.lock_path.name, changed)
            _say(f"{spec.lock_path.name} is up to date")
            return
        result = lock_project(spec, Engine(), base=base, resolver=resolver, upgrade=upgrade,
                              upgrade_packages=tuple(upgrade_package), replace_invalid=True,
                              progress=_progress(quiet))
        if result.changed:
            _say(f"wrote {spec.lock_path.name} and {spec.requirements_lock_path.name} "
                 f"({len(result.lock.packages)} distributions; {', '.join(result.changed)} changed)")
        else:
            _say(f"{spec.lock_path.name} is up to date")
    except ImagesmithError as exc:
        _fail(exc)


@app.command()
def render(
    project: Path = ProjectOpt,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where to write (default: Dockerfile in the project); - for stdout."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the written Dockerfile differs from a fresh render."),
    base: Optional[str] = BaseOpt,
):
    """Render the one multi-stage Dockerfile (train and serve targets) from the spec and lock."""
    from .lock import ensure_fresh
    from .render import dockerignore, dockerignore_path, render as render_text

    try:
        spec = load_spec(project)
        text = render_text(spec, ensure_fresh(spec, base))
        target = output if output is not None else spec.dockerfile_path
        if str(target) == "-":
            sys.stdout.write(text)
            return
        if check:
            current = target.read_bytes() if target.is_file() else None
            if current != text.encode("utf-8"):
                _say(f"error: {target} is stale (or missing): it differs from a fresh render")
                _say("hint: run `imagesmith render` and commit the result")
                raise typer.Exit(1)
            _say(f"{target} is up to date")
            return
        if target.is_dir():  # checked before either file is written
            raise FileWriteError(f"cannot write {target}: it is a folder", hint="give the path of a file to write")
        atomic_write(dockerignore_path(target), dockerignore(spec))
        atomic_write(target, text)
        _say(f"wrote {target} (and {dockerignore_path(target).name})")
    except ImagesmithError as exc:
        _fail(exc)


@app.command()
def build(
    project: Path = ProjectOpt,
    base: Optional[str] = BaseOpt,
    locked: bool = typer.Option(False, "--locked", help="Refuse to build from a stale lock instead of re-locking."),
    tag: Optional[str] = typer.Option(None, "--tag", "-t", help="Repository for the tags REPO:train and REPO:serve (default: the spec's name)."),
    target: List[str] = typer.Option([], "--target", help="Build only this target (train or serve; repeatable)."),
    push: Optional[str] = typer.Option(None, "--push", help="Push both images to REGISTRY/REPO and print their digests."),
    cache_from: List[str] = typer.Option([], "--cache-from", help="Passed to buildx."),
    cache_to: List[str] = typer.Option([], "--cache-to", help="Passed to buildx."),
    builder: Optional[str] = typer.Option(None, "--builder", help="The buildx builder to use."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Build every step again."),
    install: Optional[str] = typer.Option(None, "--install", help="hermetic (wheels fetched on the host, no network in the build) or online (pip downloads inside the build); default: the spec's."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", envvar="IMAGESMITH_CACHE_DIR", help="Wheel cache (default ~/.cache/imagesmith)."),
    as_json: bool = JsonOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
):
    """Lock if needed, render, and build the train and serve images reproducibly."""
    from .build import ROLES, BuildOptions, build_project

    try:
        if install is not None and install not in ("hermetic", "online"):
            raise UsageError(f"--install must be hermetic or online, not {install!r}")
        spec = load_spec(project)
        show = not quiet and sys.stderr.isatty()
        options = BuildOptions(base=base, locked=locked, tag=tag, no_cache=no_cache, builder=builder,
                               cache_from=tuple(cache_from), cache_to=tuple(cache_to), push=push,
                               targets=tuple(target) or ROLES, install=install, cache_dir=cache_dir)
        result = build_project(spec, Engine(), options, progress=_progress(quiet),
                               echo=(lambda line: _say(line)) if show else None)
    except ImagesmithError as exc:
        _fail(exc)
        return
    if as_json:
        _emit_json(result.as_json())
    else:
        typer.echo(f"parity {result.parity}")
        for role, img in result.images.items():
            typer.echo(f"{role}: {img.ref} {img.id}" + (f" pushed {img.pushed}" if img.pushed else ""))


@app.command()
def verify(
    image: str = typer.Argument(..., help="Image in the local engine, or a registry reference (HOST[:PORT]/NAME:TAG or @sha256:...)."),
    lock_file: Optional[Path] = typer.Option(None, "--lock", help="Recompute the parity from this imagesmith.lock and compare; fail on layers added on top."),
    expect: Optional[str] = typer.Option(None, "--expect", help="The parity the image must have (sha256:...)."),
    pair: Optional[str] = typer.Option(None, "--pair", help="The other image of a train/serve pair: same parity, same layers."),
    model: Optional[Path] = typer.Option(None, "--model", help="An artifacts folder train stamped: the model must match this image."),
    labels_only: bool = typer.Option(False, "--labels-only", help="Check labels and image config only; do not look inside the image (fast, no pull)."),
    signoff_file: Optional[Path] = typer.Option(None, "--signoff", help="A signoff.json: it must have passed for this image and the --model (deploy gate)."),
    as_json: bool = JsonOpt,
):
    """Check an image really holds what its label says, and against a lock, digest, pair, model or signoff. Exit 0 holds, 1 not."""
    from .verify import verify_image

    try:
        if expect is not None and not (expect.startswith("sha256:") and len(expect) == 71):
            raise UsageError(f"--expect must be sha256:<64 hex digits>, not {expect!r}")
        engine = Engine()
        report = verify_image(engine, image, lock=lock_file, expect=expect, pair=pair, labels_only=labels_only)
        if model is not None:
            from .stamp import verify_model

            model_check = verify_model(engine, image, model)
            report.checks += [f"model: {line}" for line in model_check.checks]
            report.problems += [f"model: {line}" for line in model_check.problems]
        if signoff_file is not None:
            from .signoff import check_signoff

            if model is None:
                raise UsageError("--signoff needs --model DIR: a signoff holds for one image and one model")
            gate = check_signoff(engine, image, signoff_file, model)
            report.checks += [f"signoff: {line}" for line in gate.checks]
            report.problems += [f"signoff: {line}" for line in gate.problems]
            report.notes += [f"signoff: {line}" for line in gate.notes]
    except ImagesmithError as exc:
        _fail(exc)
        return
    if as_json:
        _emit_json(report.as_json())
    else:
        for line in report.checks:
            typer.echo(f"ok: {line}")
        for line in report.problems:
            typer.echo(f"FAIL: {line}")
        for line in report.notes:
            typer.echo(f"note: {line}")
        typer.echo(f"{image}: {'verified' if report.ok else 'NOT verified'} (parity {report.parity})")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def run(
    role: str = typer.Argument(..., help="train or serve."),
    command: Optional[List[str]] = typer.Argument(None, help="A command instead of the image's (put -- before it when it has options)."),
    project: Path = ProjectOpt,
    tag: Optional[str] = typer.Option(None, "--tag", "-t", help="Repository of the images REPO:train / REPO:serve (default: the spec's name)."),
    artifacts: Optional[Path] = typer.Option(None, "--artifacts", "-a", help="Host folder mounted at the spec's artifacts path (default: PROJECT/artifacts)."),
    port: Optional[int] = typer.Option(None, "--port", help="Host port for the serve port, on 127.0.0.1 (default: the same number)."),
    env: List[str] = typer.Option([], "--env", "-e", help="KEY=VALUE for the container (repeatable)."),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch", help="Serve a model whose stamp does not match the image (logged loudly)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name for the container."),
):
    """Run the train or serve image like `docker run`, with the artifacts folder mounted. Exits with the container's code."""
    from .run import parse_env, run_role

    try:
        spec = load_spec(project)
        code = run_role(spec, Engine(), role, command or (), tag=tag, artifacts=artifacts, host_port=port,
                        env=parse_env(env), allow_mismatch=allow_mismatch, name=name)
    except ImagesmithError as exc:
        _fail(exc)
        return
    raise typer.Exit(code)


@app.command()
def golden(
    project: Path = ProjectOpt,
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="The artifacts folder train wrote (default: PROJECT/artifacts)."),
    image: Optional[str] = typer.Option(None, "--image", help="The train image (default: REPO:train, REPO from --tag or the spec's name)."),
    tag: Optional[str] = typer.Option(None, "--tag", "-t", help="Repository of the train image (default: the spec's name)."),
    as_json: bool = JsonOpt,
):
    """Run the signoff samples through the batch function in the train image; store the outputs with the model."""
    from .run import default_artifacts
    from .signoff import make_golden

    try:
        spec = load_spec(project)
        folder = model if model is not None else default_artifacts(spec)
        path, record = make_golden(Engine(), spec, image or f"{tag or spec.name}:train", Path(folder))
    except ImagesmithError as exc:
        _fail(exc)
        return
    if as_json:
        _emit_json({"golden": str(path), "samples": record["samples"]["count"], "image": record["image"],
                    "model": record["model"]})
    else:
        typer.echo(f"wrote {path} ({record['samples']['count']} samples through {record['predict']} "
                   f"in {record['image']['ref']})")


@app.command()
def signoff(
    image: str = typer.Argument(..., help="The serve image, as it will run in production."),
    model: Path = typer.Option(..., "--model", "-m", help="The artifacts folder train wrote (with its golden outputs)."),
    project: Path = ProjectOpt,
    output: Path = typer.Option(Path("signoff.json"), "--output", "-o", help="Where to write the signoff record."),
    requests: int = typer.Option(200, "--requests", min=1, help="Replay the samples until at least this many requests."),
    as_json: bool = JsonOpt,
):
    """Run the serve image on this machine: latency, outputs against the golden ones, hardware. Exit 0 passed, 1 not."""
    from .signoff import run_signoff, table, write_signoff

    try:
        spec = load_spec(project)
        result = run_signoff(Engine(), spec, image, model, requests=requests)
        write_signoff(result, output)
    except ImagesmithError as exc:
        _fail(exc)
        return
    if as_json:
        _emit_json(result.record)
    else:
        for line in table(result.record):
            typer.echo(line)
        typer.echo(f"{image}: {'signed off' if result.passed else 'NOT signed off'} ({output})")
    raise typer.Exit(0 if result.passed else 1)


@app.command()
def export(
    what: str = typer.Argument(..., help="What to export: preprocessing."),
    project: Path = ProjectOpt,
    output: Path = typer.Option(Path("."), "--output", "-o", help="Folder to write into."),
    base: Optional[str] = BaseOpt,
    as_json: bool = JsonOpt,
):
    """Write the preprocessing wheel (version = content digest, as in the lock and both images) for batch jobs."""
    from .fsutil import sha256_file
    from .lock import ensure_fresh
    from .preprocessing import distribution_name, export as export_wheel

    try:
        if what != "preprocessing":
            raise UsageError(f"cannot export {what!r}", hint="imagesmith export preprocessing [-o DIR]")
        spec = load_spec(project)
        lock = ensure_fresh(spec, base)
        path = Path(export_wheel(spec, lock, output))
    except ImagesmithError as exc:
        _fail(exc)
        return
    if as_json:
        _emit_json({"wheel": str(path), "name": distribution_name(spec.name),
                    "version": lock.preprocessing_version, "sha256": sha256_file(path)})
    else:
        typer.echo(str(path))


@app.command()
def inspect(
    image: str = typer.Argument(..., help="Image in the local engine, registry reference, or imagesmith.lock."),
    as_json: bool = JsonOpt,
):
    """Show the parity manifest of an image (read without pulling) or a lock. Exit 1 if its labels do not match."""
    from .verify import inspect_lines, inspect_source

    try:
        data = inspect_source(Engine(), image)
    except ImagesmithError as exc:
        _fail(exc)
        return
    if as_json:
        _emit_json(data)
    else:
        for line in inspect_lines(data):
            typer.echo(line)
    raise typer.Exit(0 if data["label_ok"] else 1)


@app.command()
def diff(
    a: str = typer.Argument(..., help="An image, a registry reference, or an imagesmith.lock."),
    b: str = typer.Argument(..., help="An image, a registry reference, or an imagesmith.lock."),
    labels_only: bool = typer.Option(False, "--labels-only", help="Compare labels and image config only; do not look inside images."),
    as_json: bool = JsonOpt,
):
    """List what differs between two images, registry references or locks, grouped. Exit 0 parity-equal, 1 not."""
    from .diff import diff as diff_sources

    try:
        result = diff_sources(Engine(), a, b, labels_only=labels_only)
    except ImagesmithError as exc:
        _fail(exc)
        return
    if as_json:
        _emit_json(result.as_json())
    else:
        for line in result.lines():
            typer.echo(line)
    raise typer.Exit(0 if result.equal else 1)


@app.command()
def parity_of(
    lock_file: Path = typer.Argument(Path("imagesmith.lock"), help="An imagesmith.lock."),
    as_json: bool = JsonOpt,
):
    """Print the parity digest a lock gives (what build will stamp)."""
    from .lock import read_lock

    try:
        manifest = parity.manifest_from_lock(read_lock(lock_file))
    except ImagesmithError as exc:
        _fail(exc)
        return
    if as_json:
        _emit_json({"parity": parity.digest(manifest), "manifest": manifest})
    else:
        typer.echo(parity.digest(manifest))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
