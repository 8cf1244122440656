"""The project itself, installed (issue 14, bullet 2), without an engine: which projects are
installed (spec ``install_project``), the build backend's pins in the lock, the Dockerfile's
project stages and last layer, the reproducible wheel, init's proposal, and verify leaving the
project's own distribution out."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from imagesmith.diff import compare
from imagesmith.errors import LockError, RenderError, SpecError
from imagesmith.init.propose import propose
from imagesmith.lock import Lock
from imagesmith.lock.lockfile import read_lock
from imagesmith.lock.pins import Pin
from imagesmith.plan import plan_for
from imagesmith.render import context_files, render
from imagesmith.runtime.project import normalised_wheel
from imagesmith.spec.load import load_spec
from imagesmith.spec.parse import parse_spec
from imagesmith.verify_base import BaseCheck
from imagesmith.verify_views import claim_view, image_view, project_name
from tests.helpers import fake_lock
from tests.unit.test_verify import env_of, facts, info, manifest, source

PROJECTS = Path(__file__).resolve().parents[1] / "projects"
SPEC = {
    "name": "srcproj",
    "python": "3.11",
    "base": "python:3.11-slim",
    "train": {"command": ["srcproj-train"]},
    "serve": {"command": ["srcproj-serve"], "port": 8000},
}
BACKEND = Pin("setuptools", "80.0.0", ("sha256:" + "e" * 64,))


@pytest.fixture
def srcproj(tmp_path) -> Path:
    return Path(shutil.copytree(PROJECTS / "srcproj", tmp_path / "srcproj"))


def _shared_layers(text: str) -> int:
    shared = text[text.index("AS shared") : text.index("FROM shared AS")]
    steps = [line.split()[0] for line in shared.splitlines()[1:] if line[:1].isupper() and not line.startswith("#")]
    return sum(1 for s in steps if s in ("RUN", "COPY", "WORKDIR", "ADD"))


# --- the spec ---------------------------------------------------------------------------------


def test_an_installable_project_is_detected(srcproj):
    spec = parse_spec(dict(SPEC), srcproj)
    assert spec.project is not None
    assert (spec.project.name, spec.project.requires, spec.project.backend) == (
        "srcproj",
        ("setuptools>=68",),
        "setuptools.build_meta",
    )
    assert parse_spec(dict(SPEC, install_project=False), srcproj).project is None
    assert parse_spec(dict(SPEC, install_project=True), srcproj).project == spec.project


def test_projects_without_a_build_backend_are_not_installed(srcproj):
    assert parse_spec(dict(SPEC), PROJECTS / "uvproj").project is None  # [project] but no [build-system]
    assert load_spec(PROJECTS / "tiny").project is None  # no pyproject.toml
    assert parse_spec(dict(SPEC), PROJECTS / "dynproj").project is not None  # a backend: installed
    assert parse_spec(dict(SPEC, install_project=False), PROJECTS / "dynproj").project is None  # opted out
    text = (srcproj / "pyproject.toml").read_text().replace('build-backend = "setuptools.build_meta"\n', "")
    (srcproj / "pyproject.toml").write_text(text)
    assert parse_spec(dict(SPEC), srcproj).project is None  # auto: quietly not installed
    with pytest.raises(SpecError) as err:
        parse_spec(dict(SPEC, install_project=True), srcproj)
    assert "install_project" in str(err.value) and "[build-system].build-backend" in str(err.value)


def test_a_src_layout_without_build_system_is_installed_by_the_standard_fallback(tmp_path):
    """PEP 517/518: no [build-system] means setuptools' legacy backend, as pip does; in a src
    layout that is the only way its package is importable. uv's virtual projects stay source."""
    root = Path(shutil.copytree(PROJECTS / "srcnobackend", tmp_path / "p"))
    spec = parse_spec(dict(SPEC, name="srcnobackend"), root)
    assert spec.project is not None
    assert (spec.project.name, spec.project.requires, spec.project.backend) == (
        "srcnobackend",
        ("setuptools>=40.8.0",),
        "setuptools.build_meta:__legacy__",
    )
    assert "installable (setuptools.build_meta:__legacy__)" in " ".join(propose(root).notes)
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text() + "[tool.uv]\npackage = false\n")
    assert parse_spec(dict(SPEC, name="srcnobackend"), root).project is None  # uv: a virtual project
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text().replace("package = false", ""))
    (root / "src" / "__init__.py").write_text("")  # `src` is itself a package: not a src layout
    assert parse_spec(dict(SPEC, name="srcnobackend"), root).project is None


def test_install_project_takes_auto_true_or_false(srcproj):
    for bad in ("yes", 1, ["auto"]):
        with pytest.raises(SpecError) as err:
            parse_spec(dict(SPEC, install_project=bad), srcproj)
        assert "install_project: expected auto, true or false" in str(err.value)
    with pytest.raises(SpecError) as err:
        parse_spec(dict(SPEC, install_projekt=True), srcproj)
    assert "install_project" in str(err.value)  # did you mean


