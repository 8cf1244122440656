"""The build-time helper for sdist-only distributions (imagesmith/runtime/sdists.py), on the host."""

import hashlib

import pytest

from imagesmith.lock.pins import Pin, parse_compiled, render_requirements_lock
from imagesmith.runtime import sdists
from imagesmith.runtime.sdists import ArchiveError, compiled_source, rehash, sdist_requirements, toolchain

LOCK = render_requirements_lock(
    [
        Pin("docopt", "0.6.2", ("sha256:" + "a" * 64,)),
        Pin("six", "1.17.0", ("sha256:" + "b" * 64, "sha256:" + "c" * 64)),
    ],
    "header",
)


def test_sdists_lists_only_distributions_without_a_wheel(tmp_path):
    (tmp_path / "docopt-0.6.2.tar.gz").write_bytes(b"sdist")
    (tmp_path / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"wheel")
    (tmp_path / "six-1.17.0.tar.gz").write_bytes(b"sdist")
    text = sdist_requirements(LOCK, str(tmp_path))
    assert [p.name for p in parse_compiled(text)] == ["docopt"]
    assert "sha256:" + "a" * 64 in text


def test_nothing_to_build_gives_empty_output(tmp_path):
    (tmp_path / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"wheel")
    assert sdist_requirements(LOCK, str(tmp_path)) == ""


def test_rehash_replaces_only_built_distributions(tmp_path):
    wheel = tmp_path / "docopt-0.6.2-py2.py3-none-any.whl"
    wheel.write_bytes(b"built wheel")
    pins = {p.name: p for p in parse_compiled(rehash(LOCK, str(tmp_path)))}
    assert pins["docopt"].hashes == ("sha256:" + hashlib.sha256(b"built wheel").hexdigest(),)
    assert pins["six"].hashes == ("sha256:" + "b" * 64, "sha256:" + "c" * 64)
    assert rehash(LOCK, str(tmp_path / "missing")) == LOCK


