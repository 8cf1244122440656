"""System packages for linux/arm64 on this x86-64 machine (issue 27), where no QEMU is: a
wheel-only arm64 lock builds, one with system packages is refused, naming what would run
emulated. (apt resolving and downloading the arm64 .debs in builder, natively, dpkg alone on the
target, and the image the same bytes whichever platform builder ran on: tiny-native with
libgomp1, built both ways with no cache, in test_python_env_cross.py, the same pair of builds as
the Python environment's.)"""

from __future__ import annotations

import subprocess

import pytest

from imagesmith.build import BuildOptions, build_project
from imagesmith.errors import UsageError
from imagesmith.lock.update import lock_project
from imagesmith.spec.load import load_spec
from tests.conftest import PROJECTS, REGISTRY_BASE, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.registry]


@pytest.mark.xdist_group("system-packages-no-qemu")
def test_without_qemu_a_wheel_only_arm64_lock_builds_and_one_with_system_packages_is_refused(
    tmp_path, engine, registry, monkeypatch
):
    """A machine without QEMU for arm64 (faked by emulation_problem's answer: binfmt is never
    unregistered on this shared host), given a lock written where QEMU is (without QEMU writing
    the lock is refused: build.py and lock/update.py check before pinning the base): with a fresh
    wheel-only lock nothing runs on the target, so the build goes ahead (up to the bake
    definition: print_only); with a system package the build stops before BuildKit runs, naming
    what would run emulated."""
    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    text = (root / "imagesmith.yaml").read_text()
    text = (
        text.replace("base: imagesmith-base:bookworm-py311\n", f"base: {REGISTRY_BASE}\n") + "platform: linux/arm64\n"
    )
    (root / "imagesmith.yaml").write_text(text)
    subprocess.run(["git", "commit", "-qam", "arm64"], cwd=root, check=True, capture_output=True)
    options = BuildOptions(tag="imagesmith-test/no-qemu", push=f"{registry}/imagesmith-test/no-qemu", print_only=True)
    lines: list[str] = []
    build_project(load_spec(root), engine, options, progress=lines.append)  # locks with QEMU (without it: refused)
    no_qemu = "building or running linux/arm64 on this x86_64 machine needs emulation (faked)"
    monkeypatch.setattr("imagesmith.build.emulation_problem", lambda p: no_qemu if p == "linux/arm64" else None)
    lines.clear()
    result = build_project(load_spec(root), engine, options, progress=lines.append)
    assert result.bake is not None
    assert [line for line in lines if line.startswith("linux/arm64: ")] == [
        "linux/arm64: the Python environment is installed natively on linux/amd64; nothing runs emulated"
    ]

    (root / "imagesmith.yaml").write_text(text + "system_packages: [libgomp1]\n")
    spec = load_spec(root)
    with pytest.raises(UsageError, match=r"needs emulation \(faked\)$"):  # the lock would run the base
        build_project(spec, engine, options)
    monkeypatch.undo()
    lock_project(spec, engine)
    monkeypatch.setattr("imagesmith.build.emulation_problem", lambda p: no_qemu if p == "linux/arm64" else None)
    with pytest.raises(UsageError, match=r"\(faked\) \(what runs there: system packages \(dpkg and their"):
        build_project(spec, engine, options)
