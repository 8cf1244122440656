"""One reader of a requirements file's lines (``lock/requirement_lines.py``), as pip reads them,
and every reader that used a near-copy of its own: the includes the lock follows, the indexes and
direct references it refuses, an exported lock's pins, and what ``imagesmith init`` reads. Each
reader's test below failed on the copy it had, where that copy and pip disagreed."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagesmith import fsutil
from imagesmith.errors import LockError
from imagesmith.init.propose import propose
from imagesmith.init.write import write_spec
from imagesmith.lock.existing import pins_from_requirements, target_environment
from imagesmith.lock.inputs import compute_inputs
from imagesmith.lock.pins import Pin, parse_compiled, preferences
from imagesmith.lock.requirement_lines import logical_lines, requirement_lines
from imagesmith.lock.resolution_files import named_indexes, requirement_files
from imagesmith.lock.update import check_lock, lock_project
from imagesmith.spec.load import load_spec
from tests.unit.test_lock import RecordingEngine, RecordingResolver

H1, H2 = ("sha256:" + c * 64 for c in "12")
LINUX = target_environment("3.11.2", "linux/amd64")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("-r x.txt", [("include", "-r", "x.txt")]),
        ("-rx.txt", [("include", "-r", "x.txt")]),
        ("--requirement=x.txt", [("include", "--requirement", "x.txt")]),
        ("--requirement x.txt", [("include", "--requirement", "x.txt")]),
        ("-c constraints.txt", [("include", "-c", "constraints.txt")]),
        ("--constraint=constraints.txt", [("include", "--constraint", "constraints.txt")]),
        ("-r \\\n    base.txt", [("include", "-r", "base.txt")]),  # a continued option
        ("-iURL", [("index", "-i", "URL")]),
        ("-i URL", [("index", "-i", "URL")]),
        ("--index-url=URL", [("index", "--index-url", "URL")]),
        ("--extra-index-url URL", [("index", "--extra-index-url", "URL")]),
        ("--extra-index=URL", [("index", "--extra-index-url", "URL")]),  # a long option's unique prefix, as optparse
        ("-f ./wheels", [("index", "-f", "./wheels")]),
        ("-i A --extra-index-url B", [("index", "-i", "A"), ("index", "--extra-index-url", "B")]),  # two on one line
        ("-e .[train]", [("editable", "-e", ".[train]")]),
        ("-e ./libs/x", [("editable", "-e", "./libs/x")]),
        ("--editable=libs/x", [("editable", "--editable", "libs/x")]),
        ("-e git+https://example.com/x.git#egg=x", [("editable", "-e", "git+https://example.com/x.git#egg=x")]),
        ("--pre", [("option", "--pre", "")]),
        ("--only-binary :all:", [("option", "--only-binary", ":all:")]),
        ("--no-such-option x", [("option", "--no-such-option", "")]),  # pip refuses it: left to the resolver
        ("-e", [("option", "-e", "")]),  # no argument
    ],
)
def test_options_are_read_as_pip_reads_them(text, expected):
    assert [(line.kind, line.option, line.value) for line in requirement_lines(text + "\n")] == expected


@pytest.mark.parametrize(
    "text, kind, value, marker",
    [
        ("name @ https://example.com/name-1.0.tar.gz", "url", "name @ https://example.com/name-1.0.tar.gz", ""),
        (
            "name@https://example.com/name-1.0-py3-none-any.whl",
            "url",
            "name@https://example.com/name-1.0-py3-none-any.whl",
            "",
        ),
        (
            "name[x] @ git+https://u@example.com/n.git@v1 ; python_version > '3'",
            "url",
            "name[x] @ git+https://u@example.com/n.git@v1",
            "python_version > '3'",
        ),
        ("git+https://example.com/n.git#egg=n", "url", "git+https://example.com/n.git#egg=n", ""),
        (
            "https://example.com/n-1.0.tar.gz; sys_platform == 'linux'",
            "url",
            "https://example.com/n-1.0.tar.gz",
            "sys_platform == 'linux'",
        ),
        ("file:../libs/n", "url", "file:../libs/n", ""),
        ("./dist/x-1.0-py3-none-any.whl", "local", "./dist/x-1.0-py3-none-any.whl", ""),
        ("dist/x-1.0.tar.gz", "local", "dist/x-1.0.tar.gz", ""),
        ("x-1.0-py3-none-any.whl", "local", "x-1.0-py3-none-any.whl", ""),  # a valid name too, but pip takes the file
        (".", "local", ".", ""),
        (".[train,serve]", "local", ".[train,serve]", ""),
        ("libs/mylib", "local", "libs/mylib", ""),  # pip: a path (a '/' in it)
        ("six", "requirement", "six", ""),
        ("numpy>=1.26,<2 ; python_version >= '3.10'", "requirement", "numpy>=1.26,<2", "python_version >= '3.10'"),
        ("requests[socks]==2.32.3", "requirement", "requests[socks]==2.32.3", ""),
    ],
)
def test_requirements_are_classified_as_pip_reads_them(text, kind, value, marker):
    (line,) = requirement_lines(text + "\n")
    assert (line.kind, line.value, line.marker) == (kind, value, marker)


def test_hashes_continuations_and_comments():
    text = (
        "# a comment\n"
        "six==1.16.0 \\\n"
        f"    --hash={H1} \\\n"
        f"    --hash {H2}  # the second file\n"
        "\n"
        "numpy==2.1.0 ; python_version >= '3.11'\t# a tab before a comment\n"
        "pkg#not-a-comment==1\n"
    )
    lines = requirement_lines(text)
    assert [(line.kind, line.value, line.hashes) for line in lines] == [
        ("requirement", "six==1.16.0", (H1, H2)),
        ("requirement", "numpy==2.1.0", ()),
        ("requirement", "pkg#not-a-comment==1", ()),
    ]
    assert lines[1].marker == "python_version >= '3.11'" and lines[0].requirement.name == "six"


def test_a_comment_line_ends_a_continuation_and_never_continues():
    """pip: a comment line ending in a backslash does not continue (the old joiner made it eat
    the next line, so `six` was lost); a backslash then a blank line ends the line there."""
    assert logical_lines("# see below \\\nsix\n") == ["six"]
    assert logical_lines("six \\\n\nnumpy\n") == ["six", "numpy"]
    assert logical_lines("six \\\n# a note\nnumpy\n") == ["six", "numpy"]
    assert logical_lines("-r\\\nbase.txt\n") == ["-rbase.txt"]  # joined as they are, as pip does


def test_the_resolvers_output_and_the_preferences_read_through_it():
    compiled = f"# header\nsix==1.16.0 \\\n    --hash={H2} \\\n    --hash={H1}\n-e file:///proj\n--index-url X\n"
    assert parse_compiled(compiled) == [Pin("six", "1.16.0", (H1, H2))]
    assert preferences(compiled) == "six==1.16.0\n"


# --- each reader, on a line where its old copy and pip disagreed ---


def test_an_include_continued_on_the_next_line_is_followed(tmp_path):
    """requirement_files split lines itself (no continuations): `-r \\` read the include '\\'."""
    (tmp_path / "base.txt").write_text("six\n")
    (tmp_path / "more.txt").write_text("numpy\n")
    (tmp_path / "requirements.txt").write_text("-r \\\n    base.txt\n# old: \\\n-c more.txt\n")
    names = [p.name for p in requirement_files(tmp_path / "requirements.txt")]
    assert names == ["requirements.txt", "base.txt", "more.txt"]


def test_named_indexes_reads_every_index_of_a_line_and_after_a_continued_comment():
    text = "# the mirror: \\\n--index-url https://mirror.example/simple\n-f https://a.example/links --extra-index-url https://b.example/simple\n"
    assert named_indexes(text) == [
        ("--index-url", "https://mirror.example/simple"),
        ("-f", "https://a.example/links"),
        ("--extra-index-url", "https://b.example/simple"),
    ]


def _project(root: Path, package: str, base: str, more: str = "") -> Path:
    """A project whose requirements.txt includes a constraints file (caches under tmp_path)."""
    root.mkdir()
    (root / "requirements.txt").write_text(f"-c constraints.txt\n{package}\n")
    (root / "constraints.txt").write_text(f"{package}<3\n")
    (root / "imagesmith.yaml").write_text(
        f'name: p\npython: "3.11"\nbase: {base}\nrequirements: requirements.txt\n{more}'
        'train: {command: ["python", "-V"]}\nserve: {command: ["python", "-V"]}\n'
    )
    return root


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A small project locked with the fake resolver and engine (its caches under tmp_path)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: RecordingResolver())
    return _project(tmp_path / "proj", "six", "python:3.11-slim")


@pytest.mark.parametrize(
    "line",
    [
        "libs/mylib",  # pip installs the folder; the old reader took it for a name
        "# vendored: \\\n-e ./libs/mylib",  # the old joiner dropped the editable with the comment
    ],
)
def test_a_local_requirement_the_old_reader_let_pass_is_refused(project, line):
    (project / "requirements.txt").write_text(f"six\n{line}\n")
    with pytest.raises(LockError) as err:
        compute_inputs(load_spec(project), "b")
    assert "requirements.txt asks for" in str(err.value) and "libs/mylib" in str(err.value)
    assert "publish it to a package index" in (err.value.hint or "")


def test_the_second_index_of_a_line_is_checked_too(project):
    (project / "requirements.txt").write_text(
        "-i https://pypi.org/simple --extra-index-url https://other.example/simple\nsix\n"
    )
    with pytest.raises(LockError, match="names the package index 'https://other.example/simple'"):
        compute_inputs(load_spec(project), "b")


@pytest.mark.parametrize(
    "line",
    ["-ihttps://mirror.example/simple", "-f https://download.example/links.html", "--trusted-host mirror.example"],
)
def test_an_exported_lock_s_options_are_not_refused_as_requirements(line):
    """pins_from_requirements skipped `-i URL` but refused `-iURL`, `-f URL` and `--trusted-host`
    (which poetry export writes) as 'a local, editable or URL requirement'."""
    assert pins_from_requirements(f"{line}\nsix==1.16.0 --hash={H1}\n", LINUX, "poetry.lock") == [
        Pin("six", "1.16.0", (H1,))
    ]


@pytest.mark.parametrize("line", ["mylib@file:///src/mylib", "libs/mylib-1.0-py3-none-any.whl"])
def test_an_exported_direct_reference_without_spaces_is_refused_by_name(line):
    """`name@url` (no spaces) and a path without a leading ./ were read as requirements and
    failed later as 'unpinned' or 'cannot read'."""
    with pytest.raises(LockError, match="cannot install from hashes"):
        pins_from_requirements(f"{line} --hash={H1}\nsix==1.16.0 --hash={H1}\n", LINUX, "uv.lock")


def test_init_reads_the_indexes_of_an_include_continued_on_the_next_line(tmp_path):
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "gpu.txt").write_text("--extra-index-url https://download.example/whl/cpu/\ntorch\n")
    (tmp_path / "requirements.txt").write_text("-r \\\n  requirements/gpu.txt\nsix\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    assert propose(tmp_path).values["extra_index_urls"] == ["https://download.example/whl/cpu"]


def test_init_sees_the_server_an_included_file_installs(tmp_path):
    """gunicorn in requirements/prod.txt, which requirements.txt includes: pip installs it."""
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "prod.txt").write_text("flask\ngunicorn\n")
    (tmp_path / "requirements.txt").write_text("-r requirements/prod.txt\n")
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    assert propose(tmp_path).values["serve"]["command"] == ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]


# --- each file read once per command ---


def _count_opens(monkeypatch, names):
    """The opens (``os.open``, which every bounded read of fsutil makes) of files named ``names``."""
    import os

    opened: list[str] = []
    real = os.open

    def counting(path, *args, **kwargs):
        if os.path.basename(path) in names:
            opened.append(os.path.basename(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting)
    return opened


def _count_user_reads(monkeypatch) -> list[str]:
    """The names of the files read with ``fsutil.read_user_text`` (every requirements file)."""
    reads: list[str] = []
    real = fsutil.read_user_text

    def read_user_text(path, *args, **kwargs):
        reads.append(path.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fsutil, "read_user_text", read_user_text)
    return reads


def test_lock_check_reads_each_requirements_file_once(project, monkeypatch):
    lock_project(load_spec(project), RecordingEngine())
    reads = _count_user_reads(monkeypatch)
    assert check_lock(load_spec(project)) == []
    assert sorted(reads) == ["constraints.txt", "requirements.txt"]


def test_a_lock_of_two_platforms_reads_each_requirements_file_once(tmp_path, monkeypatch):
    """compute_inputs runs once per platform; the files are read once for all of them."""
    from tests.unit.test_multi_platform import IndexEngine, PlatformResolver, image_info

    root = _project(tmp_path / "p", "numpy", "127.0.0.1:5000/base:py311", "platforms: [linux/amd64, linux/arm64]\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: PlatformResolver())
    monkeypatch.setattr("imagesmith.platforms.emulation_problem", lambda platform: None)
    engine = IndexEngine(runs=lambda image, command: "3.11.2\n", default=image_info("base"))
    reads = _count_user_reads(monkeypatch)
    assert lock_project(load_spec(root), engine).written
    assert sorted(reads) == ["constraints.txt", "requirements.txt"]
    reads.clear()
    assert check_lock(load_spec(root)) == []
    assert sorted(reads) == ["constraints.txt", "requirements.txt"]


def test_init_reads_the_requirements_file_and_pyproject_once(tmp_path, monkeypatch):
    (tmp_path / "requirements.txt").write_text("--extra-index-url https://download.example/whl/cpu\nsix\n")
    (tmp_path / "pyproject.toml").write_text("[tool.black]\nline-length = 100\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    opened = _count_opens(monkeypatch, {"requirements.txt", "pyproject.toml"})
    _, text, proposal = write_spec(tmp_path, pyproject=True, dry_run=True)
    assert proposal.values["extra_index_urls"] == ["https://download.example/whl/cpu"] and "[tool.imagesmith]" in text
    assert sorted(opened) == ["pyproject.toml", "requirements.txt"]
