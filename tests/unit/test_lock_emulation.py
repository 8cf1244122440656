"""lock/emulation.py: a lock for a platform this machine cannot run starts containers only of this
machine's platform's images; any other is refused, naming what would have run, before it starts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imagesmith.errors import LockError
from imagesmith.lock.emulation import NativeOnly, native_only
from imagesmith.platforms import machine_platform
from tests.fakes import FakeEngine, image_info

OTHER = "linux/arm64" if machine_platform() == "linux/amd64" else "linux/amd64"


def engine() -> FakeEngine:
    return FakeEngine(
        {
            "base@here": replace(image_info("base@here"), platform=machine_platform()),
            "base@other": replace(image_info("base@other"), platform=OTHER),
            "base@unsaid": image_info("base@unsaid"),  # the engine does not say its platform
        },
        runs=lambda image, command: "ran\n",
    )


def test_only_containers_of_this_machine_s_platform_start():
    fake = engine()
    guarded = NativeOnly(fake, "no QEMU")
    assert guarded.run("base@here", ["-c", "pass"], entrypoint=["python3"]) == "ran\n"
    assert guarded.run_to_end("base@here", "pip-compile", 60, command=["x"]).exit_code == 0
    for image in ("base@other", "base@unsaid", "base@absent"):
        with pytest.raises(
            LockError, match=rf"^no QEMU \(what runs there: the lock runs `pip-compile` in the base image {image}\)$"
        ):
            guarded.run_to_end(image, "pip-compile", 60, command=["x"])
    with pytest.raises(LockError, match=r"the lock runs `python3 -c import platform` in the base image base@other"):
        guarded.run("base@other", ["-c", "import platform"], entrypoint=["python3"])
    assert [image for _, image, _ in fake.called("run") + fake.called("run_to_end")] == ["base@here", "base@here"]
    assert guarded.has_image("base@other")  # every other question passes through


def test_a_platform_this_machine_runs_keeps_the_engine_as_it_is():
    fake = engine()
    assert native_only(fake, None) is fake and native_only(None, "no QEMU") is None
    assert isinstance(native_only(fake, "no QEMU"), NativeOnly)
