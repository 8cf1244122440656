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


@dataclass(frozen=True)
class GitFacts:
    """What a build reads from the checkout: ``epoch``, the commit time of HEAD; ``revision``,
    HEAD; ``origin``, the origin URL (not yet redacted); ``tag``, the tag on HEAD exactly (a
    release); '' or None when unknown."""

    epoch: int | None = None
    revision: str = ""
    origin: str = ""
    tag: str = ""

    @property
    def source_date_epoch(self) -> int:
        """The project's last commit time, or 0 outside git: never the build's own clock."""
        return self.epoch if self.epoch is not None else 0

    def source(self, redact) -> str:
        """The origin URL with any credentials removed by ``redact``, or ''."""
        return redact(self.origin) if self.origin else ""


_FACTS = {  # each fact's git command, here only (``git_facts``, ``git_tag``)
    "epoch": ("log", "-1", "--format=%ct"),
    "revision": ("rev-parse", "HEAD"),
    "origin": ("remote", "get-url", "origin"),
    "tag": ("describe", "--tags", "--exact-match", "HEAD"),
}


def git_tag(root: Path) -> str:
    """The tag on HEAD exactly (a release), or '': ``git_facts(root).tag`` alone."""
    return _git(root, *_FACTS["tag"]) or ""


def git_facts(root: Path) -> GitFacts:
    """The four facts of ``root``'s checkout (``_FACTS``), from git runs started at once and then
    awaited: a git run is mostly its own start-up (5-20 ms here, more on a loaded machine), and an edit's rebuild
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
