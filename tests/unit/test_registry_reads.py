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


def test_bytes_that_do_not_hash_to_the_digest_asked_for_are_not_kept_under_it(monkeypatch):
    calls = _counting(monkeypatch, answer=b"{}")
    registry = Registry()
    wrong = f"127.0.0.1:5000/app@{DIGEST}"
    assert registry.raw(wrong)[1] == "sha256:" + hashlib.sha256(b"{}").hexdigest()
    registry.raw(wrong)
    assert len(calls) == 2  # asked again: what it answered is kept only under its own digest


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
