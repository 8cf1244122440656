"""The staged source tree (imagesmith/source_context.py): Docker's ignore rules for the forms
imagesmith writes, what the Dockerfile's source stage holds, and the incremental copy. The
engine tier (tests/engine/test_source_context.py) checks the images are the plain build's."""

from __future__ import annotations

import json
import os
import stat

import pytest

from imagesmith.render import dockerignore
from imagesmith.source_context import APP, NS_RANGE, IgnoreRules, Stager, content_ns, ignore_patterns, plan, staged
from imagesmith.spec import load_spec
from tests.conftest import PROJECTS, copy_project


def rules(text: str) -> IgnoreRules:
    parsed = IgnoreRules.parse(text)
    assert parsed is not None
    return parsed


def test_ignore_file_is_read_as_docker_reads_it():
    text = "\ufeff# comment\n  *.log  \n\n/data/\n./build\n **/tmp\n#not/a/pattern\n"
    assert ignore_patterns(text) == ["*.log", "data", "build", "**/tmp"]


@pytest.mark.parametrize("line", ["!keep.py", "file[0-9]", "a\\*b", "a/**/b", "**", "docs/**", "."])
def test_forms_not_matched_exactly_are_refused(line):
    assert ignore_patterns(f"*.pyc\n{line}\n") is None


def test_patterns_match_like_moby_patternmatcher():
    r = rules("*.pyc\n**/__pycache__\n.env.*\ndata\napp/*.log\n")
    assert r.ignored("x.pyc") and not r.ignored("app/x.pyc")  # `*` never crosses a /
    assert r.ignored("__pycache__") and r.ignored("app/sub/__pycache__/m.cpython-311.pyc")
    assert r.ignored(".env.local") and not r.ignored(".env")
    assert r.ignored("data/raw/a.csv")  # a parent folder matches
    assert not r.ignored("app/data")  # anchored at the context's root
    assert r.ignored("app/run.log") and not r.ignored("app/sub/run.log")
    assert not rules("").ignored("anything")


def test_imagesmiths_own_rules_are_accepted(tmp_path):
    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny", git=False)
    spec = load_spec(root)
    r = rules(dockerignore(spec))
    assert r.ignored("app/__pycache__/main.cpython-311.pyc") and r.ignored(".git/HEAD") and r.ignored("a/b/.venv/x")
    assert not r.ignored("app/main.py")


