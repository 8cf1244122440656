"""`verify --labels-only` of an image in a registry that needs credentials: a real registry
(`docker-registry`, the one scripts/setup-engine.sh runs) with htpasswd auth on its own loopback
port, logged in to with a docker config in the test's folder (the host's ~/.docker is never read
or written). The manifest and config are read with `docker buildx imagetools`, the facts layer's
blob by imagesmith itself: both with the credentials `docker login` stored."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import cli

USER = "deployer"
SECRET = "Pr1vate-Reg1stry-s3cret"


def _bcrypt(password: str) -> str:
    """A ``$2b$`` bcrypt hash (the only kind the registry's htpasswd accepts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # Python 3.11's; deprecated, and enough for a test's htpasswd

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _registry(folder: Path, auth: str) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a `docker-registry` process started in ``folder`` with the ``auth:``
    section ``auth`` (YAML lines indented under it), once it answers 401; ended (by its PID) at
    the end. Its data, configuration and log are in ``folder`` (the caller's to remove)."""
    if shutil.which("docker-registry") is None:
        pytest.fail("docker-registry is missing: run scripts/setup-engine.sh (make engine)")
    port = _free_port()
    (folder / "registry.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n{auth}"
    )
    with open(folder / "registry.log", "wb") as log:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(folder / "registry.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        for _ in range(120):  # 30 s: the machine is shared
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"the registry ended: {(folder / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.25)
        else:
            pytest.fail(f"the registry did not answer 401: {(folder / 'registry.log').read_text()[-2000:]}")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def private_registry():
    """``127.0.0.1:PORT`` of a registry process this fixture starts, that answers 401 without
    ``USER``/``SECRET`` (htpasswd); the process is ended and its folder removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="imagesmith-test-private-registry-"))
    (folder / "htpasswd").write_text(f"{USER}:{_bcrypt(SECRET)}\n")
    try:
        with _registry(folder, f"  htpasswd:\n    realm: imagesmith-test\n    path: {folder / 'htpasswd'}\n") as host:
            yield host
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _docker(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.engine
def test_labels_only_verify_reads_a_private_registry_with_dockers_credentials(
    tmp_path, private_registry, tiny_built, engine
):
    """With the credentials `docker login` stored (DOCKER_CONFIG), `verify REF@DIGEST --labels-only`
    of an imagesmith image in a registry that needs them passes: its facts blob is read with them
    too (it was read anonymously, and refused). Without them (an empty docker config) it is one
    `error:` naming `docker login HOST`, exit 2 (the registry could not be read). The secret is in
    no output."""
    _, result = tiny_built
    logged_in = tmp_path / "docker-config"
    logged_in.mkdir()
    login = _docker(logged_in, "login", private_registry, "-u", USER, "--password-stdin", stdin=SECRET)
    assert login.returncode == 0, login.stderr

    remote = f"{private_registry}/imagesmith-test/private-tiny-{uuid.uuid4().hex[:8]}"
    engine.tag(result.images["serve"].id, f"{remote}:serve")
    try:
        pushed = _docker(logged_in, "push", f"{remote}:serve")
    finally:
        subprocess.run(["docker", "image", "rm", f"{remote}:serve"], capture_output=True)  # our tag only
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.rsplit("digest: ", 1)[1].split()[0]
    listed = _docker(logged_in, "buildx", "imagetools", "inspect", "--raw", f"{remote}@{digest}")
    assert listed.returncode == 0, listed.stderr  # the registry keeps the digest the push named

    # a cache of its own: facts once read are kept by digest, and this read is the one under test
    env = {"DOCKER_CONFIG": str(logged_in), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with_creds = cli("verify", f"{remote}@{digest}", "--labels-only", "--json", env=env)
    report = json.loads(with_creds.stdout)
    assert with_creds.returncode == 0, with_creds.stdout + with_creds.stderr
    assert report["mode"] == "labels" and report["digest"] == digest and report["parity"] == result.parity, report

    nobody = tmp_path / "empty-docker-config"
    nobody.mkdir()
    outputs = [with_creds.stdout + with_creds.stderr, login.stdout + login.stderr]
    for extra in ([], ["--json"]):
        refused = cli(
            "verify", f"{remote}@{digest}", "--labels-only", *extra, env={**env, "DOCKER_CONFIG": str(nobody)}
        )
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.count("error:") == 1 and f"hint: docker login {private_registry}" in refused.stderr
        if extra:
            assert json.loads(refused.stdout)["exit"] == 2
        outputs.append(refused.stdout + refused.stderr)
    assert not [out for out in outputs if SECRET in out]
