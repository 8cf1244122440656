"""The Dockerfile's pip, isolated from the base image's pip settings, in a real container of the
base (its shell, its pip): a pip.conf and PIP_* variables with a constraint against the locked
version make plain pip fail, and the Dockerfile's prefix (credentials.pip_isolated_shell) fetches
exactly the locked file. The index is a real one on 127.0.0.1 (tests/pkgindexes.py)."""

from __future__ import annotations

import subprocess

import pytest

from imagesmith.credentials import pip_isolated_shell
from tests.pkgindexes import serve_indexes

pytestmark = pytest.mark.engine


def test_the_bases_pip_configuration_does_not_change_what_the_dockerfile_downloads(tmp_path, engine, base_image):
    with serve_indexes(tmp_path / "index", {"general": [("torch", "2.15.0")]}) as idx:
        index = idx["general"]
        conf = tmp_path / "conf"
        conf.mkdir()
        (conf / "constraints.txt").write_text("torch<=2.14.1\n")
        (conf / "pip.conf").write_text("[global]\nconstraint = /conf/constraints.txt\n")
        (conf / "requirements.lock").write_text(f"torch==2.15.0 --hash={index.hashes[('torch', '2.15.0')]}\n")
        download = (
            "python3 -m pip download --disable-pip-version-check --no-deps --require-hashes --dest /tmp/wheels "
            f"-r /conf/requirements.lock --index-url {index.url} && ls /tmp/wheels"
        )

        def run(command: str, *env: str) -> subprocess.CompletedProcess:
            argv = ["docker", "run", "--rm", "--network", "host", "-v", f"{conf}:/conf:ro"]
            for item in env:
                argv += ["-e", item]
            return subprocess.run(
                [*argv, "--entrypoint", "sh", base_image, "-c", command], capture_output=True, text=True, timeout=300
            )

        for setting in ("PIP_CONFIG_FILE=/conf/pip.conf", "PIP_CONSTRAINT=/conf/constraints.txt"):
            plain = run(download, setting)
            assert plain.returncode != 0 and "torch" in plain.stdout + plain.stderr  # the setting gets in the way
            isolated = run(f"{pip_isolated_shell()} {download}", setting)
            assert isolated.returncode == 0, isolated.stdout + isolated.stderr
            assert isolated.stdout.split()[-1] == "torch-2.15.0-py3-none-any.whl"
