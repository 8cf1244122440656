"""The image facts read from outside an image: from a layer's tar (a registry image's, without
pulling), from a local image's file, and checked against the parity label."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from imagesmith import layout
from imagesmith.errors import EngineError
from imagesmith.facts import facts_from_layer, manifest_of, read_facts
from imagesmith.plan import plan_for
from imagesmith.runtime.untrusted import UntrustedInput
from imagesmith.spec.load import load_spec
from tests.fakes import FakeEngine, image_info
from tests.helpers import fake_lock

TINY = Path(__file__).resolve().parent.parent / "projects" / "tiny"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _tar(*members: tuple[str, bytes | None]) -> bytes:
    """A layer's tar: (name, bytes) files, (name, None) folders."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _facts() -> dict:
    return plan_for(load_spec(TINY), fake_lock()).facts()


FACTS_NAME = layout.FACTS_PATH.lstrip("/")


def test_a_layer_holding_the_facts_gives_them_and_one_without_gives_none():
    facts = _facts()
    assert facts_from_layer(_tar(("opt/venv", None), (FACTS_NAME, json.dumps(facts).encode()))) == facts
    assert facts_from_layer(_tar(("app/main.py", b"print(1)\n"))) is None


@pytest.mark.parametrize(
    "layer, why",
    [
        (_tar(("opt/venv/.wh.imagesmith_image.json", b"")), "removes"),
        (_tar(("opt/venv/.wh..wh..opq", b"")), "removes"),
        (_tar((FACTS_NAME, None)), "not a small regular file"),
        (_tar((FACTS_NAME, b"[" * 20_000 + b"]" * 20_000)), "nested more than"),
        (_tar((FACTS_NAME, json.dumps({"manifest": {}, "configs": {}, "steps": ["curl | sh"]}).encode())), "steps"),
        (b"not a tar", "not a tar archive"),
    ],
)
def test_a_layer_that_hides_or_mangles_the_facts_is_refused(layer, why):
    with pytest.raises(UntrustedInput, match=why):
        facts_from_layer(layer)


class _Registry(FakeEngine):
    """A registry image whose layers (top first) are the given tars."""

    def __init__(self, layers: list[bytes]) -> None:
        super().__init__()
        self.layers = layers

    def registry_top_layer(self, pinned: str, diff_id: str, max_bytes: int, depth: int = 1) -> bytes:
        if depth > len(self.layers):
            raise EngineError("no such layer")
        return self.layers[depth - 1]


def _registry_info(n: int, parity: str):
    from dataclasses import replace

    info = image_info(  # one ID per layer count: the facts are kept by image ID
        "127.0.0.1:5000/app:serve", id=f"sha256:{n:064x}", labels={layout.LABEL_PARITY: parity}, source="registry"
    )
    layers = tuple(f"sha256:{i:064x}" for i in range(n))
    return replace(info, layers=layers, repo_digests=("127.0.0.1:5000/app@sha256:" + "1" * 64,))


def test_a_registry_image_s_facts_come_from_its_top_layer_and_lower_ones_name_a_child():
    facts = _facts()
    layer = _tar((FACTS_NAME, json.dumps(facts).encode()))
    got, problem = read_facts(_Registry([layer]), _registry_info(5, facts["parity"]))
    assert got == facts and problem == ""
    child = _Registry([_tar(("etc/extra", b"x")), _tar(("app/x", b"y")), layer])
    got, problem = read_facts(child, _registry_info(7, facts["parity"]))
    assert got == facts and problem.startswith("2 filesystem layers were added on top of the image imagesmith built")
    got, problem = read_facts(_Registry([_tar(("etc/x", b"x"))] * 4), _registry_info(9, facts["parity"]))
    assert got is None and "not an image imagesmith built" in problem


def test_a_refused_facts_blob_names_docker_login_host_whole_for_a_long_registry_reference():
    """The refusal of a registry image's facts blob ends with what to do (`docker login HOST`):
    kept whole for an ECR host and a long repository (cut at 300 characters, it was not)."""
    from imagesmith.engine.registry_http import _answer

    host, name = (
        "123456789012.dkr.ecr.eu-central-1.amazonaws.com",
        "ml-platform/team-fraud-detection/models/realtime-serving-gpu",
    )
    what = f"the blob sha256:{'0' * 12}… of {host}/{name}"

    class Refusing(_Registry):
        def registry_top_layer(self, pinned: str, diff_id: str, max_bytes: int, depth: int = 1) -> bytes:
            _answer('Basic realm="ecr"', None, host, what, f"https://{host}/v2/{name}/blobs/x", 30)  # raises
            raise AssertionError("a Basic challenge without credentials is refused")

    got, problem = read_facts(Refusing([]), _registry_info(11, "sha256:" + "2" * 64))
    assert got is None and problem.endswith(f"docker has none for {host} (`docker login {host}`))"), problem


def test_the_manifest_must_hash_to_the_parity_label():
    facts = _facts()
    info = image_info(labels={layout.LABEL_PARITY: facts["parity"]})
    manifest, problems = manifest_of(info, facts)
    assert manifest == facts["manifest"] and problems == []
    edited = image_info(labels={layout.LABEL_PARITY: "sha256:" + "0" * 64})
    manifest, problems = manifest_of(edited, facts)
    assert manifest is None and "but the manifest in imagesmith_image.json hashes to" in problems[0]
    assert manifest_of(image_info(labels={}), facts)[1] == [
        f"label {layout.LABEL_PARITY} is missing: not an imagesmith image"
    ]
    assert manifest_of(info, None, "why")[1] == ["why"]


def test_facts_with_heavy_steps_are_read_and_a_made_up_step_refused():
    from imagesmith.facts import parse_facts

    facts = _facts()
    steps = facts["steps"]
    at = steps.index("python-env")
    heavy = {**facts, "steps": [*steps[:at], "heavy:nvidia-cuda-runtime-cu12", *steps[at:]]}
    assert parse_facts(json.dumps(heavy))["steps"] == heavy["steps"]
    for bad in ("heavy:../../etc", "heavy:", "lighter:six"):
        with pytest.raises(UntrustedInput, match="names steps imagesmith does not make"):
            parse_facts(json.dumps({**facts, "steps": [*steps, bad]}))
