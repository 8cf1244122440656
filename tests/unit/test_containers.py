"""Removing a signoff's containers (imagesmith/engine/services.py) against a stand-in for the
Docker SDK's client: a busy engine that is still removing a container when the call returns."""

from __future__ import annotations

import pytest

from imagesmith.engine.services import Services
from imagesmith.errors import EngineError


class _Response:
    status_code = 409
    reason = "Conflict"
    url = "http+docker://localhost/containers/abc"

    def json(self):
        return {"message": "removal of container abc is already in progress"}


class _Container:
    def __init__(self, engine, cid):
        self.engine, self.id = engine, cid

    def remove(self, force, v):
        assert force and v  # and its volumes
        self.engine.removals += 1
        from docker.errors import APIError  # the SDK's own error (its import is a tenth of a second)

        message = "removal of container abc is already in progress"
        raise APIError("409 Client Error: Conflict", response=_Response(), explanation=message)


class _Busy:
    """Lists the container ``lingers`` more times after the removal was asked for."""

    def __init__(self, lingers: int):
        self.lingers, self.removals, self.lists = lingers, 0, 0
        self.containers = self

    def list(self, all, filters, ignore_removed=False):
        # ignore_removed: a container removed between the list and its inspection is not an error
        assert all and filters == {"label": "io.imagesmith.signoff=run1"} and ignore_removed
        self.lists += 1
        if self.removals and self.lingers <= 0:
            return []
        if self.removals:
            self.lingers -= 1
        return [_Container(self, "abc" + "0" * 61)]


def test_signoff_waits_until_the_engine_has_removed_its_container():
    busy = _Busy(lingers=3)
    services = Services(lambda: busy, lambda: ("127.0.0.1", "0"))
    assert services.remove_signoff("run1", poll=0) == 1
    assert busy.removals == 1 and busy.lists == 5  # asked once, then listed until it was gone


def test_a_container_the_engine_never_removes_is_an_error_naming_it():
    busy = _Busy(lingers=10**9)
    services = Services(lambda: busy, lambda: ("127.0.0.1", "0"))
    with pytest.raises(EngineError, match=r"still removing container abc000000000 0 s after"):
        services.remove_signoff("run1", wait=0, poll=0)


def test_the_port_docker_says_is_taken_is_the_one_named():
    from imagesmith.engine.attached import PORT_TAKEN, port_in_use

    proxy = (
        "docker: Error response from daemon: driver failed programming external connectivity on endpoint x (ab): "
        "Error starting userland proxy: listen tcp4 127.0.0.1:8001: bind: address already in use"
    )
    allocated = "docker: Error response from daemon: Bind for 127.0.0.1:9000 failed: port is already allocated"
    assert PORT_TAKEN.match(proxy) and PORT_TAKEN.match(allocated)
    assert not PORT_TAKEN.match("Traceback: address already in use")  # the container's own output
    err = port_in_use(proxy, {8000: 8001, 9: 9000})
    assert (err.host_port, err.container_port) == (8001, 8000) and "port 8001 on 127.0.0.1" in str(err)
    assert port_in_use(allocated, {8000: 9000}).host_port == 9000
    assert port_in_use("docker: Error response from daemon: address already in use", {80: 8080}).host_port == 8080
