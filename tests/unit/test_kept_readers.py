"""``Engine.keeping_readers`` (one holder, ``KeptReaders`` in imagesmith/engine/_common.py, filled
by containers.py): within the block, the reads of one image's files share one container, removed
when the block ends; outside it, each read makes and removes its own. Against a stand-in for the
Docker SDK's client that serves files as the engine's archive API does (a tar stream named after
the path's last part)."""

from __future__ import annotations

import io
import tarfile

import pytest
from docker.errors import NotFound

from imagesmith.engine import Engine
from imagesmith.errors import EngineError


def _archive(path: str, data: bytes) -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path.rsplit("/", 1)[-1])
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return [buf.getvalue()]


class _Container:
    def __init__(self, client: "_Client", image: str) -> None:
        self.client, self.image = client, image

    def get_archive(self, path: str):
        files = self.client.files[self.image]
        if path not in files:
            raise NotFound(f"no {path}")
        return iter(_archive(path, files[path])), {}

    def remove(self, force: bool) -> None:
        self.client.log.append(("remove", self.image))


class _Client:
    """Created and removed containers, in order, in ``log``."""

    def __init__(self, files: dict[str, dict[str, bytes]], refuse: int = 0) -> None:
        self.files, self.log, self.refuse = files, [], refuse
        self.containers = self

    def create(self, image: str, *args, **create) -> _Container:
        if self.refuse:
            self.refuse -= 1
            from docker.errors import APIError

            raise APIError("500 Server Error: busy")
        self.log.append(("create", image))
        return _Container(self, image)


@pytest.fixture(autouse=True)
def _sdk_only(monkeypatch):
    """Not the plain local socket: the reads go through the SDK's client (the stand-in), never the
    engine of the machine the tests run on (local_api)."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")


FILES = {"img": {"/facts.json": b"{}", "/etc/ld.so.preload": b"x"}, "base": {"/etc/ld.so.preload": b""}}


def _engine(client: _Client) -> Engine:
    engine = Engine()
    engine._client = client  # the SDK's client, as connect() would make it
    return engine


def _reads(engine: Engine) -> list:
    """What a verify reads: the facts file, then (another call) two paths of the image, then the base's."""
    out = [engine.read_paths("img", ["/facts.json"])["/facts.json"]]
    with engine.reading("img") as read:
        out += [read("/etc/ld.so.preload", 1), read("/missing")]
    out.append(engine.read_paths("base", ["/etc/ld.so.preload"])["/etc/ld.so.preload"])
    return [tuple((e.path, e.kind, e.sha256, e.data) for e in entries) if entries else None for entries in out]


def test_each_read_makes_its_own_container_outside_the_block():
    client = _Client(FILES)
    _reads(_engine(client))
    assert client.log == [("create", "img"), ("remove", "img")] * 2 + [("create", "base"), ("remove", "base")]


@pytest.mark.parametrize("backend_first", [False, True])
def test_one_container_per_image_in_the_block_and_the_same_answers(backend_first: bool):
    alone = _reads(_engine(_Client(FILES)))
    client = _Client(FILES)
    engine = _engine(client)
    if backend_first:  # the container backend made before the block, or (else) inside it
        assert engine.containers is not None
    with engine.keeping_readers():
        with engine.keeping_readers():  # an inner block keeps nothing of its own
            kept = _reads(engine)
        assert client.log == [("create", "img"), ("create", "base")]  # nothing removed yet
        assert _reads(engine) == kept  # and read again from the same two
        assert [e for e, _ in client.log].count("create") == 2
    assert sorted(client.log[2:]) == [("remove", "base"), ("remove", "img")]  # both removed at the end
    assert kept == alone and kept[0] == (("/facts.json", "file", kept[0][0][2], b"{}"),) and kept[2] is None
    _reads(engine)  # after the block: one container per read again
    assert [e for e, _ in client.log].count("create") == 5


def test_a_container_the_engine_refused_is_asked_for_again_and_the_block_removes_what_it_made():
    client = _Client(FILES, refuse=1)
    engine = _engine(client)
    with pytest.raises(RuntimeError, match="stop"):
        with engine.keeping_readers():
            with pytest.raises(EngineError, match="cannot create a container of img: 500 Server Error: busy"):
                engine.read_paths("img", ["/facts.json"])
            assert engine.read_paths("img", ["/facts.json"])["/facts.json"] is not None
            raise RuntimeError("stop")
    assert client.log == [("create", "img"), ("remove", "img")]


def test_the_block_is_held_in_one_place_and_makes_no_container_backend_when_nothing_is_read():
    """The engine holds the block (``KeptReaders``) and its container backend fills that same
    holder, made before the block or in it; a block that reads nothing makes no backend."""
    client = _Client(FILES)
    engine = _engine(client)
    with engine.keeping_readers():
        pass
    assert "containers" not in engine.__dict__ and client.log == []
    with engine.keeping_readers():
        engine.read_paths("img", ["/facts.json"])
        kept = engine._kept
        assert engine.containers._kept is kept and set(kept.readers) == {"img"} and kept.stack is not None
    assert kept.stack is None and kept.readers == {} and client.log == [("create", "img"), ("remove", "img")]


def test_a_containers_backend_given_the_holder_keeps_its_readers_in_its_blocks():
    from imagesmith.engine._common import KeptReaders
    from imagesmith.engine.containers import Containers

    client, kept = _Client(FILES), KeptReaders()
    containers = Containers(lambda: client, kept)
    with kept.block():
        containers.read_paths("img", ["/facts.json"])
        containers.read_paths("img", ["/etc/ld.so.preload"])
        assert client.log == [("create", "img")]
    assert client.log == [("create", "img"), ("remove", "img")]
