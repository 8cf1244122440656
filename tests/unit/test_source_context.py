"""The staged source (imagesmith/source_context.py): Docker's ignore rules for the forms
imagesmith writes, what the Dockerfile's source stage holds, and the one-layer image of it. The
engine tier (tests/engine/test_source_context.py) checks the images are the plain build's."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from imagesmith.render import dockerignore
from imagesmith.source_context import (
    APP,
    IgnoreRules,
    Stager,
    _climbs_out,
    ignore_patterns,
    image_of,
    plan,
    staged,
)
from imagesmith.spec.load import load_spec
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
    (root / "app" / "outside").symlink_to("/etc/passwd")
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
    assert tree[f"{APP}/app/outside"].target == "/etc/passwd"  # kept as a link, never read


def test_dot_takes_the_whole_context(tmp_path):
    root = _project(tmp_path)
    tree = plan(root, (".",), rules(IGNORE))
    assert tree is not None and f"{APP}/bin/run.sh" in tree and f"{APP}/app/__pycache__" not in tree


def test_dot_leaves_imagesmiths_own_folder_out_of_the_staged_layer(tmp_path, monkeypatch):
    """The source stage removes ``.imagesmith/`` (what the Dockerfile copies from, imagesmith's
    state): the staged tree leaves it out, and an edit inside it keeps the layer's digest."""
    monkeypatch.setattr("imagesmith.statcache.SETTLE_NS", 0)
    root = _project(tmp_path)
    (root / ".imagesmith" / "x86_64").mkdir(parents=True)
    (root / ".imagesmith" / "x86_64" / "imagesmith_image.json").write_text("{}\n")
    (root / "app" / ".imagesmith").mkdir()  # a user's folder of that name below the root stays
    (root / "app" / ".imagesmith" / "mine.txt").write_text("mine\n")
    tree = plan(root, (".",), rules(IGNORE))
    assert tree is not None
    assert not any(path.startswith(f"{APP}/.imagesmith") for path in tree)
    assert f"{APP}/app/.imagesmith/mine.txt" in tree and f"{APP}/bin/run.sh" in tree
    before = _sync(root, tmp_path / "stage", (".",))
    (root / ".imagesmith" / "x86_64" / "imagesmith_image.json").write_text('{"edited": 1}\n')
    (root / ".imagesmith" / "new.whl").write_bytes(b"w")
    assert _sync(root, tmp_path / "stage", (".",)).name == before.name


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
        # above the stage's root (/app/app/up -> /..): unpacking the archive would refuse it
        (lambda root: (root / "app" / "up").symlink_to("../../../etc/passwd"), ("app/",)),
    ],
)
def test_what_cannot_be_reproduced_is_not_staged(tmp_path, make, sources):
    root = _project(tmp_path)
    make(root)
    try:
        assert plan(root, sources, rules(IGNORE)) is None
    finally:
        os.chmod(root / "app" / "sub", 0o750)


def _sync(root, folder, sources=("app/", "bin/run.sh")):
    tree = plan(root, sources, rules(IGNORE))
    assert tree is not None
    layer = Stager(folder).sync(root, tree)
    assert layer is not None
    return _blob(folder, layer[0])


def _blob(folder, digest):
    return folder / "layout" / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _members(archive):
    with tarfile.open(archive) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_sync_writes_the_tree_as_an_archive_with_every_time_zero(tmp_path):
    root = _project(tmp_path)
    archive = _sync(root, tmp_path / "stage")
    members = _members(archive)
    assert list(members) == [
        APP,
        f"{APP}/app",
        f"{APP}/app/alias.py",
        f"{APP}/app/empty",
        f"{APP}/app/main.py",
        f"{APP}/app/outside",
        f"{APP}/app/sub",
        f"{APP}/app/sub/secret.txt",
        f"{APP}/bin",
        f"{APP}/bin/run.sh",
    ]  # parents first; nothing the ignore rules leave out (__pycache__)
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and not m.pax_headers for m in members.values())
    assert members[f"{APP}/app/sub"].isdir() and members[f"{APP}/app/sub"].mode == 0o750
    assert members[f"{APP}/app/sub/secret.txt"].mode == 0o600
    assert members[f"{APP}/bin/run.sh"].mode == 0o755 and members[f"{APP}/bin"].mode == 0o755
    assert members[f"{APP}/app/alias.py"].issym() and members[f"{APP}/app/alias.py"].linkname == "main.py"
    assert members[f"{APP}/app/outside"].linkname == "/etc/passwd"  # kept as a link, never read
    with tarfile.open(archive) as tar:
        assert tar.extractfile(f"{APP}/app/main.py").read() == b"print('hi')\n"
    assert __import__("hashlib").sha256(archive.read_bytes()).hexdigest() == archive.name  # a blob, by its digest


