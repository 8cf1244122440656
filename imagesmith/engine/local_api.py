"""Image inspection over the local engine's unix socket with the standard library (one HTTP/1.0 request).

Why not the Docker SDK here: ``verify --labels-only`` and ``inspect`` of a local image need one
``GET /images/NAME/json`` per image (``build`` with nothing new to export: a ``/_ping`` and an
inspection of the base), and importing the SDK (requests, urllib3, charset_normalizer)
plus its two round trips on connecting (``/version``, ``/_ping``) cost more than the whole check
(labels-only verify's budget is 0.2 s, interpreter start-up included). Everything else, and
anything this module is unsure of, uses the SDK: ``inspect_image`` answers ``None`` when the
engine is not the default local socket (``DOCKER_HOST`` other than ``unix://``, a docker context
other than ``default``), when the socket cannot be reached, or on any answer but 200 and 404; the
caller then asks the SDK, which chooses the engine and words the errors as always. The request is
HTTP/1.0 written on the socket: the engine answers it with a body that ends where the connection
does (no chunks, no keep-alive), and ``http.client`` (which imports ``ssl`` and ``email``) would
be a tenth of a labels-only verify (bench/README.md).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import quote

DEFAULT_SOCKET = "/var/run/docker.sock"  # the SDK's and the CLI's default
TIMEOUT = 30
MAX_ANSWER = 64 << 20  # an image's inspection is a few KB; more than this is not one


def local_socket() -> str | None:
    """The unix socket of the engine ``docker`` would use, when that is plainly one; None when
    the choice is the SDK's to make (a TCP or SSH host, a named context)."""
    host = os.environ.get("DOCKER_HOST")
    if host:
        return host[len("unix://") :] if host.startswith("unix://") else None
    context = os.environ.get("DOCKER_CONTEXT")
    if context is None:
        config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError):
            return None
        context = data.get("currentContext") if isinstance(data, dict) else None
    return DEFAULT_SOCKET if context in (None, "", "default") else None


def _get(url: str) -> tuple[int, bytes] | None:
    """(status, body) of ``GET url`` on the local engine's socket; None when it is not plainly
    the local engine or cannot be reached."""
    path = local_socket()
    if path is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    chunks: list[bytes] = []
    try:
        sock.connect(path)
        sock.sendall(f"GET {url} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: imagesmith\r\n\r\n".encode("ascii"))
        size = 0
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER:
                return None
    except (OSError, UnicodeEncodeError):
        return None
    finally:
        sock.close()
    return parse_answer(b"".join(chunks))


def parse_answer(raw: bytes) -> tuple[int, bytes] | None:
    """(status, body) of an HTTP/1.x answer that ends with its connection; None when it is not
    plainly one (then the SDK asks): no status line, a chunked or compressed body, a body shorter
    than its Content-Length."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if not sep or len(status) < 2 or not status[0].startswith(b"HTTP/1.") or not status[1].isdigit():
        return None
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            return None
        headers[name.strip().lower()] = value.strip().lower()
    if (
        headers.get(b"transfer-encoding", b"identity") != b"identity"
        or headers.get(b"content-encoding", b"identity") != b"identity"
    ):
        return None
    length = headers.get(b"content-length")
    if length is not None:
        if not length.isdigit() or len(body) < int(length):
            return None
        body = body[: int(length)]
    return int(status[1]), body


def ping() -> bool:
    """The local engine answers ``/_ping`` (False: unsure; the SDK's ``connect`` decides and says why)."""
    answer = _get("/_ping")
    return answer is not None and answer[0] == 200


def inspect_image(ref: str) -> tuple[bool, dict] | None:
    """``(True, attrs)`` as the SDK's ``images.get(ref).attrs``, ``(False, {})`` when the engine
    has no such image (404), None when undecided (use the SDK). Quoted as the SDK quotes."""
    answer = _get("/images/" + quote(ref, safe="/:") + "/json")
    if answer is None or answer[0] not in (200, 404):
        return None
    if answer[0] == 404:
        return False, {}
    try:
        attrs = json.loads(answer[1])
    except ValueError:
        return None
    return (True, attrs) if isinstance(attrs, dict) and isinstance(attrs.get("Id"), str) else None
