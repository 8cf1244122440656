"""A stand-in for the local engine in unit tests: an HTTP server on a unix socket, named by
DOCKER_HOST (what imagesmith/engine/local_api.py writes its requests to). ``Answering`` is the
quiet handler of every test server, on a socket or on 127.0.0.1 (``helpers.serving``)."""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Answering(http.server.BaseHTTPRequestHandler):
    """A quiet handler with ``answer``: one status and body, its length said (and ``headers``)."""

    def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextmanager
def engine_on_socket(path: str, handler: type, monkeypatch) -> Iterator[None]:
    """``handler`` (an ``http.server.BaseHTTPRequestHandler`` class) answering on the unix socket
    ``path``, which DOCKER_HOST names for the block."""
    server = _Engine(path, handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
