"""The base's Python version for another platform than this machine's is read from the image's
config and files, never by running it under QEMU (lock/base.py: ``version_from_files``, and
``python_version``, which runs the image only when the files do not tell)."""

from __future__ import annotations

import pytest

from imagesmith.engine.records import FileEntry
from imagesmith.errors import EngineError
from imagesmith.lock import base
from imagesmith.lock.base import DPKG_STATUS, python_version, version_from_files
from tests.fakes import image_info

STATUS = b"""Package: libc6
Status: install ok installed
Version: 2.36-9+deb12u10

Package: python3.11-minimal
Status: install ok installed
Priority: optional
Architecture: arm64
Version: 3.11.2-6+deb12u8
Description: Minimal subset of the Python language (version 3.11)
 This package contains the interpreter and some essential modules.

Package: python3.12-minimal
Status: deinstall ok config-files
Version: 3.12.1-1
"""


def _link(path: str, target: str) -> tuple[FileEntry, ...]:
    return (FileEntry(path, "symlink", 0o777, 0, target),)


def _file(path: str, data: bytes = b"") -> tuple[FileEntry, ...]:
    return (FileEntry(path, "file", 0o644, 0, "", "", data),)


DEBIAN = {"/usr/bin/python3": _link("/usr/bin/python3", "python3.11"), DPKG_STATUS: _file(DPKG_STATUS, STATUS)}


def test_a_distribution_python_is_the_dpkg_record_of_the_python3_link():
    assert version_from_files([], DEBIAN) == "3.11.2"
    # only an installed package counts: python3.12 left config files only
    linked = {**DEBIAN, "/usr/bin/python3": _link("/usr/bin/python3", "python3.12")}
    assert version_from_files([], linked) is None
    tilde = STATUS.replace(b"3.11.2-6+deb12u8", b"1:3.11.0~rc1-1")
    assert version_from_files([], {**DEBIAN, DPKG_STATUS: _file(DPKG_STATUS, tilde)}) == "3.11.0rc1"


def test_the_python_images_version_is_their_env_when_their_python3_runs():
    env = ["PATH=/usr/local/bin:/usr/bin", "PYTHON_VERSION=3.11.7"]
    assert (
        version_from_files(env, {"/usr/local/bin/python3": _link("/usr/local/bin/python3", "python3.11")}) == "3.11.7"
    )
    # PYTHON_VERSION with the distribution's python3 first on PATH: the dpkg record, not the env
    assert version_from_files(["PATH=/usr/bin:/usr/local/bin", "PYTHON_VERSION=3.12.0"], DEBIAN) == "3.11.2"


@pytest.mark.parametrize(
    "env, files",
    [
        ([], {}),  # no python3 on PATH
        ([], {**DEBIAN, "/usr/local/bin/python3": _file("/usr/local/bin/python3")}),  # one of its own first
        (["PATH=/opt/conda/bin:/usr/bin"], {**DEBIAN, "/opt/conda/bin/python3": _file("/opt/conda/bin/python3")}),
        ([], {**DEBIAN, "/usr/bin/python3": _file("/usr/bin/python3")}),  # not a link to python3.X
        ([], {"/usr/bin/python3": DEBIAN["/usr/bin/python3"]}),  # no dpkg database
        ([], {**DEBIAN, DPKG_STATUS: (FileEntry(DPKG_STATUS, "file", 0o644, 0),)}),  # too large to keep
    ],
)
def test_files_that_do_not_tell_for_certain_give_none(env, files):
    assert version_from_files(env, files) is None


class Engine:
    """What python_version asks of an engine, answering from ``files``; every run recorded."""

    def __init__(self, files: dict, env: list[str] | None = None, unreadable: bool = False) -> None:
        self.files, self.env, self.unreadable, self.ran = files, env or [], unreadable, []

    def image(self, ref):
        return image_info(ref, config={"Env": self.env})

    def read_paths(self, image, paths, small=None):
        if self.unreadable:
            raise EngineError("cannot create a container")
        return {p: self.files.get(p) for p in paths}

    def run(self, image, command, **options):
        self.ran.append(image)
        return "3.11.2\n"


def test_another_platforms_base_is_read_not_run_and_run_only_when_its_files_do_not_tell(monkeypatch):
    monkeypatch.setattr(base, "machine_platform", lambda: "linux/amd64")
    engine = Engine(DEBIAN)
    assert python_version(engine, "b@sha256:arm", "linux/arm64") == "3.11.2" and engine.ran == []
    for silent in (Engine({}), Engine(DEBIAN, unreadable=True)):
        assert python_version(silent, "b@sha256:arm", "linux/arm64") == "3.11.2" and silent.ran == ["b@sha256:arm"]
    native = Engine(DEBIAN)  # this machine's platform: run as before (no emulation)
    assert python_version(native, "b@sha256:amd", "linux/amd64") == "3.11.2" and native.ran == ["b@sha256:amd"]
    assert python_version(native, "b@sha256:amd") == "3.11.2" and len(native.ran) == 2
