"""Errors that need the real engine or resolver (see tests/unit/test_errors.py)."""

from __future__ import annotations

import json

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


@pytest.mark.engine
@pytest.mark.parametrize("ref", ["bad ref!!", "UPPER:x", "a b"])
@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_a_name_that_is_no_image_reference_is_a_usage_error_not_a_missing_engine(engine, command, ref):
    """The engine answers 400 ("invalid reference format") for such a name; that was reported as
    'cannot inspect' with the hint to start a Docker engine, which was running."""
    proc = cli("--json", command, ref, check_traceback=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"error: {ref} is not an image reference: invalid reference format"), proc.stderr
    assert "start a Docker engine" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["exit"] == 2 and doc["hint"] == "name an image as NAME[:TAG] or NAME@sha256:DIGEST"
