"""The host's download of the locked files (wheels.py), by the real pip: against a real index on
127.0.0.1, a file whose hash is not the lock's is named with its package; the host's pip settings
change nothing but certificates, proxy and credentials; each file fetched is one progress line."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from imagesmith.errors import EngineError, LockError
from imagesmith.lock.pins import Pin
from imagesmith.wheels import WheelCache
from tests.helpers import fake_lock
from tests.pkgindexes import serve_indexes


@pytest.fixture
def index(tmp_path):
    with serve_indexes(tmp_path / "index", {"general": [("six", "1.0"), ("torch", "2.15.0")]}) as served:
        yield served["general"]


def test_a_hash_mismatch_names_the_file_and_the_package(tmp_path, index):
    wrong = "sha256:" + "0" * 64
    lock = replace(fake_lock(index_url=index.url), packages=(Pin("six", "1.0", (wrong,)),), installer=())
    with pytest.raises(LockError) as info:
        WheelCache(tmp_path / "cache").wheelhouse(lock)
    message = str(info.value)
    assert "six-1.0-py3-none-any.whl (six 1.0) does not match the lock's hashes" in message
    assert index.hashes[("six", "1.0")] in message  # what the file is
    assert "--upgrade-package six" in (info.value.hint or "")


def test_the_hosts_pip_configuration_does_not_change_what_the_lock_downloads(tmp_path, index, monkeypatch):
    """A pip.conf (and PIP_* variables) with a constraint against the locked version, another
    index and binary choices: the download still fetches exactly the locked file."""
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch<=2.14.1\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(
        f"[global]\nconstraint = {constraints}\nindex-url = http://127.0.0.1:9/nowhere\nno-binary = :all:\n"
        f"[download]\nfind-links = {tmp_path / 'nothing'}\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_CONSTRAINT", str(constraints))
    monkeypatch.setenv("PIP_NO_BINARY", "torch")
    lock = replace(
        fake_lock(index_url=index.url),
        packages=(Pin("torch", "2.15.0", (index.hashes[("torch", "2.15.0")],)),),
        installer=(),
    )
    house = WheelCache(tmp_path / "cache").wheelhouse(lock)
    assert [p.name for p in house.iterdir()] == ["torch-2.15.0-py3-none-any.whl"]


def test_pip_keeps_only_certificates_proxy_and_credentials_of_the_hosts_settings(tmp_path):
    import os
    import subprocess
    import sys

    from imagesmith.credentials import pip_config, pip_environment, pip_isolated_shell

    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\ncert = /etc/ca.pem\nconstraint = /c.txt\n[download]\nproxy = http://127.0.0.1:3128\n")
    host = {"PATH": os.environ["PATH"], "PIP_CONFIG_FILE": str(conf), "PIP_CONSTRAINT": "/c.txt", "PIP_RETRIES": "2"}
    env = pip_environment(host, pip_config(sys.executable, host))
    assert {k: v for k, v in env.items() if k.startswith("PIP_")} == {
        "PIP_CERT": "/etc/ca.pem",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_PROXY": "http://127.0.0.1:3128",
        "PIP_RETRIES": "2",
    }
    # the Dockerfile's shell prefix does the same with the base image's variables
    out = subprocess.run(
        ["sh", "-c", pip_isolated_shell() + " env"],
        env={"PATH": os.environ["PATH"], "PIP_CONSTRAINT": "/c.txt", "PIP_NO_BINARY": ":all:", "PIP_CERT": "/ca.pem"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert sorted(line for line in out if line.startswith("PIP_")) == ["PIP_CERT=/ca.pem", "PIP_CONFIG_FILE=/dev/null"]


def test_a_relock_takes_every_hash_from_the_index_never_from_the_previous_lock(tmp_path, index):
    """The previous requirements.lock (here from another source: a uv.lock that listed only the
    wheels of other Pythons) is a preference for versions only: the new pins' hashes are the
    index's files', never the old ones."""
    from imagesmith.lock.request import ResolveRequest
    from imagesmith.lock.uv_resolver import UvResolver

    (tmp_path / "requirements.in").write_text("six\n")
    foreign = "sha256:" + "7" * 64  # a file this index does not serve
    request = ResolveRequest(
        inputs=(tmp_path / "requirements.in",),
        extras=(),
        python="3.11",
        platform="linux/amd64",
        index_url=index.url,
        previous=f"six==1.0 \\\n    --hash={foreign}\n",
    )
    assert UvResolver().resolve(request) == [Pin("six", "1.0", (index.hashes[("six", "1.0")],))]


def test_wheel_downloads_are_reported_one_line_per_file(tmp_path):
    """A long download is never a silent wait: each file pip fetched is one progress line."""
    six = Pin("six", "1.17.0", ("sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",))
    lines: list[str] = []
    WheelCache(tmp_path / "cache").wheelhouse(
        replace(fake_lock(), packages=(six,), installer=()), progress=lines.append
    )
    assert lines[0].startswith("downloading 1 wheel(s)")
    assert any(re.fullmatch(r"fetched six-1\.17\.0-py2\.py3-none-any\.whl \(\d+\.\d MB\)", line) for line in lines), (
        lines
    )


def test_an_sdist_for_a_platform_without_qemu_is_refused_before_any_container(tmp_path, monkeypatch):
    """A pin with no wheel for the target is fetched by pip in a container of the target's base;
    on a machine without QEMU for that platform (faked: emulation_problem's answer; binfmt is
    never unregistered on this shared host) the real pip finds no wheel on the loopback index, and
    the fetch is refused with the problem and what would have run, before any container starts."""
    import hashlib
    import io
    import tarfile

    from imagesmith.errors import UsageError

    with serve_indexes(tmp_path / "index", {"general": [("six", "1.0")]}) as served:
        index = served["general"]
        root = tmp_path / "index" / "general"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            data = b"from setuptools import setup\nsetup(name='onlysdist', version='1.0')\n"
            member = tarfile.TarInfo("onlysdist-1.0/setup.py")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        (root / "files" / "onlysdist-1.0.tar.gz").write_bytes(buf.getvalue())
        digest = hashlib.sha256(buf.getvalue()).hexdigest()
        (root / "simple" / "onlysdist").mkdir(parents=True)
        (root / "simple" / "onlysdist" / "index.html").write_text(
            f'<a href="../../files/onlysdist-1.0.tar.gz#sha256={digest}">onlysdist-1.0.tar.gz</a>\n'
        )
        no_qemu = "building or running linux/arm64 on this x86_64 machine needs emulation (faked)"
        monkeypatch.setattr("imagesmith.platforms.emulation_problem", lambda p: no_qemu if p == "linux/arm64" else None)

        class NoContainers:
            def image(self, ref):  # the registry base, never pulled: its platform unknown, so refused
                raise EngineError(f"image {ref} is not in the engine")

            def run(self, *args, **kwargs):
                raise AssertionError(f"a container was started: {args}")

        lock = replace(
            fake_lock(index_url=index.url, platform="linux/arm64"),
            packages=(Pin("onlysdist", "1.0", (f"sha256:{digest}",)),),
            installer=(),
        )
        with pytest.raises(UsageError) as info:
            WheelCache(tmp_path / "cache", engine=NoContainers()).wheelhouse(lock)
    message = str(info.value)
    assert message.startswith(no_qemu), message
    assert "fetching and building onlysdist==1.0 from source (no wheel for Python 3.11 on linux/arm64)" in message
    assert index.asked_for("onlysdist")  # the real pip looked for a wheel first
