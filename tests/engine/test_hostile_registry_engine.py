"""`verify`, `diff` and `inspect` against what someone with push rights and no signing key writes
straight to the loopback registry's HTTP API (tests/registry_api.py): indexes, manifests and
image configs crafted around one real imagesmith image (the worker's shared `tiny` build, pushed
under a repository of this module's own). Each refusal is one `error:` (exit 2: nothing to check)
or `FAIL:` lines (exit 1), never a traceback, never a wrong "ok", in bounded time."""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.test_signing import _keys
from tests.helpers import cli, cli_in_process, remove_tags
from tests.registry_api import (
    OCI_INDEX,
    entry,
    move_after_first_read,
    put_blob,
    put_index,
    put_manifest,
    raw_manifest,
)

pytestmark = [pytest.mark.engine, pytest.mark.registry]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _pinned(repo: str, tag: str) -> str:
    """``REPO@sha256:…`` that ``REPO:tag`` names in the registry now."""
    host, name = repo.split("/", 1)
    accept = ", ".join((OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json"))
    request = urllib.request.Request(
        f"http://{host}/v2/{name}/manifests/{tag}", method="HEAD", headers={"Accept": accept}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return f"{repo}@{answer.headers['Docker-Content-Digest']}"


@pytest.fixture(scope="module")
def pushed(tiny_built, registry, tmp_path_factory):
    """The shared `tiny` build's serve and train images pushed as ``REPO:serve`` and ``REPO:train``
    (a repository of this module's own); a cosign key pair, and a model folder and signoff file
    for `verify --signoff` (never reached: each crafted reference is refused before)."""
    _, result = tiny_built
    repo = f"{registry}/imagesmith-test/hostile-index-{uuid.uuid4().hex[:8]}"
    refs = {}
    for role in ("serve", "train"):
        subprocess.run(["docker", "tag", result.images[role].id, f"{repo}:{role}"], check=True)
        subprocess.run(["docker", "push", "-q", f"{repo}:{role}"], check=True, capture_output=True, timeout=300)
        refs[role] = _pinned(repo, role)
    work = tmp_path_factory.mktemp("hostile-index")
    _, pub = _keys(work / "keys")
    model = work / "model"
    model.mkdir()
    signoff = work / "signoff.json"
    signoff.write_text("{}")
    ids = {role: result.images[role].id for role in refs}
    yield {"repo": repo, **refs, "ids": ids, "pub": pub, "model": model, "signoff": signoff}
    remove_tags(repo)


COMMANDS = {
    "labels-only": lambda s, ref: ("verify", ref, "--labels-only"),
    "key": lambda s, ref: ("verify", ref, "--labels-only", "--key", str(s["pub"]), "--role", "serve"),
    "signoff": lambda s, ref: ("verify", ref, "--model", str(s["model"]), "--signoff", str(s["signoff"])),
    "diff": lambda s, ref: ("diff", s["serve"], ref, "--labels-only"),
    "inspect": lambda s, ref: ("inspect", ref),
}


def _refused(args: tuple[str, ...], cause: str, code: int = 2):
    """`imagesmith ARGS` (and with --json where it has it) ends with ``code``, one `error:` line
    naming ``cause`` (exit 2) or a `FAIL:` naming it (exit 1), and no traceback. Returns the
    plain run."""
    proc = cli(*args, in_process=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, (args, output[-3000:])
    assert cause in output and "Traceback" not in output, (args, output[-3000:])
    assert len(output) < 20_000, (args, len(output))
    if code == 2:
        assert proc.stderr.startswith("error: ") and proc.stderr.count("error:") == 1, (args, proc.stderr)
    if args[0] == "verify":
        doc = json.loads(cli(*args, "--json", in_process=True, timeout=120).stdout)
        assert doc.get("exit") == code if code == 2 else doc["ok"] is False, doc
    return proc


def _index_hiding_an_index(s: dict, media_type: str | None, platform: bool) -> str:
    """An index whose one entry names an index (the serve image's, linux/amd64), the entry
    saying ``media_type`` (None: no media type) and a platform or none."""
    inner = put_index(s["repo"], "inner", [entry(s["serve"], "linux", "amd64")])
    body, _ = raw_manifest(inner)
    outer: dict = {"digest": inner.split("@", 1)[1], "size": len(body)}
    if media_type:
        outer["mediaType"] = media_type
    if platform:
        outer["platform"] = {"os": "linux", "architecture": "amd64"}
    return put_index(s["repo"], f"outer-{uuid.uuid4().hex[:6]}", [outer])


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    ("entry_media", "platform"), [(OCI_MANIFEST, True), (OCI_MANIFEST, False), (None, True)], ids=str
)
def test_an_index_entry_that_names_another_index_is_refused_as_such(pushed, command, entry_media, platform):
    """The entry says it is one image (an OCI manifest; no media type at all; with a platform or
    none) and names an index: verify used to take it as the image, read labels through it and
    fail on a layer it could not find (exit 1, "the facts could not be read"), or pass `inspect`.
    It is one error naming what the entry names, whatever the command."""
    ref = _index_hiding_an_index(pushed, entry_media, platform)
    _refused(COMMANDS[command](pushed, ref), "names an image index, not one image")


@pytest.mark.parametrize("command", ["labels-only", "key", "diff", "inspect"])
def test_an_index_of_two_thousand_platforms_is_one_short_error(pushed, command):
    """2,000 entries (the loopback registry takes a manifest up to 4 MiB: 10^4 entries and more are
    refused at the push; tests/unit/test_registry_reads.py has 10^4 and 10^5), none for
    linux/amd64, their platforms written by the pusher: one error naming a few of them."""
    body, media = raw_manifest(pushed["train"])
    digest = pushed["train"].split("@", 1)[1]
    entries = [
        {"mediaType": media, "digest": digest, "size": len(body), "platform": {"os": "linux", "architecture": f"a{i}"}}
        for i in range(2000)
    ]
    ref = put_index(pushed["repo"], "many", entries)
    _refused(COMMANDS[command](pushed, ref), "and 1992 more")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_manifest_that_is_also_an_index_is_refused(pushed, command):
    """The train image's Docker manifest (its media type and Content-Type say one image) with a
    list of manifests added naming the serve image: the registry stores it, Docker refuses to pull
    it ("expected manifest but found index"), and verify used to read it as an index and pass the
    serve image (exit 0). It is one error now, whatever the command."""
    body, media = raw_manifest(pushed["train"])
    hybrid = {**json.loads(body), "manifests": [entry(pushed["serve"], "linux", "amd64")]}
    ref = f"{pushed['repo']}@{put_manifest(pushed['repo'], 'hybrid', json.dumps(hybrid).encode(), media)}"
    _refused(COMMANDS[command](pushed, ref), "is both an image index (a list of manifests) and one image's manifest")


def test_a_registry_that_serves_another_manifest_for_a_digest_is_refused(pushed):
    """A registry (or whatever answers at its address) that sends, for ``app@sha256:aaaa…``, the
    serve image's manifest, and its blobs: buildx does not check the bytes against the digest
    asked for, and verify used to check the serve image and print "verified" for a digest nobody
    had checked (exit 0). A loopback server here, the blobs read from the loopback registry."""

    body, media = raw_manifest(pushed["serve"])
    host, name = pushed["repo"].split("/", 1)

    def answer(path: str) -> tuple[dict, bytes, bytes]:
        data, kind = b"", "application/json"
        if "/manifests/" in path:
            data, kind = body, media
        elif "/blobs/" in path:
            with urllib.request.urlopen(f"http://{host}/v2/{name}/blobs/{path.rsplit('/', 1)[1]}", timeout=60) as got:
                data, kind = got.read(), "application/octet-stream"
        headers = {"Content-Type": kind, "Content-Length": str(len(data))}
        if "/manifests/" in path:
            headers["Docker-Content-Digest"] = path.rsplit("/", 1)[1]
        return headers, data, b""

    with _answering(answer) as address:
        ref = f"{address}/app@sha256:{'a' * 64}"
        _refused(COMMANDS["labels-only"](pushed, ref), "a manifest that hashes to " + pushed["serve"].split("@")[1])


GIB = 1 << 30


@contextlib.contextmanager
def _answering(answer) -> Iterator[str]:
    """A loopback server (its host:port yielded) whose ``answer(request path)`` gives (headers,
    first bytes, a byte repeated to a gibibyte after them or b""): an attacker's registry. Only a
    GET of something other than ``/v2/`` gets a body, sent as fast as the reader takes it."""
    from http.server import BaseHTTPRequestHandler

    from tests.helpers import serving

    class Answering(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            headers, first, fill = answer(self.path)
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "GET" or self.path == "/v2/":
                return
            try:
                self.wfile.write(first)
                for _ in range(GIB >> 16 if fill else 0):
                    self.wfile.write(fill * (1 << 16))
            except OSError:  # the reader went: what it should do
                pass

        do_GET = do_HEAD = _answer

        def log_message(self, *args) -> None:
            pass

    with serving(Answering) as address:
        yield address


def _verify_flooded(answer, path: str) -> dict:
    """``verify --labels-only`` of ``path`` on an ``_answering`` server: the run with its peak
    memory and seconds (``measured_verify``)."""
    from tests.engine.test_hostile_engine import measured_verify

    with _answering(answer) as address:
        return measured_verify(f"{address}/{path}", "--labels-only")


def _refused_in_bounds(run: dict, said: str, never: str = "Traceback") -> None:
    from tests.engine.test_hostile_engine import MAX_RSS_KIB

    output = run["stdout"] + run["stderr"]
    assert run["code"] == 2 and said in run["stderr"], output[-3000:]
    assert never not in output and run["stderr"].count("error:") == 1, output[-3000:]
    assert run["rss_kib"] < MAX_RSS_KIB and run["seconds"] < 60, run


def test_an_image_config_of_a_gibibyte_is_not_read(pushed):
    """A manifest (on a loopback server: the registry would need the gibibyte uploaded) giving its
    config's size as 1 GiB, and a server that sends that many bytes as fast as it can: buildx held
    them in memory (2 GiB of peak RSS measured, 7 s), then failed on the digest. Refused before
    any is read now, in bounded memory and time."""
    import hashlib

    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "1" * 64, "size": GIB}
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": []}).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()

    def answer(path: str) -> tuple[dict, bytes, bytes]:
        if "/manifests/" in path:
            return (
                {"Content-Type": OCI_MANIFEST, "Content-Length": str(len(body)), "Docker-Content-Digest": digest},
                body,
                b"",
            )
        return {"Content-Type": "application/octet-stream", "Content-Length": str(GIB)}, b"", b" "

    _refused_in_bounds(_verify_flooded(answer, f"app@{digest}"), "is more than 16 MiB: not read")


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "until-closed"])
def test_a_manifest_of_a_gibibyte_is_refused_as_too_large(pushed, length):
    """A tag whose manifest is a gibibyte, sent as fast as a loopback server can (with its length,
    or until the connection closes): buildx reads and drops it, bounded, and then said
    "not found", which imagesmith passed on as "not in its registry: push the image first"."""

    def answer(path: str) -> tuple[dict, bytes, bytes]:
        headers = {"Content-Type": OCI_MANIFEST}
        if length or path == "/v2/":
            headers["Content-Length"] = "0" if path == "/v2/" else str(GIB)
        return headers, b'{"schemaVersion": 2, "x": "', b"a"

    run = _verify_flooded(answer, "app:x")
    _refused_in_bounds(run, "is too large to read", never="push the image first")
    assert "Traceback" not in run["stdout"] + run["stderr"]


def test_a_tag_moved_after_verify_read_its_index_changes_nothing(pushed, monkeypatch):
    """The tag names an index whose linux/amd64 entry is the train image; the moment verify has
    read it, the tag is moved to an index naming the serve image. The tag is read once, every
    later read is by digest, the answer names the train image's digest, and `docker pull` of the
    reference verify printed gets the train image, though the tag names the serve image by then."""
    s = pushed
    moved_to = put_index(s["repo"], "moved-to", [entry(s["serve"], "linux", "amd64")])
    first = put_index(s["repo"], "moving", [entry(s["train"], "linux", "amd64")])
    tagged = f"{s['repo']}:moving"
    reads = move_after_first_read(monkeypatch, tagged, s["repo"], "moving", moved_to)
    proc = cli_in_process("verify", tagged, "--labels-only", "--json")
    doc = json.loads(proc.stdout)
    assert doc["ref"] == s["train"] and doc["index_digest"] == first.split("@", 1)[1], doc
    assert reads.count(tagged) == 1 and all(ref == tagged or "@sha256:" in ref for ref in reads), reads
    assert _pinned(s["repo"], "moving") == moved_to  # the tag did move
    subprocess.run(["docker", "pull", "-q", doc["ref"]], check=True, capture_output=True, timeout=300)
    pulled = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", doc["ref"]], capture_output=True, text=True, check=True
    )
    assert pulled.stdout.strip() == s["ids"]["train"] != s["ids"]["serve"]


