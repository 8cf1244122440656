"""Unit tests for verify/diff logic with fake data: the comparison of views (grouping, wording,
what explains what), the image view built from probe facts, the layer rule, and the probe itself
run on a fake venv on this machine (it is standard-library only)."""

from __future__ import annotations

import base64
import hashlib
import json
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from imagesmith import parity
from imagesmith.diff import Change, DiffResult, Dist, View, compare
from imagesmith.engine import HistoryEntry, ImageInfo, registry_host, repository
from imagesmith.verify import layers_added
from imagesmith.verify_base import BaseCheck
from imagesmith.verify_inspect import inspect_lines
from imagesmith.verify_probe import PROBE
from imagesmith.verify_source import Source
from imagesmith.verify_views import claim_view, expected_env, image_view
from tests.helpers import fake_lock

H = "sha256:" + "1" * 64


def manifest(**changes) -> dict:
    m = parity.manifest_from_lock(fake_lock())
    m.update(changes)
    return m


def view(name="A", **changes) -> View:
    v = claim_view(manifest(), name)
    for k, val in changes.items():
        setattr(v, k, val)
    return v


def kinds(changes):
    return {(c.group, c.kind, c.name) for c in changes}


# --- compare --------------------------------------------------------------------------------------


def test_equal_views_have_no_difference():
    assert compare(view(), view("B")) == []


def test_distribution_changes_are_grouped_by_kind():
    a = view(
        packages={
            "six": Dist("1.17.0", ("sha256:aa",)),
            "gone": Dist("1.0", ("sha256:g",)),
            "same": Dist("2.0", ("sha256:s",)),
        }
    )
    b = view(
        "B",
        packages={
            "six": Dist("1.16.0", ("sha256:bb",)),
            "new": Dist("0.1", None),
            "same": Dist("2.0", ("sha256:other",)),
        },
    )
    changes = compare(a, b)
    assert [(c.kind, c.name, c.a, c.b) for c in changes] == [
        ("removed", "gone", "1.0", None),
        ("added", "new", None, "0.1"),
        ("hash_changed", "same", "2.0", "2.0"),
        ("version_changed", "six", "1.17.0", "1.16.0"),
    ]
    assert changes[2].detail == "other wheel hashes"


def test_same_version_with_other_files_names_the_files():
    a = view(packages={"six": Dist("1.17.0", None, "c1", {"six.py": "1", "x.py": "2"})})
    b = view("B", packages={"six": Dist("1.17.0", None, "c2", {"six.py": "9", "x.py": "2"})})
    (change,) = compare(a, b)
    assert change.kind == "hash_changed" and change.detail == "installed files differ: six.py"
    # one side observed against a claim: what does not match the RECORD is named, per side
    b = view(
        "the image",
        packages={
            "six": Dist(
                "1.17.0", ("sha256:aa",), "c2", None, ("six.py", "__pycache__/six.cpython-311.pyc (stale bytecode)")
            )
        },
    )
    a = view("the manifest", packages={"six": Dist("1.17.0", ("sha256:aa",))})
    (change,) = compare(a, b)
    assert change.line("the manifest", "the image") == (
        "distributions: six 1.17.0 differs: in the image six.py, __pycache__/six.cpython-311.pyc (stale bytecode) "
        "differ from what the distribution installed"
    )


def test_unrecorded_files_compare_only_when_both_sides_observed():
    a, b = view(unrecorded={}), view("B", unrecorded={"evil.pth": "ab" * 32})
    (change,) = compare(a, b)
    assert (change.group, change.kind, change.name, change.a) == ("distributions", "unrecorded", "evil.pth", None)
    assert change.b == "sha256:" + "ab" * 32
    assert compare(view(unrecorded=None), b) == []


def test_system_packages_full_lists_or_pins():
    a = view(system_packages={"libgomp1": "12.2.0-14", "bash": "5.2"}, system_complete=True)
    b = view("B", system_packages={"libgomp1": "12.2.0-14", "bash": "5.2", "curl": "7"}, system_complete=True)
    assert kinds(compare(a, b)) == {("system_packages", "added", "curl")}
    pins = view(system_packages={"libgomp1": "12.2.0-15"}, system_complete=False)
    changes = compare(pins, b)  # a lock pins one package: the base's others are no difference
    assert [(c.kind, c.name, c.a, c.b) for c in changes] == [("changed", "libgomp1", "12.2.0-15", "12.2.0-14")]


def test_preprocessing_files_and_version():
    a = view(preprocessing={"app/prep.py": H}, preprocessing_version="0+sha256.aaa")
    b = view("B", preprocessing={"app/prep.py": None}, preprocessing_version="0+sha256.bbb")
    assert kinds(compare(a, b)) == {
        ("preprocessing", "removed", "app/prep.py"),
        ("preprocessing", "changed", "preprocessing version"),
    }
    assert compare(a, view("B", preprocessing={"app/prep.py": H}, preprocessing_version=None)) == []


