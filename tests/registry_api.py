"""Registry surgery, as someone with push rights and no signing key works: manifests and image
indexes written straight to the loopback registry's HTTP API (the distribution API), no engine,
no imagesmith. Only ever 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.request

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _split(ref: str) -> tuple[str, str]:
    """(``127.0.0.1:PORT``, the repository path) of a registry reference without tag or digest."""
    host, path = ref.split("/", 1)
    assert host.startswith("127.0.0.1:"), f"test registries live on loopback only, not {host}"
    return host, path


def raw_manifest(pinned: str) -> tuple[bytes, str]:
    """The bytes and media type of the manifest ``pinned`` (``REPO@sha256:…``) names."""
    host, rest = _split(pinned)
    repo, digest = rest.split("@", 1)
    request = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/{digest}",
        headers={
            "Accept": ", ".join(
                (
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    OCI_INDEX,
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                )
            )
        },
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read(), answer.headers["Content-Type"]


def put_manifest(repo_ref: str, tag: str, body: bytes, media_type: str) -> str:
    """PUT ``body`` as ``REPO:tag``; the digest the registry stored it under."""
    host, repo = _split(repo_ref)
    request = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/{tag}", data=body, method="PUT", headers={"Content-Type": media_type}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        digest = answer.headers["Docker-Content-Digest"]
    assert digest == "sha256:" + hashlib.sha256(body).hexdigest()
    return digest


def entry(pinned: str, os_name: str | None, arch: str | None, variant: str | None = None) -> dict:
    """An index entry for the manifest ``pinned``, with the platform spelled as given (None: no platform)."""
    body, media_type = raw_manifest(pinned)
    out: dict = {"mediaType": media_type, "digest": pinned.split("@", 1)[1], "size": len(body)}
    if os_name is not None:
        out["platform"] = {"architecture": arch, "os": os_name, **({"variant": variant} if variant else {})}
    return out


def put_index(repo_ref: str, tag: str, entries: list[dict]) -> str:
    """An OCI image index of ``entries``, written as ``REPO:tag``: ``REPO@sha256:…`` of the index."""
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return f"{repo_ref}@{put_manifest(repo_ref, tag, body, OCI_INDEX)}"


def move_tag(repo_ref: str, tag: str, pinned: str) -> None:
    """Point ``REPO:tag`` at the manifest ``pinned`` (what `docker push` of another image does)."""
    body, media_type = raw_manifest(pinned)
    put_manifest(repo_ref, tag, body, media_type)


def move_after_first_read(monkeypatch, tagged: str, repo_ref: str, tag: str, pinned: str) -> list[str]:
    """The attack of a tag moved during a run: once imagesmith has read ``tagged`` from the
    registry (``Registry._imagetools``), ``tag`` of ``repo_ref`` is moved to ``pinned``. Returns
    the list of every reference imagesmith reads, in order, filled as it runs."""
    from imagesmith.engine.registry import Registry

    real = Registry._imagetools
    reads: list[str] = []

    def attacked(self, ref, *args):
        out = real(self, ref, *args)
        reads.append(ref)
        if ref == tagged:
            move_tag(repo_ref, tag, pinned)
        return out

    monkeypatch.setattr(Registry, "_imagetools", attacked)
    return reads


def docker_runs(ref: str, *command: str) -> str:
    """What a container of ``ref`` prints, pulled and run by Docker as a deploy would (no imagesmith)."""
    subprocess.run(["docker", "pull", "-q", ref], check=True, capture_output=True, text=True, timeout=300)
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network=none", "--entrypoint", command[0], ref, *command[1:]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stdout


def put_blob(repo_ref: str, data: bytes) -> str:
    """Upload ``data`` as a blob of ``REPO`` (one monolithic upload); its digest."""
    host, repo = _split(repo_ref)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f"http://{host}/v2/{repo}/blobs/uploads/", data=b"", method="POST")
    with urllib.request.urlopen(start, timeout=30) as answer:
        location = answer.headers["Location"]
    url = location if location.startswith("http") else f"http://{host}{location}"
    assert url.startswith(f"http://{host}/"), url
    put = urllib.request.Request(
        f"{url}{'&' if '?' in url else '?'}digest={digest}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(put, timeout=120):
        pass
    return digest


def put_image(repo_ref: str, tag: str, config: bytes, extra: str = "") -> str:
    """An image with no layers whose config blob is ``config`` (bytes as given), written as
    ``REPO:tag``; ``extra``: more fields of its manifest, as raw JSON text (``"key": value``):
    ``REPO@sha256:…``."""
    media = "application/vnd.oci.image.manifest.v1+json"
    digest = put_blob(repo_ref, config)
    body = {
        "schemaVersion": 2,
        "mediaType": media,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)},
        "layers": [],
    }
    text = json.dumps(body)
    if extra:
        text = text[:-1] + ", " + extra + "}"
    return f"{repo_ref}@{put_manifest(repo_ref, tag, text.encode(), media)}"


def put_layered_image(repo_ref: str, tag: str, config: dict, layers: list[tuple[bytes, str, str]]) -> str:
    """An image whose layers are ``layers`` (blob bytes, media type, the diff ID its config
    claims), bottom first, with ``config`` (``rootfs`` filled in from the diff IDs), written as
    ``REPO:tag``: ``REPO@sha256:…``. Nothing checks that a blob is what its diff ID says."""
    media = "application/vnd.oci.image.manifest.v1+json"
    body_config = {**config, "rootfs": {"type": "layers", "diff_ids": [diff for _, _, diff in layers]}}
    raw_config = json.dumps(body_config).encode()
    body = {
        "schemaVersion": 2,
        "mediaType": media,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": put_blob(repo_ref, raw_config),
            "size": len(raw_config),
        },
        "layers": [
            {"mediaType": layer_media, "digest": put_blob(repo_ref, blob), "size": len(blob)}
            for blob, layer_media, _ in layers
        ],
    }
    return f"{repo_ref}@{put_manifest(repo_ref, tag, json.dumps(body).encode(), media)}"