def test_a_url_backend_requirement_is_refused(srcproj):
    text = (srcproj / "pyproject.toml").read_text().replace('["setuptools>=68"]', '["setuptools @ file:///etc/x.whl"]')
    (srcproj / "pyproject.toml").write_text(text)
    with pytest.raises(SpecError) as err:
        parse_spec(dict(SPEC), srcproj)
    assert "URL or path requirement" in str(err.value)


def test_an_invalid_backend_requirement_is_refused(srcproj):
    text = (srcproj / "pyproject.toml").read_text().replace('["setuptools>=68"]', '["setuptools >=> 68"]')
    (srcproj / "pyproject.toml").write_text(text)
    with pytest.raises(SpecError) as err:
        parse_spec(dict(SPEC), srcproj)
    assert "[build-system].requires" in str(err.value)


# --- the lock ---------------------------------------------------------------------------------


def test_the_lock_records_the_backend_and_reads_it_back(tmp_path):
    lock = fake_lock(build_system=(BACKEND,))
    path = tmp_path / "imagesmith.lock"
    path.write_text(lock.to_json())
    assert json.loads(path.read_text())["build_system"] == [BACKEND.as_dict()]
    assert read_lock(path).build_system == (BACKEND,)
    assert "setuptools==80.0.0" in lock.build_system_text() and "--hash=sha256:" + "e" * 64 in lock.build_system_text()
    # a lock without one has no such section (locks of other projects keep their bytes)
    assert "build_system" not in json.loads(fake_lock().to_json()) and fake_lock().build_system_text() == ""


def test_a_hand_edited_backend_pin_is_refused(tmp_path):
    data = json.loads(fake_lock(build_system=(BACKEND,)).to_json())
    data["build_system"][0]["hashes"] = ["md5:abc"]
    path = tmp_path / "imagesmith.lock"
    path.write_text(json.dumps(data))
    with pytest.raises(LockError) as err:
        read_lock(path)
    assert "build_system[0]" in str(err.value)


def test_the_backend_is_part_of_the_requirements_input_only_when_installed(srcproj):
    from imagesmith.lock.inputs import compute_inputs

    installed = compute_inputs(parse_spec(dict(SPEC), srcproj), "python:3.11-slim")
    copied = compute_inputs(parse_spec(dict(SPEC, install_project=False), srcproj), "python:3.11-slim")
    assert installed["requirements"] != copied["requirements"]
    assert {k: v for k, v in installed.items() if k != "requirements"} == {
        k: v for k, v in copied.items() if k != "requirements"
    }
    code = srcproj / "src" / "srcproj" / "__init__.py"
    code.write_text(code.read_text().replace("OFFSET = 0.0", "OFFSET = 1.0"))
    assert compute_inputs(parse_spec(dict(SPEC), srcproj), "python:3.11-slim") == installed  # code is not an input


# --- the Dockerfile ---------------------------------------------------------------------------


def _project_lock() -> Lock:
    return fake_lock(preprocessing=(), system_packages=(), build_system=(BACKEND,))


def test_render_builds_the_wheel_with_no_network_and_installs_it_last(srcproj):
    spec, lock = parse_spec(dict(SPEC), srcproj), _project_lock()
    text = render(spec, lock)
    build = text[text.index("FROM base AS project-build") : text.index("FROM scratch AS project\n")]
    assert "RUN --network=none" in build and "--no-index" in build and "--require-hashes" in build
    assert "imagesmith_runtime.project build --src /src --backend /tmp/backend --out /wheel" in build
    assert "SOURCE_DATE_EPOCH=" in build
    # the whole context is copied, imagesmith's own folder removed before the backend runs
    assert build.index("COPY . /src") < build.index("rm -rf /src/.imagesmith \\\n && ") < build.index("pip install")
    # the backend's pins reach the build as a data file in .imagesmith/, hashes and all
    backend = text[text.index("FROM scratch AS project-backend") : text.index("FROM base AS wheel-download")]
    assert '".imagesmith/amd64/build-system.lock"' in backend
    pins = context_files(spec, {lock.platform: lock})[".imagesmith/amd64/build-system.lock"].decode()
    assert "setuptools==80.0.0" in pins and "e" * 64 in pins
    # the online wheel-download stage fetches them too
    download = text[text.index("FROM base AS wheel-download") : text.index("FROM scratch AS wheels")]
    assert "build-system.lock" in download
    # the last RUN of shared installs the wheel (the facts are COPYed after it); the layer count follows the template
    shared = text[text.index("AS shared") : text.index("FROM shared AS")]
    last = shared[shared.rindex("RUN ") :]
    assert "imagesmith_runtime.project install" in last and "--network=none" in last
    assert _shared_layers(text) == plan_for(spec, lock).layers_over_base
    assert plan_for(spec, lock).facts()["project"] == {"name": "srcproj"}