def test_seed_change_explains_its_environment_variables():
    a = claim_view(manifest(seed=7), "A")
    b = claim_view(manifest(seed=8), "B")
    changes = compare(a, b)
    assert [(c.name, c.a, c.b) for c in changes] == [("seed", 7, 8)]  # not also PYTHONHASHSEED
    b = claim_view(manifest(), "B")
    b.env = dict(b.env, PYTHONHASHSEED="1")  # set on its own: a difference of its own
    assert [(c.kind, c.name, c.a, c.b) for c in compare(a, b)] == [("changed", "PYTHONHASHSEED", "7", "1")]
    b = claim_view(manifest(), "B")
    b.env = dict(b.env, PYTHONPATH="/evil")
    assert [(c.kind, c.name) for c in compare(a, b)] == [("added", "PYTHONPATH")]


def test_determinism_change_explains_its_variables_but_not_a_changed_env():
    a = claim_view(manifest(determinism=False), "A")
    b = claim_view(manifest(determinism=True), "B")
    assert [(c.name, c.a, c.b) for c in compare(a, b)] == [("determinism", "off", "on")]
    b = claim_view(manifest(env={"A": "other"}), "B")
    assert [(c.name, c.a, c.b) for c in compare(a, b)] == [("A", 'quote " dollar $HOME back\\slash', "other")]


def test_change_lines_for_verify_and_diff():
    c = Change("distributions", "version_changed", "six", "1.17.0", "1.16.0")
    assert c.line("the manifest", "the image") == "distributions: six: 1.17.0 in the manifest, 1.16.0 in the image"
    assert c.short() == "six: 1.17.0 -> 1.16.0"
    gone = Change("distributions", "removed", "six", "1.17.0", None)
    assert gone.line("the manifest", "the image") == "distributions: six 1.17.0 is in the manifest but not in the image"
    base = Change("base", "changed", "base", "sha256:" + "a" * 64, "not sha256:" + "a" * 64)
    assert base.short() == "base: sha256:aaaaaaaaaaaa… -> not sha256:aaaaaaaaaaaa…"


def test_diff_result_groups_in_order_and_counts():
    changes = compare(
        claim_view(manifest(seed=1, runtime=None), "lock x"), view("image y", packages={}, python="3.12.0")
    )
    result = DiffResult(claim_view(manifest(), "lock x"), view("image y"), changes, ["a note"])
    data = result.as_json()
    assert list(data["groups"]) == ["python", "distributions", "seed_env"]
    assert data["differences"] == 3 and data["equal"] is False and data["notes"] == ["a note"]
    lines = result.lines()
    assert lines[2:] == [
        "Python:",
        "  python: 3.11.9 -> 3.12.0",
        "distributions (removed):",
        "  - six 1.17.0",
        "seed and environment:",
        "  seed: 1 -> 7",
        "note: a note",
        "3 differences",
    ]
    assert json.loads(json.dumps(data)) == data  # JSON-clean


# --- the image view from probe facts --------------------------------------------------------------


def info(env=(), layers=("sha256:l1",), history=None, labels=None) -> ImageInfo:
    return ImageInfo(
        ref="img",
        id="sha256:" + "9" * 64,
        labels=labels or {},
        layers=tuple(layers),
        repo_digests=(),
        config={"Env": list(env)},
        size=0,
        created="",
        history=history,
    )


def source(m: dict) -> Source:
    return Source(ref="img", kind="image", manifest=m)


def facts(**changes) -> dict:
    record = {
        "version": "1.17.0",
        "files": 3,
        "mismatched": [],
        "missing": [],
        "stale_bytecode": [],
        "unhashed": [],
        "error": None,
        "content": "c",
    }
    f = {
        "python": "3.11.9",
        "platform": "linux/amd64",
        "pyvenv_cfg": {},
        "path_python": "/opt/venv/bin/python",
        "distributions": {"six": dict(record), "imagesmith-runtime": dict(record, version=fake_lock().runtime.version)},
        "duplicates": [],
        "unrecorded": {},
        "preprocessing": {"app/prep.py": {"app": "sha256:" + "c" * 64, "site": None, "owner": None}},
        "preprocessing_stale_bytecode": [],
        "dpkg": {"libgomp1": "12.2.0-14", "bash": "5.2"},
    }
    f.update(changes)
    return f


def env_of(m: dict) -> list[str]:
    return [f"{k}={v}" for k, v in expected_env(m).items()]


def test_image_view_of_a_faithful_image_equals_its_claim():
    m = manifest()
    observed = image_view(source(m), info(env_of(m)), facts(), BaseCheck("ok", ""))
    assert compare(claim_view(m, "the manifest"), observed) == []
    assert observed.system_complete and observed.python == "3.11.9"