def test_the_archive_is_the_same_bytes_for_the_same_tree(tmp_path):
    """Two checkouts with other file times and inodes: one layer (BuildKit fetches nothing)."""
    one, two = _project(tmp_path / "one"), _project(tmp_path / "two")
    os.utime(two / "app" / "main.py", (1_000_000, 1_000_000))
    a, b = _sync(one, tmp_path / "s1"), _sync(two, tmp_path / "s2")
    assert a.name == b.name and a.read_bytes() == b.read_bytes()


def test_an_edit_writes_the_layer_again(tmp_path, monkeypatch):
    # files are trusted by their stat at once (a file younger than statcache.SETTLE_NS makes the
    # layer be written again on every sync: test_a_file_written_just_now_is_not_remembered), so
    # the test does not depend on how fast the machine runs it
    monkeypatch.setattr("imagesmith.statcache.SETTLE_NS", 0)
    root = _project(tmp_path)
    before = _sync(root, tmp_path / "stage")
    (root / "app" / "main.py").write_text("print('ho')\n")  # same size
    (root / "app" / "sub" / "secret.txt").unlink()
    (root / "app" / "new").mkdir()
    archive = _sync(root, tmp_path / "stage")
    assert archive.name != before.name  # another digest: BuildKit fetches it
    members = _members(archive)
    assert f"{APP}/app/sub/secret.txt" not in members and members[f"{APP}/app/new"].isdir()
    with tarfile.open(archive) as tar:
        assert tar.extractfile(f"{APP}/app/main.py").read() == b"print('ho')\n"


def test_a_file_written_just_now_is_not_remembered(tmp_path, monkeypatch):
    """Racily clean (statcache.py): archived now, and again next time, until its times settle."""
    root = _project(tmp_path)
    _sync(root, tmp_path / "stage")
    assert not (tmp_path / "stage" / "state.json").exists()
    monkeypatch.setattr("imagesmith.statcache.SETTLE_NS", 0)
    _sync(root, tmp_path / "stage")
    state = json.loads((tmp_path / "stage" / "state.json").read_text())
    assert f"{APP}/app/main.py" in state["files"]


def test_an_unchanged_tree_is_left_alone(tmp_path, monkeypatch):
    root = _project(tmp_path)
    monkeypatch.setattr("imagesmith.statcache.SETTLE_NS", 0)
    archive = _sync(root, tmp_path / "stage")
    state = os.lstat(tmp_path / "stage" / "state.json")
    written = os.lstat(archive)
    assert _sync(root, tmp_path / "stage") == archive
    assert os.lstat(tmp_path / "stage" / "state.json").st_ino == state.st_ino  # not written again
    assert os.lstat(archive).st_ino == written.st_ino
    os.chmod(root / "bin" / "run.sh", 0o700)  # a mode is part of the tree
    assert _members(_sync(root, tmp_path / "stage"))[f"{APP}/bin/run.sh"].mode == 0o700


def test_a_missing_or_cut_layer_is_written_again(tmp_path, monkeypatch):
    monkeypatch.setattr("imagesmith.statcache.SETTLE_NS", 0)
    root = _project(tmp_path)
    archive = _sync(root, tmp_path / "stage")
    whole = archive.read_bytes()
    archive.write_bytes(whole[:512])
    assert _sync(root, tmp_path / "stage").read_bytes() == whole
    archive.unlink()
    assert _sync(root, tmp_path / "stage").read_bytes() == whole


def test_a_file_that_became_a_folder(tmp_path):
    root = _project(tmp_path)
    _sync(root, tmp_path / "stage")
    (root / "app" / "main.py").unlink()
    (root / "app" / "main.py").mkdir()
    (root / "app" / "main.py" / "x").write_text("x")
    members = _members(_sync(root, tmp_path / "stage"))
    assert members[f"{APP}/app/main.py"].isdir() and members[f"{APP}/app/main.py/x"].isfile()


