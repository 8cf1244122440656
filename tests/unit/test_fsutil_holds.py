"""fsutil.holds: whether writing a text to a file would change nothing (the one test of it, for the
Dockerfile, its ignore file, the staged source's layout and requirements.lock)."""

from __future__ import annotations

from imagesmith.fsutil import holds


def test_a_regular_file_with_exactly_the_text_holds_it(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_bytes("FROM base\nRUN é\n".encode())
    assert holds(path, "FROM base\nRUN é\n")
    assert not holds(path, "FROM base\n")
    assert not holds(tmp_path / "absent", "")


def test_line_ends_and_bytes_are_compared_as_they_are(tmp_path):
    crlf = tmp_path / "crlf"
    crlf.write_bytes(b"FROM base\r\n")
    assert not holds(crlf, "FROM base\n")  # read as text, the two would be equal
    latin = tmp_path / "latin"
    latin.write_bytes(b"caf\xe9\n")
    assert not holds(latin, "café\n")


def test_a_link_or_a_folder_holds_nothing(tmp_path):
    target = tmp_path / "target"
    target.write_text("x\n")
    (tmp_path / "link").symlink_to(target)
    assert holds(target, "x\n") and not holds(tmp_path / "link", "x\n")
    assert not holds(tmp_path, "")