@pytest.mark.parametrize(
    "content_type", ["application/vnd.docker.distribution.manifest.v1+prettyjws", "application/json"]
)
def test_a_schema_1_manifest_is_named_as_such(pushed, content_type):
    """A Docker v2 schema 1 manifest (the loopback registry refuses one at the push; a loopback
    server serves it here, signed type or plain JSON): it was "cannot read … from its registry"
    with the hint to check the registry is reachable (buildx: "not supported")."""
    import hashlib

    v1 = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"io.imagesmith.role": "serve"}}})
    body = json.dumps(
        {
            "schemaVersion": 1,
            "name": "app",
            "tag": "x",
            "architecture": "amd64",
            "fsLayers": [],
            "history": [{"v1Compatibility": v1}],
        }
    ).encode()

    def answer(path: str) -> tuple[dict, bytes, bytes]:
        data = b"" if path == "/v2/" else body
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        return (
            {"Content-Type": content_type, "Docker-Content-Digest": digest, "Content-Length": str(len(data))},
            data,
            b"",
        )

    with _answering(answer) as address:
        for command in ("labels-only", "inspect"):
            _refused(COMMANDS[command](pushed, f"{address}/app:x"), "names a Docker v2 schema 1 manifest")


def _with_config(s: dict, config: bytes, tag: str) -> str:
    """The serve image's manifest with its config blob replaced by ``config``, as ``REPO:tag``."""
    body, media = raw_manifest(s["serve"])
    manifest = json.loads(body)
    manifest["config"] = {**manifest["config"], "digest": put_blob(s["repo"], config), "size": len(config)}
    return f"{s['repo']}@{put_manifest(s['repo'], tag, json.dumps(manifest).encode(), media)}"


