"""A user's text file read with one error (``fsutil.read_user_text``), the one home of the
requirements includes' and the signoff samples' reads: the same messages and hints as before."""

from __future__ import annotations

import pytest

from imagesmith.errors import ResolutionError
from imagesmith.fsutil import read_user_text
from imagesmith.lock.resolution_files import requirement_files
from imagesmith.signoff import SignoffError
from imagesmith.signoff.batch import read_samples


def test_text_is_read_and_bad_bytes_or_a_folder_are_one_error(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("héllo\n", encoding="utf-8")
    bad.write_bytes(b"ok\n\xff\n")
    assert read_user_text(good, ResolutionError, shown="good.txt", hint="h") == "héllo\n"
    with pytest.raises(ResolutionError) as caught:
        read_user_text(bad, ResolutionError, shown="bad.txt", hint="save it as UTF-8")
    assert (str(caught.value), caught.value.hint) == ("bad.txt is not UTF-8 text (byte 3)", "save it as UTF-8")
    with pytest.raises(SignoffError) as unreadable:
        read_user_text(tmp_path, SignoffError, shown="the folder", hint="h")
    assert str(unreadable.value) == "the folder cannot be read: Is a directory" and unreadable.value.hint is None


def test_the_requirements_include_and_the_samples_keep_their_messages(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_bytes(b"six\n\xfe\n")
    with pytest.raises(ResolutionError) as caught:
        requirement_files(requirements, set())
    assert str(caught.value) == "requirements.txt is not UTF-8 text (byte 4)"
    assert caught.value.hint == "save the requirements file as UTF-8"
    samples = tmp_path / "samples.jsonl"
    samples.write_bytes(b'{"x": 1}\n\xff')
    with pytest.raises(SignoffError) as bad:
        read_samples(samples)
    assert str(bad.value) == f"{samples} is not UTF-8 text (byte 9)"
    assert bad.value.hint == "one JSON value per line (JSON lines), UTF-8"
