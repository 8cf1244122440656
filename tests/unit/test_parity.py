import hashlib
import json

import pytest

from imagesmith import parity
from tests.helpers import fake_lock


def test_digest_is_sha256_of_canonical_json_as_documented():
    manifest = parity.manifest_from_lock(fake_lock())
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert parity.canonical(manifest) == text
    assert parity.digest(manifest) == "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_manifest_has_exactly_the_documented_keys():
    assert tuple(sorted(parity.manifest_from_lock(fake_lock()))) == tuple(sorted(parity.MANIFEST_KEYS))


def test_everything_that_decides_numbers_changes_the_digest():
    from dataclasses import replace

    from imagesmith.lock.base import BasePin
    from imagesmith.lock.pins import Pin

    ref = parity.digest(parity.manifest_from_lock(fake_lock()))
    variants = [
        fake_lock(seed=8),
        fake_lock(determinism=True),
        fake_lock(env=(("A", "other"),)),
        fake_lock(packages=(Pin("six", "1.16.0", ("sha256:" + "b" * 64,)),)),
        fake_lock(packages=(Pin("six", "1.17.0", ("sha256:" + "d" * 64,)),)),
        fake_lock(system_packages=(("libgomp1", "12.2.0-15"),)),
        fake_lock(preprocessing=(("app/prep.py", "sha256:" + "e" * 64),)),
        fake_lock(base=BasePin("python:3.11-slim", "sha256:" + "f" * 64, "registry", "3.11.9")),
        fake_lock(platform="linux/arm64"),
    ]
    digests = {parity.digest(parity.manifest_from_lock(v)) for v in variants}
    assert ref not in digests and len(digests) == len(variants)
    # The base's name is not part of the parity (a re-tag changes nothing); its digest is.
    same = fake_lock(base=replace(fake_lock().base, name="mirror.example/python:3.11-slim"))
    assert parity.digest(parity.manifest_from_lock(same)) == ref


def test_compare_names_each_difference():
    a = parity.manifest_from_lock(fake_lock())
    b = parity.manifest_from_lock(fake_lock(seed=8, preprocessing=()))
    lines = parity.compare(a, b)
    assert "seed: 8, expected 7" in lines
    assert any(line.startswith("preprocessing: app/prep.py missing") for line in lines)
    assert parity.compare(a, a) == []


def test_the_runtime_wheel_is_in_the_manifest():
    from dataclasses import replace

    lock = fake_lock()
    m = parity.manifest_from_lock(lock)
    assert m["imagesmith_parity"] == parity.PARITY_VERSION == 2
    assert m["runtime"] == {
        "name": "imagesmith-runtime",
        "version": lock.runtime.version,
        "hashes": list(lock.runtime.hashes),
    }
    other = replace(lock, runtime=replace(lock.runtime, hashes=("sha256:" + "0" * 64,)))
    assert parity.digest(parity.manifest_from_lock(other)) != parity.digest(m)
    (line,) = parity.compare(m, parity.manifest_from_lock(other))
    assert line.startswith("runtime: ") and "expected" in line


def test_only_the_current_manifest_version_parses():
    m = parity.manifest_from_lock(fake_lock())
    assert parity.parse_manifest(parity.canonical(m)) == m
    v1 = {k: v for k, v in m.items() if k != "runtime"}
    with pytest.raises(ValueError, match="version 2"):
        parity.parse_manifest(parity.canonical(dict(v1, imagesmith_parity=1)))
    with pytest.raises(ValueError, match="lacks runtime"):
        parity.parse_manifest(parity.canonical(v1))


def test_the_host_parity_module_is_the_runtime_s():
    from imagesmith.runtime import parity as inimage

    assert parity.digest is inimage.digest and parity.manifest_from_lock is inimage.manifest_from_lock
