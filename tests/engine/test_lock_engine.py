"""The lock on the real engine, registry and package index: both resolvers, the in-container
pip-compile path, another Python minor than the host's, base and system package pinning,
hash validation with pip, includes/inline/pyproject inputs, upgrades, no-op and failures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagesmith.lock.base import pin_base
from imagesmith.lock.lockfile import read_lock
from imagesmith.lock.piptools_resolver import PipToolsResolver, host_matches
from imagesmith.lock.request import ResolveRequest
from imagesmith.lock.uv_resolver import UvResolver
from tests.helpers import cli

pytestmark = pytest.mark.engine

DEAD_INDEX = "http://127.0.0.1:9/simple"  # a closed port on loopback
NO_INDEX_ENV = {
    "UV_INDEX_URL": DEAD_INDEX,
    "UV_NO_CACHE": "1",
    "UV_HTTP_RETRIES": "0",  # refused is refused: uv's retries of a closed port were 8 s of the test
    "PIP_INDEX_URL": DEAD_INDEX,
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_FIND_LINKS": "",
    "DOCKER_HOST": "unix:///nonexistent.sock",
}


def _versions(pins):
    return {p.name: p.version for p in pins}


def _project(tmp_path: Path, spec_extra: str, files: dict[str, str] | None = None) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "imagesmith.yaml").write_text(
        'name: p\npython: "3.11"\nbase: imagesmith-base:bookworm-py311\n'
        + spec_extra
        + 'train: {command: ["python", "-V"]}\nserve: {command: ["python", "-V"]}\n'
    )
    return root


def _lock(root: Path, *args, env=None):
    return cli("lock", "-p", str(root), *args, env=env)


def test_both_resolvers_and_pip_compile_in_the_base_give_the_same_pins_and_pip_accepts_the_hashes(
    tmp_path, engine, base_image
):
    """A compiled distribution with dozens of wheel files (PyYAML) and dependencies behind markers
    (anyio's), from a requirements file with an include from its parent folder: uv and pip-tools
    agree on every pin, and pip installs the lock with its hashes. pip-compile inside the base
    image, with the same inputs (includes included), gives the pins pip-compile gave on the host:
    this host has Python 3.11 like the base, so no target forces the container path here; it is
    called directly (it was a test of its own, with a pip-compile on the host of its own).
    (Not the iris stack: pip-compile hashes every file of every release it pins, and this host's
    pip configuration has file indexes, where that means reading each of numpy's and scipy's
    wheels: two minutes for the same check.)"""
    files = {"reqs/requirements.in": "-c ../constraints.txt\nanyio\nPyYAML\nclick\n", "constraints.txt": "idna<3.8\n"}
    roots = {}
    for resolver in ("uv", "pip-tools"):
        (tmp_path / resolver).mkdir()
        roots[resolver] = _project(tmp_path / resolver, "requirements:\n  file: reqs/requirements.in\n", files)
        proc = _lock(roots[resolver], "--resolver", resolver, "--base", base_image)
        assert proc.returncode == 0, proc.stderr
    uv, pt = (read_lock(roots[r] / "imagesmith.lock") for r in ("uv", "pip-tools"))
    assert _versions(uv.packages) == _versions(pt.packages)
    assert {"anyio", "idna", "pyyaml", "click"} <= set(_versions(uv.packages))
    assert _versions(uv.packages)["idna"] == "3.7"  # the include's constraint
    for lock in (uv, pt):
        assert all(p.hashes and all(h.startswith("sha256:") for h in p.hashes) for p in lock.packages)
    assert len(dict((p.name, p.hashes) for p in uv.packages)["pyyaml"]) > 10  # every wheel's hash

    assert host_matches("3.11", "linux/amd64")
    req = ResolveRequest(
        inputs=(roots["pip-tools"] / "reqs" / "requirements.in",),
        extras=(),
        python="3.11",
        platform="linux/amd64",
        base_ref=base_image,
    )
    in_container = PipToolsResolver(engine).resolve_in_container(req)
    assert _versions(in_container) == _versions(pt.packages)
    assert all(p.hashes for p in in_container)

    hashed = roots["uv"] / "requirements.lock"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--require-hashes",
            "--no-deps",
            "--dry-run",
            "--ignore-installed",
            "--target",
            str(tmp_path / "t"),
            "-r",
            str(hashed),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Would install" in proc.stdout and f"PyYAML-{_versions(uv.packages)['pyyaml']}" in proc.stdout


def test_a_python_minor_other_than_the_hosts_gets_its_own_markers_and_wheels():
    """The host runs 3.11. For 3.10, anyio needs exceptiongroup (python_version < '3.11') and
    numpy's newest releases require Python >= 3.11, so the 3.10 lock differs exactly there."""
    inputs = Path(__file__).resolve().parents[1] / "projects" / "_lock_py310.in"
    inputs.write_text("anyio\nnumpy\n")
    try:
        pins = {
            py: _versions(
                UvResolver().resolve(ResolveRequest(inputs=(inputs,), extras=(), python=py, platform="linux/amd64"))
            )
            for py in ("3.10", "3.11")
        }
    finally:
        inputs.unlink()
    assert "exceptiongroup" in pins["3.10"] and "exceptiongroup" not in pins["3.11"]
    assert int(pins["3.10"]["numpy"].split(".")[0]) * 100 + int(pins["3.10"]["numpy"].split(".")[1]) <= 202
    assert pins["3.10"]["numpy"] != pins["3.11"]["numpy"]


def test_base_pinned_to_the_registry_digest_or_the_local_id(tmp_path, engine, base_image, registry):
    ref = f"{registry}/imagesmith-test-lock/base:py311"
    subprocess.run(["docker", "tag", base_image, ref], check=True)
    subprocess.run(["docker", "push", "-q", ref], check=True, capture_output=True)
    import urllib.request

    head = urllib.request.Request(
        f"http://{registry}/v2/imagesmith-test-lock/base/manifests/py311",
        method="HEAD",
        headers={
            "Accept": "application/vnd.oci.image.index.v1+json, "
            "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.docker.distribution.manifest.list.v2+json"
        },
    )
    registry_digest = urllib.request.urlopen(head).headers["Docker-Content-Digest"]
    pin = pin_base(engine, ref)
    assert (pin.source, pin.digest, pin.python_version[:4]) == ("registry", registry_digest, "3.11")
    local_only = f"{registry}/imagesmith-test-lock/never-pushed:x"
    subprocess.run(["docker", "tag", base_image, local_only], check=True)
    local = pin_base(engine, local_only)
    assert (local.source, local.digest) == ("local", engine.image(base_image).id)
    assert local.ref == f"{local_only}@{local.digest}"


@pytest.mark.xdist_group("lock-engine-system-packages")  # a long test that shares no module fixture
def test_system_packages_pinned_in_the_base_and_inputs_of_every_kind(tmp_path, base_image):
    root = _project(
        tmp_path,
        (
            "system_packages: [jq]\n"
            "requirements:\n  file: reqs/requirements.in\n  packages: [six]\n  pyproject: true\n  extras: [ml]\n"
        ),
        {
            "reqs/requirements.in": "-c ../constraints.txt\n-r more.in\n",
            "reqs/more.in": "idna\n",
            "constraints.txt": "idna<3.7\n",
            "pyproject.toml": '[project]\nname = "p"\nversion = "0"\ndependencies = ["certifi<2024"]\n'
            '[project.optional-dependencies]\nml = ["packaging<24"]\ndev = ["pytest"]\n',
        },
    )
    proc = _lock(root)
    assert proc.returncode == 0, proc.stderr
    lock = read_lock(root / "imagesmith.lock")
    v = _versions(lock.packages)
    assert v["idna"] == "3.6" and "six" in v and v["certifi"].startswith("2023") and v["packaging"].startswith("23")
    assert "pytest" not in v  # an optional group that was not chosen
    # jq and what it pulls in, pinned by apt in the base: bookworm's jq 1.6 (that the pins are
    # apt's candidates, against apt-cache policy of the same lists: tests/unit/test_system_pin_apt.py,
    # on this base's captured apt output; it was one more apt-get update in a container here)
    system = dict(lock.system_packages)
    assert {"jq", "libjq1", "libonig5"} <= set(system) and system["jq"].startswith("1.6-")
    assert all(re.fullmatch(r"[0-9][A-Za-z0-9.+~:-]*", version) for version in system.values()), system
    # pins are kept when the inputs loosen, until --upgrade-package names them
    (root / "constraints.txt").write_text("idna<4\n")
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text().replace("certifi<2024", "certifi"))
    assert _lock(root).returncode == 0
    kept = _versions(read_lock(root / "imagesmith.lock").packages)
    assert (kept["idna"], kept["certifi"]) == (v["idna"], v["certifi"])
    assert _lock(root, "--upgrade-package", "idna").returncode == 0
    up = _versions(read_lock(root / "imagesmith.lock").packages)
    assert up["idna"] != "3.6" and up["certifi"] == v["certifi"]
    # --upgrade moves every pin; the system packages taken out first (--upgrade pins the base, and
    # so them, again: a second apt run in the base, which this claim about certifi does not need)
    spec = root / "imagesmith.yaml"
    spec.write_text(spec.read_text().replace("system_packages: [jq]\n", ""))
    assert _lock(root, "--upgrade").returncode == 0
    assert not _versions(read_lock(root / "imagesmith.lock").packages)["certifi"].startswith("2023")


