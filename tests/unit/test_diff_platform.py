"""`imagesmith diff LOCK IMAGE` without --platform: a lock of several platforms is compared by
the section of the image's platform, not by this machine's (whose every difference would be the
platforms', and be explained as such)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from imagesmith.diff import lock_for_image
from imagesmith.lock.lockfile import write_locks
from imagesmith.spec.load import load_spec
from imagesmith.verify_source import Source, lock_source
from tests.fakes import image_info
from tests.helpers import fake_lock

TINY = Path(__file__).resolve().parents[1] / "projects" / "tiny"


def _image(platform: str) -> Source:
    return Source(ref="x:train", kind="image", info=replace(image_info("x:train"), platform=platform))


def test_the_lock_section_of_the_image_s_platform_is_compared(tmp_path):
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    spec = load_spec(tmp_path)
    write_locks(spec, {p: fake_lock(platform=p) for p in ("linux/amd64", "linux/arm64")})
    ref = str(spec.lock_path)
    amd64 = lock_source(ref, "linux/amd64")
    assert amd64 is not None and amd64.lock is not None and amd64.lock.platform == "linux/amd64"
    notes: list[str] = []
    chosen = lock_for_image(ref, amd64, _image("linux/arm64"), notes)
    assert chosen.lock is not None and chosen.lock.platform == "linux/arm64" and notes == []
    assert lock_for_image(ref, amd64, _image("linux/amd64"), notes) is amd64

    write_locks(spec, {"linux/amd64": fake_lock()})  # one platform: compared as it is, and said
    one = lock_source(ref)
    assert one is not None and lock_for_image(ref, one, _image("linux/arm64"), notes) is one
    assert notes == [f"{ref} locks no linux/arm64 section (the image's platform): its linux/amd64 section is compared"]
