"""The command line: parse arguments, call the library, print. Nothing else lives here.

Exit codes (a public contract, see README): 0 success / check holds; 1 a check does not hold
(stale lock or Dockerfile, failed verification, parity differs); 2 usage, spec, lock, engine
or build errors; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM: raised as an exception in
the main thread, so cleanups run as they do for Ctrl-C). ``imagesmith run`` exits with the container's own code, and
with 125 for its own failures (as ``docker run`` does), so a container's 2 is never mistaken
for imagesmith's.

Output: results on stdout (``--json``: one JSON document with ``"imagesmith_json": 1``, also for
errors: ``{"error", "hint", "exit"}``); progress and ``error:``/``hint:`` lines on stderr, also
for command-line mistakes (no boxes, no traceback). ``-q`` silences progress, ``-v`` adds detail;
``-p``, ``-q``, ``-v`` and ``--json`` may also come before the command (the app's callback).
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer

from . import __version__, parity
from .engine import Engine
from .errors import FileWriteError, ImagesmithError, StaleLockError, UsageError
from .fsutil import atomic_write
from .plan import parities as plan_parities
from .plan import parity_of as lock_parity
from .spec import load_spec

JSON_FORMAT = 1  # "imagesmith_json" in every JSON document
RUN_OWN_ERROR = 125  # `imagesmith run`'s own failures (docker run's convention)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="One pinned, reproducible image for training and serving, verified at deploy time.",
)

ProjectOpt = typer.Option(
    Path("."), "--project", "-p", help="Project directory (or its spec file); relative file arguments are read from it."
)
BaseOpt = typer.Option(
    None,
    "--base",
    envvar="IMAGESMITH_BASE",
    help="Use this base image instead of the spec's (for this run; recorded in the lock).",
)
JsonOpt = typer.Option(False, "--json", help="Print one machine-readable JSON document on stdout (errors too).")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress output (errors still go to stderr).")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="More detail on stderr.")


class _Output:
    """How this invocation prints, set once from the command's -q/-v/--json."""

    quiet = False
    verbose = False
    json = False


OUT = _Output()

# The options given before the command (`imagesmith -v build`, as in git and docker): set by the
# app's callback on every invocation, merged into the command's own by ``_command``
_GLOBAL: dict = {}
_GLOBAL_OPTIONS = {"as_json": "--json", "quiet": "--quiet", "verbose": "--verbose", "project": "--project"}


def _say(message: str) -> None:
    """Progress and outcomes for people, on stderr; silenced by -q."""
    if not OUT.quiet:
        typer.echo(message, err=True)


def _detail(message: str) -> None:
    """Shown with -v only."""
    if OUT.verbose and not OUT.quiet:
        typer.echo(message, err=True)


def _emit_json(data: dict) -> None:
    typer.echo(json.dumps({"imagesmith_json": JSON_FORMAT, **data}, indent=2, sort_keys=True))


def _report(exc: ImagesmithError, exit_code: int) -> None:
    """One error: `error:` and `hint:` lines on stderr, and under --json the same on stdout."""
    typer.echo(f"error: {exc}", err=True)
    if exc.hint:
        typer.echo(f"hint: {exc.hint}", err=True)
    if OUT.json:
        _emit_json({"error": str(exc), "hint": exc.hint, "exit": exit_code})


def _progress():
    return lambda msg: _say(f"imagesmith: {msg}")


def _project_dir(project: Path) -> Path:
    return project if project.is_dir() or not project.exists() else project.parent


def _in_project(project: Path, value: str) -> str:
    """A relative file argument as read from the project (`-p`), when that file exists there;
    anything else (an image reference) as given."""
    path = Path(value)
    if path.is_absolute() or path.exists():
        return value
    candidate = _project_dir(project) / path
    return str(candidate) if candidate.exists() else value


