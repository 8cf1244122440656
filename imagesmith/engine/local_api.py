"""Image inspection, and reading an image's files from outside it, over the local engine's unix
socket with the standard library (one HTTP/1.0 request each).

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

The same holds for ``Containers.reading`` (verify's facts file and interpreter, sign's /app, a
lock's dpkg status): a container created and never started (``create_container``), each path's
archive (``archive``, streamed: a folder can be large), the container removed
(``remove_container``). Through the SDK that is its import (0.3 s of CPU, more than the rest of a
first verify's reads) plus ``/version``, ``/_ping`` and an inspection of each new container.
``create_container`` answers None on anything but the engine's 201, and the SDK then makes the
container and words any refusal (an image the engine lacks, a log driver it does not have); the
container is named (``imagesmith-read-<hex>``), so one whose answer was lost is removed by name.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from collections.abc import Generator
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
            st = config.stat()
            version: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            version = None
        except OSError:
            return None
        known, context = _current_context(str(config), version)
        if not known:
            return None
    return DEFAULT_SOCKET if context in (None, "", "default") else None


@functools.lru_cache(maxsize=8)
def _current_context(config: str, version: tuple[int, int, int] | None) -> tuple[bool, str | None]:
    """(read, ``currentContext``) of the docker config file ``config``: read once per process
    and ``version`` of it (inode, mtime, size; None: there is none), not on every request the
    engine is sent; ``(False, None)`` when it cannot be read or is not JSON."""
    if version is None:
        return True, None
    try:
        data = json.loads(Path(config).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False, None
    context = data.get("currentContext") if isinstance(data, dict) else None
    return True, context


def _sent(method: str, url: str, body: bytes | None = None) -> socket.socket | None:
    """A socket on which ``METHOD url`` (with a JSON ``body``) was written to the local engine;
    None when it is not plainly the local engine or cannot be reached."""
    path = local_socket()
    if path is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    head = f"{method} {url} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: imagesmith\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    try:
        sock.connect(path)
        sock.sendall(head.encode("ascii") + b"\r\n" + (body or b""))
    except (OSError, UnicodeEncodeError):
        sock.close()
        return None
    return sock


def _get(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes] | None:
    """(status, body) of ``GET url`` (or ``method``) on the local engine's socket; None when it
    is not plainly the local engine or cannot be reached."""
    sock = _sent(method, url, body)
    return None if sock is None else _answer(sock)


def _answer(sock: socket.socket) -> tuple[int, bytes] | None:
    """(status, body) of the answer read from ``sock`` (closed after); None when it could not be
    read whole or is not plainly one."""
    chunks: list[bytes] = []
    try:
        size = 0
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER:
                return None
    except OSError:
        return None
    finally:
        sock.close()
    return parse_answer(b"".join(chunks))


def _head(head: bytes) -> tuple[int, dict[bytes, bytes]] | None:
    """(status, headers, names lowercased) of an answer's head (before its blank line); None when
    it is not plainly HTTP/1.x with a body as it is (not chunked, not compressed)."""
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or not status[1].isdigit():
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
    return int(status[1]), headers


def parse_answer(raw: bytes) -> tuple[int, bytes] | None:
    """(status, body) of an HTTP/1.x answer that ends with its connection; None when it is not
    plainly one (then the SDK asks): no status line, a chunked or compressed body, a body shorter
    than its Content-Length."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    parsed = _head(head) if sep else None
    if parsed is None:
        return None
    status, headers = parsed
    length = headers.get(b"content-length")
    if length is not None:
        if not length.isdigit() or len(body) < int(length):
            return None
        body = body[: int(length)]
    return status, body


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


# ---- reading an image's files from outside it (Containers.reading) --------------------------------


def create_container(image: str, create: dict, name: str) -> str | None:
    """The ID of a container of ``image`` named ``name`` (``?name=``: unique, made by the caller),
    created (never started) with the engine API's ``create`` body (``Image`` is set here); None
    when the engine did not plainly make one: the SDK then tries, and says why it cannot. An
    answer lost (the connection cut after the engine made it) or a 201 that cannot be read may
    leave the container all the same: it is removed by its name (best effort) before None."""
    body = json.dumps({**create, "Image": image}, sort_keys=True).encode("utf-8")
    sock = _sent("POST", "/containers/create?name=" + quote(name, safe=""), body)
    if sock is None:  # not the plain local engine, or not reached: nothing was asked, nothing made
        return None
    answer = _answer(sock)
    cid = _created_id(answer[1]) if answer is not None and answer[0] == 201 else None
    if cid is None and (answer is None or answer[0] == 201):  # maybe made: not left behind
        remove_container(name)
    return cid


def _created_id(answer: bytes) -> str | None:
    try:
        made = json.loads(answer)
    except ValueError:
        return None
    cid = made.get("Id") if isinstance(made, dict) else None
    return cid if isinstance(cid, str) and len(cid) == 64 and all(c in "0123456789abcdef" for c in cid) else None


def archive(container: str, path: str) -> tuple[int, Generator[bytes, None, None]] | None:
    """``GET /containers/ID/archive?path=PATH``: (status, the body as it streams: a tar of the path
    on 200, the engine's JSON message otherwise); None when no answer could be read. The stream
    raises OSError when the connection fails; closing it closes the connection."""
    sock = _sent("GET", f"/containers/{container}/archive?path={quote(path, safe='')}")
    if sock is None:
        return None
    raw = b""
    try:
        while b"\r\n\r\n" not in raw and len(raw) <= 1 << 16:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            raw += chunk
    except OSError:
        sock.close()
        return None
    head, sep, start = raw.partition(b"\r\n\r\n")
    parsed = _head(head) if sep else None
    if parsed is None:
        sock.close()
        return None
    return parsed[0], _body(sock, start)


def _body(sock: socket.socket, start: bytes) -> Generator[bytes, None, None]:
    try:
        if start:
            yield start
        while chunk := sock.recv(1 << 16):
            yield chunk
    finally:
        sock.close()


def remove_container(container: str) -> str | None:
    """``DELETE /containers/ID?force=1`` (an ID or a name): None when the engine removed it (or had
    no such container), else why not: the engine's status and message, or that it did not answer."""
    answer = _get(f"/containers/{quote(container, safe='')}?force=1", "DELETE")
    if answer is None:
        return "the engine did not answer"
    status, body = answer
    return None if status in (204, 404) else f"{status} {message(body)}".rstrip()


def message(answer: bytes) -> str:
    """The engine's ``message`` of an error answer's body, on one line (the body itself when it has none)."""
    try:
        said = json.loads(answer)
    except ValueError:
        said = None
    text = said.get("message") if isinstance(said, dict) and isinstance(said.get("message"), str) else None
    lines = (text or answer.decode("utf-8", "replace")).strip().splitlines()
    return lines[0][:300] if lines else ""