def test_no_op_lock_resolves_nothing_and_failures_keep_the_lock(tmp_path, base_image):
    root = _project(tmp_path, "requirements: [six]\n")
    assert _lock(root).returncode == 0
    files = {n: (root / n).read_bytes() for n in ("imagesmith.lock", "requirements.lock")}
    # no index and no engine reachable: a no-op lock still succeeds, so it resolved nothing
    proc = _lock(root, env=NO_INDEX_ENV)
    assert proc.returncode == 0 and "up to date" in proc.stderr, proc.stderr
    assert cli("lock", "--check", "-p", str(root)).returncode == 0
    (root / "imagesmith.yaml").write_text((root / "imagesmith.yaml").read_text().replace("[six]", "[six, idna]"))
    proc = cli("lock", "--check", "-p", str(root))
    assert proc.returncode == 1 and "requirements changed" in proc.stderr
    for resolver in ("uv", "pip-tools"):
        proc = _lock(root, "--resolver", resolver, env={k: v for k, v in NO_INDEX_ENV.items() if k != "DOCKER_HOST"})
        assert proc.returncode == 2 and f"could not reach the package index {DEAD_INDEX}" in proc.stderr, proc.stderr
        assert {n: (root / n).read_bytes() for n in files} == files
    (root / "imagesmith.yaml").write_text(
        (root / "imagesmith.yaml").read_text().replace("[six, idna]", "['numpy<2', 'numpy>=2']")
    )
    proc = _lock(root)
    assert proc.returncode == 2 and "conflict" in proc.stderr and "numpy<2" in proc.stderr and "numpy>=2" in proc.stderr
    (root / "imagesmith.yaml").write_text(
        (root / "imagesmith.yaml").read_text().replace("['numpy<2', 'numpy>=2']", "['tensorflow-macos==2.16.2']")
    )
    proc = _lock(root)
    assert proc.returncode == 2 and "no wheel for the target, Python 3.11 on linux/amd64" in proc.stderr, proc.stderr
    assert {n: (root / n).read_bytes() for n in files} == files