def _serve_config(s: dict) -> dict:
    body, _ = raw_manifest(s["serve"])
    host, name = s["repo"].split("/", 1)
    url = f"http://{host}/v2/{name}/blobs/{json.loads(body)['config']['digest']}"
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.mark.parametrize("command", ["labels-only", "key", "diff", "inspect"])
@pytest.mark.parametrize("case", ["not-json", "label-not-a-string", "labels-a-list"])
def test_an_image_config_that_is_not_one_is_named_as_such(pushed, command, case):
    """A config blob that is not JSON, or whose labels are not a map of strings: buildx's own
    parse fails; the error says the registry holds no valid image config there, not that the
    registry may be unreachable (the hint it used to give)."""
    if case == "not-json":
        config = b"\x00not json"
    else:
        doc = _serve_config(pushed)
        if case == "label-not-a-string":
            doc["config"]["Labels"]["io.imagesmith.role"] = 5
        else:
            doc["config"]["Labels"] = ["io.imagesmith.role=serve"]
        config = json.dumps(doc).encode()
    ref = _with_config(pushed, config, f"config-{case}")
    args = COMMANDS[command](pushed, ref)
    proc = _refused(args, "is not a valid image: ")
    assert "reachable" not in proc.stderr, proc.stderr


def _config_under(s: dict, tag: str, **changes) -> str:
    doc = _serve_config(s)
    doc.update(changes)
    return _with_config(s, json.dumps(doc).encode(), tag)


