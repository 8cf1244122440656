"""The runtime, the stamp and the preprocessing wheel, on the host (no Docker).

The ``imagesmith-runtime`` wheel (``runtime_wheel.build``) is installed with uv into a real
venv made here, as the Dockerfile installs it (``runtime_wheel.install_into``), so ``imagesmith.pth`` runs at every interpreter
start as it does in an image, and the package is imported under its in-image name.
NumPy, PyTorch and TensorFlow are stood in for by tiny fake packages that record how they were
seeded (the real NumPy is exercised in tests/engine/test_runtime_engine.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from packaging.version import Version

from imagesmith import layout, parity, runtime_wheel
from imagesmith.lock import preprocessing_digest
from imagesmith.lock.inputs import preprocessing_files
from imagesmith.plan import plan_for
from imagesmith.preprocessing import export as export_wheel
from imagesmith.render import context_files, preprocessing_context, render
from imagesmith.runtime import preprocessing, stamp
from imagesmith.spec.load import load_spec
from imagesmith.verify import verify_model
from tests.fakes import FakeEngine
from tests.helpers import cli, fake_lock

HERE = Path(__file__).resolve().parents[1]
TINY = HERE / "projects" / "tiny"
IRIS = HERE.parent / "examples" / "iris"

FAKES = {
    "numpy/__init__.py": "",
    "numpy/random/__init__.py": "calls = []\ndef seed(s):\n    calls.append(s)\n",
    "torch/__init__.py": textwrap.dedent("""\
        calls = []
        def manual_seed(s):
            calls.append(("manual_seed", s))
        def use_deterministic_algorithms(flag):
            calls.append(("deterministic", flag))
        """),
    "tensorflow/__init__.py": "from . import random, config\n",
    "tensorflow/random.py": "calls = []\ndef set_seed(s):\n    calls.append(s)\n",
    "tensorflow/config/__init__.py": "from . import experimental\n",
    "tensorflow/config/experimental.py": "calls = []\ndef enable_op_determinism():\n    calls.append(True)\n",
}


# --------------------------------------------------------------------------------------------
# A venv with the runtime, as in an image


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    runtime_wheel.install_into(python, tmp_path_factory.mktemp("wheels"))
    # the bytecode, as the Dockerfile compiles it after the install (each start then loads it,
    # as in an image, instead of compiling the runtime again when writing bytecode is off)
    subprocess.run([str(python), "-m", "imagesmith_runtime.bytecode", str(root / "lib")], check=True)
    fakes = tmp_path_factory.mktemp("fakes")
    for rel, text in FAKES.items():
        (fakes / rel).parent.mkdir(parents=True, exist_ok=True)
        (fakes / rel).write_text(text)
    return python, site, fakes


def py(venv, code: str, env: dict | None = None, *args: str) -> subprocess.CompletedProcess:
    python, _, fakes = venv
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGESMITH_", "PYTHONHASHSEED"))}
    base["PYTHONPATH"] = str(fakes)
    return subprocess.run(
        [str(python), "-c", code, *args], capture_output=True, text=True, env={**base, **(env or {})}, timeout=60
    )


def out(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_random_is_seeded_with_the_spec_seed(venv):
    got = out(py(venv, "import random; print(random.random())", {"IMAGESMITH_SEED": "42"}))
    assert float(got) == random.Random(42).random()
    assert out(py(venv, "import random; print(random.random())", {"IMAGESMITH_SEED": "42"})) == got


def test_without_a_seed_nothing_is_seeded(venv):
    draws = {out(py(venv, "import random; print(random.random())")) for _ in range(3)}
    assert len(draws) == 3
    assert out(py(venv, "import sys; print([f for f in sys.meta_path if 'Seed' in type(f).__name__])")) == "[]"


def test_child_processes_are_seeded_too(venv):
    code = (
        "import subprocess, sys; print(subprocess.run([sys.executable, '-c', "
        "'import random; print(random.random())'], capture_output=True, text=True).stdout.strip())"
    )
    assert float(out(py(venv, code, {"IMAGESMITH_SEED": "7"}))) == random.Random(7).random()


def test_nothing_heavy_is_imported_until_the_program_imports_it(venv):
    code = "import sys; print(sorted(m for m in ('numpy', 'numpy.random', 'torch', 'tensorflow', 'random') if m in sys.modules))"
    assert out(py(venv, code, {"IMAGESMITH_SEED": "7"})) == "[]"
    # the fakes are importable, so this is the hook's laziness and not their absence
    assert out(py(venv, "import numpy, torch, tensorflow; print('ok')", {"IMAGESMITH_SEED": "7"})) == "ok"


def test_numpy_random_is_seeded_when_imported_and_the_loader_is_restored(venv):
    code = (
        "import numpy, sys; print('numpy.random' in sys.modules); import numpy.random as r; "
        "print(r.calls); print(type(r.__loader__).__name__, type(r.__spec__.loader).__name__)"
    )
    lines = out(py(venv, code, {"IMAGESMITH_SEED": "42"})).splitlines()
    assert lines == ["False", "[42]", "SourceFileLoader SourceFileLoader"]


def test_torch_and_tensorflow_seeded_and_deterministic_when_determinism_is_on(venv):
    code = (
        "import torch, tensorflow as tf; print(torch.calls); print(tf.random.calls); "
        "print(tf.config.experimental.calls)"
    )
    off = out(py(venv, code, {"IMAGESMITH_SEED": "5", "IMAGESMITH_DETERMINISM": "off"})).splitlines()
    assert off == ["[('manual_seed', 5)]", "[5]", "[]"]
    on = out(py(venv, code, {"IMAGESMITH_SEED": "5", "IMAGESMITH_DETERMINISM": "on"})).splitlines()
    assert on == ["[('manual_seed', 5), ('deterministic', True)]", "[5]", "[True]"]


def test_a_failing_seed_hook_never_breaks_the_import(venv, tmp_path):
    broken = tmp_path / "numpy" / "random"
    broken.mkdir(parents=True)
    (tmp_path / "numpy" / "__init__.py").write_text("")
    (broken / "__init__.py").write_text("def seed(s):\n    raise RuntimeError('nope')\nx = 1\n")
    proc = py(venv, "import numpy.random; print(numpy.random.x)", {"IMAGESMITH_SEED": "1", "PYTHONPATH": str(tmp_path)})
    assert out(proc) == "1"
    assert "could not seed numpy.random: RuntimeError: nope" in proc.stderr


# --------------------------------------------------------------------------------------------
# The runtime entrypoint (train writes the stamp, serve checks it)


@pytest.fixture
def image(venv, tmp_path):
    """Facts for an image made from tiny and fake_lock, with the artifacts folder in tmp."""
    spec = replace(load_spec(TINY), artifacts=str(tmp_path / "artifacts"))
    facts = plan_for(spec, fake_lock()).facts()
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(facts))
    return facts, path, tmp_path / "artifacts"


def runtime(venv, facts_path: Path, role: str, *command: str, env: dict | None = None):
    python = venv[0]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGESMITH_", "PYTHONHASHSEED"))}
    return subprocess.run(
        [
            str(python),
            "-c",
            "import sys, imagesmith_runtime.__main__ as r; sys.exit(r.main(sys.argv[2:], facts_path=sys.argv[1]))",
            str(facts_path),
            role,
            "--",
            *command,
        ],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
    )


def write_model(folder: str, text: str = "weights") -> str:
    return f"import os; os.makedirs({folder!r}, exist_ok=True); open(os.path.join({folder!r}, 'model.bin'), 'w').write({text!r})"


def test_train_forces_the_seed_and_stamps_what_it_wrote(venv, image):
    facts, path, art = image
    code = write_model(str(art)) + "; import random; print(random.random(), hash('imagesmith'))"
    proc = runtime(
        venv,
        path,
        "train",
        str(venv[0]),
        "-c",
        code,
        env={
            "IMAGESMITH_SEED": "999",
            "PYTHONHASHSEED": "123",
            "IMAGESMITH_IMAGE_DIGEST": "sha256:" + "e" * 64,
            "IMAGESMITH_IMAGE_REF": "tiny:train",
        },
    )
    assert proc.returncode == 0, proc.stderr
    draw, hashed = proc.stdout.split()
    assert float(draw) == random.Random(7).random()  # the image's seed, not the one passed with -e
    expect_hash = subprocess.run(
        [sys.executable, "-c", "print(hash('imagesmith'))"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "7"},
    ).stdout.strip()
    assert hashed == expect_hash
    written = json.loads((art / stamp.STAMP_FILE).read_text())
    assert written["parity"] == facts["parity"] == parity.digest(parity.manifest_from_lock(fake_lock()))
    assert written["manifest"] == facts["manifest"]
    assert written["preprocessing"] == {"name": "tiny-preprocessing", "version": fake_lock().preprocessing_version}
    assert written["seed"] == 7 and written["determinism"] is False
    assert written["image"] == {"digest": "sha256:" + "e" * 64, "ref": "tiny:train"}
    assert written["artifacts"] == {"model.bin": "sha256:" + hashlib.sha256(b"weights").hexdigest()}
    assert "stamped 1 model file(s)" in proc.stderr


def test_failed_train_leaves_no_stamp_even_an_old_one(venv, image):
    facts, path, art = image
    assert runtime(venv, path, "train", str(venv[0]), "-c", write_model(str(art))).returncode == 0
    assert (art / stamp.STAMP_FILE).is_file()
    proc = runtime(venv, path, "train", str(venv[0]), "-c", write_model(str(art), "half") + "; raise SystemExit(4)")
    assert proc.returncode == 4
    assert not (art / stamp.STAMP_FILE).exists()
    assert "train exited 4: no stamp written" in proc.stderr


def test_train_that_writes_nothing_writes_no_stamp(venv, image):
    _, path, art = image
    proc = runtime(venv, path, "train", "true")
    assert proc.returncode == 0 and not art.exists()
    assert "wrote nothing" in proc.stderr


def test_serve_starts_with_its_own_model_and_refuses_another(venv, image, tmp_path):
    facts, path, art = image
    assert runtime(venv, path, "train", str(venv[0]), "-c", write_model(str(art))).returncode == 0
    ok = runtime(venv, path, "serve", str(venv[0]), "-c", "print('serving')")
    assert ok.returncode == 0 and ok.stdout.strip() == "serving", ok.stderr

    # The same model, and an image one seed away: refused, the difference named.
    other = dict(facts, manifest=dict(facts["manifest"], seed=8))
    other["parity"] = parity.digest(other["manifest"])
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    refused = runtime(venv, other_path, "serve", str(venv[0]), "-c", "print('serving')")
    assert refused.returncode == 3 and refused.stdout == ""
    assert "refusing to serve the model" in refused.stderr
    assert "seed: 8, expected 7" in refused.stderr

    forced = runtime(
        venv, other_path, "serve", str(venv[0]), "-c", "print('serving')", env={"IMAGESMITH_ALLOW_MISMATCH": "1"}
    )
    assert forced.returncode == 0 and forced.stdout.strip() == "serving"
    assert "SERVING A MODEL THAT DOES NOT MATCH THIS IMAGE" in forced.stderr
    assert "seed: 8, expected 7" in forced.stderr


def test_serve_refuses_a_model_changed_after_training_or_unstamped(venv, image):
    _, path, art = image
    assert runtime(venv, path, "train", str(venv[0]), "-c", write_model(str(art))).returncode == 0
    (art / "model.bin").write_text("tampered")
    proc = runtime(venv, path, "serve", "true")
    assert proc.returncode == 3 and "model file model.bin changed since training" in proc.stderr
    (art / stamp.STAMP_FILE).unlink()
    proc = runtime(venv, path, "serve", "true")
    assert proc.returncode == 3 and f"holds 1 file(s) but no {stamp.STAMP_FILE}" in proc.stderr


def test_messages_name_the_host_folder_imagesmith_run_mounted(venv, image):
    """Where the user acts on the host, the runtime names the host folder `imagesmith run`
    mounted at the artifacts path (IMAGESMITH_ARTIFACTS_HOST), not the path in the container."""
    facts, path, art = image
    host = "/home/someone/project/artifacts"
    env = {stamp.HOST_ENV: host}
    proc = runtime(venv, path, "train", str(venv[0]), "-c", write_model(str(art)), env=env)
    assert proc.returncode == 0 and f"stamped 1 model file(s): {host}/{stamp.STAMP_FILE} (" in proc.stderr
    assert str(art) not in proc.stderr
    (art / "model.bin").write_text("tampered")
    (art / "extra.bin").write_text("x")
    (art / stamp.STAMP_FILE).write_text("{not json")
    proc = runtime(venv, path, "serve", "true", env=env)
    assert proc.returncode == 3 and f"refusing to serve the model in {host}:" in proc.stderr
    assert f"{host}/{stamp.STAMP_FILE} is not a readable stamp" in proc.stderr and str(art) not in proc.stderr
    (art / stamp.STAMP_FILE).unlink()
    proc = runtime(venv, path, "serve", "true", env=env)
    assert f"{host} holds 2 file(s) but no {stamp.STAMP_FILE}" in proc.stderr and str(art) not in proc.stderr
    assert stamp.host_path("/artifacts/a/b", "/artifacts", host) == f"{host}/a/b"
    assert stamp.host_path("/artifactsx/b", "/artifacts", host) == "/artifactsx/b"  # not under the folder
    assert stamp.host_path("/artifacts/b", "/artifacts", None) == "/artifacts/b"


def test_serve_with_no_model_starts(venv, image):
    _, path, _ = image
    proc = runtime(venv, path, "serve", "true")
    assert proc.returncode == 0 and "nothing to check" in proc.stderr


def test_runtime_usage_errors(venv, image):
    _, path, _ = image
    assert runtime(venv, path, "deploy", "true").returncode == 2
    python = venv[0]
    proc = subprocess.run(
        [str(python), "-m", "imagesmith_runtime", "train", "--", "true"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "not built by imagesmith" in proc.stderr  # no facts file in this venv
    proc = runtime(venv, path, "train", "/no/such/program")
    assert proc.returncode == 127 and "cannot start" in proc.stderr


# --------------------------------------------------------------------------------------------
# The stamp check on its own


def test_check_names_each_difference_and_detects_an_edited_stamp(tmp_path):
    a = parity.manifest_from_lock(fake_lock())
    facts = {"parity": parity.digest(a), "manifest": a, "seed": 7, "artifacts": str(tmp_path)}
    (tmp_path / "m.bin").write_bytes(b"x")
    stamp.write_stamp(str(tmp_path), stamp.make_stamp(facts, str(tmp_path)))
    assert stamp.check_model(str(tmp_path), facts["parity"], a).ok

    b = parity.manifest_from_lock(fake_lock(preprocessing=(("app/prep.py", "sha256:" + "e" * 64),)))
    check = stamp.check_model(str(tmp_path), parity.digest(b), b)
    assert not check.ok
    assert any(p.strip().startswith("preprocessing_version: '0+sha256.") for p in check.problems)
    assert any(p.strip().startswith("preprocessing: app/prep.py is sha256:eeee") for p in check.problems)

    edited = json.loads((tmp_path / stamp.STAMP_FILE).read_text())
    edited["parity"] = parity.digest(b)  # claims the other parity without the manifest to match
    (tmp_path / stamp.STAMP_FILE).write_text(json.dumps(edited))
    check = stamp.check_model(str(tmp_path), parity.digest(b), b)
    assert any("edited stamp" in p for p in check.problems)


def test_empty_folder_passes_serve_but_not_verify(tmp_path):
    assert stamp.check_model(str(tmp_path / "none"), "sha256:x", None).ok
    check = stamp.check_model(str(tmp_path), "sha256:x", None, require_model=True)
    assert not check.ok and "no model in" in check.problems[0]


def test_unreadable_stamp_is_a_problem_not_a_crash(tmp_path):
    (tmp_path / stamp.STAMP_FILE).write_text("{not json")
    check = stamp.check_model(str(tmp_path), "sha256:x", None)
    assert not check.ok and "not a readable stamp" in check.problems[0]


def _stamped(folder) -> tuple[dict, str]:
    """A model folder with one file and its stamp: (the manifest, its parity)."""
    a = parity.manifest_from_lock(fake_lock())
    facts = {"parity": parity.digest(a), "manifest": a, "seed": 7, "artifacts": str(folder)}
    (folder / "m.bin").write_bytes(b"x")
    stamp.write_stamp(str(folder), stamp.make_stamp(facts, str(folder)))
    return a, facts["parity"]


@pytest.mark.parametrize("extra", ["plugin.py", "sub/plugin.py", "sub/deeper/x.pth"])
def test_files_the_stamp_does_not_list_are_refused_unless_allowed(tmp_path, extra):
    a, p = _stamped(tmp_path)
    (tmp_path / stamp.GOLDEN_FILE).write_text("{}")  # imagesmith's own companions are not model files
    (tmp_path / (stamp.STAMP_FILE + ".sig")).write_text("sig")
    assert stamp.check_model(str(tmp_path), p, a, require_model=True).ok
    (tmp_path / extra).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / extra).write_text("import os\n")
    check = stamp.check_model(str(tmp_path), p, a, require_model=True)
    assert not check.ok and f"that the stamp does not list (added since training): {extra}" in check.problems[0]
    allowed = stamp.check_model(str(tmp_path), p, a, require_model=True, allow_extra=True)
    assert allowed.ok and any(f"does not list, allowed: {extra}" in line for line in allowed.checks)


def _no_hang(seconds: int = 10):
    """Fail (instead of hanging the suite) when the block takes longer than ``seconds``."""
    import contextlib
    import signal

    @contextlib.contextmanager
    def guard():
        def fail(signum, frame):
            raise AssertionError(f"hung for {seconds} s")

        previous = signal.signal(signal.SIGALRM, fail)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    return guard()


@pytest.mark.parametrize("kind", ["link-to-dev-zero", "fifo", "device", "link-to-folder"])
@pytest.mark.parametrize("where", ["model-file", "stamp"])
def test_only_regular_files_are_read_in_a_model_folder(tmp_path, kind, where):
    """A symbolic link (to /dev/zero), a FIFO or a device in the folder, or as the stamp, is refused
    at once: never opened for reading (which would hang, or read without end)."""
    import stat as st

    a, p = _stamped(tmp_path)
    target = tmp_path / ("odd" if where == "model-file" else stamp.STAMP_FILE)
    if where == "stamp":
        target.unlink()
    if kind == "link-to-dev-zero":
        os.symlink("/dev/zero", target)
    elif kind == "link-to-folder":
        os.symlink("/", target)
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        try:
            os.mknod(target, st.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
        except PermissionError:
            pytest.skip("making a device needs root")
    with _no_hang():
        check = stamp.check_model(str(tmp_path), p, a, require_model=True)
    assert not check.ok, check
    words = {"link-to-dev-zero": "symbolic link", "link-to-folder": "symbolic link", "fifo": "FIFO", "device": "device"}
    assert words[kind] in " ".join(check.problems), check.problems
    if where == "stamp":
        assert "not a readable stamp" in check.problems[0]


def test_an_oversized_or_deep_stamp_is_refused(tmp_path):
    a, p = _stamped(tmp_path)
    path = tmp_path / stamp.STAMP_FILE
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data)[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}")
    check = stamp.check_model(str(tmp_path), p, a, require_model=True)
    assert not check.ok and "nested more than" in check.problems[0]
    with open(path, "wb") as fh:
        fh.truncate(stamp.MAX_STAMP + 1)
    check = stamp.check_model(str(tmp_path), p, a, require_model=True)
    assert not check.ok and "more than the 32 MiB" in check.problems[0]
    path.write_text(json.dumps({**data, "artifacts": {"m.bin": 5}}))
    check = stamp.check_model(str(tmp_path), p, a, require_model=True)
    assert not check.ok and "'artifacts'" in check.problems[0]


# --------------------------------------------------------------------------------------------
# The preprocessing wheel


def test_version_is_a_pep440_local_version_of_the_lock_digest():
    lock = fake_lock()
    version = lock.preprocessing_version
    assert version == "0+sha256." + lock.preprocessing_digest[7:19]
    assert Version(version).local == "sha256." + lock.preprocessing_digest[7:19]
    assert fake_lock(preprocessing=()).preprocessing_version is None
    assert json.loads(lock.to_json())["preprocessing"]["version"] == version
    assert parity.manifest_from_lock(lock)["preprocessing_version"] == version


@pytest.mark.parametrize("project", [TINY, IRIS])
def test_digest_rules_agree_with_the_lock(project):
    spec = load_spec(project)
    files = preprocessing.file_digests(str(spec.root), spec.preprocessing)
    assert files == preprocessing_files(spec)
    assert preprocessing.digest_of(files) == preprocessing_digest(preprocessing_files(spec))


def copy_tiny(tmp_path: Path) -> Path:
    import shutil

    dest = tmp_path / "tiny"
    shutil.copytree(TINY, dest)
    return dest


def test_wheel_bytes_are_deterministic_and_follow_the_content(tmp_path):
    root = copy_tiny(tmp_path)
    name, first = preprocessing.wheel_bytes("tiny-preprocessing", str(root), ["app/prep.py"])
    os.utime(root / "app" / "prep.py", (1, 1))
    (root / "app" / "__pycache__").mkdir()
    (root / "app" / "__pycache__" / "prep.cpython-311.pyc").write_bytes(b"junk")
    assert preprocessing.wheel_bytes("tiny-preprocessing", str(root), ["app/prep.py"]) == (name, first)
    assert preprocessing.wheel_bytes("tiny-preprocessing", str(root), ["app"])[0] != name  # more files

    (root / "app" / "prep.py").write_text((root / "app" / "prep.py").read_text() + "# edited\n")
    edited, _ = preprocessing.wheel_bytes("tiny-preprocessing", str(root), ["app/prep.py"])
    assert edited != name and edited.startswith("tiny_preprocessing-0+sha256.")


def test_wheel_is_valid_and_installs_with_pip(tmp_path):
    root = copy_tiny(tmp_path)
    path = Path(preprocessing.write_wheel("tiny-preprocessing", str(root), ["app/prep.py"], str(tmp_path / "w")))
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        record = zf.read(next(n for n in names if n.endswith("RECORD"))).decode()
        for line in record.splitlines():
            arc, digest, size = line.rsplit(",", 2)
            if digest:
                import base64

                data = zf.read(arc)
                assert (
                    digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                )
                assert int(size) == len(data)
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert names[0] == "app/prep.py" and names[-1].endswith(".dist-info/RECORD")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(path)],
        check=True,
        capture_output=True,
    )
    version = path.name.split("-")[1]
    code = (
        "import importlib.metadata as m, app.prep as p; print(m.version('tiny-preprocessing')); "
        "print(p.scale([1.0, 2.0]))"
    )
    got = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        check=True,
    ).stdout.split("\n")
    assert got[:2] == [version, "[0.5, 1.0]"]


def test_wheel_refuses_files_that_left_the_lock(tmp_path):
    root = copy_tiny(tmp_path)
    with pytest.raises(preprocessing.PreprocessingError) as err:
        preprocessing.wheel_bytes("tiny-preprocessing", str(root), ["app/prep.py"], version="0+sha256.000000000000")
    assert "changed since the lock was written" in str(err.value) and "imagesmith lock" in err.value.hint


def test_export_without_preprocessing_is_a_readable_error():
    spec = replace(load_spec(TINY), preprocessing=())
    with pytest.raises(preprocessing.PreprocessingError) as err:
        export_wheel(spec, fake_lock(preprocessing=()), "/nonexistent")
    assert "names no preprocessing files" in str(err.value)


def test_builder_runs_from_the_runtime_wheel_alone(tmp_path):
    """What the Dockerfile's preprocessing-build stage runs: the module, imported from the runtime
    wheel on PYTHONPATH (zipimport), by an isolated interpreter that cannot see imagesmith."""
    root = copy_tiny(tmp_path)
    spec = load_spec(root)
    lock = fake_lock(preprocessing=tuple(preprocessing_files(spec).items()))
    ctx = preprocessing_context(spec, lock)
    built = runtime_wheel.build()
    whl = tmp_path / built.filename
    whl.write_bytes(built.data)
    wheel_in_build = f"{layout.BUILD_MOUNTS}/runtime/imagesmith_runtime-{lock.runtime.version}-py3-none-any.whl"
    assert ctx["build"][:5] == [
        "env",
        f"PYTHONPATH={wheel_in_build}",
        "python3",
        "-m",
        "imagesmith_runtime.preprocessing",
    ]
    argv = [sys.executable, "-S", "-m", "imagesmith_runtime.preprocessing"] + [
        {"/src": str(root), "/wheel": str(tmp_path / "out")}.get(a, a) for a in ctx["build"][5:]
    ]
    env = {"PYTHONPATH": str(whl), "PATH": os.environ.get("PATH", "")}
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    out = (tmp_path / "out" / ctx["wheel"]).read_bytes()
    assert out == Path(export_wheel(spec, lock, tmp_path / "host")).read_bytes()  # what the host exports
    assert out == preprocessing.wheel_bytes("tiny-preprocessing", str(root), spec.preprocessing)[1]
    (root / "app" / "prep.py").write_text("# edited\n")
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "changed since the lock was written" in proc.stderr


# --------------------------------------------------------------------------------------------
# Rendering and the CLI


def test_render_embeds_runtime_facts_and_the_preprocessing_stage():
    spec, lock = load_spec(TINY), fake_lock()
    text = render(spec, lock)
    facts = json.loads(context_files(spec, {lock.platform: lock})[".imagesmith/amd64/imagesmith_image.json"])
    assert facts == plan_for(spec, lock).facts() and facts["parity"] == parity.digest(parity.manifest_from_lock(lock))
    assert f'COPY [".imagesmith/imagesmith_runtime-{lock.runtime.version}-py3-none-any.whl", "/"]' in text
    assert "python -c" not in text and "python3 -c" not in text and "<<" not in text  # data only, from files
    assert 'COPY [".imagesmith/amd64/imagesmith_image.json", "/facts/imagesmith_image.json"]' in text
    assert "FROM base AS preprocessing-build" in text
    assert (
        f"/run/imagesmith/preprocessing/{preprocessing.wheel_filename('tiny-preprocessing', lock.preprocessing_version)}"
        in text
    )
    assert 'COPY ["app/prep.py", "/app/app/prep.py"]' not in text  # the wheel replaces the copy
    bare = render(replace(spec, preprocessing=()), fake_lock(preprocessing=()))
    assert "preprocessing-build" not in bare and "/run/imagesmith/preprocessing" not in bare


def test_cli_usage_errors_exit_2():
    proc = cli("export", "model", "-p", str(TINY))
    assert proc.returncode == 2 and "error: cannot export 'model'" in proc.stderr
    # `run` exits with the container's code, so its own failures use 125 (docker run's convention)
    proc = cli("run", "deploy", "-p", str(TINY))
    assert proc.returncode == 125 and "imagesmith images are train and serve" in proc.stderr
    proc = cli("run", "train", "-p", str(TINY), "-e", "NOEQUALS")
    assert proc.returncode == 125 and "is not KEY=VALUE" in proc.stderr


def test_run_role_mounts_publishes_on_loopback_and_passes_the_image_id(tmp_path):
    from imagesmith.errors import UsageError
    from imagesmith.run import run_role

    spec = replace(load_spec(TINY), root=tmp_path)
    engine = FakeEngine.with_labels(
        {
            "tiny:train": {"io.imagesmith.role": "train"},
            "tiny:serve": {"io.imagesmith.role": "serve"},
            "other:serve": {"io.imagesmith.role": "train"},
        }
    )
    assert run_role(spec, engine, "train", ["python", "x.py"], env={"A": "1"}) == 0
    _, image, kw = engine.called("run_attached")[-1]
    command = kw.pop("command")
    assert (image, command) == ("tiny:train", ["python", "x.py"]) and (tmp_path / "artifacts").is_dir()
    assert kw["mounts"] == {str(tmp_path / "artifacts"): "/artifacts"} and kw["ports"] == {}
    assert kw["environment"] == {
        "A": "1",
        stamp.DIGEST_ENV: "sha256:" + "1" * 64,
        stamp.REF_ENV: "tiny:train",
        stamp.HOST_ENV: str(tmp_path / "artifacts"),  # the runtime's messages name the host folder
    }
    assert kw["user"] == f"{os.getuid()}:{os.getgid()}"  # the caller: what train writes is theirs

    run_role(spec, engine, "serve", host_port=18123, allow_mismatch=True)
    _, _, kw = engine.called("run_attached")[-1]
    command = kw.pop("command")
    assert command == [] and kw["ports"] == {8080: 18123} and kw["environment"][stamp.ALLOW_ENV] == "1"
    assert kw["user"] == f"{os.getuid()}:{os.getgid()}"

    run_role(spec, engine, "train", user="10001:10001")
    assert engine.called("run_attached")[-1][2]["user"] == "10001:10001"
    for bad in ("-v", "a b", "1:2:3", "x\n", "--privileged"):
        with pytest.raises(UsageError, match="is not USER or USER:GROUP"):
            run_role(spec, engine, "train", user=bad)

    with pytest.raises(UsageError, match="not an imagesmith serve image"):
        run_role(spec, engine, "serve", tag="other")
    with pytest.raises(UsageError, match="missing does not exist"):
        run_role(spec, engine, "serve", artifacts=tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="file is not a folder"):
        run_role(spec, engine, "serve", artifacts=tmp_path / "file")
    with pytest.raises(UsageError, match="the train image has none"):
        run_role(spec, engine, "train", host_port=1)


def test_verify_model_reads_the_image_facts_and_distrusts_an_edited_label(tmp_path, monkeypatch):
    from imagesmith.plan import plan_for
    from tests.fakes import image_info

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    spec = load_spec(TINY)
    plan, other = plan_for(spec, fake_lock()), plan_for(spec, fake_lock(seed=8))
    model = tmp_path / "model"
    model.mkdir()
    (model / "m.bin").write_bytes(b"x")
    stamp.write_stamp(str(model), stamp.make_stamp(plan.facts(), str(model)))

    def engine(label: str, facts: dict, n: str) -> FakeEngine:
        info = image_info("x:serve", id="sha256:" + n * 64, labels={layout.LABEL_PARITY: label})
        files = {info.id: {layout.FACTS_PATH: json.dumps(facts).encode()}}
        return FakeEngine({"x:serve": info}, files=files)

    assert verify_model(engine(plan.parity, plan.facts(), "1"), "x:serve", model).ok
    check = verify_model(engine(plan.parity, other.facts(), "2"), "x:serve", model)  # facts replaced
    assert check.problems[0].startswith(f"x:serve: label {layout.LABEL_PARITY} is {plan.parity}, but the manifest in")
    check = verify_model(engine(other.parity, other.facts(), "3"), "x:serve", model)  # another image
    assert "  seed: 8, expected 7" in check.problems

    with pytest.raises(stamp.StampError, match="is not a folder"):
        verify_model(engine(plan.parity, plan.facts(), "1"), "x:serve", model / "m.bin")
    with pytest.raises(stamp.StampError, match="missing does not exist"):
        verify_model(engine(plan.parity, plan.facts(), "1"), "x:serve", tmp_path / "missing")


# ---- the installer's wheel, checked and unpacked inside the build (runtime/installer.py)


def _installer_wheel(folder: Path, payload: bytes = b"#!/bin/sh\necho uv\n") -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("uv-0.13.9.data/scripts/uv", payload)
        archive.writestr("uv-0.13.9.dist-info/METADATA", "Name: uv\nVersion: 0.13.9\n")
    return path, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _run_installer(tmp_path: Path, lock_text: str, wheels: Path) -> subprocess.CompletedProcess:
    (tmp_path / "installer.lock").write_text(lock_text)
    wheel = tmp_path / "rt.whl"
    wheel.write_bytes(runtime_wheel.build().data)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "imagesmith_runtime.installer",
            str(tmp_path / "installer.lock"),
            str(wheels),
            str(tmp_path / "uv"),
        ],
        env={"PYTHONPATH": str(wheel), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )


def test_installer_unpacks_the_locked_wheels_executable(tmp_path):
    wheels = tmp_path / "wheels"
    _, digest = _installer_wheel(wheels)
    proc = _run_installer(
        tmp_path, f"# header\nuv==0.13.9 \\\n    --hash=sha256:{'0' * 64} \\\n    --hash={digest}\n", wheels
    )
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "uv"
    assert out.read_bytes() == b"#!/bin/sh\necho uv\n" and os.stat(out).st_mode & 0o777 == 0o755


def test_installer_refuses_a_wheel_that_is_not_the_locked_one(tmp_path):
    wheels = tmp_path / "wheels"
    _installer_wheel(wheels)
    proc = _run_installer(tmp_path, f"uv==0.13.9 \\\n    --hash=sha256:{'0' * 64}\n", wheels)
    assert proc.returncode == 1 and not (tmp_path / "uv").exists()
    assert "does not match its locked hash (uv==0.13.9)" in proc.stderr
    proc = _run_installer(tmp_path, f"uv==0.13.9 \\\n    --hash=sha256:{'0' * 64}\n", tmp_path / "empty")
    assert proc.returncode == 1 and "no wheel of the installer uv==0.13.9" in proc.stderr


def test_a_re_stamp_beside_an_earlier_golden_file_checks_clean(tmp_path):
    """A folder retrained in place keeps its golden file: the stamp lists what a check finds
    (both skip imagesmith's companions), so the model check does not call the golden missing."""
    manifest = {"platform": "linux/amd64", "python": "3.11"}
    facts = {"parity": parity.digest(manifest), "manifest": manifest, "seed": 0}
    (tmp_path / "model.joblib").write_bytes(b"weights")
    (tmp_path / stamp.GOLDEN_FILE).write_text("{}")
    stamp.write_stamp(str(tmp_path), stamp.make_stamp(facts, str(tmp_path)))
    assert stamp.read_stamp(str(tmp_path))["artifacts"].keys() == {"model.joblib"}
    check = stamp.check_model(str(tmp_path), facts["parity"], manifest)
    assert check.ok, check.problems