@pytest.mark.registry
def test_a_two_platform_lock_reads_the_other_platforms_base_without_running_it(engine, registry):
    """The two-platform base of the loopback registry pinned for each platform, as a two-platform
    lock pins it: each lists the other as its host (the same Python), and the image of the
    platform this machine is not is never run (its Python version read from its dpkg database):
    no QEMU at lock time. The version read equals what running it under QEMU says."""
    from imagesmith.engine import Engine
    from imagesmith.lock.base import python_version
    from imagesmith.platforms import machine_platform
    from tests.conftest import REGISTRY_BASE

    ran: list[str] = []

    class Watched(Engine):
        def run(self, image, command, **options):
            ran.append(image)
            return super().run(image, command, **options)

    watched = Watched()
    here = machine_platform()
    other = next(p for p in ("linux/amd64", "linux/arm64") if p != here)
    pins = {p: pin_base(watched, REGISTRY_BASE, p) for p in (here, other)}
    assert pins[here].hosts == ((other, pins[other].digest),)
    assert pins[other].hosts == ((here, pins[here].digest),)
    assert pins[here].python_version == pins[other].python_version
    assert ran and not any(pins[other].digest in image for image in ran), ran
    name = REGISTRY_BASE.split("@", 1)[0]
    assert python_version(engine, f"{name}@{pins[other].digest}") == pins[other].python_version  # run, emulated


@pytest.mark.registry
def test_system_packages_pinned_natively_for_the_other_platform_are_the_emulated_pins(engine, registry):
    """apt in this machine's image of the two-platform base, for the other platform's
    architecture with that image's apt configuration and dpkg status, pins what apt in the other
    platform's image itself (under QEMU) pins: libgomp1 (a library and a libc-bin trigger) and
    the sdist compilers (57 packages), whose versions differ by architecture nowhere. All in one
    resolution each way: one apt run under QEMU (it was one per set)."""
    from imagesmith.lock.system import pin_system_packages
    from imagesmith.platforms import machine_platform, platform_arch
    from tests.conftest import REGISTRY_BASE

    here = machine_platform()
    other = next(p for p in ("linux/amd64", "linux/arm64") if p != here)
    pin = pin_base(engine, REGISTRY_BASE, other)
    target, host = pin.ref, pin.host_ref(here)
    names = ["libgomp1", "build-essential", "python3-dev"]
    natively = pin_system_packages(engine, target, names, (host, platform_arch(other)))
    assert natively == pin_system_packages(engine, target, names)
    assert set(names) <= set(natively) and len(natively) > 50