def _project(tmp_path):
    root = tmp_path / "p"
    (root / "app" / "sub").mkdir(parents=True)
    (root / "app" / "empty").mkdir()
    (root / "app" / "__pycache__").mkdir()
    (root / "app" / "main.py").write_text("print('hi')\n")
    (root / "app" / "sub" / "secret.txt").write_text("s\n")
    os.chmod(root / "app" / "sub" / "secret.txt", 0o600)
    os.chmod(root / "app" / "sub", 0o750)
    (root / "app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"x")
    (root / "app" / "alias.py").symlink_to("main.py")
    (root / "app" / "outside").symlink_to("../../../etc/passwd")
    (root / "bin").mkdir()
    (root / "bin" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "bin" / "run.sh", 0o755)
    return root


IGNORE = "__pycache__\n**/__pycache__\n"


def test_plan_is_what_the_copy_lines_take(tmp_path):
    root = _project(tmp_path)
    tree = plan(root, ("app/", "bin/run.sh"), rules(IGNORE))
    assert tree is not None
    assert list(tree)[0] == APP
    assert {k: (v.kind, oct(v.mode)) for k, v in tree.items() if v.kind != "link"} == {
        APP: ("dir", "0o755"),
        f"{APP}/app": ("dir", "0o755"),  # the folder COPY copies into: 0755
        f"{APP}/app/empty": ("dir", "0o755"),
        f"{APP}/app/main.py": ("file", "0o644"),
        f"{APP}/app/sub": ("dir", "0o750"),  # inside it, modes are kept
        f"{APP}/app/sub/secret.txt": ("file", "0o600"),
        f"{APP}/bin": ("dir", "0o755"),  # made by COPY above its destination
        f"{APP}/bin/run.sh": ("file", "0o755"),
    }
    assert tree[f"{APP}/app/alias.py"].target == "main.py"
    assert tree[f"{APP}/app/outside"].target == "../../../etc/passwd"  # kept as a link, never read


def test_dot_takes_the_whole_context(tmp_path):
    root = _project(tmp_path)
    tree = plan(root, (".",), rules(IGNORE))
    assert tree is not None and f"{APP}/bin/run.sh" in tree and f"{APP}/app/__pycache__" not in tree


@pytest.mark.parametrize(
    "make, sources",
    [
        (lambda root: (root / "linked").symlink_to("app"), ("linked/",)),  # COPY would follow it
        (lambda root: None, ("app/", "app/main.py")),  # one inside the other
        (lambda root: None, (".", "bin/run.sh")),
        (lambda root: os.link(root / "app" / "main.py", root / "app" / "hard.py"), ("app/",)),
        (lambda root: os.mkfifo(root / "app" / "fifo"), ("app/",)),
        (lambda root: os.chmod(root / "app" / "sub", 0o550), ("app/",)),
        (lambda root: None, ("app/__pycache__",)),  # left out of the context: COPY fails
    ],
)
def test_what_cannot_be_reproduced_is_not_staged(tmp_path, make, sources):
    root = _project(tmp_path)
    make(root)
    try:
        assert plan(root, sources, rules(IGNORE)) is None
    finally:
        os.chmod(root / "app" / "sub", 0o750)


def test_content_ns_is_never_zero():
    assert all(1 <= content_ns(bytes([i]) * 32) <= NS_RANGE for i in range(256))


def _sync(root, folder, sources=("app/", "bin/run.sh")):
    tree = plan(root, sources, rules(IGNORE))
    assert tree is not None
    assert Stager(folder).sync(root, tree)
    return folder / "tree"


def test_sync_makes_the_tree_with_times_zero_and_content_nanoseconds(tmp_path):
    root = _project(tmp_path)
    out = _sync(root, tmp_path / "stage")
    main = os.lstat(out / APP / "app" / "main.py")
    assert main.st_mtime_ns == content_ns(__import__("hashlib").sha256(b"print('hi')\n").digest())
    assert main.st_mtime_ns < 1_000_000_000  # 0 whole seconds: the layer's time
    for path in (out / APP, out / APP / "app" / "sub", out / APP / "app" / "empty", out / APP / "app" / "alias.py"):
        assert os.lstat(path).st_mtime_ns == 0, path
    assert stat.S_IMODE(os.lstat(out / APP / "app" / "sub").st_mode) == 0o750
    assert stat.S_IMODE(os.lstat(out / APP / "app" / "sub" / "secret.txt").st_mode) == 0o600
    assert os.readlink(out / APP / "app" / "alias.py") == "main.py"
    assert not (out / APP / "app" / "__pycache__").exists()


def test_sync_copies_only_what_changed_and_removes_what_went(tmp_path, monkeypatch):
    # files are trusted by their stat at once (a file younger than statcache.SETTLE_NS is copied again on
    # every sync: test_a_file_written_just_now_is_not_remembered), so the test does not depend on
    # how fast the machine runs it
    monkeypatch.setattr("imagesmith.statcache.SETTLE_NS", 0)
    root = _project(tmp_path)
    out = _sync(root, tmp_path / "stage")
    kept = os.lstat(out / APP / "bin" / "run.sh").st_ino
    assert kept
    before = os.lstat(out / APP / "app" / "main.py").st_mtime_ns
    (root / "app" / "main.py").write_text("print('ho')\n")  # same size
    (root / "app" / "sub" / "secret.txt").unlink()
    (root / "app" / "new").mkdir()
    _sync(root, tmp_path / "stage")
    assert (out / APP / "app" / "main.py").read_text() == "print('ho')\n"
    assert os.lstat(out / APP / "app" / "main.py").st_mtime_ns != before  # BuildKit sends it again
    assert not (out / APP / "app" / "sub" / "secret.txt").exists()
    assert (out / APP / "app" / "new").is_dir() and os.lstat(out / APP / "app" / "new").st_mtime_ns == 0
    assert os.lstat(out / APP / "bin" / "run.sh").st_ino == kept  # not copied again
    assert os.lstat(out / APP / "app").st_mtime_ns == 0


def test_a_file_written_just_now_is_not_remembered(tmp_path, monkeypatch):
    """Racily clean (statcache.py): copied now, and again next time, until its times settle."""
    root = _project(tmp_path)
    _sync(root, tmp_path / "stage")
    state_file = tmp_path / "stage" / "state.json"
    assert not state_file.exists() or f"{APP}/app/main.py" not in json.loads(state_file.read_text())["files"]
    monkeypatch.setattr("imagesmith.statcache.SETTLE_NS", 0)
    _sync(root, tmp_path / "stage")
    state = json.loads((tmp_path / "stage" / "state.json").read_text())
    assert f"{APP}/app/main.py" in state["files"]


def test_an_unchanged_tree_is_left_alone(tmp_path, monkeypatch):
    root = _project(tmp_path)
    monkeypatch.setattr("imagesmith.statcache.SETTLE_NS", 0)
    out = _sync(root, tmp_path / "stage")
    state = os.lstat(tmp_path / "stage" / "state.json")
    main = os.lstat(out / APP / "app" / "main.py")
    _sync(root, tmp_path / "stage")
    assert os.lstat(tmp_path / "stage" / "state.json").st_ino == state.st_ino  # not written again
    assert os.lstat(out / APP / "app" / "main.py").st_ino == main.st_ino


def test_sync_replaces_a_file_that_became_a_folder(tmp_path):
    root = _project(tmp_path)
    out = _sync(root, tmp_path / "stage")
    (root / "app" / "main.py").unlink()
    (root / "app" / "main.py").mkdir()
    (root / "app" / "main.py" / "x").write_text("x")
    _sync(root, tmp_path / "stage")
    assert (out / APP / "app" / "main.py" / "x").read_text() == "x"


def test_staged_yields_none_when_the_rules_are_not_exact(tmp_path):
    root = _project(tmp_path)
    with staged(root, ("app/",), IGNORE + "!keep\n", tmp_path / "cache") as folder:
        assert folder is None
    with staged(root, ("app/",), IGNORE, tmp_path / "cache") as folder:
        assert folder is not None and (folder / APP / "app" / "main.py").is_file()


def test_trees_of_projects_gone_for_a_day_are_pruned(tmp_path):
    cache = tmp_path / "cache"
    gone, kept = _project(tmp_path / "gone"), _project(tmp_path / "kept")
    for root in (gone, kept):
        with staged(root, ("app/",), IGNORE, cache) as folder:
            assert folder is not None
    folders = {p.parent.name: p for p in (cache / "sources").glob("*/root")}
    assert len(folders) == 2
    import shutil

    shutil.rmtree(gone)
    for path in folders.values():  # both staged two days ago
        os.utime(path.parent / "lock", (0, 0))
    with staged(kept, ("app/",), IGNORE, cache) as folder:
        assert folder is not None
    left = [p.read_text() for p in (cache / "sources").glob("*/root")]
    assert left == [str(kept.resolve())]