def test_the_layer_count_follows_the_template_with_source_and_project(srcproj):
    spec = parse_spec(dict(SPEC, source=["src/"]), srcproj)
    lock = replace(_project_lock(), system_packages=(("libgomp1", "12.2.0-14"),))
    text = render(spec, lock)
    assert (
        _shared_layers(text) == plan_for(spec, lock).layers_over_base == 8
    )  # user, apt, env, WORKDIR, project setup, source, wheel, facts
    shared = text[text.index("AS shared") : text.index("FROM shared AS")]
    assert shared.index("COPY --from=source") < shared.index("imagesmith_runtime.project install")  # the wheel last


def test_render_refuses_a_lock_without_the_backend(srcproj):
    with pytest.raises(RenderError) as err:
        render(parse_spec(dict(SPEC), srcproj), fake_lock())
    assert "pins no build backend" in str(err.value) and "imagesmith lock" in (err.value.hint or "")


def test_projects_that_are_not_installed_render_no_project_stage(srcproj):
    text = render(parse_spec(dict(SPEC, install_project=False), srcproj), fake_lock())
    assert "project-build" not in text and "imagesmith_runtime.project" not in text
    assert "project" not in plan_for(parse_spec(dict(SPEC, install_project=False), srcproj), fake_lock()).facts()


# --- the wheel --------------------------------------------------------------------------------


def _zip(entries: list[tuple[str, bytes]], date: tuple, compression: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=date)
            info.external_attr = 0o100755 << 16 if name.endswith(".sh") else 0o100644 << 16
            zf.writestr(info, data, compress_type=compression)
    return buf.getvalue()


def test_the_project_wheel_is_rewritten_reproducibly():
    entries = [("pkg/__init__.py", b"x = 1\n"), ("pkg/run.sh", b"#!/bin/sh\n"), ("pkg-1.dist-info/RECORD", b"")]
    one = _zip(entries, (2024, 5, 6, 7, 8, 10), zipfile.ZIP_DEFLATED)
    two = _zip(list(reversed(entries)), (2026, 1, 2, 3, 4, 6), zipfile.ZIP_STORED)
    assert one != two
    assert normalised_wheel(one) == normalised_wheel(two)
    with zipfile.ZipFile(io.BytesIO(normalised_wheel(one))) as zf:
        assert [i.filename for i in zf.infolist()] == sorted(n for n, _ in entries)
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
        assert modes["pkg/run.sh"] == 0o755 and modes["pkg/__init__.py"] == 0o644
        assert zf.read("pkg/__init__.py") == b"x = 1\n"


# --- init -------------------------------------------------------------------------------------


def test_init_installs_an_installable_project_and_uses_its_scripts(srcproj):
    p = propose(srcproj)
    assert "source" not in p.values  # not copied to /app too: an edit rebuilds one layer
    assert p.values["train"] == {"command": ["srcproj-train"]}
    assert p.values["serve"] == {"command": ["srcproj-serve"], "port": 8000}
    assert any("installed into both images" in n for n in p.notes)
    assert not any("PYTHONPATH" in n for n in p.notes)


def test_init_without_scripts_runs_the_installed_module(srcproj):
    text = (srcproj / "pyproject.toml").read_text()
    text = text.replace('srcproj-train = "srcproj.train:main"\nsrcproj-serve = "srcproj.serve:main"\n', "")
    (srcproj / "pyproject.toml").write_text(text)
    p = propose(srcproj)
    assert p.values["train"] == {"command": ["python", "-m", "srcproj.train"]}
    assert "source" not in p.values


# --- verify -----------------------------------------------------------------------------------


def test_verify_leaves_the_project_distribution_out():
    m = manifest()
    f = facts()
    f["distributions"]["srcproj"] = dict(f["distributions"]["six"], version="0.1.0")
    unnamed = image_view(source(m), info(env_of(m)), f, BaseCheck("ok", ""))
    (change,) = compare(claim_view(m, "the manifest"), unnamed)
    assert (change.kind, change.name) == ("added", "srcproj")  # without the facts file, it would be a stranger
    named = image_view(
        source(m), info(env_of(m)), f, BaseCheck("ok", ""), project=project_name({"project": {"name": "srcproj"}})
    )
    assert compare(claim_view(m, "the manifest"), named) == []
    assert project_name({"project": "srcproj"}) is None and project_name(None) is None


# --- a failing build names the project ----------------------------------------------------------


def test_a_failing_project_step_is_named_after_install_project(srcproj):
    from imagesmith.build import describe_failure

    describe = describe_failure(parse_spec(dict(SPEC), srcproj))
    text = render(parse_spec(dict(SPEC), srcproj), _project_lock())
    build = text[text.index("FROM base AS project-build") : text.index("FROM scratch AS project\n")]
    run = " ".join(build[build.index("RUN ") :].split())
    log = f'ERROR: failed to solve: process "/bin/sh -c {run}" did not complete successfully: exit code: 2'
    assert describe(log) == ("install_project (srcproj: building its wheel failed)", True)
    log = log.replace(".project build ", ".project install ")
    assert describe(log) == ("install_project (srcproj: installing its wheel failed)", True)
