"""A machine with no QEMU for arm64, for real rather than faked: imagesmith runs in a new user
namespace with the kernel's binfmt_misc mounted afresh there. Since Linux 6.7 that mount is an
instance of its own, with no handler registered, so no process in the namespace can run an arm64
binary (checked first with a static arm64 program, which runs outside the namespace through this
machine's QEMU). The engine outside still has QEMU, so what is checked is imagesmith's own side:
it reads the kernel's handlers as a machine without QEMU shows them, writes an arm64 lock
natively, refuses before BuildKit runs what would run emulated (dpkg, pip-compile in the base),
and lets a wheel-only build through. test_system_packages_cross.py's faked twin checks, inside
the process, that every container it starts is amd64's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from imagesmith.lock.lockfile import read_lock
from tests.conftest import PROJECTS, REGISTRY_BASE, copy_project
from tests.helpers import _bytecode_kept, remove_tags

pytestmark = [pytest.mark.engine, pytest.mark.registry]

BINFMT = "/proc/sys/fs/binfmt_misc"
_NO_QEMU = [
    "unshare", "--user", "--map-root-user", "--mount", "--",
    "sh", "-c", f'mount -t binfmt_misc binfmt_misc {BINFMT} && exec "$@"', "no-qemu",
]  # fmt: skip


def without_qemu(*argv: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``argv`` run in a user and mount namespace whose binfmt_misc has no handler."""
    env = _bytecode_kept(dict(os.environ))
    return subprocess.run(
        [*_NO_QEMU, *argv], cwd=cwd, env=env, capture_output=True, text=True, errors="replace", timeout=timeout
    )


def imagesmith(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = without_qemu(sys.executable, "-m", "imagesmith", *args, cwd=cwd)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _arm64_program(arm64_base: str, dest: Path) -> Path:
    """The arm64 base's ldconfig (statically linked: it needs no arm64 loader on this machine)."""
    made = subprocess.run(["docker", "create", arm64_base], check=True, capture_output=True, text=True)
    container = made.stdout.strip()
    try:
        subprocess.run(["docker", "cp", f"{container}:/usr/sbin/ldconfig", str(dest)], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rm", container], capture_output=True)
    return dest


@pytest.fixture
def tag():
    """A tag of this run's own; any image a failing run built under it is removed afterwards."""
    name = f"imagesmith-test/no-qemu-{uuid.uuid4().hex[:12]}"
    yield name
    remove_tags(name)


@pytest.mark.xdist_group("no-qemu-real")
def test_with_no_qemu_handler_only_what_runs_on_arm64_is_refused(tmp_path, arm64_base, registry, tag):
    probe = without_qemu("ls", BINFMT)
    if probe.returncode != 0:  # a kernel before 6.7, user namespaces turned off, no unshare(1)
        pytest.skip(f"cannot mount a binfmt_misc of its own in a user namespace here: {probe.stderr.strip()[:200]}")
    assert "qemu-aarch64" not in probe.stdout.split(), probe.stdout
    program = _arm64_program(arm64_base, tmp_path / "ldconfig-arm64")
    assert subprocess.run([str(program), "--version"], capture_output=True).returncode == 0  # this machine's QEMU
    refused = without_qemu(str(program), "--version")
    assert refused.returncode == 126 and "Exec format error" in refused.stderr, refused  # none in the namespace

    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    text = (root / "imagesmith.yaml").read_text()
    text = text.replace("base: imagesmith-base:bookworm-py311\n", f"base: {REGISTRY_BASE}\n")
    text += "platform: linux/arm64\n"
    (root / "imagesmith.yaml").write_text(text + "system_packages: [libgomp1]\n")
    subprocess.run(["git", "commit", "-qam", "arm64"], cwd=root, check=True, capture_output=True)

    built = imagesmith("build", "-p", str(root), "--tag", tag, cwd=root)
    assert built.returncode == 2, built.stderr
    assert f"no QEMU handler for aarch64 is registered with the kernel ({BINFMT}/qemu-aarch64 is missing)" in (
        built.stderr
    ), built.stderr
    assert "system packages (dpkg and their maintainer scripts" in built.stderr, built.stderr
    lock = read_lock(root / "imagesmith.lock")  # written all the same: apt and uv ran natively
    assert [name for name, _ in lock.system_packages] == ["libgomp1"]
    assert [p for p, _ in lock.base.hosts] == ["linux/amd64"]
    images = subprocess.run(["docker", "image", "ls", "-q", tag], capture_output=True, text=True, check=True)
    assert images.stdout.strip() == ""  # nothing built
    assert not [line for line in built.stderr.splitlines() if line.startswith("#")], built.stderr  # no BuildKit step

    (root / "imagesmith.yaml").write_text(text + "system_packages: [libgomp1]\nresolver: pip-tools\n")
    before = (root / "imagesmith.lock").read_bytes()
    locked = imagesmith("lock", "-p", str(root), cwd=root)
    assert locked.returncode == 2, locked.stderr
    assert "no QEMU handler for aarch64" in locked.stderr and "the lock runs `pip-compile` in the base" in (
        locked.stderr
    ), locked.stderr
    assert (root / "imagesmith.lock").read_bytes() == before

    (root / "imagesmith.yaml").write_text(text)  # wheels only: nothing runs on arm64
    printed = imagesmith("build", "-p", str(root), "--tag", tag, "--print", cwd=root)
    assert printed.returncode == 0, printed.stderr
    said = "imagesmith: linux/arm64: the Python environment is installed natively on linux/amd64; nothing runs emulated"
    assert said in printed.stderr.splitlines(), printed.stderr
    bake = json.loads(printed.stdout)
    assert {t["platforms"][0] for t in bake["target"].values() if t.get("platforms")} == {"linux/arm64"}, bake
