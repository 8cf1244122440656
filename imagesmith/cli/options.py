"""Options several commands share, and how their values are read: a relative file argument from
the project (``-p``), ``--platform`` as one of the platforms imagesmith builds for."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UsageError

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
PlatformOpt = typer.Option(
    None,
    "--platform",
    help="Which image of a multi-platform index (and section of a multi-platform lock): linux/amd64 or linux/arm64 (default: this machine's).",
)


def project_dir(project: Path) -> Path:
    return project if project.is_dir() or not project.exists() else project.parent


def in_project(project: Path, value: str) -> str:
    """A relative file argument as read from the project (`-p`), when that file exists there;
    anything else (an image reference) as given."""
    path = Path(value)
    if path.is_absolute() or path.exists():
        return value
    candidate = project_dir(project) / path
    return str(candidate) if candidate.exists() else value


def project_path(project: Path, value: Path | None) -> Path | None:
    """``in_project`` for an optional path option."""
    return Path(in_project(project, str(value))) if value is not None else None


def platform_option(value: str | None) -> str:
    """``--platform``: one of the platforms imagesmith builds for (default: this machine's)."""
    from ..platforms import PLATFORMS, machine_platform

    if value is None:
        return machine_platform()
    if value not in PLATFORMS:
        raise UsageError(f"--platform must be one of {', '.join(PLATFORMS)}, not {value!r}")
    return value


def given_platform(value: str | None) -> str | None:
    """``--platform`` when given (checked), else None: the command's own default applies."""
    return platform_option(value) if value else None