def test_what_already_held(pushed, tmp_path: Path):
    """Attacks that verify already refused (or rightly passed) when this module was written, kept:
    two entries for the platform (one with a variant), an amd64 entry whose config says arm64, an
    attestation manifest (unknown/unknown) first, an entry with variant, os.version and features,
    a config descriptor whose size lies either way, a layer list longer than the plan's, the serve
    image's labels moved onto the train image's config."""
    s = pushed
    two = put_index(s["repo"], "two", [entry(s["train"], "linux", "amd64", "v2"), entry(s["serve"], "linux", "amd64")])
    _refused(COMMANDS["key"](s, two), "2 entries Docker could run for linux/amd64")
    arm = _config_under(s, "arm", architecture="arm64")
    lying = put_index(s["repo"], "arm-as-amd64", [entry(arm, "linux", "amd64")])
    _refused(COMMANDS["labels-only"](s, lying), "is an image for linux/arm64: the index misstates it")
    body, media = raw_manifest(s["train"])
    attestation = {
        "mediaType": media,
        "digest": s["train"].split("@", 1)[1],
        "size": len(body),
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
    }
    odd = entry(s["serve"], "linux", "amd64", "v1")
    odd["platform"].update({"os.version": "10.0.17763", "os.features": ["win32k"], "features": ["sse4"]})
    index = put_index(s["repo"], "attested", [attestation, entry(s["serve"], "linux", "amd64")])
    doc = json.loads(cli(*COMMANDS["labels-only"](s, index), "--json", in_process=True).stdout)
    assert doc["ok"] and doc["ref"] == s["serve"], doc  # the image Docker runs, by its digest
    doc = json.loads(
        cli(*COMMANDS["labels-only"](s, put_index(s["repo"], "odd", [odd])), "--json", in_process=True).stdout
    )
    assert doc["ok"] and doc["ref"] == s["serve"], doc
    body, media = raw_manifest(s["serve"])
    for size, cause in ((1 << 30, "is more than 16 MiB: not read"), (10, "unexpected commit size")):
        manifest = json.loads(body)
        manifest["config"]["size"] = size
        ref = f"{s['repo']}@{put_manifest(s['repo'], f'size-{size}', json.dumps(manifest).encode(), media)}"
        _refused(COMMANDS["labels-only"](s, ref), cause)
    _refused(COMMANDS["labels-only"](s, _longer(s)), "1 filesystem layer was added on top", code=1)
    # the serve image's labels (parity, role, all) moved onto the train image: its config is train's
    train_body, train_media = raw_manifest(s["train"])
    train = json.loads(train_body)
    host, name = s["repo"].split("/", 1)
    with urllib.request.urlopen(f"http://{host}/v2/{name}/blobs/{train['config']['digest']}", timeout=30) as answer:
        config = json.loads(answer.read())
    config["config"]["Labels"] = _serve_config(s)["config"]["Labels"]
    raw_config = json.dumps(config).encode()
    train["config"] = {**train["config"], "digest": put_blob(s["repo"], raw_config), "size": len(raw_config)}
    moved = f"{s['repo']}@{put_manifest(s['repo'], 'moved-labels', json.dumps(train).encode(), train_media)}"
    _refused(COMMANDS["labels-only"](s, moved), "FAIL: Entrypoint is", code=1)


def _longer(s: dict) -> str:
    """The serve image with one more layer on top (its second, again), config and manifest alike."""
    body, media = raw_manifest(s["serve"])
    manifest = json.loads(body)
    manifest["layers"].append(manifest["layers"][1])
    config = _serve_config(s)
    config["rootfs"]["diff_ids"].append(config["rootfs"]["diff_ids"][1])
    raw_config = json.dumps(config).encode()
    manifest["config"] = {**manifest["config"], "digest": put_blob(s["repo"], raw_config), "size": len(raw_config)}
    return f"{s['repo']}@{put_manifest(s['repo'], 'longer', json.dumps(manifest).encode(), media)}"


def test_diff_names_a_layer_added_on_top_of_a_registry_image(pushed):
    """`diff` of the serve image and a child of it with a layer more (same labels, same facts):
    the parity is the same, and the child's extra layer is a note, for a registry image as for a
    local one (a registry image's was not counted)."""
    proc = cli("diff", pushed["serve"], _longer(pushed), "--labels-only", in_process=True)
    assert proc.returncode == 0 and "parity-equal" in proc.stdout, proc.stdout + proc.stderr
    assert "1 filesystem layer more than imagesmith's Dockerfile makes (a child image)" in proc.stdout, proc.stdout
