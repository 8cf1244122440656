"""A signoff's containers removed while the engine lists them (engine/services.py
``remove_signoff``): the engine's list names a container that its inspection, a moment later,
no longer finds (another caller's removal, or the engine finishing this one). The Docker SDK's
``containers.list`` inspects each listed container; without ``ignore_removed`` that 404 was an
EngineError ("cannot list the signoff's containers") for a container that is simply gone. Seen on
the real engine in a clean-clone `make test` (2026-12-07 18:40 UTC, the test suite's own lister in
test_nonroot_engine.py, the same SDK call). A stand-in engine on a unix socket answers the two
requests as the engine did."""

from __future__ import annotations

import json

import docker

from imagesmith.engine.services import Services
from tests.socket_engine import Answering, engine_on_socket

GONE = "9a3716512fa5c41d264658f38eccb639b6b7ab80737eaac65c023b4f39ec8600"


class ListedThenGone(Answering):
    """Lists one container; its inspection answers 404, as for a container removed meanwhile."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        if path.endswith("/containers/json"):
            self.answer(200, json.dumps([{"Id": GONE, "Names": ["/gone"], "Labels": {}}]).encode())
        elif path.endswith(f"/containers/{GONE}/json"):
            self.answer(404, json.dumps({"message": f"No such container: {GONE}"}).encode())
        else:
            self.answer(404, b'{"message": "not here"}')


def test_a_container_gone_between_list_and_inspection_is_not_an_error(tmp_path, monkeypatch):
    sock = str(tmp_path / "engine.sock")
    with engine_on_socket(sock, ListedThenGone, monkeypatch):
        client = docker.DockerClient(base_url=f"unix://{sock}", version="1.45")
        services = Services(lambda: client, lambda: ("127.0.0.1", "127.0.0.1"))
        assert services.remove_signoff("run-1", wait=2, poll=0.05) == 0
