"""Credentials: one redactor; none in container env, lock, Dockerfile, labels, image or logs.

The private-index tests run a real package index on 127.0.0.1 that demands HTTP basic auth and
serves one small wheel, and drive the real resolver, lock, wheel download and build against it
with the credentials only in a netrc file outside the project.
"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from imagesmith.build import oci_labels
from imagesmith.credentials import credential_problem, index_netrc, redact, strip_userinfo
from imagesmith.lock.piptools_resolver import PipToolsResolver
from imagesmith.lock.request import ResolveRequest
from tests.conftest import PROJECTS, copy_project
from tests.fakes import FakeEngine
from tests.helpers import serving

SECRET = "s3cr3t-Pa55"


# --------------------------------------------------------------------------------------------
# The redactor


@pytest.mark.parametrize(
    "text,expected",
    [
        ("https://tok@h.example/x", "https://h.example/x"),
        ("https://u:p@h.example:8443/simple/", "https://h.example:8443/simple/"),
        ("https://:only-password@h.example/", "https://h.example/"),
        ("https://u:p%40x@h.example/", "https://h.example/"),
        ("https://a@b@h.example/path", "https://h.example/path"),
        ("git+https://x-access-token:ghp_abc@github.example/o/r.git@v1", "git+https://github.example/o/r.git@v1"),
        ("ssh://git@h.example/o/r", "ssh://h.example/o/r"),
        ("fetch `http://u:p@127.0.0.1:9/simple/idna/` failed", "fetch `http://127.0.0.1:9/simple/idna/` failed"),
        ("no url here, user@host", "no url here, user@host"),
        ("http://h.example/p@v1 stays", "http://h.example/p@v1 stays"),
    ],
)
def test_redact_removes_user_info_of_any_form(text, expected):
    assert redact(text) == expected


def test_strip_userinfo_handles_scp_like_remotes():
    assert strip_userinfo("tok3n@git.example:o/r.git") == "git.example:o/r.git"
    assert strip_userinfo("https://git.example/o/r") == "https://git.example/o/r"


def test_git_remote_token_never_reaches_the_source_label(tmp_path):
    """The org.opencontainers.image.source label comes from the real git remote."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "remote", "add", "origin", f"https://oauth2:{SECRET}@git.example/team/model.git"],
        check=True,
    )
    assert oci_labels(tmp_path)["org.opencontainers.image.source"] == "https://git.example/team/model.git"


@pytest.mark.parametrize(
    "key,value",
    [
        ("GITHUB_TOKEN", "x"),
        ("DB_PASSWORD", "x"),
        ("AWS_SECRET", "x"),
        ("OPENAI_API_KEY", "x"),
        ("HELPER", "ghp_" + "a" * 36),
        ("AWS", "AKIA" + "A" * 16),
        ("MIRROR", "https://me:pw@h.example/simple"),
    ],
)
def test_credentials_are_recognised(key, value):
    assert credential_problem(key, value)


@pytest.mark.parametrize(
    "key,value",
    [
        ("OMP_NUM_THREADS", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
        ("MIRROR", "https://h.example/simple"),
        ("PASSAGE_LEN", "12"),
    ],
)
def test_ordinary_env_is_not_a_credential(key, value):
    assert credential_problem(key, value) is None


def test_index_netrc_takes_only_the_spec_indexes_hosts(tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text(
        f"machine pypi.corp.example login ci password {SECRET}\nmachine unrelated.example login me password other\n"
    )
    text = index_netrc("https://pypi.corp.example/simple", (), {"NETRC": str(netrc)})
    assert text == f"machine pypi.corp.example login ci password {SECRET}\n"
    env = {"IMAGESMITH_INDEX_USERNAME": "u", "IMAGESMITH_INDEX_PASSWORD": SECRET, "NETRC": str(tmp_path / "none")}
    assert (
        index_netrc("https://h.example/simple", ("https://x.example/s",), env)
        == f"machine h.example login u password {SECRET}\n"
    )


class _FakeEngine(FakeEngine):
    """The shared fake, also doing what pip-compile in the container would: reading the mounted
    netrc (kept here for the test) and writing the compiled requirements to /out."""

    netrc_text: str | None = None

    def run_to_end(self, image, what, timeout, **create):
        run = super().run_to_end(image, what, timeout, **create)
        mounts = {v["bind"]: Path(h) for h, v in create["volumes"].items()}
        netrc = mounts.get("/run/imagesmith/netrc")
        self.netrc_text = netrc.read_text() if netrc else None
        (mounts["/out"] / "requirements.lock").write_text("six==1.17.0 \\\n    --hash=sha256:" + "b" * 64 + "\n")
        return run


def test_pip_tools_container_gets_no_credential_in_env_or_args(tmp_path, monkeypatch):
    req = tmp_path / "requirements.in"
    req.write_text("six\n")
    monkeypatch.setenv("PIP_INDEX_URL", f"https://ci:{SECRET}@pypi.corp.example/simple")
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    engine = _FakeEngine()
    request = ResolveRequest(
        inputs=(req,), extras=(), python="3.9", platform="linux/arm64", base_ref="b@sha256:" + "a" * 64
    )
    PipToolsResolver(engine).resolve_in_container(request)
    ((_, _, call),) = engine.called("run_to_end")
    assert SECRET not in repr(call)  # the container's command, environment and mounts
    assert "--index-url" in call["command"] and "https://pypi.corp.example/simple" in call["command"]
    assert call["environment"]["NETRC"] == "/run/imagesmith/netrc"
    assert engine.netrc_text == f"machine pypi.corp.example login ci password {SECRET}\n"
    netrc_on_host = next(h for h, v in call["volumes"].items() if v["bind"] == "/run/imagesmith/netrc")
    assert not Path(netrc_on_host).exists()  # the secret file is gone once the container is done


# --------------------------------------------------------------------------------------------
# A real private index on loopback


def _wheel(name: str, version: str) -> tuple[str, bytes]:
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n".encode()}
    dist = f"{name}-{version}.dist-info"
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = (
        "".join(
            f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
            for p, d in files.items()
        )
        + f"{dist}/RECORD,,\n"
    )
    files[f"{dist}/RECORD"] = record.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), data)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


@pytest.fixture
def private_index():
    """An index at http://127.0.0.1:PORT/simple serving `privpkg` 1.0 to user `ci` with SECRET only."""
    filename, data = _wheel("privpkg", "1.0")
    digest = hashlib.sha256(data).hexdigest()
    token = base64.b64encode(f"ci:{SECRET}".encode()).decode()
    seen = {"authorised": 0, "refused": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.do_GET(head=True)

        def do_GET(self, head=False):
            if self.headers.get("Authorization") != f"Basic {token}":
                seen["refused"] += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="private"')
                self.end_headers()
                return
            seen["authorised"] += 1
            if self.path.rstrip("/") in ("/simple/privpkg",):
                body = f'<html><body><a href="/files/{filename}#sha256={digest}">{filename}</a></body></html>'.encode()
                ctype = "text/html"
            elif self.path == f"/files/{filename}":
                body, ctype = data, "application/octet-stream"
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

    with serving(Handler, poll=0.05) as address:
        yield f"http://{address}/simple", seen


def _private_project(tmp_path: Path, index: str) -> Path:
    root = copy_project(PROJECTS / "tiny", tmp_path / "private")
    spec = root / "imagesmith.yaml"
    spec.write_text(spec.read_text().replace("  - six==1.17.0\n", "  - privpkg==1.0\n") + f"index_url: {index}\n")
    return root


def _everything_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts)
