"""The blob read `verify --labels-only` makes over the registry's HTTP API itself
(``engine/registry_http.py``): the docker CLI's credentials (a real docker config file, a real
credential helper program), the Basic and Bearer challenges, and no credential or token ever
following a redirect or going over plain HTTP to another host. Real HTTP servers on loopback;
the real registry, with htpasswd (Basic) and with token auth (Bearer, a token it checks itself),
is in tests/engine/test_registry_credentials_engine.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from imagesmith.engine.registry_http import Credentials, docker_credentials, fetch_blob, may_carry_secrets
from imagesmith.errors import EngineError
from tests.helpers import serving

USER = "deployer"
SECRET = "s3cr3t-Registry-Pa55"
IDENTITY = "identity-refresh-t0ken"
TOKEN = "pull-t0ken-abc"
BLOB = b"the facts layer"
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
BASIC = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()


class Seen:
    """What a loopback server was asked: (method, path, headers, body) per request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    def authorizations(self) -> list[str | None]:
        return [headers.get("authorization") for _, _, headers, _ in self.requests]


Answer = tuple[int, dict[str, str], bytes]


@contextmanager
def serve(answer: Callable[[str, str, dict[str, str], bytes], Answer]) -> Iterator[tuple[str, Seen]]:
    """``127.0.0.1:PORT`` of an HTTP server whose every answer is ``answer(method, path,
    headers (lower-case names), body)``, and what it was asked."""
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen.requests.append((self.command, self.path, headers, body))
            code, extra, data = answer(self.command, self.path, headers, body)
            self.send_response(code)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _any

        def log_message(self, *args) -> None:
            pass

    with serving(Handler) as address:
        yield address, seen


def _docker_config(tmp_path: Path, monkeypatch, config: dict) -> None:
    folder = tmp_path / "docker-config"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))


def _logged_in(tmp_path: Path, monkeypatch, host: str) -> None:
    auth = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    _docker_config(tmp_path, monkeypatch, {"auths": {host: {"auth": auth}}})


def _storage() -> Callable[..., Answer]:
    def answer(method, path, headers, body) -> Answer:
        return 200, {}, BLOB

    return answer


def _registry(storage: str, scheme: str, realm: str = "") -> Callable[..., Answer]:
    """A registry whose blob read needs ``BASIC`` (``scheme`` "basic") or a ``TOKEN`` from its
    own /token (Basic auth there), and then redirects to ``storage``."""

    def answer(method, path, headers, body) -> Answer:
        auth = headers.get("authorization")
        if path.startswith("/token"):
            return (200, {}, json.dumps({"token": TOKEN}).encode()) if auth == BASIC else (401, {}, b"")
        if auth == (BASIC if scheme == "basic" else f"Bearer {TOKEN}"):
            return 307, {"Location": f"http://{storage}/blob?signed=1"}, b""
        challenge = (
            'Basic realm="test"'
            if scheme == "basic"
            else f'Bearer realm="{realm}",service="test",scope="repository:x:pull"'
        )
        return 401, {"WWW-Authenticate": challenge}, b""

    return answer


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_a_redirected_blob_read_carries_no_credential_or_token_to_the_other_host(tmp_path, monkeypatch, scheme):
    """Registries redirect a blob read to object storage on another host: the credentials (Basic)
    or the pull token (Bearer) go to the registry only. urllib copied the Authorization header
    onto the redirected request, so the storage got the token."""
    with serve(_storage()) as (storage, stored):
        holder: dict = {}  # the registry's answers name its own address (the realm), known once it listens

        def registry_answer(*args) -> Answer:
            return holder["answer"](*args)

        with serve(registry_answer) as (registry, asked):
            holder["answer"] = _registry(storage, scheme, realm=f"http://{registry}/token")
            _logged_in(tmp_path, monkeypatch, registry)
            assert fetch_blob(registry, "x", DIGEST, 1 << 20, 10) == BLOB
    assert stored.requests and stored.authorizations() == [None] * len(stored.requests)
    expected = BASIC if scheme == "basic" else f"Bearer {TOKEN}"
    assert asked.authorizations()[-1] == expected  # the registry itself got them
    assert not [r for r in stored.requests if SECRET in repr(r) or TOKEN in repr(r)]


