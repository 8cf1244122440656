"""Where each platform's Python environment is installed (python_env.py): the stages the
Dockerfile gets for a lock whose base is pinned for another platform too, the lock's ``hosts``
round trip, and what a build says runs emulated."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from imagesmith import python_env
from imagesmith.build import build_args
from imagesmith.lock.lockfile import read_lock
from imagesmith.lock.pins import Pin
from imagesmith.plan import NOWHERE, ON_BUILDER, ON_TARGET, STEPS, plan_for
from imagesmith.render import render
from imagesmith.spec import ProjectPackage
from imagesmith.spec.load import load_spec
from tests.helpers import cli, fake_lock

HERE = Path(__file__).resolve().parent.parent
AMD64 = "sha256:" + "9" * 64


def arm64_lock(hosts=(("linux/amd64", AMD64),), **changes):
    lock = fake_lock(platform="linux/arm64", **changes)
    return replace(lock, base=replace(lock.base, index="sha256:" + "f" * 64, hosts=hosts))


@pytest.fixture
def tiny_arm64():
    spec = load_spec(HERE / "projects" / "tiny")
    return replace(spec, platform="linux/arm64", platforms=("linux/arm64",))


def test_a_base_pinned_for_the_build_platform_gets_a_stage_there_and_the_same_command_both_ways(tiny_arm64):
    text = render(tiny_arm64, arm64_lock())
    assert "ARG IMAGESMITH_PYTHON_ENV=build\n" in text
    assert f"FROM --platform=linux/amd64 python:3.11-slim@{AMD64} AS python-env-host-amd64\n" in text
    assert "FROM base AS python-env-host-arm64\n" in text
    assert "FROM python-env-host-${BUILDARCH} AS python-env-on-build\n" in text
    assert "FROM base AS python-env-on-target\n" in text
    assert "FROM python-env-on-${IMAGESMITH_PYTHON_ENV} AS python-env\n" in text
    # one install command, naming the target's platform to uv, whichever platform runs it
    assert text.count("/tmp/uv pip install") == 1
    assert "--python-platform aarch64-manylinux_2_28" in text
    assert "COPY --from=python-env /python-env/ /\n" in text


def test_without_hosts_the_stage_is_the_target_s(tiny_arm64):
    text = render(tiny_arm64, arm64_lock(hosts=()))
    assert "IMAGESMITH_PYTHON_ENV" not in text and "BUILDARCH" not in text
    assert "FROM base AS python-env\n" in text
    assert "--mount=type=bind,from=wheels,target=/run/imagesmith/installer-wheels" in text


def test_no_installer_no_hosts(tiny_arm64):
    lock = arm64_lock(installer=())
    assert python_env.hosts(lock) == []
    assert "BUILDARCH" not in render(tiny_arm64, lock)


def test_the_lock_keeps_hosts(tmp_path):
    lock = arm64_lock()
    path = tmp_path / "imagesmith.lock"
    path.write_text(lock.to_json())
    assert json.loads(path.read_text())["base"]["hosts"] == {"linux/amd64": AMD64}
    assert read_lock(path).base.hosts == (("linux/amd64", AMD64),)


def test_a_bad_hosts_entry_is_a_lock_problem(tmp_path):
    data = json.loads(arm64_lock().to_json())
    data["base"]["hosts"] = {"linux/riscv": "sha256:x"}
    path = tmp_path / "imagesmith.lock"
    path.write_text(json.dumps(data))
    from imagesmith.errors import LockError

    with pytest.raises(LockError, match="base.hosts"):
        read_lock(path)


SYSTEM_PACKAGES = (
    "system packages (dpkg and their maintainer scripts; apt resolves and downloads them in the builder stage)"
)


def test_what_runs_emulated_and_why(tiny_arm64):
    lock = arm64_lock()
    image = plan_for(tiny_arm64, lock)
    assert python_env.emulated_steps(image, lock, "linux/arm64", sdists=[]) == []
    # natively: only the steps of shared that run the target's own code
    assert python_env.emulated_steps(image, lock, "linux/amd64", sdists=[]) == [SYSTEM_PACKAGES]
    wheel_only = replace(lock, system_packages=())
    assert python_env.emulated_steps(plan_for(tiny_arm64, wheel_only), wheel_only, "linux/amd64", sdists=[]) == []
    project = replace(tiny_arm64, project=ProjectPackage("tiny", ("hatchling",), "hatchling.build"))
    assert python_env.emulated_steps(plan_for(project, wheel_only), wheel_only, "linux/amd64", sdists=[]) == [
        "the project's wheel (its build backend, and the wheel may hold the target's code)"
    ]
    assert python_env.installs_on(lock, "linux/amd64") == "linux/amd64"
    # on the target: every stage the builder runs, but one a named context replaces
    target = python_env.emulated_steps(
        image, lock, "linux/amd64", sdists=["x-1.tar.gz"], on="target", replaced={"source", "wheels"}
    )
    why = "(IMAGESMITH_PYTHON_ENV=target)"
    assert target == [
        "building x-1.tar.gz from source (the target's compilers)",
        f"the images' user {why}",
        f"resolving and downloading system packages {why}",
        SYSTEM_PACKAGES,
        f"the Python environment {why}",
        f"the preprocessing wheel and the artifacts folder {why}",
        f"the image facts {why}",
    ]
    wheel_only_image = plan_for(tiny_arm64, wheel_only)
    mixed = python_env.emulated_steps(
        wheel_only_image,
        wheel_only,
        "linux/amd64",
        sdists=["a-1.zip", "b-1.tar.gz", "c-1.tar.gz"],
        pure=["a-1.zip", "c-1.tar.gz"],
    )
    assert mixed == [
        "building b-1.tar.gz from source (the target's compilers)",
        "building a-1.zip, c-1.tar.gz from source (pure Python: the target's pip, no compilers)",
    ]
    local = replace(lock, base=replace(lock.base, source="local", hosts=()))
    said = python_env.emulated_steps(image, local, "linux/amd64", sdists=[])
    assert "the Python environment (the base is a local image of linux/arm64 only" in "; ".join(said)


def test_the_emulated_steps_follow_the_plans_steps(tiny_arm64):
    """Every step of the plan that runs somewhere says what it makes; a heavy distribution's
    layer is its Python environment's (one line, not one per distribution)."""
    for step in STEPS:
        assert (step.runs == NOWHERE) == (not step.title), step
        assert (step.runs == ON_TARGET) == bool(step.why), step
        assert step.runs != ON_BUILDER or step.instruction == "COPY", step
    lock = arm64_lock(packages=(Pin("torch", "2.5.1", ("sha256:" + "1" * 64,)),))
    image = plan_for(tiny_arm64, lock)
    assert image.heavy == ("torch",)
    said = python_env.emulated_steps(image, lock, "linux/amd64", sdists=[], on="target")
    assert [s for s in said if "torch" in s or "Python environment" in s] == [
        "the Python environment (IMAGESMITH_PYTHON_ENV=target)"
    ]


