"""linux/arm64 on this amd64 machine, under QEMU through binfmt (scripts/setup-engine.sh
--platforms linux/arm64, which `make engine` passes): the arm64 base runs, imagesmith's emulation
check agrees, and the registry's base is one index of both platforms' bases."""

from __future__ import annotations

import json
import subprocess

import pytest

from imagesmith.platforms import emulation_problem
from tests.conftest import REGISTRY_BASE
from tests.helpers import run_python

pytestmark = pytest.mark.engine

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


def test_the_arm64_base_runs_python_as_aarch64(engine, arm64_base):
    info = engine.image(arm64_base)
    assert "PIP_CERT=/etc/ssl/certs/ca-certificates.crt" in (info.config.get("Env") or [])  # made like the amd64 one
    arch = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", arm64_base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert arch == "linux/arm64"
    code = "import platform, sys; print(platform.machine(), sys.version_info[:2] == (3, 11))"
    assert run_python(arm64_base, code, "linux/arm64", python="python3").split() == ["aarch64", "True"]


def test_this_machine_has_emulation_for_arm64():
    assert emulation_problem("linux/arm64") is None


@pytest.mark.registry
def test_the_registry_base_is_an_index_of_the_amd64_and_arm64_bases(engine, base_image, arm64_base, registry):
    raw, _ = engine.registry.raw(REGISTRY_BASE)
    index = json.loads(raw)
    assert index["mediaType"] in INDEX_TYPES
    entries = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in index["manifests"]}
    assert sorted(entries) == ["linux/amd64", "linux/arm64"]
    # each entry is the local base of that platform (the containerd store's ID is its manifest digest)
    assert entries["linux/amd64"] == engine.image(base_image).id
    assert entries["linux/arm64"] == engine.image(arm64_base).id
    # and imagesmith's registry read resolves the index per platform, without pulling
    assert engine.registry.image(REGISTRY_BASE, "linux/arm64").id == entries["linux/arm64"]
    assert engine.registry.image(REGISTRY_BASE, "linux/amd64").id == entries["linux/amd64"]
