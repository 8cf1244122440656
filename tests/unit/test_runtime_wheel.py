"""The imagesmith-runtime wheel: one package of in-image code, built reproducibly on the host,
importable alone (standard library only), registered module by module, written beside the
Dockerfile by render (no Docker here: tests/engine/test_build_repro.py builds images from it)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from io import BytesIO
from pathlib import Path

import pytest

from imagesmith import runtime, runtime_wheel
from imagesmith.errors import RenderError
from imagesmith.lock.inputs import compute_inputs, preprocessing_files, runtime_pin
from imagesmith.lock.lockfile import write_lock
from imagesmith.runtime import wheel
from imagesmith.spec.load import load_spec
from tests.conftest import copy_project
from tests.helpers import cli, fake_lock

HERE = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A copy of the runtime folder that a test may edit, with the build cache cleared."""
    src = tmp_path / "runtime"
    shutil.copytree(runtime_wheel.SOURCE, src, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runtime_wheel, "SOURCE", src)
    runtime_wheel.build.cache_clear()
    yield src
    runtime_wheel.build.cache_clear()


def test_the_wheel_is_reproducible_and_holds_exactly_the_registry():
    built = runtime_wheel.build()
    again = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from imagesmith import runtime_wheel as r; sys.stdout.buffer.write(r.build().data)",
        ],
        capture_output=True,
        check=True,
        cwd=HERE.parent,
    ).stdout
    assert again == built.data  # another process, same bytes
    assert built.sha256 == "sha256:" + hashlib.sha256(built.data).hexdigest()
    with zipfile.ZipFile(BytesIO(built.data)) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    code = [n for n in names if ".dist-info/" not in n]
    assert code == sorted(code) and names[-1].endswith(".dist-info/RECORD")
    assert set(code) == {f"imagesmith_runtime/{m}.py" for m in runtime.MODULES} | set(runtime.ROOT_FILES)
    assert {i.date_time for i in infos} == {wheel.ZIP_DATE} and {i.external_attr >> 16 for i in infos} == {0o100644}
    assert built.filename == f"imagesmith_runtime-{built.version}-py3-none-any.whl"


def test_the_version_is_the_content_digest(fresh):
    first = runtime_wheel.build()
    digests = {}
    with zipfile.ZipFile(BytesIO(first.data)) as zf:
        for name in zf.namelist():
            if ".dist-info/" not in name:
                digests[name] = "sha256:" + hashlib.sha256(zf.read(name)).hexdigest()
    text = json.dumps(digests, sort_keys=True, separators=(",", ":"))
    assert first.version == "0+sha256." + hashlib.sha256(text.encode()).hexdigest()[:12]
    (fresh / "seed.py").write_text((fresh / "seed.py").read_text() + "\n# edited\n")
    runtime_wheel.build.cache_clear()
    assert runtime_wheel.build().version != first.version


def test_a_module_missing_from_the_registry_is_refused(fresh):
    (fresh / "extra.py").write_text("X = 1\n")
    with pytest.raises(RenderError, match=r"unlisted \['extra'\]"):
        runtime_wheel.build()


def test_every_module_imports_from_the_wheel_alone_with_the_standard_library(tmp_path):
    """As in a build stage: the wheel on sys.path (zipimport), no imagesmith, no site-packages."""
    built = runtime_wheel.build()
    whl = tmp_path / built.filename
    whl.write_bytes(built.data)
    modules = [f"imagesmith_runtime.{m}" for m in runtime.MODULES if m not in ("__init__", "__main__")]
    code = (
        "import sys, importlib; sys.path.insert(0, sys.argv[1]); "
        "[importlib.import_module(m) for m in sys.argv[2:]]; "
        "bad = sorted(n for n in sys.modules if n.split('.')[0] not in sys.stdlib_module_names "
        "and n.split('.')[0] not in ('imagesmith_runtime', '__main__')); print(bad)"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(whl), *modules], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_render_writes_the_wheel_beside_the_dockerfile_and_check_sees_it(tmp_path):
    root = copy_project(HERE / "projects" / "tiny", tmp_path / "tiny", git=False)
    spec = load_spec(root)  # a fresh lock without Docker or an index: the pins are fake_lock's
    write_lock(
        spec,
        replace(
            fake_lock(preprocessing=tuple(preprocessing_files(spec).items())),
            inputs=compute_inputs(spec, spec.base),
            runtime=runtime_pin(),
        ),
    )
    built = runtime_wheel.build()
    proc = cli("render", "-p", str(root))
    assert proc.returncode == 0, proc.stderr
    dest = root / ".imagesmith" / built.filename
    assert dest.read_bytes() == built.data
    assert cli("render", "-p", str(root), "--check").returncode == 0
    dest.unlink()
    proc = cli("render", "-p", str(root), "--check")
    assert proc.returncode == 1 and f".imagesmith/{built.filename} is missing" in proc.stderr


def test_write_beside_replaces_older_runtime_wheels(tmp_path):
    old = tmp_path / ".imagesmith" / "imagesmith_runtime-0+sha256.000000000000-py3-none-any.whl"
    old.parent.mkdir()
    old.write_bytes(b"old")
    keep = tmp_path / ".imagesmith" / "notes.txt"
    keep.write_text("mine")
    path = runtime_wheel.write_beside(tmp_path)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, "notes.txt"])
    assert runtime_wheel.stale_beside(tmp_path) is None
    path.write_bytes(b"edited")
    assert "differs" in runtime_wheel.stale_beside(tmp_path)
