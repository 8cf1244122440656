"""The build-time helper for sdist-only distributions (imagesmith/runtime/sdists.py), on the host."""

import hashlib

from imagesmith.lock.pins import Pin, parse_compiled, render_requirements_lock
from imagesmith.runtime.sdists import rehash, sdist_requirements

LOCK = render_requirements_lock(
    [
        Pin("docopt", "0.6.2", ("sha256:" + "a" * 64,)),
        Pin("six", "1.17.0", ("sha256:" + "b" * 64, "sha256:" + "c" * 64)),
    ],
    "header",
)


def test_sdists_lists_only_distributions_without_a_wheel(tmp_path):
    (tmp_path / "docopt-0.6.2.tar.gz").write_bytes(b"sdist")
    (tmp_path / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"wheel")
    (tmp_path / "six-1.17.0.tar.gz").write_bytes(b"sdist")
    text = sdist_requirements(LOCK, str(tmp_path))
    assert [p.name for p in parse_compiled(text)] == ["docopt"]
    assert "sha256:" + "a" * 64 in text


def test_nothing_to_build_gives_empty_output(tmp_path):
    (tmp_path / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"wheel")
    assert sdist_requirements(LOCK, str(tmp_path)) == ""


def test_rehash_replaces_only_built_distributions(tmp_path):
    wheel = tmp_path / "docopt-0.6.2-py2.py3-none-any.whl"
    wheel.write_bytes(b"built wheel")
    pins = {p.name: p for p in parse_compiled(rehash(LOCK, str(tmp_path)))}
    assert pins["docopt"].hashes == ("sha256:" + hashlib.sha256(b"built wheel").hexdigest(),)
    assert pins["six"].hashes == ("sha256:" + "b" * 64, "sha256:" + "c" * 64)
    assert rehash(LOCK, str(tmp_path / "missing")) == LOCK