def _tar_gz(path, names):
    """A .tar.gz at ``path`` whose members are empty files named ``names``."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as archive:
        for name in names:
            archive.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    return str(path)


def _zip(path, names):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"")
    return str(path)


PURE = ["docopt-0.6.2/setup.py", "docopt-0.6.2/docopt.py", "docopt-0.6.2/PKG-INFO", "docopt-0.6.2/README.rst"]


def test_a_pure_python_sdist_needs_no_compilers(tmp_path):
    assert compiled_source(_tar_gz(tmp_path / "docopt-0.6.2.tar.gz", PURE)) is None
    assert compiled_source(_zip(tmp_path / "docopt-0.6.2.zip", PURE)) is None


@pytest.mark.parametrize(
    "member",
    [
        "src/_speedups.c",
        "yaml/_yaml.pyx",
        "yaml/_yaml.pxd",
        "lib/x.CPP",
        "Cargo.toml",
        "native/CMakeLists.txt",
        "meson.build",
    ],
)
def test_compiled_sources_need_compilers(tmp_path, member):
    names = [*PURE, f"docopt-0.6.2/{member}"]
    assert compiled_source(_tar_gz(tmp_path / "x-1.tar.gz", names)) == member
    assert compiled_source(_zip(tmp_path / "x-1.zip", names)) == member


def test_names_that_only_look_compiled_are_pure_python(tmp_path):
    names = [
        *PURE,
        "docopt-0.6.2/docs/c",
        "docopt-0.6.2/notes.cfg",
        "docopt-0.6.2/Cargo.toml.orig",
        "docopt-0.6.2/x.go.txt",
    ]
    assert compiled_source(_tar_gz(tmp_path / "x-1.tar.gz", names)) is None


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_an_sdist_that_is_not_an_archive_is_a_clear_error(tmp_path, suffix):
    path = tmp_path / f"x-1{suffix}"
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(ArchiveError, match="not a readable"):
        compiled_source(str(path))


@pytest.mark.parametrize("make", [_tar_gz, _zip])
def test_an_archive_with_too_many_members_is_refused(tmp_path, monkeypatch, make):
    monkeypatch.setattr(sdists, "MAX_MEMBERS", 50)
    path = make(tmp_path / ("x-1.zip" if make is _zip else "x-1.tar.gz"), [f"x-1/m{i}.py" for i in range(51)])
    with pytest.raises(ArchiveError, match="more than 50 members"):
        compiled_source(path)
    monkeypatch.setattr(sdists, "MAX_MEMBERS", 51)
    assert compiled_source(path) is None


def test_a_zip_stating_too_many_members_is_refused_before_its_directory_is_read(tmp_path, monkeypatch):
    path = _zip(tmp_path / "x-1.zip", [f"x-1/m{i}.py" for i in range(3)])
    monkeypatch.setattr(sdists, "MAX_MEMBERS", 2)
    monkeypatch.setattr(sdists.zipfile, "ZipFile", None)  # never opened
    with pytest.raises(ArchiveError, match="more than 2 members"):
        compiled_source(path)


def test_a_zip_understating_its_members_is_refused_without_reading_its_whole_directory(tmp_path, monkeypatch):
    """zipfile builds a record of every member before any count is checked, whatever the end
    record states: a zip whose end record says 1 member and whose directory holds 20,000 is
    refused after MAX_MEMBERS of them, never all held in memory."""
    import tracemalloc

    path = tmp_path / "x-1.zip"
    _zip(path, [f"x-1/m{i}.py" for i in range(20_000)])
    data = bytearray(path.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    data[end + 8 : end + 12] = b"\x01\x00\x01\x00"  # the members on this disk, and in all
    path.write_bytes(bytes(data))
    monkeypatch.setattr(sdists, "MAX_MEMBERS", 50)
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError, match="more than 50 members"):
            compiled_source(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 << 10
    monkeypatch.setattr(sdists, "MAX_MEMBERS", 20_000)
    assert compiled_source(str(path)) is None


@pytest.mark.parametrize("make", [_tar_gz, _zip])
def test_an_absurd_member_name_is_refused(tmp_path, make):
    path = make(tmp_path / ("x-1.zip" if make is _zip else "x-1.tar.gz"), ["x-1/" + "a" * 10_000 + ".c"])
    with pytest.raises(ArchiveError, match="longer than 4096"):
        compiled_source(path)


@pytest.mark.parametrize("kind", ["L", "x"])  # a GNU long name, a pax header
def test_a_huge_extended_header_is_refused_before_it_is_read(tmp_path, kind):
    """tarfile reads an extended header whole before its member is seen: 128 MiB of one (128 KiB
    of gzip) is refused from its size, never decompressed into memory at once."""
    import gzip
    import tarfile
    import tracemalloc

    size = 128 << 20
    path = tmp_path / "x-1.tar.gz"
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = kind.encode(), size
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(header.tobuf(tarfile.GNU_FORMAT))
        chunk = b"a" * (1 << 20)
        for _ in range(size // len(chunk)):
            out.write(chunk)
        out.write(tarfile.TarInfo("x-1/setup.py").tobuf(tarfile.GNU_FORMAT) + b"\0" * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError, match="extended header of more than"):
            compiled_source(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size // 4


def _lock_with(tmp_path, archives):
    pins = [Pin(name, version, ("sha256:" + "a" * 64,)) for name, version in archives]
    return render_requirements_lock(pins, "header")


def test_toolchain_says_which_sdists_need_compilers_in_the_locks_order(tmp_path):
    _tar_gz(tmp_path / "docopt-0.6.2.tar.gz", PURE)
    _zip(tmp_path / "fast-1.0.zip", ["fast-1.0/setup.py", "fast-1.0/src/fast.c"])
    (tmp_path / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"wheel")
    text = _lock_with(tmp_path, [("docopt", "0.6.2"), ("fast", "1.0"), ("six", "1.17.0")])
    said: list[str] = []
    assert toolchain(text, str(tmp_path), said.append) == ["fast-1.0"]
    assert said == [
        "imagesmith: sdist docopt-0.6.2: pure Python, built without compilers",
        "imagesmith: sdist fast-1.0: compiled sources (src/fast.c): compilers installed",
    ]


def test_the_toolchain_command_fails_with_one_error_line_for_an_unreadable_sdist(tmp_path, capsys):
    (tmp_path / "docopt-0.6.2.tar.gz").write_bytes(b"not gzip")
    lock = tmp_path / "requirements.lock"
    lock.write_text(_lock_with(tmp_path, [("docopt", "0.6.2")]))
    assert sdists.main(["toolchain", str(lock), str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: sdist docopt-0.6.2.tar.gz: not a readable tar.gz archive")
    assert [line.split(":")[0] for line in err.splitlines()] == ["error", "hint"]


def test_the_toolchain_command_prints_only_what_needs_compilers(tmp_path, capsys):
    _tar_gz(tmp_path / "docopt-0.6.2.tar.gz", PURE)
    lock = tmp_path / "requirements.lock"
    lock.write_text(_lock_with(tmp_path, [("docopt", "0.6.2")]))
    assert sdists.main(["toolchain", str(lock), str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("", "imagesmith: sdist docopt-0.6.2: pure Python, built without compilers\n")


def test_a_compiled_sources_name_is_said_on_one_line(tmp_path):
    _tar_gz(tmp_path / "fast-1.0.tar.gz", ["fast-1.0/evil\nimagesmith: sdist x: pure Python.c"])
    said: list[str] = []
    assert toolchain(_lock_with(tmp_path, [("fast", "1.0")]), str(tmp_path), said.append) == ["fast-1.0"]
    assert said == [
        "imagesmith: sdist fast-1.0: compiled sources (evil?imagesmith: sdist x: pure Python.c): compilers installed"
    ]


def test_a_zip_is_read_with_the_public_reader_where_zipfile_lacks_the_private_helpers(tmp_path, monkeypatch):
    """The runtime runs on the base's Python, whatever its version: a zipfile without the private
    helpers the bounded reader uses still gives the member names, and the count is still bounded."""
    monkeypatch.setattr(sdists, "_ZIP_HELPERS", (*sdists._ZIP_HELPERS, "_a_helper_no_zipfile_has"))
    monkeypatch.setattr(sdists, "struct", None)  # the bounded reader's own parsing: not taken
    assert compiled_source(_zip(tmp_path / "docopt-0.6.2.zip", PURE)) is None
    assert compiled_source(_zip(tmp_path / "x-1.zip", ["x-1/setup.py", "x-1/src/x.c"])) == "src/x.c"
    monkeypatch.setattr(sdists, "MAX_MEMBERS", 2)
    with pytest.raises(ArchiveError, match="more than 2 members"):
        compiled_source(_zip(tmp_path / "y-1.zip", [f"y-1/m{i}.py" for i in range(3)]))
