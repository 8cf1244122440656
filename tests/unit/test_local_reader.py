"""Reading an image's files from outside it without the Docker SDK (``Containers.reading`` over
``local_api``: create, archive, remove on the local socket), against a small HTTP server on a
unix socket that answers as the engine's API does; and the SDK taking over where the engine does
not plainly make the container."""

from __future__ import annotations

import io
import json
import re
import tarfile
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from imagesmith.engine import local_api
from imagesmith.engine.containers import READER_CREATE, Containers
from imagesmith.errors import EngineError
from tests.socket_engine import Answering, engine_on_socket

CID = "c" * 64
FILES = {"/opt/venv/imagesmith_image.json": b'{"manifest": {}}', "/etc/os-release": b"ID=debian\n"}


def _tar(path: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path.rsplit("/", 1)[-1])
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _handler(state: dict):
    class Handler(Answering):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            url = urlsplit(self.path)
            state["seen"].append(("POST", url.path, body))
            state["names"].extend(parse_qs(url.query)["name"])
            if state["create"] is not None:  # None: made, and the connection cut before the answer
                self.answer(*state["create"])

        def do_GET(self):  # noqa: N802
            url = urlsplit(self.path)
            path = parse_qs(url.query)["path"][0]
            state["seen"].append(("GET", url.path, path))
            if state.get("archive_error"):
                self.answer(500, b'{"message": "layer gone\\nmore"}')
            elif path in FILES:
                self.answer(200, _tar(path, FILES[path]))
            else:
                self.answer(404, b'{"message": "Could not find the file"}')

        def do_DELETE(self):  # noqa: N802
            state["seen"].append(("DELETE", self.path, None))
            self.answer(*state.get("delete", (204, b"")))

    return Handler


@pytest.fixture
def engine(tmp_path, monkeypatch):
    path = str(tmp_path / "engine.sock")
    state: dict = {"seen": [], "names": [], "create": (201, json.dumps({"Id": CID, "Warnings": []}).encode())}
    with engine_on_socket(path, _handler(state), monkeypatch):
        yield state


def _no_sdk():
    pytest.fail("the SDK was asked")


def test_files_are_read_and_the_container_removed_without_the_sdk(engine):
    with Containers(_no_sdk).reading("sha256:" + "1" * 64) as read:
        facts = read("/opt/venv/imagesmith_image.json")
        missing = read("/etc/ld.so.preload", 1)
    assert missing is None and facts is not None and len(facts) == 1
    assert (facts[0].path, facts[0].kind, facts[0].mode, facts[0].data) == (
        "/opt/venv/imagesmith_image.json",
        "file",
        0o644,
        FILES["/opt/venv/imagesmith_image.json"],
    )
    created = {**READER_CREATE, "Image": "sha256:" + "1" * 64}
    assert engine["seen"] == [
        ("POST", "/containers/create", created),
        ("GET", f"/containers/{CID}/archive", "/opt/venv/imagesmith_image.json"),
        ("GET", f"/containers/{CID}/archive", "/etc/ld.so.preload"),
        ("DELETE", f"/containers/{CID}?force=1", None),
    ]
    assert len(engine["names"]) == 1 and re.fullmatch(r"imagesmith-read-[0-9a-f]{16}", engine["names"][0])


def test_the_same_entries_as_through_the_sdk(engine):
    """The SDK's container serves the same archive: the two readers give equal entries."""

    def get_archive(path):
        if path not in FILES:
            from docker.errors import NotFound

            raise NotFound(path)
        return iter([_tar(path, FILES[path])]), {}

    container = SimpleNamespace(get_archive=get_archive, remove=lambda force: None)
    client = SimpleNamespace(containers=SimpleNamespace(create=lambda image, *a, **kw: container))
    sdk = Containers(lambda: client)
    for path in (*FILES, "/nothing"):
        with sdk._sdk_reader("img") as by_sdk, Containers(_no_sdk).reading("img") as local:
            assert local(path) == by_sdk(path)


@pytest.mark.parametrize(
    "answer",
    [
        (404, b'{"message": "No such image: img"}'),
        (400, b'{"message": "logger: no log driver named \'local\' is registered"}'),
        (201, b'{"Id": "not an id"}'),
        (201, b"not json"),
    ],
)
def test_the_sdk_makes_the_container_when_the_engine_did_not_plainly_make_one(engine, answer):
    engine["create"] = answer
    asked = []

    def client():
        asked.append(1)
        raise EngineError("the SDK says why")

    with pytest.raises(EngineError, match="the SDK says why"):
        with Containers(client).reading("img"):
            pass
    # refused: nothing else asked of the engine; a 201 it could not read: the container removed by its name
    removed = [("DELETE", f"/containers/{engine['names'][0]}?force=1", None)] if answer[0] == 201 else []
    assert asked and engine["seen"][1:] == removed and engine["seen"][0][0] == "POST"


def test_a_container_whose_answer_was_lost_is_removed_by_its_name_before_the_sdk_is_asked(engine):
    """The engine made the container and the connection was cut before its answer: the container,
    named by imagesmith, is removed by that name (never left behind, never started), then the SDK
    makes its own."""
    engine["create"] = None

    def client():
        assert [s[0] for s in engine["seen"]] == ["POST", "DELETE"]  # removed before the SDK is asked
        raise EngineError("the SDK says why")

    with pytest.raises(EngineError, match="the SDK says why"):
        with Containers(client).reading("img"):
            pass
    (name,) = engine["names"]
    assert engine["seen"][1] == ("DELETE", f"/containers/{name}?force=1", None)


def test_a_container_the_engine_did_not_remove_is_said_once_as_a_warning(engine):
    """On the local socket and through the SDK: one warning line (the progress path's), naming the
    container and the command that removes it; the read itself goes on as it was."""
    engine["delete"] = (500, b'{"message": "removal of container is already in progress"}')
    said: list[str] = []
    with Containers(_no_sdk, progress=said.append).reading("img") as read:
        assert read("/etc/os-release") is not None
    (name,) = engine["names"]
    why = "500 removal of container is already in progress"
    assert said == [f"warning: could not remove the container {name} ({why}): docker rm -f {name}"]
    assert local_api.message(b" \n") == "" and local_api.message(b'{"message": "gone\\nmore"}') == "gone"

    from docker.errors import APIError

    def remove(force):
        raise APIError("removal of container quirky_name is already in progress")

    container = SimpleNamespace(
        name="quirky_name", get_archive=lambda path: (iter([_tar(path, b"x")]), {}), remove=remove
    )
    client = SimpleNamespace(containers=SimpleNamespace(create=lambda image, *a, **kw: container))
    said.clear()
    with Containers(lambda: client, progress=said.append)._sdk_reader("img") as read:
        assert read("/etc/os-release") is not None
    assert said == [
        "warning: could not remove the container quirky_name (removal of container quirky_name is already in "
        "progress): docker rm -f quirky_name"
    ]


def test_another_engine_is_the_sdks(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert local_api.create_container("img", READER_CREATE, "imagesmith-read-0") is None
    assert local_api.archive(CID, "/x") is None and local_api.remove_container(CID) == "the engine did not answer"
