"""pylock.toml (PEP 751) as the tools that write it write it: uv (`uv pip compile --universal -o
pylock.toml`) and pip (`pip lock`), each against a real index on 127.0.0.1 (tests/pkgindexes.py),
read back by imagesmith's reader (lock/existing.py ``pylock_pins``). The unit tests of the reader
(tests/unit/test_existing_locks.py) use files written by hand; these are the shapes users bring:
uv's inline tables with upload times and sizes, its universal markers, pip's own layout."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from imagesmith.lock.existing import pylock_pins, target_environment
from imagesmith.lock.pins import Pin
from tests.pkgindexes import serve_indexes

# `app` needs `shared` everywhere, `winonly` on Windows and `oldpy` before Python 3.11: a universal
# lock holds all four, and the image (CPython 3.11 on Linux) takes app and shared only
DISTS = [
    ("app", "1.0", "shared>=1", 'winonly ; sys_platform == "win32"', 'oldpy ; python_version < "3.11"'),
    ("shared", "1.0"),
    ("shared", "2.0"),
    ("winonly", "1.0"),
    ("oldpy", "1.0"),
]


@pytest.fixture
def index(tmp_path):
    with serve_indexes(tmp_path / "index", {"general": DISTS}) as served:
        yield served["general"]


def _expected(index) -> list[Pin]:
    return [
        Pin("app", "1.0", (index.hashes[("app", "1.0")],)),
        Pin("shared", "2.0", (index.hashes[("shared", "2.0")],)),
    ]


def _isolated_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(UV_CACHE_DIR=str(tmp_path / "uv-cache"), PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1")
    return env


def test_a_universal_pylock_written_by_uv_gives_the_images_packages(tmp_path, index):
    (tmp_path / "requirements.in").write_text("app\n")
    subprocess.run(
        ["uv", "pip", "compile", "--universal", "--python", sys.executable, "--python-version", "3.10"]
        + ["--index-url", index.url, "--no-header", "-o", "pylock.toml", "requirements.in"],
        cwd=tmp_path,
        env=_isolated_env(tmp_path),
        check=True,
        capture_output=True,
    )
    text = (tmp_path / "pylock.toml").read_text()
    assert 'created-by = "uv"' in text and "winonly" in text and "oldpy" in text  # universal: all four
    pins = pylock_pins(tmp_path / "pylock.toml", target_environment("3.11.2", "linux/amd64"))
    assert sorted(pins, key=lambda p: p.name) == _expected(index)
    # the same file for an image of Python 3.10 takes oldpy too
    older = pylock_pins(tmp_path / "pylock.toml", target_environment("3.10.12", "linux/arm64"))
    assert [p.name for p in sorted(older, key=lambda p: p.name)] == ["app", "oldpy", "shared"]


def test_a_pylock_written_by_pip_lock_gives_the_images_packages(tmp_path, index):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "lock", "--index-url", index.url, "-o", "pylock.toml", "app"],
        cwd=tmp_path,
        env=_isolated_env(tmp_path),
        capture_output=True,
        text=True,
    )
    if proc.returncode and "unknown command" in proc.stderr:
        pytest.fail(f"this pip has no `pip lock` (pip 25.1 or newer has): {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "pylock.toml").read_text()
    assert 'created-by = "pip"' in text
    pins = pylock_pins(tmp_path / "pylock.toml", target_environment("3.11.2", "linux/amd64"))
    assert sorted(pins, key=lambda p: p.name) == _expected(index)
