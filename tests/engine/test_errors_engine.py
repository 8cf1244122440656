"""Errors that need the real engine or resolver (see tests/unit/test_errors.py)."""

from __future__ import annotations

import pytest

from tests.helpers import cli
from tests.unit.test_errors import project  # noqa: F401, F811 (fixtures and helpers)


@pytest.mark.engine
def test_unresolvable_requirement_keeps_the_previous_lock(project, base_image):  # noqa: F811
    env = {"IMAGESMITH_BASE": base_image}
    assert cli("lock", "-p", str(project), env=env).returncode == 0
    before = {f: (project / f).read_bytes() for f in ("imagesmith.lock", "requirements.lock")}
    spec = project / "imagesmith.yaml"
    spec.write_text(spec.read_text().replace("six==1.17.0", "six==999.0.0"))
    proc = cli("lock", "-p", str(project), env=env)
    assert proc.returncode == 2
    assert "error: no distribution of six==999.0.0" in proc.stderr  # a missing version, not a conflict
    assert "hint:" in proc.stderr
    assert {f: (project / f).read_bytes() for f in before} == before
    assert not list(project.glob(".*.tmp"))
