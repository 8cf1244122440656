"""imagesmith.platforms.emulation_problem: can this machine run a platform's binaries?"""

from __future__ import annotations

import pytest

from imagesmith.platforms import MACHINES, emulation_problem, index_candidates, normalize, same_platform

ENABLED = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n"


@pytest.mark.parametrize("platform", sorted(MACHINES))
def test_the_hosts_own_platform_needs_no_emulation(tmp_path, platform):
    assert emulation_problem(platform, MACHINES[platform], binfmt_dir=tmp_path) is None


def test_an_enabled_qemu_handler_is_enough(tmp_path):
    (tmp_path / "qemu-aarch64").write_text(ENABLED)
    assert emulation_problem("linux/arm64", "x86_64", binfmt_dir=tmp_path) is None


def test_a_missing_handler_names_the_platform_and_the_fix(tmp_path):
    problem = emulation_problem("linux/arm64", "x86_64", binfmt_dir=tmp_path)
    assert problem is not None and "\n" not in problem
    assert "linux/arm64" in problem and "x86_64" in problem
    assert f"{tmp_path / 'qemu-aarch64'} is missing" in problem
    assert "make engine" in problem and "IMAGESMITH_PLATFORMS=linux/arm64" in problem
    assert "update-binfmts --enable qemu-aarch64" in problem


def test_a_disabled_handler_is_a_problem(tmp_path):
    (tmp_path / "qemu-aarch64").write_text(ENABLED.replace("enabled", "disabled", 1))
    problem = emulation_problem("linux/arm64", "x86_64", binfmt_dir=tmp_path)
    assert problem is not None and "registered but disabled" in problem


def test_another_architectures_handler_does_not_count(tmp_path):
    (tmp_path / "qemu-arm").write_text(ENABLED)
    assert emulation_problem("linux/arm64", "x86_64", binfmt_dir=tmp_path) is not None
    (tmp_path / "qemu-aarch64").write_text(ENABLED)
    assert emulation_problem("linux/amd64", "aarch64", binfmt_dir=tmp_path) is not None


def test_the_default_host_is_this_machine(tmp_path):
    import platform

    here = next(p for p, m in MACHINES.items() if m == platform.machine())
    assert emulation_problem(here, binfmt_dir=tmp_path) is None


# ---- index entries chosen as containerd does (issue: a second spelling of the platform) -------


@pytest.mark.parametrize(
    "given, want",
    [
        (("linux", "amd64"), ("linux", "amd64", "")),
        (("Linux", "x86_64"), ("linux", "amd64", "")),
        (("LINUX", "X86-64", "v1"), ("linux", "amd64", "")),
        (("linux", "amd64", "v3"), ("linux", "amd64", "v3")),
        (("linux", "aarch64"), ("linux", "arm64", "")),
        (("linux", "arm64", "v8"), ("linux", "arm64", "")),
        (("linux", "arm64", "8"), ("linux", "arm64", "")),
        (("linux", "armhf"), ("linux", "arm", "v7")),
        (("linux", "arm"), ("linux", "arm", "v7")),
    ],
)
def test_platforms_are_normalised_as_containerd_does(given, want):
    assert normalize(*given) == want


