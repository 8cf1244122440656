"""The engine reads made without the Docker SDK (imagesmith/engine/local_api.py): which engine
they dare to ask, and what each answer means, against a small HTTP server on a unix socket."""

from __future__ import annotations

import json

import pytest

from imagesmith.engine import local_api
from imagesmith.engine.images import Images
from imagesmith.errors import EngineError
from tests.socket_engine import Answering, engine_on_socket


@pytest.fixture
def no_docker_env(monkeypatch, tmp_path):
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    return tmp_path / "docker-config"


def test_only_the_plain_local_socket_is_asked(no_docker_env, monkeypatch):
    assert local_api.local_socket() == "/var/run/docker.sock"  # no config at all
    no_docker_env.mkdir()
    (no_docker_env / "config.json").write_text(json.dumps({"currentContext": "default"}))
    assert local_api.local_socket() == "/var/run/docker.sock"
    (no_docker_env / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    assert local_api.local_socket() is None  # the SDK resolves contexts
    (no_docker_env / "config.json").write_text("{not json")
    assert local_api.local_socket() is None
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert local_api.local_socket() == "/var/run/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    assert local_api.local_socket() == "/run/user/1000/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert local_api.local_socket() is None


def _handler(answers: dict[str, tuple[int, bytes]], seen: list[str]):
    class Handler(Answering):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            seen.append(self.path)
            self.answer(*answers.get(self.path, (404, b'{"message": "No such image"}')))

    return Handler


@pytest.fixture
def engine(tmp_path, monkeypatch):
    path = str(tmp_path / "engine.sock")
    answers: dict[str, tuple[int, bytes]] = {}
    seen: list[str] = []
    with engine_on_socket(path, _handler(answers, seen), monkeypatch):
        yield answers, seen


ATTRS = {
    "Id": "sha256:" + "a" * 64,
    "Config": {"Labels": {"io.imagesmith.role": "serve"}},
    "RootFS": {"Layers": ["sha256:" + "b" * 64]},
    "RepoDigests": [],
    "Size": 7,
    "Created": "2026-11-27T00:00:00Z",
}


def test_an_image_is_read_without_the_sdk_and_a_missing_one_is_said_so(engine):
    answers, seen = engine
    answers["/images/app:serve/json"] = (200, json.dumps(ATTRS).encode())
    assert local_api.ping() is False  # no /_ping answer here: the SDK would decide
    assert local_api.inspect_image("app:serve") == (True, ATTRS)
    assert local_api.inspect_image("app:train") == (False, {})
    sdk = Images(lambda: pytest.fail("the SDK was asked"))
    info = sdk.image("app:serve")
    assert (info.id, info.labels, info.layers, info.size) == (
        ATTRS["Id"],
        {"io.imagesmith.role": "serve"},
        (ATTRS["RootFS"]["Layers"][0],),
        7,
    )
    with pytest.raises(EngineError, match="image app:train is not in the engine"):
        sdk.image("app:train")
    assert sdk.has_image("app:serve") and not sdk.has_image("app:train")
    assert "/images/app:train/json" in seen
    seen.clear()
    assert sdk.find_image("app:serve") == info and sdk.find_image("app:train") is None
    assert seen == ["/images/app:serve/json", "/images/app:train/json"]  # one inspect each


@pytest.mark.parametrize("status, body", [(500, b'{"message": "boom"}'), (200, b"not json"), (200, b"[]")])
def test_any_other_answer_leaves_it_to_the_sdk(engine, status, body):
    answers, _ = engine
    answers["/images/app:serve/json"] = (status, body)
    assert local_api.inspect_image("app:serve") is None


def test_an_unreachable_socket_leaves_it_to_the_sdk(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    assert local_api.inspect_image("app:serve") is None and local_api.ping() is False


def test_the_sdk_answers_has_find_and_image_alike(monkeypatch, tmp_path):
    """Without the local API, ``has_image``, ``find_image`` and ``image`` all read the SDK's one
    inspect: an image the engine lacks is False, None and the "not in the engine" error."""
    from types import SimpleNamespace

    from docker.errors import ImageNotFound

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    asked: list[str] = []

    def get(ref: str):
        asked.append(ref)
        if ref != "app:serve":
            raise ImageNotFound(ref)
        return SimpleNamespace(attrs=ATTRS)

    sdk = Images(lambda: SimpleNamespace(images=SimpleNamespace(get=get)))
    assert sdk.has_image("app:serve") and not sdk.has_image("app:train")
    assert sdk.find_image("app:serve") == sdk.image("app:serve") and sdk.find_image("app:train") is None
    with pytest.raises(EngineError, match="image app:train is not in the engine"):
        sdk.image("app:train")
    assert asked == ["app:serve", "app:train", "app:serve", "app:serve", "app:train", "app:train"]


@pytest.mark.parametrize(
    ("raw", "answer"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", (200, b"{}")),
        (
            b'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{"message": "x"}',
            (404, b'{"message": "x"}'),
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}trailing", (200, b"{}")),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 20\r\n\r\n{}", None),  # cut short
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", None),
        (b"HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b", None),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n{}", None),  # no end of the headers
        (b"SSH-2.0-OpenSSH\r\n\r\n", None),
        (b"", None),
    ],
)
def test_an_answer_is_read_only_when_it_is_plainly_one(raw, answer):
    assert local_api.parse_answer(raw) == answer


def test_reading_an_image_imports_no_http_client(engine):
    """One HTTP/1.0 request written on the socket: ``http.client`` (with ``ssl`` and ``email``
    under it) is not imported for a labels-only verify's one inspection (bench/README.md)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    answers, seen = engine
    answers["/images/app:serve/json"] = (200, json.dumps(ATTRS).encode())
    script = (
        "import sys\nfrom imagesmith.engine import local_api\n"
        "found, attrs = local_api.inspect_image('app:serve')\n"
        "print(found, attrs['Id'], sorted(m for m in ('http.client', 'ssl', 'email') if m in sys.modules))\n"
    )
    tree = str(Path(local_api.__file__).resolve().parents[2])  # this tree, not an installed imagesmith
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (tree, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    assert proc.stdout.split() == ["True", ATTRS["Id"], "[]"]
    assert seen == ["/images/app:serve/json"]


@pytest.mark.parametrize("host", ["tcp://127.0.0.1:1", "unix://{tmp}/no-engine.sock"])
def test_a_create_never_sent_asks_for_no_removal(monkeypatch, tmp_path, host):
    """Another engine (the SDK's to ask), or a socket nobody answers on: nothing was asked, so
    nothing can have been made, and no removal by name is sent after it (it was: a second
    attempt to reach the engine, and a second read of the docker config, for every reader)."""
    monkeypatch.setenv("DOCKER_HOST", host.format(tmp=tmp_path))
    sent: list[str] = []
    real = local_api._sent

    def counted(method, url, body=None):
        sent.append(f"{method} {url.split('?')[0]}")
        return real(method, url, body)

    monkeypatch.setattr(local_api, "_sent", counted)
    assert local_api.create_container("img", {}, "imagesmith-read-0123") is None
    assert sent == ["POST /containers/create"]


def test_the_docker_config_is_read_once_for_each_version_of_it(no_docker_env, monkeypatch, tmp_path):
    """``local_socket`` read the docker config on every request sent to the engine: it is read
    once for each version of the file (inode, mtime, size), and the answer still follows
    DOCKER_CONFIG, DOCKER_CONTEXT and DOCKER_HOST as a test changes them."""
    from pathlib import Path

    no_docker_env.mkdir()
    config = no_docker_env / "config.json"
    config.write_text(json.dumps({"currentContext": "default"}))
    reads: list[Path] = []
    real = Path.read_text

    def counted(self, *args, **kwargs):
        reads.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    for _ in range(5):
        assert local_api.local_socket() == "/var/run/docker.sock"
    assert reads == [config]
    config.write_text(json.dumps({"currentContext": "remote-1"}))  # a new version: read again
    assert local_api.local_socket() is None and reads == [config, config]
    other = tmp_path / "other-config"
    other.mkdir()
    (other / "config.json").write_text("{}")
    monkeypatch.setenv("DOCKER_CONFIG", str(other))
    assert local_api.local_socket() == "/var/run/docker.sock" and reads[-1] == other / "config.json"
    monkeypatch.setenv("DOCKER_CONFIG", str(no_docker_env))
    assert local_api.local_socket() is None and len(reads) == 3  # remote-1, as read before
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert local_api.local_socket() == "/var/run/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert local_api.local_socket() is None and len(reads) == 3