def test_image_view_finds_what_changed_inside():
    m = manifest()
    pth = {"evil.pth": "e" * 64, "imagesmith_image.json": "f" * 64, "notes.txt": "0" * 64}
    f = facts(
        unrecorded=pth,
        python="3.11.2",
        preprocessing={"app/prep.py": {"app": None, "site": "sha256:" + "d" * 64, "owner": "x-preprocessing"}},
        preprocessing_stale_bytecode=[["app/prep.py", "/site/app/__pycache__/prep.cpython-311.pyc"]],
    )
    version = m.get("preprocessing_version") or "0+sha256.abc"
    f["distributions"]["x-preprocessing"] = dict(f["distributions"]["six"], version=version)
    f["distributions"]["six"]["version"] = "1.16.0"
    observed = image_view(
        source(m),
        info([e for e in env_of(m) if not e.startswith("IMAGESMITH_SEED")]),
        f,
        BaseCheck("mismatch", "x"),
        code_only=True,
    )
    got = {(c.group, c.kind, c.name): c for c in compare(claim_view(m, "the manifest"), observed)}
    assert set(got) == {
        ("base", "changed", "base"),
        ("python", "changed", "python"),
        ("distributions", "version_changed", "six"),
        ("distributions", "unrecorded", "evil.pth"),
        ("preprocessing", "changed", "app/prep.py"),
        ("seed_env", "changed", "seed"),
    }  # not notes.txt, not the json
    assert got[("preprocessing", "changed", "app/prep.py")].b.endswith(
        "(stale bytecode /site/app/__pycache__/prep.cpython-311.pyc)"
    )
    assert got[("seed_env", "changed", "seed")].b is None
    assert observed.preprocessing_version == version  # the preprocessing wheel, not a distribution


def test_image_view_labels_only_observes_config_only():
    m = manifest()
    observed = image_view(source(m), info(env_of(m) + ["PYTHONPATH=/x"]), None, BaseCheck("unknown", ""))
    assert kinds(compare(claim_view(m, "m"), observed)) == {("seed_env", "added", "PYTHONPATH")}
    # a watched variable the base itself sets is the base's (pinned by the base digest)
    observed = image_view(
        source(m), info(env_of(m) + ["PYTHONPATH=/x"]), None, BaseCheck("ok", "", {"PYTHONPATH": "/x"})
    )
    assert compare(claim_view(m, "m"), observed) == []


def test_the_expected_env_of_a_manifest_is_the_plans():
    from imagesmith.plan import plan_for
    from imagesmith.spec.load import load_spec

    m = manifest()
    assert expected_env(m)["PYTHONHASHSEED"] == "7"
    spec = load_spec(Path(__file__).resolve().parent.parent / "projects" / "tiny")
    assert expected_env(m) == plan_for(spec, fake_lock()).env


# --- layers on top ---------------------------------------------------------------------------------


def _h(created_by, empty):
    return HistoryEntry(created_by, empty)


def test_layers_added_count_what_the_dockerfile_makes_never_the_history():
    base = BaseCheck("ok", "", {}, info(layers=("sha256:b1",)))
    facts_file = {"manifest": manifest(), "steps": ["python-env", "workdir", "venv-env", "project-setup", "source"]}
    built = info(layers=("sha256:b1", "sha256:2", "sha256:3", "sha256:4", "sha256:5"))
    assert layers_added(built, base, facts_file) == 0
    # a child that restates the parity label after its RUN: the history would hide it, the count does not
    relabelled = info(
        layers=built.layers + ("sha256:6",),
        history=(_h("RUN edit /app", False), _h("LABEL io.imagesmith.parity=sha256:x", True)),
    )
    assert layers_added(relabelled, base, facts_file) == 1
    assert layers_added(info(layers=built.layers[:-1]), base, facts_file) == -1
    assert layers_added(built, BaseCheck("unknown", ""), facts_file) is None  # no base: cannot tell
    assert layers_added(built, base, None) is None  # no facts file: cannot tell
    assert layers_added(built, base, {**facts_file, "steps": ["a step imagesmith does not make"]}) is None


# --- the config: what the Dockerfile sets over the base's ------------------------------------------


def test_expected_config_lays_the_dockerfile_over_the_base():
    from imagesmith.plan import expected_config, normalize_config

    base = normalize_config(
        {
            "Env": ["PATH=/usr/bin", "LANG=C.UTF-8"],
            "Cmd": ["bash"],
            "Labels": {"b": "1"},
            "ExposedPorts": {"22/tcp": {}},
        }
    )
    implied = {
        "Entrypoint": ["x"],
        "Env": {"PATH": "/opt/venv/bin"},
        "Labels": {"r": "serve"},
        "ExposedPorts": ["80/tcp"],
    }
    want = expected_config(base, implied)
    assert want["Env"] == {"LANG": "C.UTF-8", "PATH": "/opt/venv/bin"}
    assert want["Labels"] == {"b": "1", "r": "serve"}
    assert want["ExposedPorts"] == ["22/tcp", "80/tcp"]
    assert want["Cmd"] == []  # ENTRYPOINT resets the base's CMD
    assert want["User"] == ""  # left to the base


