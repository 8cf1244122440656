"""imagesmith.platforms.emulation_problem: can this machine run a platform's binaries?"""

from __future__ import annotations

import pytest

from imagesmith.platforms import MACHINES, emulation_problem

ENABLED = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n"


@pytest.mark.parametrize("platform", sorted(MACHINES))
def test_the_hosts_own_platform_needs_no_emulation(tmp_path, platform):
    assert emulation_problem(platform, MACHINES[platform], binfmt_dir=tmp_path) is None


def test_an_enabled_qemu_handler_is_enough(tmp_path):
    (tmp_path / "qemu-aarch64").write_text(ENABLED)
    assert emulation_problem("linux/arm64", "x86_64", binfmt_dir=tmp_path) is None


def test_a_missing_handler_names_the_platform_and_the_fix(tmp_path):
    problem = emulation_problem("linux/arm64", "x86_64", binfmt_dir=tmp_path)
    assert problem is not None and "\n" not in problem
    assert "linux/arm64" in problem and "x86_64" in problem
    assert f"{tmp_path / 'qemu-aarch64'} is missing" in problem
    assert "make engine" in problem and "IMAGESMITH_PLATFORMS=linux/arm64" in problem
    assert "update-binfmts --enable qemu-aarch64" in problem


def test_a_disabled_handler_is_a_problem(tmp_path):
    (tmp_path / "qemu-aarch64").write_text(ENABLED.replace("enabled", "disabled", 1))
    problem = emulation_problem("linux/arm64", "x86_64", binfmt_dir=tmp_path)
    assert problem is not None and "registered but disabled" in problem


def test_another_architectures_handler_does_not_count(tmp_path):
    (tmp_path / "qemu-arm").write_text(ENABLED)
    assert emulation_problem("linux/arm64", "x86_64", binfmt_dir=tmp_path) is not None
    (tmp_path / "qemu-aarch64").write_text(ENABLED)
    assert emulation_problem("linux/amd64", "aarch64", binfmt_dir=tmp_path) is not None


def test_the_default_host_is_this_machine(tmp_path):
    import platform

    here = next(p for p, m in MACHINES.items() if m == platform.machine())
    assert emulation_problem(here, binfmt_dir=tmp_path) is None
