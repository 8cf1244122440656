"""How the registry reader (imagesmith/engine/registry.py) runs ``buildx imagetools inspect``: the
buildx plugin itself, as bake runs it; and which reads it answers from what it read already (a
reference by a digest it has the bytes of), never a tag."""

from __future__ import annotations

import hashlib
import json

from imagesmith.engine import registry as registry_module
from imagesmith.engine.registry import Registry

MANIFEST = json.dumps({"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


def _counting(monkeypatch, answer: bytes = MANIFEST) -> list[tuple[str, tuple]]:
    calls: list[tuple[str, tuple]] = []

    def fake_imagetools(self, ref, *args):
        calls.append((ref, args))
        return answer

    monkeypatch.setattr(Registry, "_imagetools", fake_imagetools)
    return calls


def test_a_digest_read_by_its_tag_is_not_read_again(monkeypatch):
    calls = _counting(monkeypatch)
    registry = Registry()
    assert registry.raw("127.0.0.1:5000/app:serve") == (MANIFEST, DIGEST)
    assert registry.raw(f"127.0.0.1:5000/app@{DIGEST}") == (MANIFEST, DIGEST)
    assert registry.manifest(f"127.0.0.1:5000/app@{DIGEST}")[1] == DIGEST
    assert calls == [("127.0.0.1:5000/app:serve", ("--raw",))]  # one read for the three


def test_a_tag_is_read_every_time_and_another_repository_is_not_answered(monkeypatch):
    calls = _counting(monkeypatch)
    registry = Registry()
    registry.raw("127.0.0.1:5000/app:serve")
    registry.raw("127.0.0.1:5000/app:serve")  # it may have moved
    registry.raw(f"127.0.0.1:5000/other@{DIGEST}")  # the same bytes elsewhere: that registry is asked
    assert [ref for ref, _ in calls] == ["127.0.0.1:5000/app:serve"] * 2 + [f"127.0.0.1:5000/other@{DIGEST}"]


def test_bytes_that_do_not_hash_to_the_digest_asked_for_are_refused_and_not_kept(monkeypatch):
    """buildx does not check what a registry sends for a digest: the bytes must hash to it (they
    used to be taken, as the image of the digest they hash to)."""
    import pytest

    from imagesmith.errors import EngineError

    calls = _counting(monkeypatch, answer=b"{}")
    registry = Registry()
    wrong = f"127.0.0.1:5000/app@{DIGEST}"
    for _ in range(2):
        with pytest.raises(EngineError, match="a manifest that hashes to sha256:44136fa355b3"):
            registry.raw(wrong)
    assert len(calls) == 2  # asked again: nothing was kept under that digest
    # by a tag: whatever it names now, kept under the digest it hashes to
    data, digest = registry.raw("127.0.0.1:5000/app:serve")
    assert data == b"{}" and digest == "sha256:" + hashlib.sha256(b"{}").hexdigest()


def test_imagetools_runs_the_buildx_plugin_as_bake_does(monkeypatch):
    ran = []

    def fake_run(argv, timeout, limit, env=None):
        ran.append((argv, env))
        return 0, MANIFEST, b""

    plugin = ["/usr/libexec/docker/cli-plugins/docker-buildx", "buildx"]
    mode = {"DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND": "/usr/bin/docker"}
    monkeypatch.setattr(registry_module, "_bounded_run", fake_run)
    monkeypatch.setattr("imagesmith.engine.buildx.buildx_command", lambda environ=None: (plugin, mode))
    assert Registry().raw("127.0.0.1:5000/app:serve")[1] == DIGEST
    ((argv, env),) = ran
    assert argv == [*plugin, "imagetools", "inspect", "--raw", "127.0.0.1:5000/app:serve"]
    assert env is not None and env["DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND"] == "/usr/bin/docker"


def test_sign_reads_a_single_image_by_the_digest_its_tag_named(monkeypatch, tmp_path):
    """``imagesmith sign REPO:TAG``: the tag is read once; the image is then read by that digest
    (answered from the first read), and an answer that is no manifest is left to the image's own
    read, by the tag, which says what is wrong."""
    from types import SimpleNamespace

    from imagesmith import gate

    key = tmp_path / "cosign.key"
    key.write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    monkeypatch.setattr(gate, "key_file", lambda path, kind: path)
    signed: list[tuple[str, str | None]] = []
    monkeypatch.setattr(gate, "_sign_manifest", lambda e, c, image, k, lock, ref=None: signed.append((image, ref)))
    for answer, expected in ((MANIFEST, f"127.0.0.1:5000/app@{DIGEST}"), (b"not json", None)):
        calls = _counting(monkeypatch, answer)
        engine = SimpleNamespace(registry=Registry())
        signed.clear()
        gate.sign_image(engine, None, "127.0.0.1:5000/app:serve", key)
        assert signed == [("127.0.0.1:5000/app:serve", expected)]
        assert calls == [("127.0.0.1:5000/app:serve", ("--raw",))]


def _index(platforms: list[dict]) -> bytes:
    entries = [{"digest": DIGEST, "platform": plat} for plat in platforms]
    index = {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    return json.dumps(index, separators=(",", ":")).encode()


def test_an_index_of_a_hundred_thousand_entries_is_one_short_line_of_error():
    """Whoever pushes writes the index: 10^4 entries of platforms nobody runs, one of them spelled
    with a newline and a terminal escape, or 10^4 entries all for linux/amd64. Each is one refusal
    naming a few entries and how many more, in printable text, within a second or two; the error
    used to list every platform the index names (a megabyte of error) as the registry wrote them.
    10^5 entries (a loopback registry refuses a manifest over 4 MiB, others may not) are more
    values than imagesmith parses of a registry's answer."""
    import time

    import pytest

    from imagesmith.errors import EngineError

    odd = {"os": "linux", "architecture": "\nok: verified\x1b[2J"}
    cases = {
        "elsewhere": (
            _index([odd] + [{"os": "linux", "architecture": f"a{i}"} for i in range(10_000)]),
            "has no linux/amd64 image in its index (it has ",
        ),
        "10^5": (
            _index([{"os": "linux", "architecture": "amd64"}] * 100_000),
            "is not JSON imagesmith reads: more than 100,000 values",
        ),
        "all-amd64": (
            _index([odd] + [{"os": "linux", "architecture": "amd64"}] * 10_000),
            "is an image index with 10000 entries Docker could run for linux/amd64",
        ),
    }
    for name, (body, cause) in cases.items():
        assert len(body) < registry_module.MAX_ANSWER, name
        registry = Registry()
        registry._imagetools = lambda ref, *args, body=body: body  # type: ignore[method-assign]
        started = time.monotonic()
        with pytest.raises(EngineError) as caught:
            registry.platform_digest("127.0.0.1:5000/app:serve", "linux/amd64")
        message = str(caught.value)
        assert time.monotonic() - started < 5, name
        assert cause in message and len(message) < 1000, (name, message[:2000])
        assert "\n" not in message and "\x1b" not in message, (name, message[:2000])
        if name == "elsewhere":
            assert "(it has linux/\\nok: verified\\x1b[2J, linux/a0, " in message, message
            assert "and 9993 more)" in message, message


def test_an_entry_or_a_reference_that_names_no_single_image_is_refused():
    """What a loopback registry refuses at the push but another may serve, or what an index's entry
    names whatever media type it claims: a Docker v2 schema 1 manifest, an index, something with
    no config or layers. Each is one error naming it; an image manifest passes."""
    import pytest

    from imagesmith.errors import EngineError

    inner = json.dumps({"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}).encode()
    inner_digest = "sha256:" + hashlib.sha256(inner).hexdigest()
    image = json.dumps({"schemaVersion": 2, "config": {"digest": DIGEST}, "layers": []}).encode()
    image_digest = "sha256:" + hashlib.sha256(image).hexdigest()
    schema1 = json.dumps({"schemaVersion": 1, "name": "app", "tag": "x", "fsLayers": [], "history": []}).encode()
    by_ref = {
        "127.0.0.1:5000/app:schema1": schema1,
        "127.0.0.1:5000/app:artifact": json.dumps({"schemaVersion": 2, "blobs": []}).encode(),
        "127.0.0.1:5000/app:image": image,
        f"127.0.0.1:5000/app@{inner_digest}": inner,
        f"127.0.0.1:5000/app@{image_digest}": image,
    }
    for name, digest in (("hidden", inner_digest), ("honest", image_digest)):
        entries = [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest}]
        by_ref[f"127.0.0.1:5000/app:{name}"] = json.dumps({"schemaVersion": 2, "manifests": entries}).encode()
    registry = Registry()
    registry._imagetools = lambda ref, *args: by_ref[ref]  # type: ignore[method-assign]
    for tag, cause in (
        ("schema1", "names a Docker v2 schema 1 manifest"),
        ("artifact", "names no image manifest (no config and list of layers)"),
        ("hidden", f"'s index entry for linux/amd64 ({inner_digest[:19]}…) names an image index, not one image"),
    ):
        with pytest.raises(EngineError) as caught:
            registry.platform_digest(f"127.0.0.1:5000/app:{tag}")
        assert cause in str(caught.value), (tag, str(caught.value))
    assert registry.platform_digest("127.0.0.1:5000/app:image") == (image_digest, "")
    assert registry.platform_digest("127.0.0.1:5000/app:honest")[0] == image_digest
