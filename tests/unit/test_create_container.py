"""``engine.containers.create_container``: the one translation of a container's creation failures,
shared by a run to its end, reading an image's files and signoff's services."""

from __future__ import annotations

import pytest
from docker.errors import APIError, ImageNotFound

from imagesmith.engine._common import ENGINE_HINT
from imagesmith.engine.containers import LOG_CONFIG, create_container
from imagesmith.errors import EngineError


class _Client:
    def __init__(self, error: Exception | None) -> None:
        self.error, self.calls = error, []
        self.containers = self

    def create(self, image, *args, **create):
        self.calls.append((image, args, dict(create)))
        if self.error is not None:
            error, self.error = self.error, (None if getattr(self, "once", False) else self.error)
            raise error
        return "container"


def test_the_arguments_reach_the_sdk_and_its_failures_are_engine_errors():
    client = _Client(None)
    assert create_container(client, "img", ["run"], labels={"a": "1"}) == "container"
    assert client.calls == [("img", (["run"],), {"labels": {"a": "1"}, "log_config": LOG_CONFIG})]
    with pytest.raises(EngineError) as missing:
        create_container(_Client(ImageNotFound("no such image")), "img")
    assert str(missing.value) == "image img is not in the engine" and missing.value.hint is None
    with pytest.raises(EngineError) as refused:
        create_container(_Client(APIError("500 Server Error: boom\nmore")), "img")
    assert str(refused.value) == "cannot create a container of img: 500 Server Error: boom"
    assert refused.value.hint == ENGINE_HINT


def test_containers_log_with_the_local_driver_and_without_it_where_the_engine_lacks_it():
    """imagesmith's containers log with the `local` driver (a probe's gigabyte of output is not
    written and scanned as JSON); a caller's own log_config is kept; an engine that refuses the
    driver creates the container with its default instead, and any other refusal is not retried."""
    client = _Client(None)
    create_container(client, "img", log_config={"type": "json-file", "config": {}})
    assert client.calls[0][2]["log_config"] == {"type": "json-file", "config": {}}
    no_driver = _Client(APIError("400 Client Error: logger: no log driver named 'local' is registered"))
    no_driver.once = True
    assert create_container(no_driver, "img", labels={}) == "container"
    assert [call[2] for call in no_driver.calls] == [{"labels": {}, "log_config": LOG_CONFIG}, {"labels": {}}]
    other = _Client(APIError("400 Client Error: invalid mount config"))
    with pytest.raises(EngineError):
        create_container(other, "img")
    assert len(other.calls) == 1
    theirs = _Client(APIError("400 Client Error: logger: no log driver named 'gelf' is registered"))
    with pytest.raises(EngineError):
        create_container(theirs, "img", log_config={"type": "gelf", "config": {}})
    assert len(theirs.calls) == 1
