"""The runtime's atomic write (``imagesmith/runtime/files.py``), which the images' build steps, the
train stamp and ``export preprocessing`` use: its temporary file never has a name someone could
have prepared."""

from __future__ import annotations

import os
import stat

import pytest

from imagesmith.runtime.files import write_atomic


def test_a_link_left_at_the_old_temporary_name_is_never_written_through(tmp_path):
    """It wrote to ``<name>.tmp`` with open(): a link left there made it overwrite the file the link
    names (the hostile audit's `export preprocessing -o` reproduction) before renaming."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"the user's file\n")
    out = tmp_path / "out"
    out.mkdir()
    target = out / "tiny_preprocessing-0-py3-none-any.whl"
    os.symlink(victim, str(target) + ".tmp")
    write_atomic(str(target), b"wheel bytes")
    assert victim.read_bytes() == b"the user's file\n"
    assert target.read_bytes() == b"wheel bytes" and not target.is_symlink()
    assert sorted(p.name for p in out.iterdir()) == [target.name, target.name + ".tmp"]  # the link, untouched


def test_a_new_file_is_0644_a_replaced_one_keeps_its_mode_and_a_failure_leaves_nothing(tmp_path):
    new = tmp_path / "stamp.json"
    write_atomic(str(new), b"{}\n")
    assert stat.S_IMODE(new.stat().st_mode) == 0o644
    new.chmod(0o600)
    write_atomic(str(new), b'{"a": 1}\n')
    assert stat.S_IMODE(new.stat().st_mode) == 0o600 and new.read_bytes() == b'{"a": 1}\n'
    with pytest.raises(TypeError):
        write_atomic(str(new), "not bytes")  # type: ignore[arg-type]
    assert new.read_bytes() == b'{"a": 1}\n' and [p.name for p in tmp_path.iterdir()] == ["stamp.json"]
