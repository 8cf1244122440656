"""Per-package indexes on the real engine, against two real indexes on 127.0.0.1
(tests/pkgindexes.py): `lock` takes the pinned package from its index only and nothing else from
it, `lock --check` notices a new pinned index, `build` installs the pinned index's file, and the
Dockerfile's own wheel-download stage (plain BuildKit, the online path) fetches each file from
its index."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile

import pytest

from tests.conftest import PROJECTS, copy_project
from tests.helpers import base_context, cli
from tests.pkgindexes import SCENARIO, serve_indexes

TAG = "imagesmith-test/pkgindex-tiny"


@pytest.mark.engine
def test_a_pinned_package_comes_from_its_index_only(tmp_path, engine, base_image, unbuilt_base):
    contents = {**SCENARIO, "mirror": SCENARIO["pinned"]}  # a second index with the pinned index's projects
    with serve_indexes(tmp_path / "indexes", contents) as idx:
        general, pinned, mirror = idx["general"], idx["pinned"], idx["mirror"]
        root = copy_project(PROJECTS / "tiny", tmp_path / "pkgindex")
        spec = root / "imagesmith.yaml"
        text = spec.read_text().replace("  - six==1.17.0\n", "  - other\n") + f"index_url: {general.url}\n"
        spec.write_text(text + f"package_indexes:\n  pinme: {pinned.url}\n")
        env = {"IMAGESMITH_CACHE_DIR": str(tmp_path / "cache"), "UV_CACHE_DIR": str(tmp_path / "uv-cache")}

        locked = cli("lock", "-p", str(root), "--base", base_image, env=env)
        assert locked.returncode == 0, locked.stderr
        lock = json.loads((root / "imagesmith.lock").read_text())
        packages = {p["name"]: p for p in lock["packages"]}
        # pinme: 2.0 from the pinned index (the general index's 3.0 and its own 1.0 never considered)
        assert packages["pinme"] == {"name": "pinme", "version": "2.0", "hashes": [pinned.hashes[("pinme", "2.0")]]}
        # other: 1.0 from the general index (the pinned index's 9.0 never considered)
        assert packages["other"] == {"name": "other", "version": "1.0", "hashes": [general.hashes[("other", "1.0")]]}
        assert lock["indexes"]["package_indexes"] == {"pinme": pinned.url}
        assert cli("lock", "--check", "-p", str(root), "--base", base_image, env=env).returncode == 0

        spec.write_text(text + f"package_indexes:\n  pinme: {mirror.url}\n")
        stale = cli("lock", "--check", "-p", str(root), "--base", base_image, env=env)
        assert stale.returncode == 1 and "requirements" in stale.stdout + stale.stderr, stale.stdout + stale.stderr
        spec.write_text(text + f"package_indexes:\n  pinme: {pinned.url}\n")
        assert cli("lock", "--check", "-p", str(root), "--base", base_image, env=env).returncode == 0

        built = cli("build", "-p", str(root), "--base", base_image, "--tag", TAG, env=env)
        assert built.returncode == 0, built.stderr
        out = engine.run(
            f"{TAG}:serve",
            ["-c", "import other, pinme; print(pinme.VERSION, pinme.FROM, other.VERSION, other.FROM)"],
            entrypoint=["/opt/venv/bin/python"],
        )
        assert out.strip() == "2.0 pinned 1.0 general"
        # lock (uv) and the host's download never asked an index about a package it does not serve
        assert not general.asked_for("pinme") and not pinned.asked_for("other")
        assert pinned.asked_for("pinme") and general.asked_for("other")

        # The committed Dockerfile's wheel-download stage, as a plain BuildKit build runs it
        # (--install online uses the same stage); host network: the indexes listen on 127.0.0.1.
        # The local base as docs/guides/engines.md says, under a name this engine never built from (a fresh engine).
        dest = tmp_path / "wheels-out"
        seen = len(pinned.requests)
        proc = subprocess.run(
            ["docker", "buildx", "build", "--network", "host", "--target", "wheels"]
            + ["--build-arg", f"IMAGESMITH_BASE={unbuilt_base}"]
            + ["--build-context", base_context(engine, base_image, tmp_path / "cache")]
            + ["--output", f"type=local,dest={dest}", str(root)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert not general.asked_for("pinme") and not pinned.asked_for("other")
        assert "/files/pinme-2.0-py3-none-any.whl" in pinned.requests[seen:]  # fetched by BuildKit
        files = {p.name: p for p in dest.iterdir()}
        assert sorted(files) == ["other-1.0-py3-none-any.whl", "pinme-2.0-py3-none-any.whl"]
        assert (
            f"sha256:{hashlib.sha256(files['pinme-2.0-py3-none-any.whl'].read_bytes()).hexdigest()}"
            == (pinned.hashes[("pinme", "2.0")])
        )
        with zipfile.ZipFile(files["other-1.0-py3-none-any.whl"]) as zf:
            assert zf.read("other/__init__.py").decode().endswith("FROM = 'general'\n")

        # pip-tools (on the host: it is the target) comes to the same pins. pip also asks the
        # general index about pinme (and sees its 3.0), so this runs last; the pinned index is
        # still never asked about anything else.
        piptools = cli("lock", "-p", str(root), "--base", base_image, "--resolver", "pip-tools", env=env)
        assert piptools.returncode == 0, piptools.stderr
        assert json.loads((root / "imagesmith.lock").read_text())["packages"] == lock["packages"]
        assert not pinned.asked_for("other")
