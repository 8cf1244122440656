"""The checkout's git facts read at once (gitinfo.git_facts) give git's own answers, each asked
alone, in a real git repository: a commit, a release tag, an origin with credentials; and
none outside git."""

from __future__ import annotations

import subprocess

from imagesmith.build import oci_labels
from imagesmith.credentials import strip_userinfo
from imagesmith.gitinfo import GitFacts, git_facts, git_facts_started, git_tag


def _git(root, *args: str) -> None:
    env = {
        "GIT_COMMITTER_DATE": "2023-11-14T22:13:20Z",
        "GIT_AUTHOR_DATE": "2023-11-14T22:13:20Z",
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", *args], cwd=root, env=env, check=True)


def _asked(root, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _one_at_a_time(root) -> GitFacts:
    epoch = _asked(root, "log", "-1", "--format=%ct")
    return GitFacts(
        int(epoch) if epoch else None,
        _asked(root, "rev-parse", "HEAD"),
        _asked(root, "remote", "get-url", "origin"),
        git_tag(root),
    )


def test_the_facts_read_at_once_are_those_read_one_at_a_time(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "x")
    _git(tmp_path, "remote", "add", "origin", "https://oauth2:t0ken@git.example/team/model.git")
    _git(tmp_path, "tag", "v1.2.0")
    facts = git_facts(tmp_path)
    assert facts == _one_at_a_time(tmp_path)
    assert facts.epoch == facts.source_date_epoch == 1700000000
    assert facts.origin == "https://oauth2:t0ken@git.example/team/model.git"
    assert len(facts.revision) == 40 and facts.tag == "v1.2.0"
    assert facts.source(strip_userinfo) == "https://git.example/team/model.git"
    assert git_facts_started(tmp_path).result() == facts
    assert (
        oci_labels(tmp_path, facts)
        == oci_labels(tmp_path)
        == {
            "org.opencontainers.image.revision": facts.revision,
            "org.opencontainers.image.source": "https://git.example/team/model.git",
            "org.opencontainers.image.version": "v1.2.0",
        }
    )


def test_outside_git_there_are_no_facts(tmp_path):
    facts = git_facts(tmp_path)
    assert facts == _one_at_a_time(tmp_path) == GitFacts()
    assert facts.source_date_epoch == 0  # never the build's own clock
    assert facts.source(strip_userinfo) == ""
    assert oci_labels(tmp_path, facts) == {}