def _command(name: str | None = None, *, own_error_exit: int | None = None) -> Callable:
    """Register a command whose ImagesmithErrors become one `error:` report and an exit code."""

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(**kwargs):
            for key in ("as_json", "quiet", "verbose"):
                if _GLOBAL.get(key) and key in kwargs:
                    kwargs[key] = True
            if _GLOBAL.get("project") is not None and kwargs.get("project") == Path("."):
                kwargs["project"] = _GLOBAL["project"]
            OUT.quiet = bool(kwargs.get("quiet"))
            OUT.verbose = bool(kwargs.get("verbose"))
            OUT.json = bool(kwargs.get("as_json"))
            try:
                return fn(**kwargs)
            except ImagesmithError as exc:
                if isinstance(exc, UsageError) and not exc.hint:
                    exc.hint = f"`imagesmith {command_name} --help` lists the arguments and options"
                code = own_error_exit or exc.exit_code
                _report(exc, code)
                raise typer.Exit(code) from None

        command_name = name or fn.__name__
        app.command(name=name)(wrapper)
        return wrapper

    return register


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"imagesmith {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_show_version, help="Print imagesmith's version and exit."
    ),
    project: Optional[Path] = typer.Option(
        None, "--project", "-p", help="Project directory for the command (as the command's own -p)."
    ),
    as_json: bool = typer.Option(False, "--json", help="The command's --json, given before it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="The command's -q, given before it."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="The command's -v, given before it."),
) -> None:
    """One pinned, reproducible image for training and serving, verified at deploy time.

    -p, -q, -v and --json may come before the command, as in git and docker (`imagesmith -v
    build`), or after it; a command that has no such option refuses it."""
    given = {"project": project, "as_json": as_json, "quiet": quiet, "verbose": verbose}
    _GLOBAL.clear()
    _GLOBAL.update(given)
    group = ctx.command
    command = group.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None  # type: ignore[attr-defined]
    if command is not None:
        names = {param.name for param in command.params}
        for key, value in given.items():
            if value not in (None, False) and key not in names:
                raise typer.BadParameter(
                    f"`imagesmith {ctx.invoked_subcommand}` has no such option",
                    ctx=ctx,
                    param_hint=f"'{_GLOBAL_OPTIONS[key]}'",
                )


# ---- init, lock, render, build ----------------------------------------------------------------


