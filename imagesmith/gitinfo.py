"""Facts about the project's git checkout (commit time, revision, origin), read with ``git``.
None of it is Docker: build.py stamps them as labels and SOURCE_DATE_EPOCH."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import Future


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


@dataclass(frozen=True)
class GitFacts:
    """What a build reads from the checkout: ``epoch`` as ``git_epoch``, ``revision``, ``origin``
    (not yet redacted) and ``tag`` as the functions above ('' or None when unknown)."""

    epoch: int | None = None
    revision: str = ""
    origin: str = ""
    tag: str = ""

    @property
    def source_date_epoch(self) -> int:
        """The project's last commit time, or 0 outside git: never the build's own clock."""
        return self.epoch if self.epoch is not None else 0

    def source(self, redact) -> str:
        """``git_source``'s answer: the origin URL with any credentials removed by ``redact``."""
        return redact(self.origin) if self.origin else ""


_FACTS = {
    "epoch": ("log", "-1", "--format=%ct"),
    "revision": ("rev-parse", "HEAD"),
    "origin": ("remote", "get-url", "origin"),
    "tag": ("describe", "--tags", "--exact-match", "HEAD"),
}


def git_facts(root: Path) -> GitFacts:
    """The four facts of ``root``'s checkout, the same answers as ``git_epoch``, ``git_revision``,
    ``git_source`` and ``git_tag``, from git runs started at once and then awaited: a git run is
    mostly its own start-up (5-20 ms here, more on a loaded machine), and an edit's rebuild
    waited for four of them one after the other."""
    procs: dict[str, subprocess.Popen | None] = {}
    for name, args in _FACTS.items():
        try:
            procs[name] = subprocess.Popen(
                ["git", "-C", str(root), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except FileNotFoundError:  # no git: no facts
            procs[name] = None
    out: dict[str, str] = {}
    for name, proc in procs.items():
        if proc is None:
            continue
        stdout, _ = proc.communicate()
        if proc.returncode == 0:
            out[name] = stdout.strip()
    epoch = out.get("epoch", "")
    return GitFacts(
        epoch=int(epoch) if epoch.isdigit() else None,
        revision=out.get("revision", ""),
        origin=out.get("origin", ""),
        tag=out.get("tag", ""),
    )


def git_facts_started(root: Path) -> Future[GitFacts]:
    """``git_facts(root)`` running in a thread of its own, so that a build reads them while it
    checks the lock; ``result()`` waits for them."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagesmith-git")
    try:
        return pool.submit(git_facts, root)
    finally:
        pool.shutdown(wait=False)  # the task runs on; the thread ends with it