def test_config_problems_name_every_difference():
    from imagesmith.plan import expected_config, normalize_config
    from imagesmith.record import config_problems

    implied = {
        "Entrypoint": ["/opt/venv/bin/python", "-m", "rt", "serve", "--"],
        "Cmd": ["uvicorn", "app:app"],
        "WorkingDir": "/app",
        "Env": {"PYTHONHASHSEED": "42"},
        "ExposedPorts": ["8000/tcp"],
        "Labels": {"io.imagesmith.role": "serve", "org.opencontainers.image.created": None},
    }
    base = normalize_config({"Env": ["LANG=C.UTF-8"]})
    want = expected_config(base, implied)
    good = {
        "Entrypoint": implied["Entrypoint"],
        "Cmd": implied["Cmd"],
        "WorkingDir": "/app",
        "Env": ["LANG=C.UTF-8", "PYTHONHASHSEED=42"],
        "ExposedPorts": {"8000/tcp": {}},
        "Labels": {"io.imagesmith.role": "serve", "org.opencontainers.image.created": "2026-01-01"},
    }
    assert config_problems(want, normalize_config(good), base_known=True, whose="D") == []
    child = dict(
        good,
        Cmd=["python", "-c", "evil"],
        Env=good["Env"] + ["IMAGESMITH_ALLOW_MISMATCH=1", "LD_AUDIT=/x.so"],
        User="0",
        Volumes={"/data": {}},
        Labels={"io.imagesmith.role": "serve"},
        StopSignal="SIGKILL",
    )
    problems = config_problems(want, normalize_config(child), base_known=True, whose="D")
    text = "\n".join(problems)
    for needle in (
        "Cmd is",
        "ENV IMAGESMITH_ALLOW_MISMATCH=1 is not set by D",
        "ENV LD_AUDIT=/x.so",
        "User is",
        "Volumes /data",
        "LABEL org.opencontainers.image.created is missing",
        "StopSignal",
    ):
        assert needle in text, (needle, problems)
    # the base unknown: only what the Dockerfile sets is known, and every extra variable is suspect
    unknown = config_problems(expected_config(None, implied), normalize_config(good), base_known=False, whose="D")
    assert unknown == ["ENV LANG=C.UTF-8 is not set by D (the base image could not be read to tell whether it sets it)"]


def test_layer_problems_tell_a_child_from_an_altered_image():
    from imagesmith.record import layer_problems

    assert layer_problems(["a", "b"], ["a", "b"], "R") == []
    assert "1 filesystem layer was added on top of R" in layer_problems(["a", "b"], ["a", "b", "c"], "R")[0]
    assert "layer 2 of 2 is not the recorded one" in layer_problems(["a", "b"], ["a", "x"], "R")[0]


def test_app_tree_and_its_differences():
    from imagesmith.engine import FileEntry
    from imagesmith.record import app_tree, tree_digest, tree_problems

    entries = (
        FileEntry("/app", "dir", 0o755, 0),
        FileEntry("/app/train.py", "file", 0o644, 0, sha256="sha256:a"),
        FileEntry("/app/run.sh", "file", 0o755, 0, sha256="sha256:b"),
        FileEntry("/app/link", "symlink", 0o777, 0, target="train.py"),
    )
    tree = app_tree(entries)
    assert tree == {"link": "-> train.py", "run.sh": "sha256:b +x", "train.py": "sha256:a"}
    assert tree_digest(tree) == tree_digest(dict(reversed(tree.items())))
    edited = dict(tree, **{"train.py": "sha256:z", "new.py": "sha256:n"})
    del edited["link"]
    assert tree_problems(tree, edited, "R") == [
        "/app: train.py changed since R",
        "/app: new.py added since R",
        "/app: link removed since R",
    ]


def test_links_are_resolved_inside_the_image():
    from imagesmith.engine import FileEntry
    from imagesmith.verify_outside import _resolve

    fs = {
        "/opt/venv/bin/python": FileEntry("/opt/venv/bin/python", "symlink", 0o777, 0, target="python3"),
        "/opt/venv/bin/python3": FileEntry("/opt/venv/bin/python3", "symlink", 0o777, 0, target="/usr/bin/python3"),
        "/usr/bin/python3": FileEntry("/usr/bin/python3", "symlink", 0o777, 0, target="../bin/./python3.11"),
        "/usr/bin/python3.11": FileEntry("/usr/bin/python3.11", "file", 0o755, 0, sha256="sha256:p"),
        "/loop": FileEntry("/loop", "symlink", 0o777, 0, target="/loop"),
    }

    def read(path, first=None):
        return (fs[path],) if path in fs else None

    path, entries = _resolve(read, "/opt/venv/bin/python")
    assert path == "/usr/bin/python3.11" and entries[0].sha256 == "sha256:p"
    assert _resolve(read, "/loop")[1] == ()
    assert _resolve(read, "/missing") == ("/missing", ())