def test_a_file_that_changes_while_read_is_not_staged(tmp_path, monkeypatch):
    root = _project(tmp_path)
    tree = plan(root, ("app/",), rules(IGNORE))
    real_lstat = os.lstat
    seen: list[str] = []

    def lstat(path, *args, **kwargs):  # the second look at main.py sees another size
        st = real_lstat(path, *args, **kwargs)
        if str(path).endswith("main.py"):
            seen.append(str(path))
            if len(seen) == 2:
                (root / "app" / "main.py").write_text("print('changed meanwhile')\n")
                return real_lstat(path, *args, **kwargs)
        return st

    monkeypatch.setattr("imagesmith.source_context.os.lstat", lstat)
    assert tree is not None and Stager(tmp_path / "stage").sync(root, tree) is None
    assert not list((tmp_path / "stage" / "layout" / "blobs" / "sha256").iterdir())  # no layer, no temporary file


def test_links_that_stay_below_the_root_are_kept():
    assert not _climbs_out(f"{APP}/app/link", "../../etc")  # /app/app/link -> /etc
    assert not _climbs_out(f"{APP}/app/link", "/anywhere/at/all")
    assert _climbs_out(f"{APP}/app/link", "../../../etc") and _climbs_out(f"{APP}/link", "../..")


def test_a_big_tree_is_left_to_the_dockerfiles_stage(tmp_path, monkeypatch):
    """Past MAX_ARCHIVE_BYTES an edit would write and send the whole layer, where the
    Dockerfile's COPY sends only the file that changed."""
    root = _project(tmp_path)
    tree = plan(root, ("app/",), rules(IGNORE))
    assert tree is not None
    total = sum(os.lstat(root / e.origin).st_size for e in tree.values() if e.kind == "file")
    monkeypatch.setattr("imagesmith.source_context.MAX_ARCHIVE_BYTES", total - 1)
    assert Stager(tmp_path / "stage").sync(root, tree) is None
    monkeypatch.setattr("imagesmith.source_context.MAX_ARCHIVE_BYTES", total)
    assert Stager(tmp_path / "stage").sync(root, tree) is not None


AMD64 = ("linux/amd64",)


def _layout(context: str) -> tuple[Path, dict]:
    """The layout folder and the manifest an ``oci-layout://DIR@DIGEST`` context names."""
    folder, _, digest = context.removeprefix("oci-layout://").partition("@")
    blob = Path(folder) / "blobs" / "sha256" / digest.removeprefix("sha256:")
    assert __import__("hashlib").sha256(blob.read_bytes()).hexdigest() == blob.name
    return Path(folder), json.loads(blob.read_bytes())


def test_staged_yields_none_when_the_rules_are_not_exact(tmp_path):
    root = _project(tmp_path)
    with staged(root, ("app/",), IGNORE + "!keep\n", tmp_path / "cache", AMD64) as contexts:
        assert contexts is None
    with staged(root, ("app/",), IGNORE, tmp_path / "cache", AMD64) as contexts:
        assert contexts is not None and list(contexts) == list(AMD64)
        folder, manifest = _layout(contexts["linux/amd64"])
        layer = _blob(folder.parent, manifest["layers"][0]["digest"])
        assert f"{APP}/app/main.py" in _members(layer)


