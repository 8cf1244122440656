"""The runtime's atomic write (``imagesmith/runtime/files.py``), which the images' build steps, the
train stamp and ``export preprocessing`` use: its temporary file never has a name someone could
have prepared."""

from __future__ import annotations

import os
import stat

import pytest

from imagesmith.runtime.files import sha256_fd, sha256_file, write_atomic


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


def test_a_new_only_write_never_replaces_a_file_nor_a_link(tmp_path):
    """new_only (the host's atomic_write passes it for init's spec): a name that exists, a
    dangling link included, is kept, FileExistsError raised and no temporary file left."""
    spec = tmp_path / "imagesmith.yaml"
    assert write_atomic(str(spec), b"first\n", new_only=True) == str(spec)
    assert spec.read_bytes() == b"first\n" and stat.S_IMODE(spec.stat().st_mode) == 0o644
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for path in (spec, tmp_path / "dangling"):
        with pytest.raises(FileExistsError):
            write_atomic(str(path), b"second\n", new_only=True)
    assert spec.read_bytes() == b"first\n" and (tmp_path / "dangling").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "imagesmith.yaml"]


def test_a_hash_reads_no_more_than_the_size_the_file_had_when_opened(tmp_path):
    """A model file a writer keeps growing was hashed until it stopped (the hostile audit): with
    the size it was opened at, the hash stops there and a file that has more is refused."""
    path = tmp_path / "model.bin"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert sha256_fd(fd, 10) == sha256_file(str(path))
        os.lseek(fd, 0, os.SEEK_SET)
        with pytest.raises(OSError, match="it grew while it was read"):
            sha256_fd(fd, 4)
        os.lseek(fd, 0, os.SEEK_SET)
        assert sha256_fd(fd) == sha256_file(str(path))  # no size: to its end, as before
    finally:
        os.close(fd)


def test_a_model_file_that_grew_while_it_was_hashed_is_named_not_hashed(tmp_path, monkeypatch):
    """scan_model (verify --model, the train stamp) hashes each file with the size fstat gave when
    it was opened: a file with more bytes by then (here: fstat answering 4 of its 10) is one line
    saying so, and no digest."""
    from imagesmith.runtime import stamp

    (tmp_path / "model.bin").write_bytes(b"0123456789")
    real = os.fstat

    def smaller(fd):
        st = real(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 4, *st[7:10]))

    monkeypatch.setattr(stamp.os, "fstat", smaller)
    digests, odd = stamp.scan_model(str(tmp_path))
    assert digests == {} and odd == ["model.bin cannot be read (it grew while it was read)"]


def test_a_stamp_s_temporary_file_left_by_a_killed_write_is_not_a_model_file(tmp_path):
    """write_atomic names its temporary file `.imagesmith-stamp.json.XXXX.tmp` (mkstemp): a train
    killed while stamping leaves one, which verify --model must not take for a model file."""
    from imagesmith.runtime import stamp

    (tmp_path / "model.bin").write_bytes(b"m")
    (tmp_path / f".{stamp.STAMP_FILE}.ab12cd.tmp").write_bytes(b"{")
    (tmp_path / ".cache.ab12cd.tmp").write_bytes(b"a user's file")  # not a companion's: a model file
    inner = tmp_path / f".{stamp.GOLDEN_FILE}.d"  # a folder of the model's own, named alike
    inner.mkdir()
    (inner / "weights.tmp").write_bytes(b"w")  # inside it: a model file (it was left out of the stamp)
    digests, odd = stamp.scan_model(str(tmp_path))
    assert sorted(digests) == [".cache.ab12cd.tmp", f".{stamp.GOLDEN_FILE}.d/weights.tmp", "model.bin"] and odd == []