# --- small helpers ----------------------------------------------------------------------------------


def test_registry_references_follow_docker_s_rule():
    assert registry_host("127.0.0.1:5000/app:serve") == "127.0.0.1:5000"
    assert registry_host("ghcr.io/org/app@sha256:" + "a" * 64) == "ghcr.io"
    assert registry_host("localhost/app") == "localhost"
    for local in ("app:serve", "imagesmith-test/iris:serve", "sha256:" + "a" * 64):
        assert registry_host(local) is None
    assert repository("127.0.0.1:5000/a/b:tag") == "127.0.0.1:5000/a/b"
    assert repository("127.0.0.1:5000/a/b@sha256:" + "a" * 64) == "127.0.0.1:5000/a/b"


def test_inspect_lines_are_readable():
    m = manifest()
    lines = inspect_lines(
        {
            "kind": "image",
            "source": "x:serve",
            "id": "sha256:1",
            "parity": parity.digest(m),
            "label_ok": False,
            "role": "serve",
            "base_name": "python:3.11-slim",
            "manifest": m,
        }
    )
    text = "\n".join(lines)
    assert "(DOES NOT MATCH the manifest: forged or edited)" in text
    assert "python:   3.11.9 on linux/amd64" in text and "seed:     7, determinism off" in text
    assert "  six  1.17.0  (1 hash)" in text and "  libgomp1=12.2.0-14" in text
    assert "  app/prep.py  " + "sha256:" + "c" * 64 in text
    assert "runtime:  imagesmith-runtime 0+sha256.dddddddddddd" in text


# --- the probe, run on a fake venv here ----------------------------------------------------------


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@pytest.fixture()
def fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    info_dir = site / "demo-1.0.dist-info"
    info_dir.mkdir(parents=True)
    files = {
        "demo.py": b"X = 1\n",
        "demo_extra.py": b"Y = 2\n",
        "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: Demo\nVersion: 1.0\n",
    }
    for rel, data in files.items():
        (site / rel).write_bytes(data)
    record = "".join(f"{rel},{_record_hash(data)},{len(data)}\n" for rel, data in files.items())
    (info_dir / "RECORD").write_text(record + "demo-1.0.dist-info/RECORD,,\n")
    py_compile.compile(str(site / "demo.py"), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    return venv


def _run_probe(venv: Path, **options) -> dict:
    opts = json.dumps({"venv": str(venv), "app": str(venv.parent / "app"), **options})
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE.read_text(), opts], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_probe_reports_a_clean_distribution(fake_venv):
    f = _run_probe(fake_venv, files=True)
    demo = f["distributions"]["demo"]
    assert demo["version"] == "1.0" and demo["files"] == 3
    assert demo["mismatched"] == demo["missing"] == demo["stale_bytecode"] == []
    assert demo["file_hashes"]["demo.py"] == hashlib.sha256(b"X = 1\n").hexdigest()
    assert f["unrecorded"] == {} and f["pyvenv_cfg"]["include-system-site-packages"] == "false"
    assert f["python"] == ".".join(map(str, sys.version_info[:3]))


def test_probe_finds_edits_removals_extras_and_stale_bytecode(fake_venv):
    site = next(fake_venv.glob("lib/python*/site-packages"))
    content = _run_probe(fake_venv)["distributions"]["demo"]["content"]
    (site / "demo.py").write_bytes(b"X = 2\n")  # its unchecked .pyc still holds X = 1
    (site / "demo_extra.py").unlink()
    (site / "evil.pth").write_text("import os\n")
    app = fake_venv.parent / "app" / "pre"
    app.mkdir(parents=True)
    (app / "p.py").write_bytes(b"Z = 3\n")
    f = _run_probe(fake_venv, preprocessing=["pre/p.py", "pre/missing.py"])
    demo = f["distributions"]["demo"]
    assert demo["mismatched"] == ["demo.py"] and demo["missing"] == ["demo_extra.py"]
    assert demo["stale_bytecode"] == [f"__pycache__/demo.cpython-{sys.version_info[0]}{sys.version_info[1]}.pyc"]
    assert demo["content"] != content
    assert f["unrecorded"] == {"evil.pth": hashlib.sha256(b"import os\n").hexdigest()}
    assert f["preprocessing"]["pre/p.py"]["app"] == "sha256:" + hashlib.sha256(b"Z = 3\n").hexdigest()
    assert f["preprocessing"]["pre/missing.py"] == {"app": None, "site": None, "owner": None}


def test_probe_without_a_venv_reports_nothing_installed(tmp_path):
    f = _run_probe(tmp_path / "none")
    assert f["site_packages"] is None and f["distributions"] == {} and f["pyvenv_cfg"] is None


