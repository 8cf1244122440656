"""``engine.containers.create_container``: the one translation of a container's creation failures,
shared by a run to its end, reading an image's files and signoff's services."""

from __future__ import annotations

import pytest
from docker.errors import APIError, ImageNotFound

from imagesmith.engine._common import ENGINE_HINT
from imagesmith.engine.containers import create_container
from imagesmith.errors import EngineError


class _Client:
    def __init__(self, error: Exception | None) -> None:
        self.error, self.calls = error, []
        self.containers = self

    def create(self, image, *args, **create):
        self.calls.append((image, args, create))
        if self.error is not None:
            raise self.error
        return "container"


def test_the_arguments_reach_the_sdk_and_its_failures_are_engine_errors():
    client = _Client(None)
    assert create_container(client, "img", ["run"], labels={"a": "1"}) == "container"
    assert client.calls == [("img", (["run"],), {"labels": {"a": "1"}})]
    with pytest.raises(EngineError) as missing:
        create_container(_Client(ImageNotFound("no such image")), "img")
    assert str(missing.value) == "image img is not in the engine" and missing.value.hint is None
    with pytest.raises(EngineError) as refused:
        create_container(_Client(APIError("500 Server Error: boom\nmore")), "img")
    assert str(refused.value) == "cannot create a container of img: 500 Server Error: boom"
    assert refused.value.hint == ENGINE_HINT