def _entry(digest: str, os_name=None, arch=None, variant=None) -> dict:
    entry: dict = {"digest": "sha256:" + digest * 64, "mediaType": "application/vnd.oci.image.manifest.v1+json"}
    if os_name is not None:
        entry["platform"] = {"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})}
    return entry


def test_every_spelling_of_the_platform_is_a_candidate_in_index_order():
    entries = [
        _entry("a", "linux", "x86_64"),  # what Docker runs: the first match once normalised
        _entry("b", "linux", "amd64"),
        _entry("c", "Linux", "amd64"),
        _entry("d", "linux", "arm64"),
        _entry("e", "unknown", "unknown"),  # buildx's attestation entries
        _entry("f"),  # no platform: containerd keeps it, after the named ones
        "not an entry",
    ]
    got = [e["digest"][7] for e in index_candidates(entries, "linux/amd64")]
    assert got == ["a", "b", "c", "f"]
    assert [e["digest"][7] for e in index_candidates(entries, "linux/arm64")] == ["d", "f"]


def test_one_entry_per_platform_is_unambiguous():
    entries = [_entry("a", "linux", "amd64"), _entry("b", "linux", "arm64", "v8")]
    assert [e["digest"][7] for e in index_candidates(entries, "linux/amd64")] == ["a"]
    assert [e["digest"][7] for e in index_candidates(entries, "linux/arm64")] == ["b"]
    assert same_platform("linux/aarch64", "linux/arm64") and not same_platform("linux/amd64", "linux/arm64")


def _registry_with(monkeypatch, index: dict, configs: dict[str, tuple[str, str]]):
    """A Registry whose reads are ``index`` (by its tag) and, for each key of ``configs`` (64
    hex digits), an image manifest and its (os, architecture) config; an entry of ``index``
    naming ``sha256:KEY`` is pointed at that manifest's real digest (the bytes read by a digest
    must hash to it)."""
    import hashlib
    import json

    from imagesmith.engine.registry import Registry

    manifests: dict[str, tuple[bytes, str]] = {}
    for key in configs:
        body = json.dumps({"schemaVersion": 2, "config": {"size": 2}, "layers": [], "for": key}).encode()
        manifests["sha256:" + hashlib.sha256(body).hexdigest()] = (body, key)
    real = {"sha256:" + key: digest for digest, (_, key) in manifests.items()}
    for entry in index.get("manifests") or ():
        if isinstance(entry, dict) and entry.get("digest") in real:
            entry["digest"] = real[entry["digest"]]

    def fake_imagetools(self, ref, *args):
        digest = ref.rpartition("@")[2]
        if "--raw" in args:
            return manifests[digest][0] if digest in manifests else json.dumps(index).encode()
        os_name, arch = configs[manifests[digest][1]]
        return json.dumps({"os": os_name, "architecture": arch, "config": {}, "rootfs": {"diff_ids": []}}).encode()

    monkeypatch.setattr(Registry, "_imagetools", fake_imagetools)
    return Registry()


def test_an_index_with_two_entries_for_the_platform_is_refused(monkeypatch):
    from imagesmith.errors import EngineError

    index = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [_entry("a", "linux", "x86_64"), _entry("b", "linux", "amd64"), _entry("c", "linux", "arm64")],
    }
    registry = _registry_with(monkeypatch, index, {})
    with pytest.raises(EngineError, match="2 entries Docker could run for linux/amd64") as err:
        registry.image("127.0.0.1:5000/app:serve", "linux/amd64")
    assert "linux/x86_64 sha256:aaaa" in str(err.value) and "Docker runs the first" in str(err.value)


def test_an_index_entry_whose_config_is_another_platform_is_refused(monkeypatch):
    from imagesmith.errors import EngineError

    index = {"manifests": [_entry("a", "linux", "amd64"), _entry("b", "linux", "arm64")]}
    registry = _registry_with(monkeypatch, index, {"a" * 64: ("linux", "arm64"), "b" * 64: ("linux", "arm64")})
    with pytest.raises(EngineError, match="is an image for linux/arm64: the index misstates it"):
        registry.image("127.0.0.1:5000/app:serve", "linux/amd64")
    info = registry.image("127.0.0.1:5000/app:serve", "linux/arm64")
    assert info.id == index["manifests"][1]["digest"] and info.index_digest.startswith("sha256:")


def test_a_nested_index_or_a_bad_digest_is_refused(monkeypatch):
    from imagesmith.errors import EngineError

    nested = _entry("a", "linux", "amd64")
    nested["mediaType"] = "application/vnd.oci.image.index.v1+json"
    registry = _registry_with(monkeypatch, {"manifests": [nested]}, {})
    with pytest.raises(EngineError, match="is another index"):
        registry.image("127.0.0.1:5000/app:serve", "linux/amd64")
    bad = {"manifests": [{"digest": "sha256:../../x", "platform": {"os": "linux", "architecture": "amd64"}}]}
    registry = _registry_with(monkeypatch, bad, {})
    with pytest.raises(EngineError, match="no valid digest"):
        registry.image("127.0.0.1:5000/app:serve", "linux/amd64")
