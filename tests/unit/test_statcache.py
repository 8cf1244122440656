"""The stat cache behind a no-op ``imagesmith lock`` (imagesmith/statcache.py): an unchanged file
is not read again, and any change, also one within the same second that keeps the size and puts
the mtime back, makes the lock stale."""

from __future__ import annotations

import os

import pytest

from imagesmith import statcache
from imagesmith.lock.inputs import compute_inputs
from imagesmith.lock.update import check_lock, lock_project
from imagesmith.spec.load import load_spec
from imagesmith.statcache import StatCache
from tests.unit.test_lock import RecordingEngine, RecordingResolver


def locked_project(tmp_path, monkeypatch):
    """A small project with preprocessing files, locked (fake resolver and engine), its caches
    under tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "proj"
    (root / "prep").mkdir(parents=True)
    (root / "prep" / "clean.py").write_text("X = 1\n")
    (root / "requirements.txt").write_text("six\n")
    (root / "imagesmith.yaml").write_text(
        'name: p\npython: "3.11"\nbase: python:3.11-slim\nrequirements: requirements.txt\n'
        'preprocessing: [prep/]\ntrain: {command: ["python", "-V"]}\nserve: {command: ["python", "-V"]}\n'
    )
    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: RecordingResolver())
    lock_project(load_spec(root), RecordingEngine())
    return root


@pytest.fixture
def project(tmp_path, monkeypatch):
    return locked_project(tmp_path, monkeypatch)


@pytest.fixture
def counted(monkeypatch):
    """Every file the cache reads, by name; entries kept at once (no settling time)."""
    reads: list[str] = []
    real = statcache.sha256_file

    def sha256_file(path):
        reads.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(statcache, "sha256_file", sha256_file)
    monkeypatch.setattr(statcache, "SETTLE_NS", 0)
    return reads


def _same_size_same_mtime_edit(path, text: str) -> None:
    """Rewrite ``path`` with other bytes of the same length and put its mtime back (ns): only
    its ctime tells (the kernel sets it; nobody can set it back)."""
    before = os.stat(path)
    assert len(text.encode()) == before.st_size
    with open(path, "w") as fh:
        fh.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def test_an_unchanged_project_is_not_read_again(project, counted):
    spec = load_spec(project)
    first = compute_inputs(spec, spec.base)
    assert sorted(counted) == ["clean.py", "requirements.txt"]
    counted.clear()
    assert compute_inputs(load_spec(project), spec.base) == first
    assert counted == []
    assert check_lock(load_spec(project)) == []


@pytest.mark.parametrize(
    "name, text, input_name",
    [("requirements.txt", "abc\n", "requirements"), ("prep/clean.py", "X = 2\n", "preprocessing")],
)
def test_an_edit_within_the_same_second_makes_the_lock_stale(project, counted, name, text, input_name):
    spec = load_spec(project)
    compute_inputs(spec, spec.base)  # cached now
    assert check_lock(load_spec(project)) == []
    _same_size_same_mtime_edit(project / name, text)
    assert check_lock(load_spec(project)) == [input_name]
    assert os.path.basename(name) in counted


def test_an_added_or_removed_preprocessing_file_makes_the_lock_stale(project, counted):
    compute_inputs(load_spec(project), "python:3.11-slim")
    (project / "prep" / "more.py").write_text("Y = 1\n")
    assert check_lock(load_spec(project)) == ["preprocessing"]
    (project / "prep" / "more.py").unlink()
    assert check_lock(load_spec(project)) == []


def test_a_file_hashed_right_after_it_changed_is_not_kept(tmp_path, monkeypatch):
    """Racily clean (git's term): a file modified within SETTLE_NS of being hashed could change
    again within one timestamp tick of a coarse file system, so it is hashed again next time."""
    cache = StatCache(tmp_path / "c.json")
    f = tmp_path / "f.txt"
    f.write_text("one\n")
    assert cache.sha256(f) == StatCache(None).sha256(f)
    cache.save()
    assert not (tmp_path / "c.json").exists()  # nothing settled to keep
    monkeypatch.setattr(statcache, "SETTLE_NS", 0)
    cache.sha256(f)
    cache.save()
    assert str(os.path.realpath(f)) in StatCache(tmp_path / "c.json")._entries


def test_an_unreadable_cache_is_ignored(tmp_path):
    (tmp_path / "c.json").write_text("{not json")
    f = tmp_path / "f.txt"
    f.write_text("one\n")
    assert StatCache(tmp_path / "c.json").sha256(f).startswith("sha256:")


def _entry(folder, name, root, age_s):
    path = folder / f"{__import__('hashlib').sha256(name.encode()).hexdigest()[:24]}.json"  # as project_key names it
    path.write_text(__import__("json").dumps({"root": root} if root is not None else {"files": {}}))
    then = __import__("time").time() - age_s
    os.utime(path, (then, then))
    return path


def test_entries_of_projects_gone_for_a_day_are_pruned_once_a_day(tmp_path):
    from imagesmith.cache import PRUNE_AFTER_S, prune_gone

    folder = tmp_path / "stat"
    folder.mkdir()
    alive = tmp_path / "alive"
    alive.mkdir()
    day = PRUNE_AFTER_S
    gone_old = _entry(folder, "gone-old", str(tmp_path / "gone"), 2 * day)
    gone_new = _entry(folder, "gone-new", str(tmp_path / "gone"), 60)  # maybe being rebuilt: kept
    alive_old = _entry(folder, "alive-old", str(alive), 2 * day)
    nameless_old = _entry(folder, "nameless-old", None, 2 * day)  # written before entries named their project
    prune_gone(folder)
    assert sorted(p.name for p in folder.glob("*.json")) == sorted([alive_old.name, gone_new.name])
    assert not gone_old.exists() and not nameless_old.exists()
    again = _entry(folder, "gone-again", str(tmp_path / "gone"), 2 * day)
    prune_gone(folder)  # pruned within the day: one stat, nothing read
    assert again.exists()
    os.utime(folder / ".pruned", (0, 0))
    prune_gone(folder)
    assert not again.exists() and alive_old.exists()


def test_pruning_removes_only_files_a_project_key_names(tmp_path):
    """A cache folder that is a link to the user's own folder (or XDG_CACHE_HOME set to $HOME, a
    folder named imagesmith/stat there) holds JSON files that name no project: none is removed."""
    from imagesmith.cache import PRUNE_AFTER_S, prune_gone

    own = tmp_path / "home" / "notes"
    own.mkdir(parents=True)
    (tmp_path / "stat").symlink_to(own)
    users = [own / "package.json", own / "settings.json", own / ("a" * 24 + ".JSON")]
    for path in users:
        path.write_text("{}")
        os.utime(path, (0, 0))
    entry = _entry(own, "gone", str(tmp_path / "gone"), 2 * PRUNE_AFTER_S)
    prune_gone(tmp_path / "stat")
    assert all(path.exists() for path in users) and not entry.exists()


def test_the_caches_name_their_project_and_prune_on_write(tmp_path, monkeypatch):
    """The stat cache and the render memo write the project's path beside their entries, and a
    write prunes the entries of projects that went away."""
    import json

    from imagesmith.render import render

    monkeypatch.setattr(statcache, "SETTLE_NS", 0)  # files are remembered at once: the cache is written
    root = locked_project(tmp_path, monkeypatch)
    cache = tmp_path / "cache" / "imagesmith"
    stat_files = list((cache / "stat").glob("*.json"))
    assert [json.loads(p.read_text())["root"] for p in stat_files] == [str(root.resolve())]
    gone_stat = _entry(cache / "stat", "gone", str(tmp_path / "gone"), 3 * 86_400)
    os.utime(cache / "stat" / ".pruned", (0, 0))  # the lock's save pruned; the last was a day ago now
    (cache / "render").mkdir(parents=True, exist_ok=True)
    gone_render = _entry(cache / "render", "gone", str(tmp_path / "gone"), 3 * 86_400)
    spec = load_spec(root)
    from imagesmith.lock.lockfile import read_locks

    render(spec, read_locks(spec.lock_path))
    memo = [p for p in (cache / "render").glob("*.json") if p != gone_render]
    assert [json.loads(p.read_text())["root"] for p in memo] == [str(root.resolve())]
    assert not gone_render.exists()
    (root / "prep" / "clean.py").write_text("X = 2\n")
    assert check_lock(spec) != []  # hashed again: the stat cache is written
    assert not gone_stat.exists()
