"""System packages for linux/arm64 on this x86-64 machine (issue 27), where no QEMU is: the lock
is written natively, a wheel-only arm64 lock builds, one with system packages is refused, naming
what would run emulated, and apt sources that do not answer are reported, not tried again on
arm64. (apt resolving and downloading the arm64 .debs in builder, natively, dpkg alone on the
target, and the image the same bytes whichever platform builder ran on: tiny-native with
libgomp1, built both ways with no cache, in test_python_env_cross.py, the same pair of builds as
the Python environment's.)"""

from __future__ import annotations

import subprocess

import pytest

from imagesmith import python_env
from imagesmith.build import BuildOptions, build_project
from imagesmith.errors import LockError, UsageError
from imagesmith.lock.base import DPKG_STATUS
from imagesmith.lock.lockfile import read_lock
from imagesmith.lock.system import pin_system_packages
from imagesmith.lock.update import lock_project
from imagesmith.spec.load import load_spec
from tests.conftest import PROJECTS, REGISTRY_BASE, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.registry]


def started_platforms(engine, monkeypatch) -> list[str]:
    """The platform of each container the engine starts from now on (until the test ends)."""
    started: list[str] = []
    run_to_end = engine.containers.run_to_end

    def recorded(image, what, timeout, **create):
        started.append(engine.image(image).platform)
        return run_to_end(image, what, timeout, **create)

    monkeypatch.setattr(engine.containers, "run_to_end", recorded)
    return started


@pytest.mark.xdist_group("system-packages-no-qemu")
def test_without_qemu_an_arm64_lock_is_written_natively_and_only_what_runs_on_arm64_is_refused(
    tmp_path, engine, registry, monkeypatch
):
    """A machine without QEMU for arm64 (faked by emulation_problem's answer, for the lock and the
    build, so that every container started can be checked, in this process, to be amd64's; the
    same refusals from the CLI in a namespace whose kernel binfmt_misc has no handler at all are
    test_no_qemu_engine.py's): the lock is written all the same (the base's Python read from its files, uv on
    the host, libgomp1 pinned by apt natively in the base's amd64 image); a wheel-only lock builds
    (up to the bake definition: print_only), one with a system package is refused before BuildKit
    runs, naming dpkg; pip-tools, which resolves in the arm64 base, is refused before it starts,
    naming pip-compile, and leaves the lock as it was."""
    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    text = (root / "imagesmith.yaml").read_text()
    text = (
        text.replace("base: imagesmith-base:bookworm-py311\n", f"base: {REGISTRY_BASE}\n") + "platform: linux/arm64\n"
    )
    (root / "imagesmith.yaml").write_text(text)
    subprocess.run(["git", "commit", "-qam", "arm64"], cwd=root, check=True, capture_output=True)
    no_qemu = "building or running linux/arm64 on this x86_64 machine needs emulation (faked)"
    for name in ("imagesmith.build.emulation_problem", "imagesmith.platforms.emulation_problem"):
        monkeypatch.setattr(name, lambda p: no_qemu if p == "linux/arm64" else None)
    started = started_platforms(engine, monkeypatch)
    read_paths, statuses = engine.read_paths, []  # the images whose dpkg status was read

    def reading(image, paths, small=None):
        statuses.extend([image] if DPKG_STATUS in paths else [])
        return read_paths(image, paths, small=small)

    monkeypatch.setattr(engine, "read_paths", reading)
    sdists_in, listed = python_env.sdists_in, []
    monkeypatch.setattr(python_env, "sdists_in", lambda house: listed.append(house) or sdists_in(house))
    options = BuildOptions(tag="imagesmith-test/no-qemu", push=f"{registry}/imagesmith-test/no-qemu", print_only=True)
    lines: list[str] = []
    result = build_project(load_spec(root), engine, options, progress=lines.append)
    assert result.bake is not None and len(listed) == 1  # the wheelhouse's sdists listed once
    assert [line for line in lines if line.startswith("linux/arm64: ")] == [
        "linux/arm64: the Python environment is installed natively on linux/amd64; nothing runs emulated"
    ]
    assert [p for p, _ in read_lock(root / "imagesmith.lock").base.hosts] == ["linux/amd64"]

    (root / "imagesmith.yaml").write_text(text + "system_packages: [libgomp1]\n")
    spec = load_spec(root)
    spec.lock_path.unlink()  # a new lock: the base's Python and its system packages, each read from its dpkg status
    statuses.clear()
    with pytest.raises(UsageError, match=r"\(faked\) \(what runs there: system packages \(dpkg and their"):
        build_project(spec, engine, options)
    lock = read_lock(spec.lock_path)
    assert [name for name, _ in lock.system_packages] == ["libgomp1"]  # apt ran natively
    assert statuses == [lock.base.ref]  # read once for both
    assert "linux/amd64" in started and set(started) == {"linux/amd64"}, started

    (root / "imagesmith.yaml").write_text(text + "system_packages: [libgomp1]\nresolver: pip-tools\n")
    before = spec.lock_path.read_bytes()
    with pytest.raises(LockError, match=r"\(faked\) \(what runs there: the lock runs `pip-compile` in the base"):
        lock_project(load_spec(root), engine)
    assert spec.lock_path.read_bytes() == before
    assert set(started) == {"linux/amd64"}, started


@pytest.mark.xdist_group("system-packages-unreachable")
def test_apt_sources_that_do_not_answer_are_reported_and_not_tried_again_on_arm64(
    tmp_path, engine, base_image, arm64_base, monkeypatch
):
    """An arm64 base whose apt source does not answer (127.0.0.1:9 in the container: refused),
    made with docker commit (nothing runs on arm64): apt's native run in the amd64 base cannot
    download the lists, which is said as it is, with a hint, and apt is not run again in the
    arm64 image (every container started is recorded with its image's platform)."""
    import uuid

    sources = tmp_path / "sources.list"
    sources.write_text("deb http://127.0.0.1:9/debian bookworm main\n")
    made = subprocess.run(["docker", "create", arm64_base], check=True, capture_output=True, text=True)
    container = made.stdout.strip()
    image = f"imagesmith-test/unreachable-apt-{uuid.uuid4().hex[:12]}:arm64"
    try:
        subprocess.run(["docker", "cp", str(sources), f"{container}:/etc/apt/sources.list"], check=True)
        subprocess.run(["docker", "commit", container, image], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rm", container], capture_output=True)
    started = started_platforms(engine, monkeypatch)
    try:
        with pytest.raises(LockError, match=r"apt could not download the package lists") as err:
            pin_system_packages(engine, image, ["libgomp1"], (base_image, "arm64"))
    finally:
        subprocess.run(["docker", "image", "rm", image], capture_output=True)
    assert "http://127.0.0.1:9/debian" in str(err.value), err.value
    assert "not tried again under emulation" in (err.value.hint or "")
    assert started == ["linux/amd64"]