def test_the_runtime_distribution_is_checked_like_a_locked_one():
    m = manifest()
    f = facts()
    f["distributions"]["imagesmith-runtime"]["mismatched"] = ["imagesmith_runtime/stamp.py"]
    observed = image_view(source(m), info(env_of(m)), f, BaseCheck("ok", ""))
    (change,) = compare(claim_view(m, "the manifest"), observed)
    assert (change.kind, change.name) == ("hash_changed", "imagesmith-runtime")
    assert "imagesmith_runtime/stamp.py" in change.detail
    del f["distributions"]["imagesmith-runtime"]
    observed = image_view(source(m), info(env_of(m)), f, BaseCheck("ok", ""))
    assert kinds(compare(claim_view(m, "the manifest"), observed)) == {
        ("distributions", "removed", "imagesmith-runtime")
    }


def test_a_record_line_without_hash_counts_as_modified():
    m = manifest()
    f = facts()
    f["distributions"]["six"]["unhashed"] = ["six.py"]
    observed = image_view(source(m), info(env_of(m)), f, BaseCheck("ok", ""))
    (change,) = compare(claim_view(m, "the manifest"), observed)
    assert change.kind == "hash_changed" and "six.py (no hash in the RECORD)" in change.detail


def test_the_facts_file_name_is_the_runtime_s():
    from imagesmith import layout
    from imagesmith.runtime import stamp

    assert layout.FACTS_PATH == f"{layout.VENV}/{stamp.FACTS_FILE}"


# --- the engine seam, with fakes -----------------------------------------------------------------


class _FakeAPI:
    def __init__(self, history):
        self._history = history

    def history(self, image):
        return self._history


class _FakeClient:
    def __init__(self, history):
        self.api = _FakeAPI(history)


def test_engine_history_is_trusted_only_when_it_matches_the_layers():
    from imagesmith.engine.images import Images

    images = Images(
        lambda: _FakeClient(
            [  # newest first, as the engine's API answers
                {"CreatedBy": 'CMD ["x"]', "Size": 0},
                {"CreatedBy": "RUN a", "Size": 4096},
                {"CreatedBy": "", "Size": 1000},
            ]
        )
    )
    entries = images.history("img", 2)
    assert [(e.created_by, e.empty_layer) for e in entries] == [("", False), ("RUN a", False), ('CMD ["x"]', True)]
    assert [e.size for e in entries] == [1000, 4096, 0]  # what `inspect --sizes` shows per layer
    assert images.history("img", 3) is None  # a zero-size layer somewhere: cannot tell which


def test_registry_image_reads_an_index_and_its_config(monkeypatch):
    """One path for registry reads (buildx imagetools): the raw index's platform entry, that
    entry's manifest (one image, not an index), then its config; the digest of a raw manifest is
    the sha256 of its bytes."""
    import hashlib

    from imagesmith.engine.registry import Registry

    manifests = {
        arch: json.dumps({"schemaVersion": 2, "config": {"size": 2}, "layers": [], "for": arch}).encode()
        for arch in ("arm64", "amd64")
    }
    digests = {arch: "sha256:" + hashlib.sha256(body).hexdigest() for arch, body in manifests.items()}
    index = json.dumps(
        {
            "manifests": [
                {"digest": digests["arm64"], "platform": {"os": "linux", "architecture": "arm64"}},
                {"digest": digests["amd64"], "platform": {"os": "linux", "architecture": "amd64"}},
            ]
        }
    ).encode()

    def config(arch):
        return json.dumps(
            {
                "os": "linux",
                "architecture": arch,
                "config": {"Labels": {"io.imagesmith.parity": "sha256:p"}, "Env": ["A=1"]},
                "rootfs": {"diff_ids": ["sha256:l1"]},
                "created": "c",
                "history": [{"created_by": "ADD x"}, {"created_by": "LABEL a=b", "empty_layer": True}],
            }
        ).encode()

    calls = []
    arch_of = {digest: arch for arch, digest in digests.items()}

    def fake_imagetools(self, ref, *args):
        calls.append((ref, args))
        digest = ref.rpartition("@")[2]
        if "--raw" in args:  # the index by its tag; an entry (one image's manifest) by its digest
            return manifests[arch_of[digest]] if "@" in ref else index
        return config(arch_of[digest])

    monkeypatch.setattr(Registry, "_imagetools", fake_imagetools)
    registry = Registry()
    info = registry.image("127.0.0.1:5000/app:serve")
    assert info.id == digests["amd64"] and info.source == "registry"
    assert info.repo_digests == ("127.0.0.1:5000/app@" + digests["amd64"],)
    assert info.labels == {"io.imagesmith.parity": "sha256:p"} and info.layers == ("sha256:l1",)
    assert [(h.created_by, h.empty_layer) for h in info.history] == [("ADD x", False), ("LABEL a=b", True)]
    assert calls[1:3] == [
        ("127.0.0.1:5000/app@" + digests["amd64"], ("--raw",)),  # what the entry names: one image, not an index
        ("127.0.0.1:5000/app@" + digests["amd64"], ("--format", "{{json .Image}}")),
    ]
    assert registry.digest("127.0.0.1:5000/app:serve") == "sha256:" + hashlib.sha256(index).hexdigest()
    assert registry.image("127.0.0.1:5000/app:serve", platform="linux/arm64").id == digests["arm64"]


