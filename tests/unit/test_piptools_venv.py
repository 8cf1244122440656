"""The pip-tools venv kept in the host cache for in-container pip-compile (lock/piptools_venv.py):
its key, when an entry is trusted, how a made one is published, and which container a lock asks
for with and without one. Real folders; the fake engine stands for the container, doing on the
mounted folder what the real one does (the engine test is tests/engine/test_projects.py's
dynamic project, whose later locks make no venv)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from imagesmith.engine import IsolatedRun
from imagesmith.lock import piptools_venv
from imagesmith.lock.piptools_resolver import pip_compile_in_image
from tests.fakes import FakeEngine, image_info

KEY_PARTS = ("sha256:" + "a" * 64, "linux/amd64", "7.7.0")


def _made(folder: Path, installed: bool = True) -> Path:
    """What a container leaves in a staging folder: the venv's pip-compile, and INSTALLED when
    pip-tools installed."""
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    (folder / "bin" / "pip-compile").write_text("#!/opt/imagesmith-pip-tools/bin/python3\n")
    if installed:
        (folder / piptools_venv.INSTALLED).touch()
    return folder


def test_the_key_changes_with_each_part_and_only_with_them():
    key = piptools_venv.venv_key(*KEY_PARTS)
    assert key == piptools_venv.venv_key(*KEY_PARTS) and len(key) == 32
    others = {
        piptools_venv.venv_key("sha256:" + "b" * 64, "linux/amd64", "7.7.0"),
        piptools_venv.venv_key(KEY_PARTS[0], "linux/arm64", "7.7.0"),
        piptools_venv.venv_key(KEY_PARTS[0], "linux/amd64", "7.6.0"),
    }
    assert len(others) == 3 and key not in others


def test_the_entry_lives_in_the_imagesmith_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert piptools_venv.venvs_dir() == tmp_path / "imagesmith" / "pip-tools-venvs"


def test_only_a_whole_entry_is_trusted(tmp_path):
    key = piptools_venv.venv_key(*KEY_PARTS)
    entry = tmp_path / key
    assert piptools_venv.ready(tmp_path, key, "7.7.0") is None  # none yet
    _made(entry)
    assert piptools_venv.ready(tmp_path, key, "7.7.0") is None  # no COMPLETE: half-written
    (entry / piptools_venv.COMPLETE).write_text('{"key": "')
    assert piptools_venv.ready(tmp_path, key, "7.7.0") is None  # COMPLETE cut short
    (entry / piptools_venv.COMPLETE).write_text(json.dumps({"key": key, "pip_tools": "7.6.0"}))
    assert piptools_venv.ready(tmp_path, key, "7.7.0") is None  # another version's
    (entry / piptools_venv.COMPLETE).write_text(json.dumps({"key": key, "pip_tools": "7.7.0"}))
    assert piptools_venv.ready(tmp_path, key, "7.7.0") == entry
    (entry / "bin" / "pip-compile").unlink()
    assert piptools_venv.ready(tmp_path, key, "7.7.0") is None  # its pip-compile gone


def test_publish_moves_an_installed_venv_into_place_in_one_step(tmp_path):
    key = piptools_venv.venv_key(*KEY_PARTS)
    staged = _made(piptools_venv.staging(tmp_path, key))
    assert staged.parent == tmp_path and staged.name.startswith(f".{key}.")
    assert piptools_venv.publish(staged, tmp_path, key, "7.7.0") == tmp_path / key
    assert not staged.exists() and piptools_venv.ready(tmp_path, key, "7.7.0") == tmp_path / key


def test_a_venv_whose_install_failed_is_thrown_away(tmp_path):
    key = piptools_venv.venv_key(*KEY_PARTS)
    staged = _made(piptools_venv.staging(tmp_path, key), installed=False)
    assert piptools_venv.publish(staged, tmp_path, key, "7.7.0") is None
    assert not staged.exists() and not (tmp_path / key).exists()


def test_the_first_of_two_concurrent_locks_wins_and_a_broken_entry_is_replaced(tmp_path):
    key = piptools_venv.venv_key(*KEY_PARTS)
    first, second = (_made(piptools_venv.staging(tmp_path, key)) for _ in range(2))
    assert piptools_venv.publish(first, tmp_path, key, "7.7.0") == tmp_path / key
    marker = (tmp_path / key / piptools_venv.COMPLETE).stat()
    assert piptools_venv.publish(second, tmp_path, key, "7.7.0") == tmp_path / key
    assert not second.exists() and (tmp_path / key / piptools_venv.COMPLETE).stat().st_ino == marker.st_ino
    (tmp_path / key / piptools_venv.COMPLETE).unlink()  # broken: not trusted, so replaced
    third = _made(piptools_venv.staging(tmp_path, key))
    assert piptools_venv.publish(third, tmp_path, key, "7.7.0") == tmp_path / key
    assert piptools_venv.ready(tmp_path, key, "7.7.0") == tmp_path / key


def test_staging_left_by_a_killed_lock_is_removed_after_a_day(tmp_path):
    key = piptools_venv.venv_key(*KEY_PARTS)
    old, recent = tmp_path / f".{key}.old", tmp_path / f".{key}.recent"
    _made(old), _made(recent)
    os.utime(old, (time.time() - 2 * 86_400,) * 2)
    piptools_venv.staging(tmp_path, key)
    assert not old.exists() and recent.exists()


class _Container(FakeEngine):
    """pip-compile's container: when its script installs pip-tools, it leaves the venv in the
    folder mounted at MOUNT, as `python3 -m venv` and `pip install` there would."""

    def run_to_end(self, image, what, timeout, **create):
        run = super().run_to_end(image, what, timeout, **create)
        mounts = {v["bind"]: (Path(h), v["mode"]) for h, v in create["volumes"].items()}
        if "pip install" in create["command"][1]:
            _made(mounts[piptools_venv.MOUNT][0])
        return IsolatedRun(0, run.stdout, "")


def test_a_second_lock_runs_the_kept_venv_read_only_without_installing(tmp_path):
    engine = _Container({"base:1": image_info("base:1", id=KEY_PARTS[0])})
    (tmp_path / "in").mkdir(), (tmp_path / "out").mkdir()
    venvs = tmp_path / "venvs"

    def lock() -> dict:
        pip_compile_in_image(
            engine,
            "base:1",
            work=tmp_path / "in",
            args=["requirements.in"],
            out=tmp_path / "out" / "requirements.lock",
            pip_tools="7.7.0",
            venvs=venvs,
            platform="linux/amd64",
        )
        return engine.called("run_to_end")[-1][2]

    first = lock()
    key = piptools_venv.venv_key(*KEY_PARTS)
    assert "pip install" in first["command"][1] and f"{piptools_venv.MOUNT}/bin/pip-compile" in first["command"][1]
    assert [v["mode"] for v in first["volumes"].values() if v["bind"] == piptools_venv.MOUNT] == ["rw"]
    assert [p.name for p in venvs.iterdir() if p.is_dir()] == [key]  # published, no staging left
    second = lock()
    assert "pip install" not in second["command"][1] and "-m venv" not in second["command"][1]
    assert {h: v["mode"] for h, v in second["volumes"].items() if v["bind"] == piptools_venv.MOUNT} == {
        str(venvs / key): "ro"
    }