def test_each_platform_gets_a_manifest_of_the_same_layer(tmp_path):
    """A valid OCI image layout: index.json lists each platform's manifest, each names its
    config (the platform, the layer as its one diff_id) and the same uncompressed layer."""
    root = _project(tmp_path)
    platforms = ("linux/arm64", "linux/amd64", "linux/arm/v7")
    with staged(root, ("app/",), IGNORE, tmp_path / "cache", platforms) as contexts:
        assert contexts is not None and sorted(contexts) == sorted(platforms)
        seen = {}
        for platform, context in contexts.items():
            folder, manifest = _layout(context)
            (layer,) = manifest["layers"]
            assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
            blob = _blob(folder.parent, layer["digest"])
            assert layer["size"] == blob.stat().st_size
            config = json.loads(_blob(folder.parent, manifest["config"]["digest"]).read_bytes())
            assert config["rootfs"] == {"type": "layers", "diff_ids": [layer["digest"]]}
            assert (
                "/".join([config["os"], config["architecture"], *([config["variant"]] if "variant" in config else [])])
                == platform
            )
            seen[platform] = layer["digest"]
        assert len(set(seen.values())) == 1
        index = json.loads((folder / "index.json").read_text())
        assert sorted(m["digest"] for m in index["manifests"]) == sorted(
            c.rpartition("@")[2] for c in contexts.values()
        )
        assert json.loads((folder / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}


def test_the_manifest_is_the_same_for_the_same_layer():
    assert image_of("sha256:" + "a" * 64, 10, "linux/amd64") == image_of("sha256:" + "a" * 64, 10, "linux/amd64")
    assert image_of("sha256:" + "a" * 64, 10, "linux/amd64") != image_of("sha256:" + "a" * 64, 10, "linux/arm64")


def test_an_edit_leaves_only_the_new_images_blobs(tmp_path, monkeypatch):
    monkeypatch.setattr("imagesmith.statcache.SETTLE_NS", 0)
    root = _project(tmp_path)
    with staged(root, ("app/",), IGNORE, tmp_path / "cache", AMD64) as contexts:
        assert contexts is not None
        folder, _ = _layout(contexts["linux/amd64"])
    (root / "app" / "main.py").write_text("print('edited')\n")
    with staged(root, ("app/",), IGNORE, tmp_path / "cache", AMD64) as again:
        assert again is not None and again != contexts
        _, manifest = _layout(again["linux/amd64"])
    blobs = {p.name for p in (folder / "blobs" / "sha256").iterdir()}
    wanted = {manifest["layers"][0]["digest"], manifest["config"]["digest"], again["linux/amd64"].rpartition("@")[2]}
    assert blobs == {d.removeprefix("sha256:") for d in wanted}


def test_a_whiteout_name_is_not_staged(tmp_path):
    """Unpacking a layer deletes the file a ``.wh.NAME`` entry names; COPY copies it as a file."""
    root = _project(tmp_path)
    (root / "app" / ".wh.main.py").write_text("x")
    assert plan(root, ("app/",), rules(IGNORE)) is None
    assert plan(root, ("bin/",), rules(IGNORE)) is not None


def test_the_earlier_versions_staged_folders_are_removed(tmp_path):
    root = _project(tmp_path)
    with staged(root, ("app/",), IGNORE, tmp_path / "cache", AMD64) as contexts:
        assert contexts is not None
    folder = _layout(contexts["linux/amd64"])[0].parent
    for older in ("tree", "context"):
        (folder / older / APP).mkdir(parents=True)
    (folder / "state.json").write_text('{"format": 2, "files": {}}')
    with staged(root, ("app/",), IGNORE, tmp_path / "cache", AMD64) as again:
        assert again == contexts
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["layout"]


def test_trees_of_projects_gone_for_a_day_are_pruned(tmp_path):
    cache = tmp_path / "cache"
    gone, kept = _project(tmp_path / "gone"), _project(tmp_path / "kept")
    for root in (gone, kept):
        with staged(root, ("app/",), IGNORE, cache, AMD64) as contexts:
            assert contexts is not None
    folders = {p.parent.name: p for p in (cache / "sources").glob("*/root")}
    assert len(folders) == 2
    import shutil

    shutil.rmtree(gone)
    for path in folders.values():  # both staged two days ago
        os.utime(path.parent / "lock", (0, 0))
    os.utime(cache / "sources" / ".pruned", (0, 0))  # and the last pruning a day ago
    with staged(kept, ("app/",), IGNORE, cache, AMD64) as contexts:
        assert contexts is not None
    left = [p.read_text() for p in (cache / "sources").glob("*/root")]
    assert left == [str(kept.resolve())]


def test_pruning_removes_only_folders_named_as_imagesmith_names_them(tmp_path):
    """A cache folder that is a link to the user's own folder (or XDG_CACHE_HOME=$HOME): a folder
    of theirs holding files named ``lock`` and ``root`` (naming a path that is gone) is theirs."""
    cache = tmp_path / "cache"
    kept = _project(tmp_path / "kept")
    theirs = cache / "sources" / "notes"
    theirs.mkdir(parents=True)
    (theirs / "root").write_text(str(tmp_path / "gone"))
    (theirs / "lock").write_text("")
    os.utime(theirs / "lock", (0, 0))
    with staged(kept, ("app/",), IGNORE, cache, AMD64) as contexts:
        assert contexts is not None
    os.utime(cache / "sources" / ".pruned", (0, 0))
    with staged(kept, ("app/",), IGNORE, cache, AMD64) as contexts:
        assert contexts is not None
    assert (theirs / "root").is_file() and (theirs / "lock").is_file()
