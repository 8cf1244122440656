"""A wheel that ships bytecode, on the real engine (issue 24, defect 1): numpy's cp311 wheel lists
``numpy/distutils/__pycache__/*.pyc`` in its RECORD. Here a small wheel of the same shape, served
by a real index on 127.0.0.1 (tests/pkgindexes.py): the image keeps the wheel's .pyc byte for byte,
its own source is compiled unchecked-hash, and `verify` of the freshly built images passes
(serve's files against the lock, train as its pair: the same layers)."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.conftest import PROJECTS, copy_project
from tests.helpers import cli
from tests.pkgindexes import serve_indexes, timestamp_pyc

pytestmark = pytest.mark.engine

TAG = "imagesmith-test/shipspyc"
SOURCE = b"def conv():\n    return 'template'\n"
SHIPPED = timestamp_pyc(SOURCE, "/build/shipspyc/tool.py")
PYC = "shipspyc/__pycache__/tool.cpython-311.pyc"


def test_a_wheels_own_bytecode_survives_the_build_and_verify_passes(tmp_path, engine, base_image):
    dists = {"general": [("shipspyc", "1.0", {"shipspyc/tool.py": SOURCE, PYC: SHIPPED})]}
    with serve_indexes(tmp_path / "index", dists) as idx:
        root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
        spec = root / "imagesmith.yaml"
        spec.write_text(
            spec.read_text().replace("  - six==1.17.0\n", "  - shipspyc==1.0\n") + f"index_url: {idx['general'].url}\n"
        )
        env = {"IMAGESMITH_CACHE_DIR": str(tmp_path / "cache"), "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
        built = cli("build", "-p", str(root), "--base", base_image, "--tag", TAG, "--json", env=env)
        assert built.returncode == 0, built.stdout + built.stderr
    images = json.loads(built.stdout)["images"]
    ref = images["serve"]["ref"]
    # One verify run for both images: serve's files against the lock, and train as its pair (the
    # same filesystem layers, so the same files: one look inside instead of two).
    proc = cli("verify", ref, "--lock", str(root / "imagesmith.lock"), "--pair", images["train"]["ref"], cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # no "shipspyc 1.0 differs"
    assert f" filesystem layers as {images['train']['ref']}" in proc.stdout, proc.stdout
    code = (
        "import hashlib, importlib.util, json, shipspyc.tool as t; "
        f"p = '/opt/venv/lib/python3.11/site-packages/{PYC}'; data = open(p, 'rb').read(); "
        "i = importlib.util.cache_from_source(importlib.util.find_spec('shipspyc').origin); "
        "print(json.dumps([hashlib.sha256(data).hexdigest(), t.conv(), int.from_bytes(open(i, 'rb').read()[4:8], 'little')]))"
    )
    found = json.loads(engine.run(ref, ["-c", code], entrypoint=["/opt/venv/bin/python"]).strip())
    # the wheel's .pyc as shipped; the package's other source compiled unchecked-hash (flags 0b01)
    assert found == [hashlib.sha256(SHIPPED).hexdigest(), "template", 0b01], found
