"""Private index credentials on the real engine: they stay on the host (see tests/unit/test_credentials.py)."""

from __future__ import annotations

import pytest

from tests.helpers import cli
from tests.unit.test_credentials import SECRET, _everything_under, _private_project, private_index  # noqa: F401, F811 (fixtures and helpers)


@pytest.mark.engine
def test_private_index_credentials_stay_on_the_host(tmp_path, private_index, engine, base_image):  # noqa: F811
    """lock (uv, on the host), the hermetic wheel download and the build use the index with the
    credentials from a netrc outside the project; none reaches the lock, the Dockerfile, the
    labels, the image or the output."""
    index, seen = private_index
    root = _private_project(tmp_path, index)
    netrc = tmp_path / "home-netrc"
    netrc.write_text(f"machine 127.0.0.1 login ci password {SECRET}\n")
    env = {"NETRC": str(netrc), "IMAGESMITH_CACHE_DIR": str(tmp_path / "cache")}

    without = cli("lock", "-p", str(root), "--base", base_image, env={"NETRC": str(tmp_path / "no-netrc")})
    assert without.returncode == 2 and SECRET not in without.stderr, without.stderr
    assert not (root / "imagesmith.lock").exists()

    locked = cli("lock", "-p", str(root), "--base", base_image, env=env)
    assert locked.returncode == 0, locked.stderr
    assert '"index_url": "' + index in (root / "imagesmith.lock").read_text()
    built = cli("build", "-p", str(root), "--base", base_image, "--tag", "imagesmith-test/private", "--json", env=env)
    assert built.returncode == 0, built.stderr
    assert seen["authorised"] > 0 and seen["refused"] > 0
    for text in (locked.stdout + locked.stderr, built.stdout + built.stderr):
        assert SECRET not in text
    assert SECRET.encode() not in _everything_under(root)
    assert index in (root / "Dockerfile").read_text()  # the URL, for online installs: no credentials
    info = engine.image("imagesmith-test/private:serve")
    assert SECRET not in repr(info.labels) and SECRET not in repr(info.config)
    # one container: the private package imports, and no file holds the secret (grep lists none)
    found = engine.run(
        "imagesmith-test/private:serve",
        [
            "-c",
            "/opt/venv/bin/python -c 'import privpkg; print(privpkg.VERSION)' && "
            f"{{ grep -rlsF -e '{SECRET}' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev || true; }}",
        ],
        entrypoint=["sh"],
        user="0",  # root reads every file: the image's own user cannot read /etc/shadow, say
    )
    assert found.split() == ["1.0"]
