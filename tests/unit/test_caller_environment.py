"""The unit tier ignores the caller's environment (tests/unit/conftest.py): tests that read
IMAGESMITH_BASE, DOCKER_HOST or the cache folder pass with nonsense in all three."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO
from tests.helpers import _bytecode_kept

ODD = {"IMAGESMITH_BASE": "nonexistent:tag", "DOCKER_HOST": "tcp://127.0.0.1:1", "XDG_CACHE_HOME": "/nonexistent"}


def test_unit_tests_pass_with_nonsense_in_the_callers_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(ODD, PYTHONPATH=str(REPO))
    env = _bytecode_kept(env)  # the bytecode this run keeps (not part of what is tested)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t")]
        + ["tests/unit/test_hostile.py::test_the_unbroken_project_renders"]
        + ["tests/unit/test_runtime_wheel.py::test_render_writes_the_wheel_beside_the_dockerfile_and_check_sees_it"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout
