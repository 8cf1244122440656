"""The install step's bytecode (runtime/bytecode.py), run as the image runs it (from the runtime
wheel alone, ``python -m imagesmith_runtime.bytecode``) on a site-packages folder made here: a
``.pyc`` a wheel shipped (its RECORD lists it) keeps its bytes; every other source is compiled
unchecked-hash, replacing a timestamped ``.pyc``; test suites are left alone."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

from imagesmith import runtime_wheel
from tests.pkgindexes import timestamp_pyc


def _record_line(site: Path, rel: str) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256((site / rel).read_bytes()).digest()).rstrip(b"=").decode()
    return f"{rel},sha256={digest},{(site / rel).stat().st_size}\n"


def _flags(pyc: Path) -> int:
    return int.from_bytes(pyc.read_bytes()[4:8], "little")


def _bytecode(tmp_path: Path, lib: str) -> subprocess.CompletedProcess:
    """``python -m imagesmith_runtime.bytecode LIB`` from the runtime wheel alone, as the image runs it."""
    built = runtime_wheel.build()
    wheel = tmp_path / built.filename
    wheel.write_bytes(built.data)
    return subprocess.run(
        [sys.executable, "-m", "imagesmith_runtime.bytecode", lib],
        env={"PYTHONPATH": str(wheel), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


def test_a_wheels_own_bytecode_is_left_as_installed_and_the_rest_compiled(tmp_path):
    lib = tmp_path / "lib"
    site = lib / "python3.11" / "site-packages"
    pkg = site / "shipspyc"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "tests").mkdir()
    source = b"VALUE = 1\n"
    (pkg / "__init__.py").write_bytes(b"")
    (pkg / "tool.py").write_bytes(source)
    shipped = Path(importlib.util.cache_from_source(str(pkg / "tool.py")))
    shipped.write_bytes(timestamp_pyc(source, "build-machine/tool.py"))
    (pkg / "tests" / "test_tool.py").write_bytes(b"def test(): pass\n")
    other = site / "other.py"
    other.write_bytes(b"X = 2\n")
    stale = Path(importlib.util.cache_from_source(str(other)))
    stale.parent.mkdir()
    stale.write_bytes(timestamp_pyc(b"X = 2\n", str(other)))  # as the .pth's import writes it
    dist = site / "shipspyc-1.0.dist-info"
    dist.mkdir()
    rels = ["shipspyc/__init__.py", "shipspyc/tool.py", shipped.relative_to(site).as_posix()]
    (dist / "RECORD").write_text("".join(_record_line(site, r) for r in rels) + f"{dist.name}/RECORD,,\n")
    before = shipped.read_bytes()

    proc = _bytecode(tmp_path, str(lib))
    assert proc.returncode == 0, proc.stderr
    assert shipped.read_bytes() == before  # the wheel's bytes, as its RECORD says
    init = Path(importlib.util.cache_from_source(str(pkg / "__init__.py")))
    assert _flags(init) == 0b01 and _flags(stale) == 0b01  # unchecked-hash, the timestamped one replaced
    assert not (pkg / "tests" / "__pycache__").exists()


def test_a_source_that_is_not_valid_python_here_is_left_without_bytecode_and_named(tmp_path):
    """torch's 3.11 wheel ships torch/testing/_internal/py312_intrinsics.py in Python 3.12 syntax:
    pip and uv install it without bytecode, and so does the install step (it failed the build)."""
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    internal = site / "torch" / "testing" / "_internal"
    internal.mkdir(parents=True)
    (site / "torch" / "__init__.py").write_bytes(b"")
    newer = internal / "py312_intrinsics.py"
    newer.write_bytes(
        b'def f[T](a: "This is a new annotation"):  # noqa: F722\n    pass\n'
        if sys.version_info < (3, 12)
        else b"def f(:\n"
    )
    (internal / "nul.py").write_bytes(b"X = 1\0\n")
    good = internal / "common_utils.py"
    good.write_bytes(b"Y = 2\n")

    proc = _bytecode(tmp_path, str(tmp_path / "lib"))
    assert proc.returncode == 0, proc.stderr
    assert Path(importlib.util.cache_from_source(str(good))).exists()
    assert not Path(importlib.util.cache_from_source(str(newer))).exists()
    major, minor = sys.version_info[:2]
    assert proc.stderr == (
        f"imagesmith: bytecode: 2 source(s) not valid Python {major}.{minor}, left without bytecode (as pip and uv "
        f"install them): {internal / 'nul.py'}, {newer}\n"
    )


def test_bytecode_that_cannot_be_written_fails_the_step(tmp_path):
    site = tmp_path / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "__pycache__").write_bytes(b"")  # a file where the bytecode folder goes: nothing can be written
    (site / "blocked.py").write_bytes(b"Z = 3\n")
    proc = _bytecode(tmp_path, str(tmp_path / "lib"))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"imagesmith: bytecode: could not compile {site / 'blocked.py'}: ")
