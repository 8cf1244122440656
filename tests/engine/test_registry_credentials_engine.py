"""`verify --labels-only` of an image in a registry that needs credentials: a real registry
(`docker-registry`, the one scripts/setup-engine.sh runs) on its own loopback port, with htpasswd
auth (Basic) or token auth (Bearer: a token server of the test's own, on loopback), logged in to
with a docker config in the test's folder (the host's ~/.docker is never read or written). The
manifest and config are read with `docker buildx imagetools`, the facts layer's blob by imagesmith
itself (``registry_http.fetch_blob``): both with the credentials `docker login` stored."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import cli, serving
from tests.socket_engine import Answering

USER = "deployer"
SECRET = "Pr1vate-Reg1stry-s3cret"


def _bcrypt(password: str) -> str:
    """A ``$2b$`` bcrypt hash (the only kind the registry's htpasswd accepts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # Python 3.11's; deprecated, and enough for a test's htpasswd

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _registry(folder: Path, auth: str) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a `docker-registry` process started in ``folder`` with the ``auth:``
    section ``auth`` (YAML lines indented under it), once it answers 401; ended (by its PID) at
    the end. Its data, configuration and log are in ``folder`` (the caller's to remove)."""
    if shutil.which("docker-registry") is None:
        pytest.fail("docker-registry is missing: run scripts/setup-engine.sh (make engine)")
    port = _free_port()
    (folder / "registry.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n{auth}"
    )
    with open(folder / "registry.log", "wb") as log:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(folder / "registry.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        for _ in range(120):  # 30 s: the machine is shared
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"the registry ended: {(folder / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.25)
        else:
            pytest.fail(f"the registry did not answer 401: {(folder / 'registry.log').read_text()[-2000:]}")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def private_registry():
    """``127.0.0.1:PORT`` of a registry process this fixture starts, that answers 401 without
    ``USER``/``SECRET`` (htpasswd); the process is ended and its folder removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="imagesmith-test-private-registry-"))
    (folder / "htpasswd").write_text(f"{USER}:{_bcrypt(SECRET)}\n")
    try:
        with _registry(folder, f"  htpasswd:\n    realm: imagesmith-test\n    path: {folder / 'htpasswd'}\n") as host:
            yield host
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _docker(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _push(engine, config: Path, image_id: str, ref: str) -> subprocess.CompletedProcess:
    """``docker push`` of ``image_id`` as ``ref`` with the login in ``config``; the tag is removed after."""
    engine.tag(image_id, ref)
    try:
        pushed = _docker(config, "push", ref)
    finally:
        subprocess.run(["docker", "image", "rm", ref], capture_output=True)  # our tag only
    assert pushed.returncode == 0, pushed.stderr
    return pushed


@pytest.mark.engine
def test_labels_only_verify_reads_a_private_registry_with_dockers_credentials(
    tmp_path, private_registry, tiny_built, engine
):
    """With the credentials `docker login` stored (DOCKER_CONFIG), `verify REF@DIGEST --labels-only`
    of an imagesmith image in a registry that needs them passes: its facts blob is read with them
    too (it was read anonymously, and refused). Without them (an empty docker config) it is one
    `error:` naming `docker login HOST`, exit 2 (the registry could not be read). The secret is in
    no output."""
    _, result = tiny_built
    logged_in = tmp_path / "docker-config"
    logged_in.mkdir()
    login = _docker(logged_in, "login", private_registry, "-u", USER, "--password-stdin", stdin=SECRET)
    assert login.returncode == 0, login.stderr

    remote = f"{private_registry}/imagesmith-test/private-tiny-{uuid.uuid4().hex[:8]}"
    pushed = _push(engine, logged_in, result.images["serve"].id, f"{remote}:serve")
    digest = pushed.stdout.rsplit("digest: ", 1)[1].split()[0]
    listed = _docker(logged_in, "buildx", "imagetools", "inspect", "--raw", f"{remote}@{digest}")
    assert listed.returncode == 0, listed.stderr  # the registry keeps the digest the push named

    # a cache of its own: facts once read are kept by digest, and this read is the one under test
    env = {"DOCKER_CONFIG": str(logged_in), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with_creds = cli("verify", f"{remote}@{digest}", "--labels-only", "--json", env=env)
    report = json.loads(with_creds.stdout)
    assert with_creds.returncode == 0, with_creds.stdout + with_creds.stderr
    assert report["mode"] == "labels" and report["digest"] == digest and report["parity"] == result.parity, report

    nobody = tmp_path / "empty-docker-config"
    nobody.mkdir()
    outputs = [with_creds.stdout + with_creds.stderr, login.stdout + login.stderr]
    for extra in ([], ["--json"]):
        refused = cli(
            "verify", f"{remote}@{digest}", "--labels-only", *extra, env={**env, "DOCKER_CONFIG": str(nobody)}
        )
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.count("error:") == 1 and f"hint: docker login {private_registry}" in refused.stderr
        if extra:
            assert json.loads(refused.stdout)["exit"] == 2
        outputs.append(refused.stdout + refused.stderr)
    assert not [out for out in outputs if SECRET in out]


# The token-auth registry (distribution 2.8's `auth: token`): Docker Hub's, GHCR's, ECR's and
# GitLab's scheme. The registry checks every token itself (issuer, audience, times, the x5c
# certificate against its rootcertbundle, the RS256 signature, the access claim); the token
# server is this test's, on loopback, and grants by the distribution token spec.
SERVICE = "imagesmith-test-registry"
ISSUER = "imagesmith-test-token-server"
READER = "reader"  # may pull READABLE repositories only
READER_SECRET = "R3ader-t0ken-s3cret"
READABLE = "imagesmith-test/readable-"
REFRESH = "imagesmith-test-refresh-7f3a9c"  # the reader's identity (OAuth2 refresh) token
PASSWORDS = {USER: SECRET, READER: READER_SECRET}
GRANTS = {USER: ("", {"pull", "push"}), READER: (READABLE, {"pull"})}  # user -> (name prefix, actions)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwt(folder: Path, user: str, access: list[dict]) -> str:
    """An RS256 JWT for ``user`` granting ``access``, signed by `openssl dgst` with the key whose
    self-signed certificate is the registry's rootcertbundle, named by the ``x5c`` header."""
    cert = "".join(line for line in (folder / "cert.pem").read_text().splitlines() if "-----" not in line)
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [cert]}
    claims = {"iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now}
    claims |= {"jti": uuid.uuid4().hex, "access": access}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    signed = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(folder / "key.pem")],
        input=signing_input.encode(),
        capture_output=True,
        check=True,
    )
    return f"{signing_input}.{_b64url(signed.stdout)}"


def _granted(user: str, scopes: list[str]) -> list[dict]:
    """The access claim for ``user`` asking ``scopes`` (``repository:NAME:ACTIONS``): what was asked
    and the user may; nothing for an anonymous user ("")."""
    prefix, allowed = GRANTS.get(user, (None, set()))
    access = []
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind == "repository" and prefix is not None and name.startswith(prefix):
            granted = sorted(set(actions.split(",")) & allowed)
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
    return access


def _token_handler(folder: Path, log: list[dict]) -> type[Answering]:
    """The token server's request handler: ``GET realm?service=&scope=`` with Basic auth or none,
    and the OAuth2 ``POST`` (``grant_type`` password or refresh_token); wrong credentials get a
    401, the right ones a token with what they may. Each request is logged to ``log``."""

    class Handler(Answering):  # quiet: the test reads ``log``
        def do_GET(self) -> None:
            form = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            header = self.headers.get("Authorization", "")
            user: str | None = ""  # anonymous
            if header:
                name, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
                user = name if header.startswith("Basic ") and PASSWORDS.get(name) == password else None
            self._answer(user, form)

        def do_POST(self) -> None:
            form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            grant, name = form.get("grant_type", [""])[0], form.get("username", [""])[0]
            if grant == "password":
                user = name if PASSWORDS.get(name) == form.get("password", [""])[0] else None
            else:
                user = READER if grant == "refresh_token" and form.get("refresh_token") == [REFRESH] else None
            self._answer(user, form)

        def _answer(self, user: str | None, form: dict[str, list[str]]) -> None:
            scopes = [one for value in form.get("scope", []) for one in value.split()]
            entry = {"method": self.command, "user": user, "scopes": scopes, "service": form.get("service")}
            log.append(entry | {"agent": self.headers.get("User-Agent", "")})
            if user is None:
                self.answer(401, b"", {"WWW-Authenticate": 'Basic realm="imagesmith-test"'})
                return
            log[-1]["token"] = token = _jwt(folder, user, _granted(user, scopes))
            log[-1]["access"] = _granted(user, scopes)
            body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
            self.answer(200, body, {"Content-Type": "application/json"})

    return Handler


@pytest.fixture
def token_registry():
    """(``127.0.0.1:PORT`` of a registry process with token auth, the token server's request log):
    the token server is a loopback HTTP server in this process, its key and self-signed
    certificate made by `openssl`; all ended, and the folder removed, afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="imagesmith-test-token-registry-"))
    log: list[dict] = []
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={ISSUER}"]
            + ["-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
            capture_output=True,
            check=True,
        )
        with serving(_token_handler(folder, log)) as tokens:
            auth = (
                f"  token:\n    realm: http://{tokens}/token\n    service: {SERVICE}\n"
                f"    issuer: {ISSUER}\n    rootcertbundle: {folder / 'cert.pem'}\n"
            )
            with _registry(folder, auth) as host:
                yield host, log
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _config(folder: Path, host: str, **entry: str) -> dict[str, str]:
    """The env of a docker config in ``folder`` whose entry for ``host`` is ``entry`` (as
    `docker login` writes it: ``auth``, base64 of USER:PASSWORD, or ``identitytoken``)."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"auths": {host: entry}} if entry else {}))
    return {"DOCKER_CONFIG": str(folder)}


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.engine
def test_labels_only_verify_reads_a_token_auth_registry_with_a_bearer_token(
    tmp_path, token_registry, tiny_built, engine, monkeypatch
):
    """A registry with token auth, as every public registry has: `docker login` and `docker push`
    get their tokens from the token server; `verify --labels-only REPO:TAG` as a reader who may pull
    the repository passes, its facts blob read with a token imagesmith asked for the repository's
    pull scope (the registry accepted it). The blob read itself (``fetch_blob``) refuses, with one
    message naming `docker login HOST`: wrong credentials (the token service's 401), none (an
    anonymous token, which the registry refuses), a reader's token for a repository it may not pull;
    it reads with an identity token (the OAuth2 refresh_token POST). The CLI refuses the same three
    (exit 2, one `error:`, `hint: docker login HOST`). No password or token is in any output."""
    from imagesmith.engine.registry_http import fetch_blob
    from imagesmith.errors import EngineError

    host, log = token_registry
    _, result = tiny_built
    pusher = tmp_path / "pusher"
    pusher.mkdir()
    login = _docker(pusher, "login", host, "-u", USER, "--password-stdin", stdin=SECRET)
    assert login.returncode == 0, login.stderr
    assert [(e["method"], e["user"], e["scopes"], e["service"]) for e in log] == [("GET", USER, [], [SERVICE])]
    outputs = [login.stdout + login.stderr]
    suffix = uuid.uuid4().hex[:8]
    readable, hidden = f"{READABLE}tiny-{suffix}", f"imagesmith-test/hidden-tiny-{suffix}"
    for name in (readable, hidden):
        pushed = _push(engine, pusher, result.images["serve"].id, f"{host}/{name}:serve")
        outputs.append(pushed.stdout + pushed.stderr)
    raw = _docker(pusher, "buildx", "imagetools", "inspect", "--raw", f"{host}/{hidden}:serve")
    assert raw.returncode == 0, raw.stderr
    top = json.loads(raw.stdout)["layers"][-1]["digest"]

    reader = _config(tmp_path / "reader", host, auth=_basic(READER, READER_SECRET))
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}  # facts once read are kept: this read is the one under test
    verified = cli("verify", f"{host}/{readable}:serve", "--labels-only", "--json", env=reader | cache)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["parity"] == result.parity
    outputs.append(verified.stdout + verified.stderr)
    # `inspect` (and `diff`) read the facts blob the same way (verify_source.open_source)
    shown = cli("inspect", f"{host}/{readable}:serve", "--json", env=reader | {"XDG_CACHE_HOME": str(tmp_path / "c2")})
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert json.loads(shown.stdout)["label_ok"] and json.loads(shown.stdout)["parity"] == result.parity
    outputs.append(shown.stdout + shown.stderr)
    asked = [e for e in log if e["agent"].startswith("Python-urllib")]  # imagesmith's own token requests
    assert [(e["method"], e["user"], e["scopes"], e["service"]) for e in asked] == 2 * [
        ("GET", READER, [f"repository:{readable}:pull"], [SERVICE])
    ], asked

    def refused(env: dict[str, str], name: str) -> str:
        """``fetch_blob``'s refusal of ``name``'s top layer with the docker config ``env``."""
        monkeypatch.setenv("DOCKER_CONFIG", env["DOCKER_CONFIG"])
        with pytest.raises(EngineError) as caught:
            fetch_blob(host, name, top, 1 << 20, 30)
        assert f"docker login {host}" in str(caught.value) and caught.value.hint.startswith(f"docker login {host} ")
        outputs.append(f"{caught.value}\n{caught.value.hint}")
        return str(caught.value)

    wrong = _config(tmp_path / "wrong", host, auth=_basic(READER, "not-" + READER_SECRET))
    assert "token service of" in refused(wrong, readable) and log[-1]["user"] is None
    nobody = _config(tmp_path / "nobody", host)
    assert "docker has no credentials for" in refused(nobody, readable)
    assert (log[-1]["user"], log[-1]["scopes"], log[-1]["access"]) == ("", [f"repository:{readable}:pull"], [])
    assert "with the credentials docker has for" in refused(reader, hidden)
    assert (log[-1]["user"], log[-1]["scopes"], log[-1]["access"]) == (READER, [f"repository:{hidden}:pull"], [])

    refresh = _config(tmp_path / "refresh", host, identitytoken=REFRESH)
    monkeypatch.setenv("DOCKER_CONFIG", refresh["DOCKER_CONFIG"])
    blob = fetch_blob(host, readable, top, 1 << 20, 30)  # the same layer is in both repositories
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == top
    assert (log[-1]["method"], log[-1]["user"], log[-1]["access"][0]["name"]) == ("POST", READER, readable)
    monkeypatch.delenv("DOCKER_CONFIG")

    for env, name in ((wrong, readable), (nobody, readable), (reader, hidden)):
        out = cli("verify", f"{host}/{name}:serve", "--labels-only", env=env | cache)
        assert out.returncode == 2, out.stdout + out.stderr
        assert out.stderr.count("error:") == 1 and f"hint: docker login {host}" in out.stderr, out.stderr
        outputs.append(out.stdout + out.stderr)
    secrets = [SECRET, READER_SECRET, REFRESH, *(e["token"] for e in log if "token" in e)]
    secrets += [_basic(USER, SECRET), _basic(READER, READER_SECRET), _basic(READER, "not-" + READER_SECRET)]
    assert not [secret for secret in secrets for out in outputs if secret in out]
