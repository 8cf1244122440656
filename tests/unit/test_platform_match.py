"""One platform match for a local image (pinned.local_of_platform, by platforms.same_platform):
verify, diff and inspect (verify_source.open_source), signoff (deploy.platform_image) and the
deploy gate (deploy.resolve) take or refuse the same images for the same --platform."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imagesmith import deploy
from imagesmith.errors import UsageError
from imagesmith.platforms import index_candidates, machine_platform
from imagesmith.verify_source import open_source
from tests.fakes import FakeEngine, image_info

OTHER = "linux/arm64" if machine_platform() == "linux/amd64" else "linux/amd64"
ARCH = OTHER.split("/")[1]


def engine() -> FakeEngine:
    return FakeEngine({"x:serve": replace(image_info("x:serve"), platform=OTHER)})


def take(asked: str) -> list[str]:
    """What each reader says of the local image x:serve (an OTHER image) for ``--platform asked``."""
    return [
        open_source(engine(), "x:serve", asked).info.platform,
        deploy.resolve(engine(), "x:serve", asked).info.platform,
        deploy.platform_image(engine(), "x:serve", asked),
    ]


@pytest.mark.parametrize("asked", [OTHER, f"{OTHER}/v8" if ARCH == "arm64" else f"{OTHER}/v1", OTHER.upper()])
def test_a_platform_that_differs_only_by_a_default_variant_or_its_case_is_the_image_s(asked, monkeypatch):
    monkeypatch.setattr(
        "imagesmith.platforms.emulation_problem", lambda p: None
    )  # signoff runs it: as if QEMU were there
    assert take(asked) == [OTHER, OTHER, "x:serve"]


@pytest.mark.parametrize("asked", [machine_platform(), f"{OTHER}/v9", "linux/s390x"])
def test_another_architecture_or_variant_is_refused_alike_by_every_reader(asked, monkeypatch):
    monkeypatch.setattr("imagesmith.platforms.emulation_problem", lambda p: None)
    readers = [
        lambda: open_source(engine(), "x:serve", asked),
        lambda: deploy.resolve(engine(), "x:serve", asked),
        lambda: deploy.platform_image(engine(), "x:serve", asked),
    ]
    for read in readers:
        with pytest.raises(UsageError, match=rf"the engine's image x:serve is its {OTHER} image, not {asked}$"):
            read()


def test_an_index_entry_that_differs_only_by_os_version_is_a_candidate():
    entries = [
        {"digest": "a", "platform": {"os": "linux", "architecture": ARCH, "os.version": "1"}},
        {"digest": "b", "platform": {"os": "linux", "architecture": ARCH}},
        {"digest": "c", "platform": {"os": "linux", "architecture": "s390x"}},
    ]
    assert [e["digest"] for e in index_candidates(entries, OTHER)] == ["a", "b"]