@_command()
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
    from .init import write_spec

    path, text, proposal = write_spec(
        _project_dir(project), pyproject=pyproject, dry_run=print_only, python=python, base=base
    )
    if as_json:
        _emit_json(
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
    for note in proposal.notes:
        _say(f"check: {note}")
    if not print_only:
        _say(f"wrote {path}; next: `imagesmith build`")


@_command()
def lock(
    project: Path = ProjectOpt,
    base: Optional[str] = BaseOpt,
    resolver: Optional[str] = typer.Option(None, "--resolver", help="uv (default) or pip-tools; overrides the spec."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the lock is stale; write nothing."),
    upgrade: bool = typer.Option(False, "--upgrade", help="Resolve the newest allowed versions of everything."),
    upgrade_package: List[str] = typer.Option(
        [], "--upgrade-package", "-P", help="Upgrade only this package (repeatable)."
    ),
    upgrade_base: bool = typer.Option(
        False, "--upgrade-base", help="Pin the base image again (what its tag names now)."
    ),
    pylock: bool = typer.Option(
        False, "--pylock", help="Also write pylock.toml (PEP 751) with exactly these pins, for tools that read it."
    ),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Resolve a complete, hashed lock for the image's Python and platform."""
    from .lock import check_lock, lock_project

    spec = load_spec(project)
    if resolver is not None and resolver not in ("uv", "pip-tools"):
        raise UsageError(f"--resolver must be uv or pip-tools, not {resolver!r}")
    if check:
        if resolver is not None and resolver != spec.resolver:
            from dataclasses import replace

            spec = replace(spec, resolver=resolver)
        changed = check_lock(spec, base)
        if as_json:
            _emit_json({"lock": str(spec.lock_path), "up_to_date": not changed, "changed": changed})
        if changed:
            stale = StaleLockError(spec.lock_path.name, changed)
            typer.echo(f"error: {stale}", err=True)
            if stale.hint:
                typer.echo(f"hint: {stale.hint}", err=True)
            raise typer.Exit(stale.exit_code)
        _say(f"{spec.lock_path.name} is up to date")
        return
    result = lock_project(
        spec,
        Engine(_progress()),
        base=base,
        resolver=resolver,
        upgrade=upgrade,
        upgrade_packages=tuple(upgrade_package),
        upgrade_base=upgrade_base,
        replace_invalid=True,
        progress=_progress(),
    )
    if pylock:
        from .lock.existing import PYLOCK, write_pylock

        if spec.requirements.lock == "pylock":
            raise UsageError(f"{PYLOCK} is this project's own lock: imagesmith reads it, it does not write it")
        write_pylock(result.lock, spec.root / PYLOCK)
        _say(f"wrote {PYLOCK} ({len(result.lock.packages)} distributions)")
    if as_json:
        _emit_json(
            {
                "lock": str(spec.lock_path),
                "requirements_lock": str(spec.requirements_lock_path),
                "changed": result.changed,
                "written": result.written,
                "distributions": len(result.lock.packages),
                "parity": lock_parity(result.lock),
                "platforms": {
                    platform: {
                        "requirements_lock": str(spec.requirements_lock_for(platform)),
                        "distributions": len(one.packages),
                        "parity": lock_parity(one),
                    }
                    for platform, one in result.locks.items()
                },
            }
        )
    if result.changed:
        files = ", ".join(spec.requirements_lock_for(p).name for p in spec.platforms)
        counts = "/".join(str(len(one.packages)) for one in result.locks.values())
        _say(
            f"wrote {spec.lock_path.name} and {files} "
            f"({counts} distributions{' (' + ', '.join(spec.platforms) + ')' if spec.multi_platform else ''}; "
            f"{', '.join(result.changed)} changed)"
        )
    else:
        _say(f"{spec.lock_path.name} is up to date")


@_command()
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
    and write the runtime wheel it builds from into .imagesmith/ in the project."""
    from .lock import ensure_fresh_all
    from .render import check_replaceable, dockerignore, dockerignore_path, stale_context, write_context
    from .render import render as render_text

    spec = load_spec(project)
    locks = ensure_fresh_all(spec, base)
    text = render_text(spec, locks)
    to_stdout = output is not None and str(output) == "-"
    if to_stdout and as_json:
        raise UsageError("--json and -o - both write to stdout", hint="use -o FILE with --json")
    # --check compares a file on disk: -o - (stdout) has none, so the project's Dockerfile is checked
    target = spec.dockerfile_path if (output is None or to_stdout) else output
    if check:
        # Everything render writes: the Dockerfile, its ignore file, .imagesmith/ (wheel, facts).
        problems = []
        current = target.read_bytes() if target.is_file() else None
        if current != text.encode("utf-8"):
            problems.append(
                f"{target} is {'stale' if current is not None else 'missing'}: it differs from a fresh render"
            )
        ignore = dockerignore_path(target)
        if not (ignore.is_file() and ignore.read_bytes() == dockerignore(spec).encode("utf-8")):
            problems.append(f"{ignore} is stale or missing")
        problems += stale_context(spec, locks)
        if as_json:
            _emit_json({"dockerfile": str(target), "up_to_date": not problems, "problems": problems})
        if problems:
            for problem in problems:
                typer.echo(f"error: {problem}", err=True)
            typer.echo("hint: run `imagesmith render` and commit the result", err=True)
            raise typer.Exit(1)
        _say(f"{target} is up to date")
        return
    if to_stdout:
        wheel_path = write_context(spec, locks)
        sys.stdout.write(text)
        return
    # The Dockerfile first: where the user points -o is what fails (no folder, a folder in the
    # way, read-only); then nothing else has been written.
    if target.is_dir():
        raise FileWriteError(f"cannot write {target}: it is a folder", hint="give the path of a file to write")
    check_replaceable(target, origin=spec.origin, output_option=True)
    atomic_write(target, text)
    atomic_write(dockerignore_path(target), dockerignore(spec))
    wheel_path = write_context(spec, locks)
    if as_json:
        _emit_json({"dockerfile": str(target), "written": True, "runtime_wheel": str(wheel_path)})
    _say(f"wrote {target} (and {dockerignore_path(target).name}, {wheel_path.relative_to(spec.root)})")


@_command()
def build(
    project: Path = ProjectOpt,
    base: Optional[str] = BaseOpt,
    locked: bool = typer.Option(False, "--locked", help="Refuse to build from a stale lock instead of re-locking."),
    tag: List[str] = typer.Option(
        [],
        "--tag",
        "-t",
        help="REPO (tags REPO:train, REPO:serve) or REPO:TAG (tags REPO:TAG-train, REPO:TAG-serve); repeatable. Default: the spec's name.",
    ),
    label: List[str] = typer.Option([], "--label", help="KEY=VALUE label on both images (repeatable)."),
    target: List[str] = typer.Option([], "--target", help="Build only this target (train or serve; repeatable)."),
    push: Optional[str] = typer.Option(
        None,
        "--push",
        help="Push both images to REGISTRY/REPO (tags train and serve, and the parity tags) from the build, and print their digests.",
    ),
    load: bool = typer.Option(
        False, "--load", help="Put the images into the engine also when the builder is not the engine's own."
    ),
    cache_from: List[str] = typer.Option(
        [],
        "--cache-from",
        help="Build cache to read (buildx syntax, e.g. type=registry,ref=REG/APP:cache); each target reads its own and the other's.",
    ),
    cache_to: List[str] = typer.Option(
        [],
        "--cache-to",
        help="Build cache to write (buildx syntax); one cache per target: ref REG/APP:cache becomes REG/APP:cache-train and ...-serve.",
    ),
    builder: Optional[str] = typer.Option(
        None, "--builder", help="The buildx builder to use (any driver; see README)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Build every step again."),
    install: Optional[str] = typer.Option(
        None,
        "--install",
        help="hermetic (wheels fetched on the host, no network in the build) or online (pip downloads inside the build); default: the spec's.",
    ),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", envvar="IMAGESMITH_CACHE_DIR", help="Wheel cache (default ~/.cache/imagesmith)."
    ),
    progress: str = typer.Option(
        "auto",
        "--progress",
        help="BuildKit's log: auto (tty on a terminal, else plain), plain (grouped per step, with timings), tty (BuildKit's own display), quiet.",
    ),
    print_bake: bool = typer.Option(
        False,
        "--print",
        help="Print the bake definition (with its named contexts) instead of building; `docker buildx bake -f FILE` builds it.",
    ),
    metadata_file: Optional[Path] = typer.Option(
        None, "--metadata-file", help="Also write the result (the --json document: digests, refs, parity) to this file."
    ),
    sign: Optional[Path] = typer.Option(
        None,
        "--sign",
        help="Sign each image's digest in its registry with this cosign private key and attest its build record (with --push, or registry tags, pushed first; password in COSIGN_PASSWORD).",
    ),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Lock if needed, render, and build the train and serve images reproducibly."""
    if sign is not None:
        from .engine import registry_host
        from .signing import key_file

        if not push and not any(registry_host(t) for t in tag):
            raise UsageError(
                "--sign needs --push or a registry tag: signatures are attached to the image's digest in its registry",
                hint="imagesmith build --push REGISTRY/REPO --sign cosign.key",
            )
        sign = key_file(_in_project(project, str(sign)), "private")
    if install is not None and install not in ("hermetic", "online"):
        raise UsageError(f"--install must be hermetic or online, not {install!r}")
    if progress not in ("auto", "plain", "tty", "quiet"):
        raise UsageError(f"--progress must be auto, plain, tty or quiet, not {progress!r}")
    spec = load_spec(project)
    engine = Engine(_progress())
    engine.buildx_prefetch(builder)  # buildx's start-up runs beside the imports and the lock check
    from .build import ROLES, BuildOptions, build_project, parse_labels
    from .progress import build_log

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
        targets=tuple(target) or ROLES,
        install=install,
        cache_dir=cache_dir,
        print_only=print_bake,
    )
    mode = "quiet" if quiet else progress
    if mode == "auto":
        mode = "tty" if sys.stderr.isatty() else "plain"
    log = build_log(mode, lambda line: typer.echo(line, err=True))
    try:
        result = build_project(spec, engine, options, progress=_progress(), echo=log.echo, passthrough=mode == "tty")
    finally:
        log.close()
    if print_bake:
        typer.echo(json.dumps(result.bake, indent=2, sort_keys=True))
        return
    document = result.as_json()
    if sign is not None:
        from .gate import sign_built
        from .signing import Cosign

        for role, signed in sign_built(Engine(_progress()), Cosign(), result, sign, lock=spec.lock_path).items():
            document["images"][role]["signed"] = {"ref": signed.ref, "key": str(sign)}
            _say(f"imagesmith: signed {signed.ref} and attested its build record")
    if metadata_file is not None:
        atomic_write(
            metadata_file, json.dumps({"imagesmith_json": JSON_FORMAT, **document}, indent=2, sort_keys=True) + "\n"
        )
    if as_json:
        _emit_json(document)
    else:
        typer.echo(f"parity {result.parity}")
        for role, img in result.images.items():
            typer.echo(
                f"{role}: {img.ref or '(not in the engine)'} {img.id}" + (f" pushed {img.pushed}" if img.pushed else "")
            )
            for extra in img.tags[1:]:
                _detail(f"  also tagged {extra}")


# ---- verify, inspect, diff, parity-of ---------------------------------------------------------


PlatformOpt = typer.Option(
    None,
    "--platform",
    help="Which image of a multi-platform index (and section of a multi-platform lock): linux/amd64 or linux/arm64 (default: this machine's).",
)


@_command()
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
    key: Optional[Path] = typer.Option(
        None,
        "--key",
        help="A cosign public key: require its signature on the image's digest, the parity attestation matching the image, and signed --model/--signoff files.",
    ),
    role: Optional[str] = typer.Option(
        None,
        "--role",
        help="What this deploy runs: train or serve. The image (and with --key its signed record) must be of that role.",
    ),
    host: bool = typer.Option(
        False,
        "--host",
        help="Check THIS machine against the image's GPU contract instead: NVIDIA driver and GPUs (nvidia-smi). Exit 1: the driver is too old; 2: no NVIDIA GPU.",
    ),
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
    from .deploy import check

    if host:
        from . import gpu_host

        host_report = gpu_host.host_report(Engine(_progress()), image, _platform_option(platform) if platform else None)
        if as_json:
            _emit_json({"host": host_report.as_json()})
        else:
            for line in gpu_host.lines(host_report):
                typer.echo(line)
            typer.echo(f"{image}: {'this machine can run it' if host_report.ok else 'this machine can NOT run it'}")
        raise typer.Exit(0 if host_report.ok else 1)
    if expect is not None and not (expect.startswith("sha256:") and len(expect) == 71):
        raise UsageError(f"--expect must be sha256:<64 hex digits>, not {expect!r}")
    verdict = check(
        Engine(_progress()),
        image,
        platform=_platform_option(platform) if platform else None,
        role=role,
        lock=Path(_in_project(project, str(lock_file))) if lock_file is not None else None,
        expect=expect,
        pair=pair,
        model=Path(_in_project(project, str(model))) if model is not None else None,
        signoff=Path(_in_project(project, str(signoff_file))) if signoff_file is not None else None,
        key=Path(_in_project(project, str(key))) if key is not None else None,
        labels_only=labels_only,
        allow_extra_files=allow_extra_files,
    )
    report = verdict.report
    if as_json:
        _emit_json(verdict.as_json())
    else:
        if not quiet:
            for line in report.checks:
                typer.echo(f"ok: {line}")
        for line in report.problems:
            typer.echo(f"FAIL: {line}")
        if not quiet:
            for line in report.notes:
                typer.echo(f"note: {line}")
        typer.echo(
            f"{image}: {'verified' if verdict.ok else 'NOT verified'} (parity {report.parity}) as {verdict.target.pinned}"
        )
    raise typer.Exit(0 if verdict.ok else 1)


@_command()
def inspect(
    image: str = typer.Argument(..., help="Image in the local engine, registry reference, or imagesmith.lock."),
    platform: Optional[str] = PlatformOpt,
    project: Path = ProjectOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Show the parity manifest of an image (read without pulling) or a lock. Exit 1 if its labels do not match."""
    from .verify import inspect_lines, inspect_source

    data = inspect_source(
        Engine(_progress()), _in_project(project, image), _platform_option(platform) if platform else None
    )
    if as_json:
        _emit_json({**data, "digest": data.get("id")})
    else:
        for line in inspect_lines(data):
            typer.echo(line)
    raise typer.Exit(0 if data["label_ok"] else 1)


@_command()
def diff(
    a: str = typer.Argument(..., help="An image, a registry reference, or an imagesmith.lock."),
    b: str = typer.Argument(..., help="An image, a registry reference, or an imagesmith.lock."),
    labels_only: bool = typer.Option(
        False, "--labels-only", help="Compare labels and image config only; do not look inside images."
    ),
    platform: Optional[str] = PlatformOpt,
    platform_b: Optional[str] = typer.Option(
        None, "--platform-b", help="Another platform for B (e.g. a lock's linux/amd64 against its linux/arm64)."
    ),
    project: Path = ProjectOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """List what differs between two images, registry references or locks, grouped. Exit 0 parity-equal, 1 not."""
    from .diff import diff as diff_sources

    result = diff_sources(
        Engine(_progress()),
        _in_project(project, a),
        _in_project(project, b),
        labels_only=labels_only,
        platform=_platform_option(platform) if platform else None,
        platform_b=_platform_option(platform_b) if platform_b else None,
    )
    if as_json:
        data = result.as_json()
        for side in ("a", "b"):
            if isinstance(data.get(side), dict):
                data[side] = {**data[side], "digest": data[side].get("id")}
        _emit_json(data)
    else:
        for line in result.lines():
            typer.echo(line)
    raise typer.Exit(0 if result.equal else 1)


@_command("parity-of")
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
    from .lock import read_lock, read_locks

    path = Path(_in_project(project, str(lock_file)))
    locks = read_locks(path)
    if platform is not None or len(locks) == 1:
        manifest = parity.manifest_from_lock(
            read_lock(path, _platform_option(platform)) if platform else next(iter(locks.values()))
        )
        if as_json:
            _emit_json({"parity": parity.digest(manifest), "manifest": manifest})
        else:
            typer.echo(parity.digest(manifest))
        return
    parities = plan_parities(locks)
    if as_json:
        _emit_json({"parity": parity.index_digest(parities), "platforms": parities})
    else:
        typer.echo(parity.index_digest(parities))


def _platform_image(engine: Engine, image: str, platform: str) -> str:
    """``image`` narrowed to ``platform``: a registry reference becomes the digest reference of
    that platform's image in its index (read without pulling); a local image must be of it."""
    from .engine import registry_host, repository
    from .platforms import emulation_problem

    problem = emulation_problem(platform)
    if problem:
        raise UsageError(problem)
    if registry_host(image):
        digest, _ = engine.registry_platform_digest(image, platform)
        return f"{repository(image)}@{digest}"
    found = engine.image(image).platform
    if found and found != platform:
        raise UsageError(
            f"the engine's image {image} is its {found} image, not {platform}",
            hint=f"give the image's registry reference to take its {platform} image",
        )
    return image


def _platform_option(value: str | None) -> str:
    """``--platform``: one of the platforms imagesmith builds for (default: this machine's)."""
    from .spec import PLATFORMS, machine_platform

    if value is None:
        return machine_platform()
    if value not in PLATFORMS:
        raise UsageError(f"--platform must be one of {', '.join(PLATFORMS)}, not {value!r}")
    return value


# ---- run, golden, signoff, export -------------------------------------------------------------


@_command(own_error_exit=RUN_OWN_ERROR)
def run(
    role: str = typer.Argument(..., help="train or serve."),
    command: Optional[List[str]] = typer.Argument(
        None, help="A command instead of the image's (put -- before it when it has options)."
    ),
    project: Path = ProjectOpt,
    tag: Optional[str] = typer.Option(
        None, "--tag", "-t", help="Repository of the images REPO:train / REPO:serve (default: the spec's name)."
    ),
    artifacts: Optional[Path] = typer.Option(
        None, "--artifacts", "-a", help="Host folder mounted at the spec's artifacts path (default: PROJECT/artifacts)."
    ),
    port: Optional[int] = typer.Option(
        None, "--port", help="Host port for the serve port, on 127.0.0.1 (default: the same number)."
    ),
    env: List[str] = typer.Option([], "--env", "-e", help="KEY=VALUE for the container (repeatable)."),
    allow_mismatch: bool = typer.Option(
        False, "--allow-mismatch", help="Serve a model whose stamp does not match the image (logged loudly)."
    ),
    name: Optional[str] = typer.Option(None, "--name", help="Name for the container."),
    user: Optional[str] = typer.Option(
        None,
        "--user",
        "-u",
        help="Run the container as USER[:GROUP] (default: you, UID:GID, so what train writes is yours; "
        "10001:10001 is the images' own user).",
    ),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Run the train or serve image like `docker run`, with the artifacts folder mounted. Exits with the container's code (125: imagesmith's own failure)."""
    from .run import parse_env, run_role

    spec = load_spec(project)
    code = run_role(
        spec,
        Engine(_progress()),
        role,
        command or (),
        tag=tag,
        artifacts=artifacts,
        host_port=port,
        env=parse_env(env),
        allow_mismatch=allow_mismatch,
        name=name,
        user=user,
    )
    raise typer.Exit(code)


@_command()
def golden(
    project: Path = ProjectOpt,
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="The artifacts folder train wrote (default: PROJECT/artifacts)."
    ),
    image: Optional[str] = typer.Option(
        None, "--image", help="The train image (default: REPO:train, REPO from --tag or the spec's name)."
    ),
    tag: Optional[str] = typer.Option(
        None, "--tag", "-t", help="Repository of the train image (default: the spec's name)."
    ),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Run the signoff samples through the batch function in the train image; store the outputs with the model."""
    from .run import default_artifacts
    from .signoff import make_golden

    spec = load_spec(project)
    folder = model if model is not None else default_artifacts(spec)
    path, record = make_golden(Engine(_progress()), spec, image or f"{tag or spec.name}:train", Path(folder))
    if as_json:
        _emit_json(
            {
                "golden": str(path),
                "samples": record["samples"]["count"],
                "image": record["image"],
                "model": record["model"],
            }
        )
    else:
        typer.echo(
            f"wrote {path} ({record['samples']['count']} samples through {record['predict']} "
            f"in {record['image']['ref']})"
        )


@_command()
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
    sign: Optional[Path] = typer.Option(
        None,
        "--sign",
        help="When it passes: attest the record on the (pushed) serve image's digest and sign the file, with this cosign private key.",
    ),
    platform: Optional[str] = typer.Option(
        None,
        "--platform",
        help="Which image of a multi-platform index to sign off on (run under emulation when it is not this machine's).",
    ),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Run the serve image on this machine: latency, outputs against the golden ones, hardware. Exit 0 passed, 1 not."""
    from .signoff import run_signoff, table, write_signoff

    spec = load_spec(project)
    engine = Engine(_progress())
    if platform is not None:
        image = _platform_image(engine, image, _platform_option(platform))
    if sign is not None:
        from .engine import registry_host
        from .gate import not_in_registry
        from .signing import key_file

        sign = key_file(_in_project(project, str(sign)), "private")
        if not registry_host(image):
            raise UsageError(not_in_registry(image), hint="sign off on the pushed serve image's reference")
    result = run_signoff(engine, spec, image, model, requests=requests)
    write_signoff(result, output)
    if sign is not None and result.passed:
        from .gate import sign_signoff
        from .signing import Cosign

        signed = sign_signoff(engine, Cosign(), result.record, output, sign)
        _say(f"imagesmith: attested the signoff on {signed.ref} and signed {output}")
    elif sign is not None:
        _say("imagesmith: the signoff did not pass: nothing signed")
    if as_json:
        _emit_json(result.record)
    else:
        for line in table(result.record):
            typer.echo(line)
        typer.echo(f"{image}: {'signed off' if result.passed else 'NOT signed off'} ({output})")
    raise typer.Exit(0 if result.passed else 1)


@_command()
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
    from .gate import sign_image, sign_model
    from .signing import Cosign, key_file

    if image is None and model is None:
        raise UsageError("nothing to sign: give an IMAGE, --model DIR, or both")
    private = key_file(_in_project(project, str(key)), "private")
    if lock_file is not None:
        lock_file = Path(_in_project(project, str(lock_file)))
        if not lock_file.is_file():
            raise UsageError(f"{lock_file} does not exist", hint="give the imagesmith.lock the image was built from")
    cosign = Cosign()
    document: dict = {"key": str(key)}
    if image is not None:
        signed = sign_image(Engine(_progress()), cosign, image, private, lock=lock_file)
        document["image"] = {"ref": signed.ref, "record": signed.record}
        _say(f"imagesmith: signed {signed.ref} and attested its build record")
    if model is not None:
        folder = Path(_in_project(project, str(model)))
        files = sign_model(cosign, folder, private).files
        document["signatures"] = [str(path) for path in files]
        _say(f"imagesmith: signed {', '.join(path.name.removesuffix('.sig') for path in files)} in {folder}")
    if as_json:
        _emit_json(document)
    elif image is not None:
        typer.echo(document["image"]["ref"])


@_command()
def prune(
    project: Path = ProjectOpt,
    tag: Optional[str] = typer.Option(
        None, "--tag", "-t", help="Repository whose parity tags are pruned (default: the spec's name)."
    ),
    model: List[Path] = typer.Option(
        [],
        "--model",
        "-m",
        help="An artifacts folder whose stamp's image and parity are kept (repeatable; PROJECT/artifacts is read too).",
    ),
    signoff_file: List[Path] = typer.Option(
        [],
        "--signoff",
        help="A signoff record whose image and parity are kept (repeatable; default: PROJECT/signoff.json when there).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove them; without it, only list what would go."),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
):
    """Remove old parity-tagged images (REPO:train-<parity12>, REPO:serve-<parity12>), keeping what the current lock, a model stamp or a signoff names, the latest build and any image a container uses. A dry run unless --yes."""
    from .errors import EngineError
    from .prune import apply_prune, kept_by_records, plan_lines, plan_prune, repository_of
    from .run import default_artifacts

    spec = load_spec(project)
    engine = Engine(_progress())
    kept = kept_by_records(
        spec,
        models=[Path(_in_project(project, str(m))) for m in model],
        signoffs=[Path(_in_project(project, str(f))) for f in signoff_file],
        default_artifacts=default_artifacts(spec),
    )
    plan = plan_prune(engine, repository_of(spec, tag), kept)
    removed, failed = apply_prune(engine, plan) if yes else ([], [])
    if as_json:
        _emit_json(
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
        for line in plan_lines(plan, dry_run=not yes):
            typer.echo(line)
    for note in plan.notes:
        _say(f"note: {note}")
    if failed:
        raise EngineError(
            f"{len(failed)} tag(s) not removed:\n" + "\n".join(f"  {line}" for line in failed),
            hint="stop or remove the containers that use them (`docker ps -a`), then prune again",
        )
    if not yes:
        _say(
            f"dry run: {len(plan.remove)} tag(s) of {plan.repository} would be removed, {len(plan.keep)} kept"
            + ("; `imagesmith prune --yes` removes them" if plan.remove else "")
        )
    else:
        _say(f"removed {len(removed)} tag(s) of {plan.repository}, kept {len(plan.keep)}")


@_command()
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
    from .fsutil import sha256_file
    from .lock import ensure_fresh
    from .preprocessing import distribution_name
    from .preprocessing import export as export_wheel

    if what != "preprocessing":
        raise UsageError(f"cannot export {what!r}", hint="imagesmith export preprocessing [-o DIR]")
    spec = load_spec(project)
    lock = ensure_fresh(spec, base)
    path = Path(export_wheel(spec, lock, output))
    if as_json:
        _emit_json(
            {
                "wheel": str(path),
                "name": distribution_name(spec.name),
                "version": lock.preprocessing_version,
                "sha256": sha256_file(path),
            }
        )
    else:
        typer.echo(str(path))


# ---- the entry point --------------------------------------------------------------------------


def _click_exceptions() -> tuple[tuple, tuple, tuple]:
    """(usage errors, "no arguments: show help", aborts) as click classes. Recent typer vendors its
    own click (``typer._click``, not a public module), older typer uses click itself: the first
    that exists (importing click too when typer does not use it costs start-up time for nothing)."""
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(__import__(name, fromlist=["UsageError"]))
            break
        except ImportError:
            pass
    usage = tuple(m.UsageError for m in modules)
    no_args = tuple(m.NoArgsIsHelpError for m in modules if hasattr(m, "NoArgsIsHelpError"))
    aborts = tuple({typer.Abort, *(m.Abort for m in modules if hasattr(m, "Abort"))})
    return usage, no_args, aborts


class _Terminated(BaseException):
    """SIGTERM, as an exception (like KeyboardInterrupt for SIGINT): ``finally`` blocks run, so
    signoff removes its containers, instead of the process ending on the spot."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    """The console script and ``python -m imagesmith``: runs the command and returns its exit
    code, turning typer's command-line errors into plain `error:`/`hint:` lines (exit 2)."""
    usage, no_args, aborts = _click_exceptions()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (an embedding program): leave SIGTERM alone
        previous = None
    try:
        return _main(args, usage, no_args, aborts)
    except _Terminated:
        typer.echo("error: terminated", err=True)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(args: list[str], usage: tuple, no_args: tuple, aborts: tuple) -> int:
    try:
        code = app(args=args, prog_name="imagesmith", standalone_mode=False)
    except no_args as exc:  # `imagesmith` or `imagesmith CMD` alone: the help, on stderr
        typer.echo(exc.ctx.get_help() if getattr(exc, "ctx", None) else str(exc), err=True)
        return 2
    except usage as exc:
        OUT.json = "--json" in args
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx else "imagesmith"
        _report(UsageError(exc.format_message(), hint=f"`{where} --help` lists the arguments and options"), 2)
        return 2
    except (*aborts, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
