"""A project shape found by the outside-in audit, on the real engine: a requirements.txt that
names its own package index (`--index-url`, as ML projects name the CPU wheels' index). The
resolver read that index, the wheel download did not, so the build failed as 'no wheel for
Python 3.11'; now `init` puts the index in the spec and the image installs the file it serves.
The index is a real one on 127.0.0.1 (tests/pkgindexes.py)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from imagesmith.spec.load import load_spec
from tests.helpers import cli, remove_tags
from tests.pkgindexes import serve_indexes

pytestmark = pytest.mark.engine
QUIET: dict = {"capture_output": True, "text": True, "timeout": 60}


def test_an_index_named_in_requirements_txt_reaches_the_image(tmp_path, engine, base_image):
    with serve_indexes(tmp_path / "indexes", {"team-mirror": [("tinydep", "1.0")]}) as idx:
        index = idx["team-mirror"]
        root = tmp_path / "proj"
        root.mkdir()
        (root / "requirements.txt").write_text(f"# our mirror\n--index-url {index.url}\ntinydep==1.0\n")
        (root / "train.py").write_text("import tinydep\n\nprint(tinydep.FROM)\n")
        env = {"IMAGESMITH_CACHE_DIR": str(tmp_path / "cache"), "UV_CACHE_DIR": str(tmp_path / "uv-cache")}

        init = cli("init", "--base", base_image, cwd=root)
        assert init.returncode == 0, init.stderr
        assert load_spec(root).index_url == index.url
        tag = f"imagesmith-test/outside-index-{uuid.uuid4().hex[:8]}"  # the engine is shared: a tag of this run's own
        try:
            built = cli("build", "-t", tag, cwd=root, env=env)
            assert built.returncode == 0, built.stderr[-3000:]
            ran = subprocess.run(
                ["docker", "run", "--rm", f"{tag}:train", "python", "train.py"],
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            remove_tags(tag)  # this run's tags only
        assert ran.stdout.strip() == "team-mirror", ran.stdout + ran.stderr
        assert index.asked_for("tinydep")