def test_source_problems_compare_app_with_the_project(tmp_path):
    from imagesmith.fsutil import sha256_file
    from imagesmith.record import source_problems

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "a.py").write_text("a = 1\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "ignored.txt").write_text("kept out of the image by the ignore rules\n")
    tree = {
        "app": "dir",
        "app/a.py": sha256_file(tmp_path / "app" / "a.py"),
        "train.py": sha256_file(tmp_path / "train.py") + " +x",
    }
    assert source_problems(tree, tmp_path) == ([], 2)
    (tmp_path / "train.py").write_text("print(2)\n")
    tree["extra.py"] = "sha256:" + "0" * 64
    problems, _ = source_problems(tree, tmp_path)
    assert problems == [
        f"/app: train.py differs from the project's ({tmp_path})",
        f"/app: extra.py is not in the project ({tmp_path})",
    ]
    assert source_problems(None, tmp_path)[0] == ["/app is missing from the image"]


def test_config_check_of_an_image_without_a_config_record_is_a_note():
    from imagesmith.verify import Report, config_check

    report = Report(image="old")
    config_check(report, info(labels={"io.imagesmith.role": "serve"}), {"manifest": {}}, BaseCheck("unknown", ""))
    assert report.problems == [] and "carries no record of it" in report.notes[0]
    report = Report(image="norole")
    config_check(report, info(labels={}), None, BaseCheck("unknown", ""))
    assert report.problems == ["label io.imagesmith.role is None, not one of train, serve"]


def test_a_probe_report_is_kept_by_image_id_and_probe(tmp_path, monkeypatch):
    """The content probe runs once per image on a machine: its report is kept under the image's
    (content-addressed) ID and the probe's text and options; another image, other options or a
    failed start are probed again."""
    from imagesmith.errors import VerifyError
    from imagesmith.verify_probe import run_probe
    from tests.fakes import FakeEngine, image_info

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    report = {"probe": 1, "platform": "linux/amd64", "distributions": {}, "unrecorded": {}}
    report |= {"preprocessing": {}, "dpkg": {}}
    answers = {k: json.dumps({**report, "python": v}) for k, v in (("a", "3.11.2"), ("b", "3.11.9"))}
    engine = FakeEngine(runs=lambda image, argv: answers[image[-1]])
    first = image_info("x:serve", id="sha256:" + "0" * 63 + "a")
    other = image_info("y:serve", id="sha256:" + "0" * 63 + "b")
    assert run_probe(engine, first)["python"] == "3.11.2"
    assert run_probe(engine, first)["python"] == "3.11.2"
    assert len(engine.called("run_isolated")) == 1
    assert run_probe(engine, other)["python"] == "3.11.9"
    assert run_probe(engine, first, detail=True)["python"] == "3.11.2"
    assert len(engine.called("run_isolated")) == 3
    broken = FakeEngine(runs=lambda image, argv: "{}")
    for _ in range(2):
        with pytest.raises(VerifyError, match="not of the probe's shape"):
            run_probe(broken, image_info("z", id="sha256:" + "1" * 64))
    assert len(broken.called("run_isolated")) == 2  # a report not of the probe's shape is not kept


def test_the_user_s_labels_are_listed_and_a_bad_list_is_a_problem():
    """Issue 23: build lists the user's --label labels in io.imagesmith.labels; verify reads that
    list, and refuses one that is not a map of strings or names a label imagesmith sets."""
    from imagesmith.build import image_labels
    from imagesmith.verify import user_labels

    assert image_labels({}) == {}
    labels = image_labels({"team": "x", "a": "b"})
    assert labels == {"team": "x", "a": "b", "io.imagesmith.labels": '{"a":"b","team":"x"}'}
    assert user_labels(info(labels=labels)) == {"a": "b", "team": "x"}
    assert user_labels(info(labels={})) == {}
    for bad, why in (('{"a":1}', "not a map of labels"), ('{"io.imagesmith.role":"serve"}', "imagesmith sets itself")):
        with pytest.raises(ValueError, match=why):
            user_labels(info(labels={"io.imagesmith.labels": bad}))


def test_an_optional_label_may_be_absent_but_not_another():
    """Issue 23: org.opencontainers.image.version/.source/.revision are left out when unknown;
    verify accepts them absent, any value when present, and still wants the other labels."""
    from imagesmith.layout import OPTIONAL_LABELS
    from imagesmith.plan import normalize_config
    from imagesmith.record import config_problems

    labels = {"io.imagesmith.role": "serve", "org.opencontainers.image.created": None}
    want = normalize_config({})
    want["Labels"] = {**labels, **{name: None for name in OPTIONAL_LABELS}}
    absent = normalize_config({"Labels": {"io.imagesmith.role": "serve", "org.opencontainers.image.created": "x"}})
    assert config_problems(want, absent, base_known=True, whose="D", optional=OPTIONAL_LABELS) == []
    present = normalize_config({"Labels": {**absent["Labels"], "org.opencontainers.image.version": "1.0"}})
    assert config_problems(want, present, base_known=True, whose="D", optional=OPTIONAL_LABELS) == []
    assert config_problems(want, absent, base_known=True, whose="D") == [
        f"LABEL {name} is missing (D sets None)" for name in sorted(OPTIONAL_LABELS)
    ]  # without `optional`, as before
    no_created = normalize_config({"Labels": {"io.imagesmith.role": "serve"}})
    assert config_problems(want, no_created, base_known=True, whose="D", optional=OPTIONAL_LABELS) == [
        "LABEL org.opencontainers.image.created is missing (D sets None)"
    ]


def test_the_base_is_read_from_the_engine_once_then_from_the_verifiers_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from imagesmith.verify_base import check_base
    from tests.fakes import FakeEngine, image_info

    base_id = "sha256:" + "b" * 64
    base = image_info("base", id=base_id, layers=("sha256:l0",), config={"Env": ["PATH=/usr/bin", "LANG=C"]})
    image = replace_info(image_info("x:serve", layers=("sha256:l0", "sha256:l1")), platform="linux/amd64")
    engine = FakeEngine({base_id: base})
    first = check_base(engine, image, base_id)
    assert first.verdict == "ok" and first.env == {"PATH": "/usr/bin", "LANG": "C"}
    assert first.image == base and len(engine.called("image")) == 1
    again = check_base(FakeEngine(), image, base_id)  # an engine without the base: the cache answers
    assert (again.verdict, again.detail, again.env, again.image) == (first.verdict, first.detail, first.env, base)
    # kept for the platform it was read for: an arm64 image's base is read from the engine
    arm64 = replace_info(image, platform="linux/arm64")
    assert check_base(FakeEngine(), arm64, base_id).verdict == "unknown"
    # a base that is not a digest (it comes from the image's facts) names no cache file
    assert check_base(FakeEngine({"sha256:../x": base}), image, "sha256:../x").verdict == "ok"
    assert check_base(FakeEngine(), image, "sha256:../x").verdict == "unknown"


def test_a_cached_base_that_is_not_an_image_is_read_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from imagesmith.facts import cache_store
    from imagesmith.verify_base import check_base
    from tests.fakes import FakeEngine, image_info

    base_id = "sha256:" + "c" * 64
    image = replace_info(image_info("x:serve", layers=("sha256:l0", "sha256:l1")), platform="linux/amd64")
    cache_store("base-image", base_id, {"linux/amd64": {"ref": "base", "layers": "sha256:l0"}})
    engine = FakeEngine({base_id: image_info("base", id=base_id, layers=("sha256:l0",))})
    assert check_base(engine, image, base_id).verdict == "ok" and len(engine.called("image")) == 1
    assert check_base(FakeEngine(), image, base_id).verdict == "ok"  # the engine's answer replaced it


def replace_info(info: ImageInfo, **changes) -> ImageInfo:
    import dataclasses

    return dataclasses.replace(info, **changes)


@pytest.mark.parametrize("side", ["a", "b"])
def test_diff_refuses_a_file_that_is_no_lock_before_the_engine_is_asked(tmp_path, monkeypatch, side):
    """`diff IMAGE /etc/passwd` said `run imagesmith lock` to rewrite it, after reading the image:
    a file that is no imagesmith lock is one usage error naming it and what diff compares, before
    the engine is asked anything. The project's own imagesmith.lock, broken, keeps its hint."""
    from imagesmith import verify_source
    from imagesmith.engine import Engine
    from tests.helpers import cli

    def asked(*args, **kwargs):
        raise AssertionError("the engine was asked")

    monkeypatch.setattr(verify_source, "local_of_platform", asked)
    monkeypatch.setattr(Engine, "registry_image", asked)
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    package = tmp_path / "package.json"
    package.write_text('{"name": "web", "version": "1.0.0"}\n')
    for path in (passwd, package):
        args = ("imagesmith-test/tiny:serve", str(path))[:: 1 if side == "b" else -1]
        proc = cli("diff", *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr == (
            f"error: {path} is not an imagesmith lock\nhint: give an image, a registry reference or an"
            " imagesmith.lock (the file `imagesmith lock` writes)\n"
        )
    broken = tmp_path / "imagesmith.lock"
    broken.write_text("<<<<<<< HEAD\n")
    proc = cli("diff", *("imagesmith-test/tiny:serve", str(broken))[:: 1 if side == "b" else -1])
    assert proc.returncode == 2 and "hint: run `imagesmith lock` to rewrite it" in proc.stderr, proc.stderr
