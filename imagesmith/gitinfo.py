"""Facts about the project's git checkout (commit time, revision, origin), read with ``git``.
None of it is Docker: build.py stamps them as labels and SOURCE_DATE_EPOCH."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_epoch(root: Path) -> int | None:
    """The commit time of HEAD of the git repository holding ``root``, if any."""
    out = _git(root, "log", "-1", "--format=%ct")
    return int(out) if out and out.isdigit() else None


def git_revision(root: Path) -> str:
    return _git(root, "rev-parse", "HEAD") or ""


def git_source(root: Path, redact) -> str:
    """The origin URL, with any credentials removed by ``redact``."""
    out = _git(root, "remote", "get-url", "origin")
    return redact(out) if out else ""


def git_tag(root: Path) -> str:
    """The tag on HEAD exactly (a release), or ''."""
    return _git(root, "describe", "--tags", "--exact-match", "HEAD") or ""
