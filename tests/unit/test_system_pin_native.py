"""System packages of a base of another platform are pinned by apt running natively in the same
base's image of this machine's platform, for the target's architecture, against the target's own
apt configuration and dpkg status read from it (lock/system.py): the target's image is not run.
What the engine is asked is checked here; that the pins equal the emulated ones is the engine
test's (tests/engine/test_lock_engine.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagesmith.engine.records import FileEntry, IsolatedRun
from imagesmith.errors import LockError
from imagesmith.lock.system import DPKG_STATUS, TARGET, installed_in, pin_system_packages

STATUS = b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\nPackage: gone\nStatus: deinstall ok config-files\n"
SIMULATION = "Inst libgomp1 (12.2.0-14+deb12u1 Debian:12.12/oldstable [arm64])\nConf libgomp1 (12.2.0-14+deb12u1)\n"


class Engine:
    """What pin_system_packages asks of an engine; what it copies into the native run kept."""

    def __init__(self, etc_apt=None, run_out: str = SIMULATION, exit_code: int = 0, stderr: str = "") -> None:
        self.etc_apt = etc_apt
        self.run_out, self.exit_code, self.stderr = run_out, exit_code, stderr
        self.ran: list[str] = []
        self.native: list[tuple[str, list, dict]] = []

    def read_paths(self, image, paths, small=None):
        etc = (
            self.etc_apt
            if self.etc_apt is not None
            else (
                FileEntry("/etc/apt", "dir", 0o755, 0),
                FileEntry(
                    "/etc/apt/sources.list", "file", 0o644, 0, data=b"deb http://127.0.0.1:9/debian bookworm main\n"
                ),
            )
        )
        return {"/etc/apt": etc, DPKG_STATUS: (FileEntry(DPKG_STATUS, "file", 0o644, 0, data=STATUS),)}

    def has_image(self, ref):
        return True

    def run_to_end(self, image, what, timeout, **create):
        copied = {
            str(p.relative_to(root)): p.read_bytes()
            for host, target in create["files"].items()
            for root in [Path(host)]
            for p in root.rglob("*")
            if p.is_file()
        }
        self.native.append((image, create["command"], copied))
        assert list(create["files"].values()) == [TARGET]
        return IsolatedRun(self.exit_code, self.run_out, self.stderr)

    def run(self, image, command, **options):
        self.ran.append(image)
        return SIMULATION


def test_apt_runs_natively_for_the_target_architecture_with_the_target_s_files():
    engine = Engine()
    pins = pin_system_packages(engine, "base@sha256:arm", ["libgomp1"], ("base@sha256:amd", "arm64"))
    assert pins == {"libgomp1": "12.2.0-14+deb12u1"}
    assert engine.ran == []  # the arm64 image never ran
    [(image, command, copied)] = engine.native
    assert image == "base@sha256:amd" and command[-1] == "libgomp1"
    script = command[1]
    for option in ("APT::Architecture=arm64", "APT::Architectures=arm64", f"Dir::Etc={TARGET}/etc/apt"):
        assert option in script
    assert f"Dir::State::status={TARGET}/status" in script
    assert copied == {"etc/apt/sources.list": b"deb http://127.0.0.1:9/debian bookworm main\n", "status": STATUS}


def test_already_installed_is_read_from_the_target_s_status_and_a_missing_package_is_the_user_s():
    engine = Engine(run_out="")
    assert pin_system_packages(engine, "b@arm", ["libc6"], ("b@amd", "arm64")) == {} and engine.ran == []
    with pytest.raises(LockError, match="apt did not resolve system package gone"):
        pin_system_packages(engine, "b@arm", ["gone"], ("b@amd", "arm64"))
    missing = Engine(exit_code=100, stderr="E: Unable to locate package nope\n")
    with pytest.raises(LockError, match="system package\\(s\\) nope not found"):
        pin_system_packages(missing, "b@arm", ["nope"], ("b@amd", "arm64"))
    assert missing.ran == []  # not tried again under QEMU


@pytest.mark.parametrize(
    "engine",
    [
        Engine(etc_apt=(FileEntry("/etc/apt/trusted.gpg", "symlink", 0o777, 0, target="/x"),)),  # a link: not copied
        Engine(exit_code=1, stderr="sh: 1: mkdir: Permission denied"),  # the native run failed for another reason
    ],
)
def test_the_target_s_image_runs_only_when_the_native_way_cannot(engine):
    assert pin_system_packages(engine, "b@arm", ["libgomp1"], ("b@amd", "arm64")) == {"libgomp1": "12.2.0-14+deb12u1"}
    assert engine.ran == ["b@arm"]


def test_package_lists_apt_cannot_download_are_reported_not_tried_again_emulated():
    fetch = "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Temporary failure resolving"
    engine = Engine(exit_code=3, stderr=f"{fetch}\napt-get update failed\n")
    with pytest.raises(LockError, match=r"apt could not download the package lists of b@arm's apt sources") as err:
        pin_system_packages(engine, "b@arm", ["libgomp1"], ("b@amd", "arm64"))
    assert fetch in str(err.value) and "not tried again under emulation" in (err.value.hint or "")
    assert engine.ran == []
    [(_, command, _)] = engine.native
    assert "-o APT::Update::Error-Mode=any update" in command[1]  # a list that fails fails the update


def test_without_a_host_image_the_base_itself_runs_apt():
    engine = Engine()
    assert pin_system_packages(engine, "b@amd", ["libgomp1"]) == {"libgomp1": "12.2.0-14+deb12u1"}
    assert engine.ran == ["b@amd"] and engine.native == []


def test_installed_in_reads_only_installed_packages():
    text = STATUS.decode()
    assert installed_in(text, "libc6") and not installed_in(text, "gone") and not installed_in(text, "zlib1g")


def test_the_lock_pins_natively_only_for_another_platform_whose_base_has_ours(monkeypatch):
    from dataclasses import replace

    from imagesmith.lock import system, update
    from imagesmith.lock.base import BasePin
    from imagesmith.spec.load import load_spec

    asked = []
    monkeypatch.setattr(system, "pin_system_packages", lambda e, image, names, native=None: asked.append(native) or {})
    monkeypatch.setattr(update.platforms, "machine_platform", lambda: "linux/amd64")
    tiny = replace(load_spec(Path(__file__).resolve().parents[1] / "projects" / "tiny"), system_packages=("libgomp1",))
    pin = BasePin("b:x", "sha256:arm", "registry", "3.11.2", "sha256:index", (("linux/amd64", "sha256:amd"),))
    assert tiny.platform == "linux/amd64"
    update._pin_system(tiny, None, pin, print)  # ours: apt in the base itself
    update._pin_system(replace(tiny, platform="linux/arm64", platforms=("linux/arm64",)), None, pin, print)
    update._pin_system(
        replace(tiny, platform="linux/arm64", platforms=("linux/arm64",)), None, replace(pin, hosts=()), print
    )
    assert asked == [None, ("b:x@sha256:amd", "arm64"), None]
