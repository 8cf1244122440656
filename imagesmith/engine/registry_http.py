"""The one registry read imagesmith makes over the distribution HTTP API itself (``Registry.top_layer``
reads a small layer blob without pulling), with the docker CLI's credentials, as docker uses them.

Credentials are the docker CLI's, read through the Docker SDK (``docker.auth.load_config``: the
``config.json`` in ``DOCKER_CONFIG`` or ``~/.docker``, its ``auths``, ``credsStore`` and
``credHelpers``). A read answered 401 is made once more, as the challenge asks:

- ``Basic``: with the credentials (none: refused, with a hint to ``docker login HOST``);
- ``Bearer realm=…,service=…,scope=…``: with a pull token from the realm, asked with Basic auth
  when there are credentials, anonymously when not, and with an identity token by the OAuth2
  ``refresh_token`` POST of the distribution token spec.

Rules: credentials and tokens go only over HTTPS or to loopback (``may_carry_secrets``), never to
a realm on plain HTTP elsewhere; they are unredirected headers, so none follows a redirect (a
registry redirects a blob read to object storage on another host); every answer is read bounded;
no message names a secret (``Credentials`` hides them from ``repr``)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..errors import EngineError
from ..runtime.untrusted import UntrustedInput, loads
from ._common import redact
from .refs import registry_host

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_TOKEN_ANSWER = 1 << 20  # bytes of a token service's answer
_TOKEN = re.compile(r"[\x21-\x7e]{1,65536}")  # what a token sent back in a header may be
CLIENT_ID = "imagesmith"  # the OAuth2 client_id of a refresh-token POST (the spec asks for one)


@dataclass(frozen=True)
class Credentials:
    """What docker has for a registry: a user and password, or an identity (OAuth2 refresh) token."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def basic(self) -> str:
        """The ``Authorization`` value of HTTP Basic auth with the user and password."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def docker_credentials(host: str) -> Credentials | None:
    """The credentials the docker CLI would use for ``host`` (``HOST[:PORT]``), or None. The SDK's
    answer has ``username``/``password`` (config.json ``auths``), ``Username``/``Password`` (a
    credential store or helper) or ``IdentityToken`` (either)."""
    import warnings

    import docker.auth  # here: only a blob read that was refused needs the SDK
    import docker.errors

    try:
        with warnings.catch_warnings():  # a missing helper is also warned about: the error below says it
            warnings.simplefilter("ignore", UserWarning)
            found = docker.auth.load_config().resolve_authconfig(host)
    except (docker.errors.DockerException, OSError, ValueError) as exc:
        raise EngineError(
            f"cannot read docker's credentials for {host}: {redact(str(exc))[:200]}",
            hint=f"check that `docker login {host}` works on this machine",
        ) from exc
    if not isinstance(found, dict):
        return None
    token = found.get("IdentityToken") or found.get("identitytoken") or ""
    user = found.get("username") or found.get("Username") or ""
    password = found.get("password") or found.get("Password") or ""
    if isinstance(token, str) and token:
        return Credentials(username=user if isinstance(user, str) else "", identity_token=token)
    if isinstance(user, str) and isinstance(password, str) and (user or password):
        return Credentials(username=user, password=password)
    return None


def may_carry_secrets(url: str) -> bool:
    """True when a credential or token may be sent to ``url``: HTTPS, or plain HTTP to loopback."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in LOOPBACK


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """(the scheme, lower case; its parameters) of a ``WWW-Authenticate`` header."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def bounded_get(url: str, max_bytes: int, timeout: float, authorization: str = "", data: bytes | None = None) -> bytes:
    """The body of ``url`` (a POST of ``data`` when given), at most ``max_bytes``, the whole
    request (its headers, its body, its redirects) within ``timeout`` seconds (``_Deadline``: a
    socket read's own timeout bounds one read, and a server that sends a header line or a byte a
    second would pass it forever); ``authorization`` is sent to ``url`` only, never on a
    redirect, and only where ``may_carry_secrets``. HTTPError for an answer that is not 2xx
    (after redirects)."""
    import http.client
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    if authorization:
        if not may_carry_secrets(url):
            raise EngineError(f"imagesmith sends no credentials to {redact(url)} (not HTTPS, not loopback)")
        request.add_unredirected_header("Authorization", authorization)
    body = bytearray()
    hint = "check the registry is reachable from this machine and not overloaded"
    with _Deadline(timeout) as deadline:
        late = EngineError(f"{redact(url)} did not send its answer's headers within {timeout:g} s: not read", hint=hint)
        try:
            answer = deadline.opener().open(request, timeout=timeout)
        except urllib.error.HTTPError:
            raise
        except (OSError, http.client.HTTPException) as exc:  # a status line cut short is no OSError
            if deadline.expired:
                raise late from exc
            if isinstance(exc, OSError):
                raise
            raise EngineError(f"{redact(url)} sent no HTTP answer ({type(exc).__name__})", hint=hint) from exc
        if deadline.expired:  # http.client takes the end of what was sent for the end of the headers
            answer.close()
            raise late
        with answer:
            try:
                while len(body) <= max_bytes:
                    chunk = answer.read1(min(1 << 16, max_bytes + 1 - len(body)))
                    if not chunk:
                        break
                    body += chunk
            except http.client.HTTPException as exc:  # a chunked body cut short (IncompleteRead)
                if not deadline.expired:
                    raise EngineError(f"{redact(url)} sent a broken answer ({type(exc).__name__})", hint=hint) from exc
        if deadline.expired and len(body) <= max_bytes:  # the end of what was sent is the deadline's
            raise EngineError(
                f"{redact(url)} sent {len(body)} bytes in {timeout:g} s and was still sending: not read", hint=hint
            )
    if len(body) > max_bytes:
        raise EngineError(f"the answer of {redact(url)} is more than {max_bytes} bytes: not read")
    return bytes(body)


class _Deadline:
    """The time one request has in all: each connection its opener makes is shut down (both
    ways: a read waiting on it returns at once) when ``timeout`` seconds have passed since the
    deadline was set, and ``expired`` says so. A connection's own file descriptor is watched (a
    duplicate, shut down, never closed under the reader), so HTTPS is cut the same way."""

    def __init__(self, timeout: float) -> None:
        import threading
        import time

        self.ends = time.monotonic() + timeout
        self.expired = False
        self._lock = threading.Lock()
        self._watched: list = []  # duplicates of the connections' sockets
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._watched:
                sock.close()
            self._watched.clear()

    def _expire(self) -> None:
        import socket

        with self._lock:
            self.expired = True
            for sock in self._watched:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _connect(self, *args, **kwargs):
        """``socket.create_connection``, watched: a connection made after the deadline is shut at once."""
        import os
        import socket

        sock = socket.create_connection(*args, **kwargs)
        watch = socket.socket(fileno=os.dup(sock.fileno()))
        with self._lock:
            self._watched.append(watch)
            if self.expired:
                watch.shutdown(socket.SHUT_RDWR)
        return sock

    def opener(self):
        """A urllib opener as ``urlopen``'s (proxies, redirects, TLS checked as by default)
        whose every connection is watched."""
        import http.client
        import urllib.request

        def watched(cls):
            def make(*args, **kwargs):
                connection = cls(*args, **kwargs)
                connection._create_connection = self._connect  # what its connect() makes its socket with
                return connection

            return make

        class Http(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(watched(http.client.HTTPConnection), req)

        class Https(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(watched(http.client.HTTPSConnection), req, context=self._context)

        return urllib.request.build_opener(Http(), Https())


def api_repository(repo: str) -> tuple[str, str]:
    """(the registry host whose HTTP API serves ``repo``, the repository's name there), by Docker's
    rules: a repository without a registry host (``user/app``, ``app``) or on Docker Hub's
    registry name is Docker Hub's, reached at the docker SDK's default index host (as the docker
    CLI and go-containerregistry reach it); a one-component name there is an official image,
    under ``library/``. No registry host is named here: the SDK's constants are the defaults."""
    import urllib.parse

    host, _, name = repo.partition("/") if registry_host(repo) else ("", "", repo)
    if host and not _could_be_docker_hub(host):
        return host, name
    import docker.auth  # the SDK's default index (0.1 s of imports: only for a name Docker Hub's could be)

    index = urllib.parse.urlsplit(docker.auth.INDEX_URL).hostname or docker.auth.INDEX_NAME
    if host and host not in (docker.auth.INDEX_NAME, index):
        return host, name
    return index, name if "/" in name else f"library/{name}"


def _could_be_docker_hub(host: str) -> bool:
    """Whether the registry host ``host`` could be Docker Hub's: neither loopback nor a port, and
    the docker SDK's registry name (``INDEX_NAME``) or a host under it (its index's host is). A
    name that cannot is another registry's: no need to import the SDK to know its index."""
    if ":" in host or _hostname(host) in LOOPBACK:
        return False
    hub = _sdk_index_name()
    return hub is None or host == hub or host.endswith("." + hub)


@lru_cache(maxsize=1)
def _sdk_index_name() -> str | None:
    """The docker SDK's ``INDEX_NAME`` (Docker Hub's registry name), read from its ``auth.py``
    without importing the SDK (0.1 s of imports); None when it is not found there as a plain
    string (the caller then imports the SDK)."""
    import ast
    import importlib.util
    from pathlib import Path

    try:
        spec = importlib.util.find_spec("docker")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        tree = ast.parse((Path(next(iter(spec.submodule_search_locations))) / "auth.py").read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(target, "id", None) for target in node.targets] == ["INDEX_NAME"]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return None


def fetch_blob(host: str, name: str, digest: str, max_bytes: int, timeout: float) -> bytes:
    """``GET /v2/<name>/blobs/<digest>`` of the registry ``host`` (plain HTTP to loopback, HTTPS
    elsewhere), bounded; on a 401, once more as its challenge asks, with docker's credentials."""
    import urllib.error  # here: `imagesmith --help` and a lock import no HTTP client

    scheme = "http" if _hostname(host) in LOOPBACK else "https"
    url = f"{scheme}://{host}/v2/{name}/blobs/{digest}"
    what = f"the blob {digest[:19]}… of {host}/{name}"
    try:
        try:
            return bounded_get(url, max_bytes, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise EngineError(f"the registry refused {what} (HTTP {exc.code})") from exc
            challenge = exc.headers.get("WWW-Authenticate", "")
        creds = docker_credentials(host)
        authorization = _answer(challenge, creds, host, what, url, timeout)
        try:
            return bounded_get(url, max_bytes, timeout, authorization)
        except urllib.error.HTTPError as again:
            raise EngineError(
                f"the registry refused {what} (HTTP {again.code}) "
                + (
                    f"with the credentials docker has for {host} (`docker login {host}` as a user who may pull it)"
                    if creds
                    else f"and docker has no credentials for {host} (`docker login {host}`)"
                ),
                hint=_hint(host),
            ) from again
    except (urllib.error.URLError, OSError) as exc:
        raise EngineError(f"cannot read {what}: {redact(str(exc))[:200]}") from exc


def _hint(host: str) -> str:
    return f"docker login {host} (imagesmith reads the docker CLI's credentials), or verify without --labels-only"


def _hostname(host: str) -> str:
    """``HOST`` of ``HOST[:PORT]`` (``::1`` of ``[::1]:5000``)."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if ":" in host else host


def _answer(challenge: str, creds: Credentials | None, host: str, what: str, url: str, timeout: float) -> str:
    """The ``Authorization`` value to read ``url`` (``what``) again with, as ``challenge`` asks."""
    scheme, params = parse_challenge(challenge)
    if scheme == "basic":
        if creds is None or not (creds.username or creds.password):
            has = "only an identity token, which Basic auth cannot use," if creds else "none"
            raise EngineError(
                f"{what} needs a user and password and docker has {has} for {host} (`docker login {host}`)",
                hint=_hint(host),
            )
        if not may_carry_secrets(url):
            raise EngineError(f"imagesmith sends no credentials to {host} over plain HTTP")
        return creds.basic()
    if scheme != "bearer":
        raise EngineError(
            f"the registry {host} asks for {scheme or 'no'} authentication, which imagesmith does not speak",
            hint="verify without --labels-only (it pulls)",
        )
    return "Bearer " + _token(params, creds, host, timeout)


def _token(params: dict[str, str], creds: Credentials | None, host: str, timeout: float) -> str:
    """A pull token from the challenge's realm (the distribution token spec)."""
    import urllib.error
    import urllib.parse

    realm = params.get("realm", "")
    if not may_carry_secrets(realm):
        raise EngineError(
            f"the token service of {host} ({redact(realm)[:100] or 'none named'}) is not HTTPS or loopback: "
            "imagesmith asks it nothing"
        )
    asked = {k: v for k, v in sorted(params.items()) if k in ("service", "scope")}
    try:
        if creds is not None and creds.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": CLIENT_ID,
                **asked,
            }
            body = bounded_get(realm, MAX_TOKEN_ANSWER, timeout, data=urllib.parse.urlencode(form).encode())
        else:
            query = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(asked)
            body = bounded_get(query, MAX_TOKEN_ANSWER, timeout, creds.basic() if creds else "")
        answer = loads(body, what="the token", max_bytes=MAX_TOKEN_ANSWER)
    except urllib.error.HTTPError as exc:
        raise EngineError(
            f"the token service of {host} refused "
            + ("the credentials docker has for it" if creds else "an anonymous pull token")
            + f" (HTTP {exc.code}; `docker login {host}`)",
            hint=_hint(host),
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise EngineError(f"the token service of {host} did not answer ({redact(str(exc))[:200]})") from exc
    except UntrustedInput as exc:  # its message names the problem, never the answer's text
        raise EngineError(f"the token service of {host} sent no token: {str(exc)[:200]}") from exc
    value = (answer.get("token") or answer.get("access_token")) if isinstance(answer, dict) else None
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise EngineError(f"the token service of {host} sent no token (or one that is not a header value)")
    return value