def test_the_build_argument_is_passed_only_when_not_the_default():
    assert "IMAGESMITH_PYTHON_ENV" not in build_args(0)
    assert build_args(0, "target")["IMAGESMITH_PYTHON_ENV"] == "target"


def test_build_refuses_an_unknown_python_env_with_a_usage_error():
    proc = cli("build", "-p", str(HERE / "projects" / "tiny"), "--python-env", "qemu")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: --python-env must be build or target, not 'qemu'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_without_qemu_a_wheel_only_lock_builds_and_anything_else_is_refused(tiny_arm64):
    """A machine with no QEMU for arm64 (platforms.emulation_problem says so; never unregistered
    here: faked by its answer): a wheel-only lock whose builder runs on the build platform runs
    nothing on the target, so its build goes ahead; with system packages, or when the plan cannot
    say (the wheels fetched on the target), the build is refused, naming what would run there."""
    problem = "building or running linux/arm64 on this x86_64 machine needs emulation, and no QEMU handler"
    lock = arm64_lock()
    wheel_only = replace(lock, system_packages=())
    steps = python_env.emulated_steps(plan_for(tiny_arm64, wheel_only), wheel_only, "linux/amd64", sdists=[])
    assert python_env.emulation_refusal(problem, steps) is None
    steps = python_env.emulated_steps(plan_for(tiny_arm64, lock), lock, "linux/amd64", sdists=[])
    assert python_env.emulation_refusal(problem, steps) == f"{problem} (what runs there: {SYSTEM_PACKAGES})"
    assert python_env.emulation_refusal(problem, None) == problem
    assert python_env.emulation_refusal(None, steps) is None  # QEMU is there
    on_target = python_env.emulated_steps(
        plan_for(tiny_arm64, wheel_only), wheel_only, "linux/amd64", sdists=[], on="target"
    )
    assert "the Python environment (IMAGESMITH_PYTHON_ENV=target)" in python_env.emulation_refusal(problem, on_target)


def test_the_pure_python_sdists_are_the_build_stages_own_decision(tmp_path):
    """What the emulation line calls pure Python is what runtime/sdists.py's toolchain builds
    without compilers; an sdist it cannot read counts as compiled."""
    import io
    import tarfile

    for name, members in (("pure-1.tar.gz", ["pure-1/pure.py"]), ("fast-1.tar.gz", ["fast-1/fast.pyx"])):
        with tarfile.open(tmp_path / name, "w:gz") as archive:
            for member in members:
                archive.addfile(tarfile.TarInfo(member), io.BytesIO(b""))
    (tmp_path / "broken-1.zip").write_bytes(b"not a zip")
    names = ["broken-1.zip", "fast-1.tar.gz", "pure-1.tar.gz"]
    assert python_env.pure_python(tmp_path, names) == ["pure-1.tar.gz"]
