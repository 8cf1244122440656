"""The host's download of the locked files (wheels.py), against a real index on 127.0.0.1: a
file whose hash is not the lock's is named with its package."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imagesmith.errors import LockError
from imagesmith.lock.resolvers import Pin
from imagesmith.wheels import WheelCache
from tests.helpers import fake_lock
from tests.pkgindexes import serve_indexes


@pytest.fixture
def index(tmp_path):
    with serve_indexes(tmp_path / "index", {"general": [("six", "1.0"), ("torch", "2.15.0")]}) as served:
        yield served["general"]


def test_a_hash_mismatch_names_the_file_and_the_package(tmp_path, index):
    wrong = "sha256:" + "0" * 64
    lock = replace(fake_lock(index_url=index.url), packages=(Pin("six", "1.0", (wrong,)),), installer=())
    with pytest.raises(LockError) as info:
        WheelCache(tmp_path / "cache").wheelhouse(lock)
    message = str(info.value)
    assert "six-1.0-py3-none-any.whl (six 1.0) does not match the lock's hashes" in message
    assert index.hashes[("six", "1.0")] in message  # what the file is
    assert "--upgrade-package six" in (info.value.hint or "")
