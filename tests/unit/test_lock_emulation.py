"""lock/emulation.py: a lock for a platform this machine cannot run starts containers only of this
machine's platform's images; any other is refused, naming what would have run, before it starts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imagesmith.errors import LockError, UsageError
from imagesmith.lock.emulation import NativeOnly, Refusal, native_only
from imagesmith.lock.pins import Pin
from imagesmith.platforms import machine_platform
from imagesmith.wheels import WheelCache
from tests.fakes import FakeEngine, image_info
from tests.helpers import fake_lock

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


def test_a_caller_says_the_refusal_in_its_own_error_and_words():
    fake = engine()
    guarded = native_only(fake, "no QEMU", Refusal(UsageError, lambda image, what: f"{what} in {image}"))
    assert guarded.run("base@here", ["-c", "pass"], entrypoint=["python3"]) == "ran\n"
    with pytest.raises(UsageError, match=r"^no QEMU \(what runs there: pip download in base@other\)$") as err:
        guarded.run("base@other", ["download"], entrypoint=["pip"])
    assert err.value.exit_code == 2 and err.value.hint is None
    assert [image for _, image, _ in fake.called("run")] == ["base@here"]


def test_the_wheel_cache_fetches_an_sdist_only_through_the_same_refusal(tmp_path, monkeypatch):
    """An sdist to fetch in the base of a platform without QEMU: the wheel cache's engine is
    ``NativeOnly``, so a base that is not this machine's (a registry image the engine does not
    have, or another platform's) is refused with the build's usage error before its container
    starts, and only the base the engine says is this machine's runs the fetch."""
    monkeypatch.setattr(
        "imagesmith.platforms.emulation_problem", lambda p: None if p == machine_platform() else "no QEMU"
    )
    (tmp_path / "dl").mkdir()
    pins = [Pin("onlysdist", "1.0", ("sha256:" + "0" * 64,))]
    fake = engine()
    cache = WheelCache(tmp_path / "cache", engine=fake)
    lock = fake_lock(platform=OTHER)
    refused = rf"^no QEMU \(what runs there: fetching and building onlysdist==1.0 from source \(no wheel for Python 3.11 on {OTHER}\)\)$"
    for digest in ("absent", "other"):
        with pytest.raises(UsageError, match=refused):
            cache._download_sdists(
                pins, replace(lock, base=replace(lock.base, name="base", digest=digest)), tmp_path, None, []
            )
    assert fake.called("run") == []
    cache._download_sdists(pins, replace(lock, base=replace(lock.base, name="base", digest="here")), tmp_path, None, [])
    assert [image for _, image, _ in fake.called("image")] == ["base@absent", "base@other", "base@here"]
    assert [image for _, image, _ in fake.called("run")] == ["base@here"]