def test_a_bearer_challenge_with_no_credentials_asks_for_an_anonymous_token(tmp_path, monkeypatch):
    """With no credentials a pull token is asked for anonymously (a public repository) and, as any
    token, stays on the registry when the blob read is redirected."""
    _docker_config(tmp_path, monkeypatch, {})

    def answer(method, path, headers, body) -> Answer:
        if path.startswith("/token"):
            assert "authorization" not in headers
            assert urllib.parse.parse_qs(urllib.parse.urlsplit(path).query) == {
                "scope": ["repository:x:pull"],
                "service": ["test"],
            }
            return 200, {}, json.dumps({"access_token": TOKEN}).encode()
        if headers.get("authorization") == f"Bearer {TOKEN}":
            return 302, {"Location": f"http://{storage}/blob"}, b""
        return (
            401,
            {"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="test",scope="repository:x:pull"'},
            b"",
        )

    with serve(_storage()) as (storage, stored), serve(answer) as (host, asked):
        assert fetch_blob(host, "x", DIGEST, 1 << 20, 10) == BLOB
    assert [p.split("?")[0] for _, p, _, _ in asked.requests] == [
        f"/v2/x/blobs/{DIGEST}",
        "/token",
        f"/v2/x/blobs/{DIGEST}",
    ]
    assert len(stored.requests) == 1 and stored.authorizations() == [None]


def test_an_identity_token_is_exchanged_by_the_oauth2_refresh_token_post(tmp_path, monkeypatch):
    """An identity token (what `docker login` keeps for some registries) is never sent as a
    password: it is POSTed to the realm as an OAuth2 refresh token for a pull token."""

    def answer(method, path, headers, body) -> Answer:
        if path == "/token":
            form = urllib.parse.parse_qs(body.decode())
            ok = method == "POST" and form == {
                "grant_type": ["refresh_token"],
                "refresh_token": [IDENTITY],
                "client_id": ["imagesmith"],
                "scope": ["repository:x:pull"],
                "service": ["test"],
            }
            return (200, {}, json.dumps({"access_token": TOKEN}).encode()) if ok else (401, {}, b"")
        if headers.get("authorization") == f"Bearer {TOKEN}":
            return 200, {}, BLOB
        return (
            401,
            {"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="test",scope="repository:x:pull"'},
            b"",
        )

    with serve(answer) as (host, asked):
        _docker_config(tmp_path, monkeypatch, {"auths": {host: {"identitytoken": IDENTITY}}})
        assert fetch_blob(host, "x", DIGEST, 1 << 20, 10) == BLOB
    assert [m for m, _, _, _ in asked.requests] == ["GET", "POST", "GET"]
    assert not [h for _, _, h, _ in asked.requests if IDENTITY in repr(h)]  # in the POST body only


def _helper(tmp_path: Path, monkeypatch, username: str) -> None:
    """A real docker credential helper program (``docker-credential-imagesmithtest`` on PATH)
    answering ``get`` with ``username`` and ``SECRET``, as the helper protocol says."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    program = folder / "docker-credential-imagesmithtest"
    program.write_text(
        f"#!{sys.executable} -S\n"
        "import json, sys\n"
        "assert sys.argv[1] == 'get'\n"
        "host = sys.stdin.read().strip()\n"
        f"print(json.dumps({{'ServerURL': host, 'Username': {username!r}, 'Secret': {SECRET!r}}}))\n"
    )
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{__import__('os').environ['PATH']}")


def test_dockers_credentials_of_each_kind(tmp_path, monkeypatch):
    """The SDK answers ``username``/``password`` from config.json's auths, ``Username``/``Password``
    from a credential store or helper, ``IdentityToken`` from either: each is read."""
    host = "127.0.0.1:5999"
    _logged_in(tmp_path, monkeypatch, host)
    assert docker_credentials(host) == Credentials(USER, SECRET)
    assert docker_credentials("127.0.0.1:5998") is None
    _docker_config(tmp_path, monkeypatch, {"auths": {host: {"identitytoken": IDENTITY}}})
    assert docker_credentials(host) == Credentials(identity_token=IDENTITY)
    _helper(tmp_path, monkeypatch, USER)
    _docker_config(tmp_path, monkeypatch, {"credHelpers": {host: "imagesmithtest"}})
    assert docker_credentials(host) == Credentials(USER, SECRET)
    _helper(tmp_path, monkeypatch, "<token>")  # the helper protocol's way of keeping an identity token
    assert docker_credentials(host) == Credentials(identity_token=SECRET)
    _docker_config(tmp_path, monkeypatch, {"credsStore": "imagesmithtest"})
    assert docker_credentials(host) == Credentials(identity_token=SECRET)
    assert SECRET not in repr(Credentials(USER, SECRET)) and SECRET not in repr(Credentials(identity_token=SECRET))


def test_a_broken_credential_helper_is_one_error(tmp_path, monkeypatch):
    _docker_config(tmp_path, monkeypatch, {"credsStore": "imagesmith-test-no-such-helper"})
    with pytest.raises(EngineError) as caught:
        docker_credentials("127.0.0.1:5999")
    assert "docker login 127.0.0.1:5999" in (caught.value.hint or "")


def _basic_only(method, path, headers, body) -> Answer:
    if headers.get("authorization") == BASIC:
        return 200, {}, BLOB
    return 401, {"WWW-Authenticate": 'Basic realm="test"'}, b""


def test_a_refusal_is_one_error_naming_docker_login_and_no_secret(tmp_path, monkeypatch):
    with serve(_basic_only) as (host, _):
        _docker_config(tmp_path, monkeypatch, {})
        with pytest.raises(EngineError) as nobody:
            fetch_blob(host, "x", DIGEST, 1 << 20, 10)
        wrong = base64.b64encode(f"{USER}:{SECRET}-wrong".encode()).decode()
        _docker_config(tmp_path, monkeypatch, {"auths": {host: {"auth": wrong}}})
        with pytest.raises(EngineError) as refused:
            fetch_blob(host, "x", DIGEST, 1 << 20, 10)
        _docker_config(tmp_path, monkeypatch, {"auths": {host: {"identitytoken": SECRET}}})
        with pytest.raises(EngineError) as token_only:
            fetch_blob(host, "x", DIGEST, 1 << 20, 10)
    assert "docker has none for" in str(nobody.value) and "with the credentials docker has" in str(refused.value)
    assert "only an identity token" in str(token_only.value)
    for error in (nobody.value, refused.value, token_only.value):
        assert f"`docker login {host}`" in str(error)  # in the message: verify reports it as a problem
        assert (error.hint or "").startswith(f"docker login {host}")
        assert SECRET not in str(error) + (error.hint or "")


def test_credentials_and_tokens_go_only_over_https_or_to_loopback(tmp_path, monkeypatch):
    assert may_carry_secrets("https://registry.example.invalid/token")
    for url in ("http://127.0.0.1:5000/token", "http://localhost/t", "http://[::1]:5000/t"):
        assert may_carry_secrets(url), url
    for url in (
        "http://127.0.0.1.example.invalid/token",  # a prefix check let this one through
        "http://localhost.example.invalid/token",
        "http://registry.example.invalid/token",
        "ftp://127.0.0.1/token",
        "https:///token",
        "",
    ):
        assert not may_carry_secrets(url), url

    def answer(method, path, headers, body) -> Answer:
        realm = "http://127.0.0.1.example.invalid/token"
        return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="test",scope="repository:x:pull"'}, b""

    with serve(answer) as (host, asked):
        _logged_in(tmp_path, monkeypatch, host)
        with pytest.raises(EngineError, match="is not HTTPS or loopback"):
            fetch_blob(host, "x", DIGEST, 1 << 20, 10)
    assert len(asked.requests) == 1 and asked.authorizations() == [None]


@pytest.mark.parametrize(
    "token, cause",
    [
        (json.dumps({"token": "a\r\nX-Injected: 1"}).encode(), "not a header value"),
        (json.dumps({"other": 1}).encode(), "sent no token"),
        (b"x" * ((1 << 20) + 1), "more than 1048576 bytes"),
        (b"[" * 5000, "nested more than"),
    ],
)
def test_a_hostile_token_answer_is_one_bounded_error(tmp_path, monkeypatch, token, cause):
    def answer(method, path, headers, body) -> Answer:
        if path.startswith("/token"):
            return 200, {}, token
        return 401, {"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="test"'}, b""

    with serve(answer) as (host, asked):
        _docker_config(tmp_path, monkeypatch, {})
        with pytest.raises(EngineError) as caught:
            fetch_blob(host, "x", DIGEST, 1 << 20, 10)
    assert cause in str(caught.value) and len(str(caught.value)) < 1000
    assert len(asked.requests) == 2


def test_a_blob_sent_a_byte_at_a_time_is_refused_when_the_time_is_up():
    """A registry (or whoever answers for it) that sends the facts layer a byte every 20 ms never
    trips a socket read's timeout: the read as a whole is bounded by that time (1 s here), where
    it used to take as long as the sender pleased (1,000 bytes: 20 s; the 64 MiB allowed: days)."""
    import time

    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            try:
                for _ in range(5000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.02)
            except OSError:  # the reader gave up: what it should do
                pass

        def log_message(self, *args) -> None:
            pass

    with serving(Trickle) as host:
        started = time.monotonic()
        with pytest.raises(EngineError) as caught:
            fetch_blob(host, "x", DIGEST, 1000, 1)
        seconds = time.monotonic() - started
    assert seconds < 5, seconds
    assert "was still sending: not read" in str(caught.value) and "in 1 s" in str(caught.value)


def test_a_registry_that_refuses_the_manifest_names_docker_login_for_its_host():
    """The manifest read (`buildx imagetools`) refused: the hint names the registry to log in to
    (Docker's default registry for a short name)."""
    from imagesmith.engine.registry import _login_hint

    digest = "@sha256:" + "0" * 64
    assert _login_hint("127.0.0.1:5000/team/app" + digest) == "docker login 127.0.0.1:5000"
    assert _login_hint("registry.example.invalid/team/app:serve") == "docker login registry.example.invalid"
    assert _login_hint("localhost/app:serve") == "docker login localhost"
    assert _login_hint("team/app:serve") == _login_hint("app") == "docker login"


@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        ("127.0.0.1:5000/team/app", ("127.0.0.1:5000", "team/app")),
        ("registry.example.test/app", ("registry.example.test", "app")),
        ("localhost/app", ("localhost", "app")),
        ("user/app", (None, "user/app")),  # Docker Hub: not a host called "user"
        ("app", (None, "library/app")),  # an official image
        ("docker.io/app", (None, "library/app")),
        ("docker.io/user/app", (None, "user/app")),
        ("index.docker.io/app", (None, "library/app")),  # the SDK's index host names Docker Hub too
        ("index.docker.io/user/app", (None, "user/app")),
        ("registry-1.docker.io/user/app", ("registry-1.docker.io", "user/app")),  # another host under it
        ("docker.io:443/user/app", ("docker.io:443", "user/app")),  # a port: not Docker's name for it
        ("registry.example.test:5000/team/app", ("registry.example.test:5000", "team/app")),
        ("[::1]:5000/app", ("[::1]:5000", "app")),
    ],
)
def test_the_registry_api_of_a_repository_follows_dockers_rules(repo, expected):
    """A blob read of a Docker Hub image (``user/app``) went to a host named ``user``: a
    repository without a registry host is the docker SDK's default index's (None here: whatever
    host the SDK names), and a one-component name there is under ``library/``."""
    import docker.auth

    from imagesmith.engine.registry_http import api_repository

    host, name = api_repository(repo)
    default = urllib.parse.urlsplit(docker.auth.INDEX_URL).hostname
    assert (host if host != default else None, name) == expected


def test_a_repository_on_another_registry_is_mapped_without_importing_the_docker_sdk():
    """The SDK is 0.1 s of imports, needed only to name Docker Hub's index: a registry whose name
    cannot be Docker Hub's is read without it, and the SDK's registry name is read from its source."""
    import subprocess

    import docker.auth

    from imagesmith.engine.registry_http import _sdk_index_name

    assert _sdk_index_name() == docker.auth.INDEX_NAME
    code = (
        "import sys\n"
        "from imagesmith.engine.registry_http import api_repository\n"
        "for repo in ('registry.example.test/team/app', 'registry.example.test:5000/app', '127.0.0.1:5000/app'):\n"
        "    api_repository(repo)\n"
        "assert 'docker' not in sys.modules, 'the SDK was imported'\n"
        "api_repository('team/app')\n"
        "assert 'docker' in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(root)),
    )
    assert proc.returncode == 0, proc.stderr


def test_a_registry_that_trickles_its_header_lines_is_refused_when_the_time_is_up():
    """A header line sent a byte every 20 ms never trips a socket read's timeout, and urllib reads
    headers before bounded_get sees a byte of the body: the whole request is bounded by the
    time given (1 s here), headers included, where it used to take as long as the sender pleased."""
    import socket
    import threading
    import time

    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(1000):  # one header line, a byte each 20 ms: 20 s
                    if stop.is_set():
                        break
                    conn.sendall(b"x")
                    time.sleep(0.02)
            except OSError:  # the reader gave up: what it should do
                pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(EngineError) as caught:
            fetch_blob(f"127.0.0.1:{server.getsockname()[1]}", "x", DIGEST, 1000, 1)
        seconds = time.monotonic() - started
    finally:
        stop.set()
        thread.join(5)
        server.close()
    assert seconds < 5, seconds
    assert "did not send its answer's headers within 1 s" in str(caught.value)


@pytest.mark.parametrize(
    "sent",
    [
        b"garbage\r\n\r\n",  # no status line: http.client's BadStatusLine
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",  # a chunk cut short: IncompleteRead
    ],
)
def test_an_answer_that_is_no_http_is_one_error(sent):
    """What answers at the registry's address may send anything: http.client's own exceptions
    are no OSError, and escaped fetch_blob as a traceback."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(sent)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(EngineError, match="sent (no HTTP answer|a broken answer)"):
            fetch_blob(f"127.0.0.1:{server.getsockname()[1]}", "x", DIGEST, 1000, 5)
    finally:
        thread.join(5)
        server.close()
