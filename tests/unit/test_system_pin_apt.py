"""System packages are pinned to apt's candidates: apt's own simulation of installing jq in the
test base (imagesmith-base:bookworm-py311, amd64), as the lock runs it, read as the lock reads it
(lock/system.py), against what ``apt-cache policy`` said of the same package lists. Both outputs
were captured from one container of that base on 2026-12-07 (``apt-get update``, then
``apt-get install -s -qq --no-install-recommends jq`` and ``apt-cache policy jq libjq1
libonig5``). The lock's run of apt in the base itself is tests/engine/test_lock_engine.py's."""

from __future__ import annotations

import re

from imagesmith.lock.system import pin_system_packages

APT_SIMULATION = """\
Inst libonig5 (6.9.8-1 Debian:12.15/oldstable [amd64])
Inst libjq1 (1.6-2.1+deb12u2 Debian:12.15/oldstable [amd64])
Inst jq (1.6-2.1+deb12u2 Debian:12.15/oldstable [amd64])
Conf libonig5 (6.9.8-1 Debian:12.15/oldstable [amd64])
Conf libjq1 (1.6-2.1+deb12u2 Debian:12.15/oldstable [amd64])
Conf jq (1.6-2.1+deb12u2 Debian:12.15/oldstable [amd64])
"""

APT_CACHE_POLICY = """\
jq:
  Installed: (none)
  Candidate: 1.6-2.1+deb12u2
  Version table:
     1.6-2.1+deb12u2 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
libjq1:
  Installed: (none)
  Candidate: 1.6-2.1+deb12u2
  Version table:
     1.6-2.1+deb12u2 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
libonig5:
  Installed: (none)
  Candidate: 6.9.8-1
  Version table:
     6.9.8-1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
"""


class _Base:
    """An engine whose base answers apt's simulation with the captured output (no image of
    another platform: apt runs in the base itself, as for this machine's platform)."""

    def __init__(self) -> None:
        self.scripts: list[str] = []

    def run(self, image, command, **options):
        self.scripts.append(command[1])
        return APT_SIMULATION


def test_the_pins_are_apts_candidates_for_the_package_and_what_it_pulls_in():
    candidates = dict(re.findall(r"^(\S+):\n  Installed: .*\n  Candidate: (\S+)$", APT_CACHE_POLICY, re.M))
    assert set(candidates) == {"jq", "libjq1", "libonig5"}
    base = _Base()
    assert pin_system_packages(base, "imagesmith-base@sha256:" + "a" * 64, ["jq"]) == candidates
    assert len(base.scripts) == 1 and "apt-get install -s -qq --no-install-recommends" in base.scripts[0]
