"""`imagesmith lock`: resolve a complete, hashed lock; `--check` says whether it is stale."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..engine import Engine
from ..errors import UsageError
from ..spec import Spec
from ..spec.load import load_spec
from .base import command
from .options import BaseOpt, JsonOpt, ProjectOpt, QuietOpt, VerboseOpt
from .output import emit_json, fail, progress, say


@command()
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
    from ..lock.update import lock_project

    spec = load_spec(project)
    if resolver is not None and resolver not in ("uv", "pip-tools"):
        raise UsageError(f"--resolver must be uv or pip-tools, not {resolver!r}")
    if check:
        _check(spec, base, resolver, as_json)
        return
    if pylock:
        _pylock_writable(spec)  # before locking: a refusal leaves every file as it was (write_pylock asks again)
    result = lock_project(
        spec,
        Engine(progress()),
        base=base,
        resolver=resolver,
        upgrade=upgrade,
        upgrade_packages=tuple(upgrade_package),
        upgrade_base=upgrade_base,
        replace_invalid=True,
        progress=progress(),
    )
    from ..gpu_arch import record

    record(spec, result.locks, Engine(progress()), progress=progress())
    if pylock:
        _write_pylock(spec, result.lock)
    if as_json:
        emit_json(_result_json(spec, result))
    if result.changed:
        files = ", ".join(spec.requirements_lock_for(p).name for p in spec.platforms)
        counts = "/".join(str(len(one.packages)) for one in result.locks.values())
        say(
            f"wrote {spec.lock_path.name} and {files} "
            f"({counts} distributions{' (' + ', '.join(spec.platforms) + ')' if spec.multi_platform else ''}; "
            f"{', '.join(result.changed)} changed)"
        )
    else:
        say(f"{spec.lock_path.name} is up to date")


def _check(spec: Spec, base: str | None, resolver: str | None, as_json: bool) -> None:
    """`lock --check`: the JSON document, then the library's stale-lock refusal (exit 1)."""
    from ..lock.update import stale_lock

    if resolver is not None and resolver != spec.resolver:
        from dataclasses import replace

        spec = replace(spec, resolver=resolver)
    stale = stale_lock(spec, base)
    if as_json:
        changed = stale.changed if stale is not None else []
        emit_json({"lock": str(spec.lock_path), "up_to_date": not changed, "changed": changed})
    if stale is not None:
        fail(stale)
    say(f"{spec.lock_path.name} is up to date")


def _pylock_writable(spec: Spec) -> None:
    from ..lock.existing import PYLOCK, check_replaceable_pylock

    if spec.requirements.lock == "pylock":
        raise UsageError(f"{PYLOCK} is this project's own lock: imagesmith reads it, it does not write it")
    check_replaceable_pylock(spec.root / PYLOCK)


def _write_pylock(spec: Spec, one) -> None:
    from ..lock.existing import PYLOCK, write_pylock

    write_pylock(one, spec.root / PYLOCK)
    say(f"wrote {PYLOCK} ({len(one.packages)} distributions)")


def _result_json(spec: Spec, result) -> dict:
    from ..plan import parity_of  # here: only --json prints the parity (a no-op lock loads no plan)

    return {
        "lock": str(spec.lock_path),
        "requirements_lock": str(spec.requirements_lock_path),
        "changed": result.changed,
        "written": result.written,
        "distributions": len(result.lock.packages),
        "parity": parity_of(result.lock),
        "platforms": {
            platform: {
                "requirements_lock": str(spec.requirements_lock_for(platform)),
                "distributions": len(one.packages),
                "parity": parity_of(one),
            }
            for platform, one in result.locks.items()
        },
    }
