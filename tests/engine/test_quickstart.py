"""The README's two-minute path, run verbatim: the shell block between the `quickstart` markers
in README.md, in a fresh copy of examples/iris without its spec, with this machine's engine.
Only IMAGESMITH_BASE is added (nothing can be pulled here), as the README says to. The test of
iris trained and then served over HTTP answering the right class (test_e2e.py keeps no other)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES, REPO

pytestmark = pytest.mark.engine


def quickstart_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- quickstart:[^>]*-->\s*```sh\n(.*?)```\s*<!-- /quickstart -->", text, re.S)
    assert m, "README.md has no quickstart block"
    return m.group(1)


def test_the_readme_two_minute_path_works_verbatim(tmp_path, base_image, engine):
    project = tmp_path / "iris"
    shutil.copytree(
        EXAMPLES / "iris",
        project,
        ignore=shutil.ignore_patterns(
            "imagesmith.yaml", "imagesmith.lock", "requirements.lock", "Dockerfile", "artifacts", "__pycache__"
        ),
    )
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "imagesmith").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m imagesmith "$@"\n')
    (shim / "imagesmith").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env.update(PATH=f"{shim}:{env['PATH']}", IMAGESMITH_BASE=base_image, PYTHONPATH=str(REPO))
    block = quickstart_block()
    assert "imagesmith init" in block and "imagesmith verify" in block
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    # Files, not pipes: the block's background job (`run serve &`) must not keep the test waiting;
    # its own session, so whatever it leaves behind is ended with it.
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", block], cwd=project, env=env, stdout=o, stderr=e, start_new_session=True
        )
        try:
            code = proc.wait(timeout=1800)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            subprocess.run(["docker", "rm", "-f", "iris-quickstart"], capture_output=True)
    stdout, stderr = out.read_text(), err.read_text()
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    assert (project / "imagesmith.yaml").is_file() and (project / "artifacts" / "model.joblib").is_file()
    # the model train wrote, served over HTTP on 127.0.0.1: the README's flower is a versicolor
    # (curl prints no newline after the body: decoded where it starts, whatever follows it)
    starts = [m.start() for m in re.finditer(r'\{"classes"', stdout)]
    assert len(starts) == 1, stdout[-2000:]
    answers = [json.JSONDecoder().raw_decode(stdout, starts[0])[0]]
    assert answers[0]["classes"] == ["versicolor"], answers
    assert abs(sum(answers[0]["probabilities"][0]) - 1.0) < 1e-9, answers
    assert "iris:serve: verified" in stdout
