"""Per-package indexes (spec ``package_indexes``) enforced by the real tools: uv, pip-compile
(on the host) and pip's wheel download, against two real indexes on 127.0.0.1
(tests/pkgindexes.py). The spec, the lock and the pure parts are tests/unit/test_package_indexes.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imagesmith.errors import ResolutionError
from imagesmith.lock import piptools_resolver
from imagesmith.lock.indexes import restrict_hashes
from imagesmith.lock.pins import Pin
from imagesmith.lock.piptools_resolver import PipToolsResolver
from imagesmith.lock.uv_resolver import UvResolver
from imagesmith.wheels import WheelCache
from tests.pkgindexes import SCENARIO, serve_indexes
from tests.unit.test_credentials import SECRET, private_index  # noqa: F401 (a fixture)
from tests.unit.test_package_indexes import _by_name, _lock, _request


@pytest.fixture
def indexes(tmp_path):
    with serve_indexes(tmp_path / "indexes", SCENARIO) as served:
        yield served


def test_uv_takes_the_pinned_package_from_its_index_and_nothing_else(tmp_path, indexes, monkeypatch):
    """uv, real: pinme from the pinned index (2.0, though the general index has a 3.0), and
    `other` from the general index (1.0, though the pinned index has a 9.0)."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    request = _request(tmp_path, indexes, "other\n")
    pins = _by_name(restrict_hashes(UvResolver().resolve(request), request.package_indexes))
    assert pins["pinme"] == Pin("pinme", "2.0", (indexes["pinned"].hashes[("pinme", "2.0")],))
    assert pins["other"] == Pin("other", "1.0", (indexes["general"].hashes[("other", "1.0")],))
    assert not indexes["general"].asked_for("pinme") and not indexes["pinned"].asked_for("other")
    assert indexes["pinned"].asked_for("pinme")


def test_uv_without_the_pin_takes_the_look_alike(tmp_path, indexes, monkeypatch):
    """The control: the same indexes, no pin (the pinned index as a plain extra index) pick
    another pinme, so the test above shows the pin at work."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    request = replace(
        _request(tmp_path, indexes, "other\n"), package_indexes=(), extra_index_urls=(indexes["pinned"].url,)
    )
    pins = _by_name(UvResolver().resolve(request))
    assert pins["other"].version == "9.0"  # uv prefers the extra index: the confusion a pin prevents
    assert indexes["pinned"].asked_for("other")  # and the request log sees it


def test_pip_compile_takes_the_pinned_package_from_its_index_only(tmp_path, indexes):
    """pip-compile, real, on the host: the pinned index is never one of pip's indexes, so
    `other` 9.0 is out of reach; pinme==1.0 exists on both indexes, and only the pinned
    index's file is kept."""
    request = _request(tmp_path, indexes, "other\npinme==1.0\n")
    pins = _by_name(restrict_hashes(PipToolsResolver().resolve_on_host(request), request.package_indexes))
    assert pins["pinme"] == Pin("pinme", "1.0", (indexes["pinned"].hashes[("pinme", "1.0")],))
    assert pins["other"] == Pin("other", "1.0", (indexes["general"].hashes[("other", "1.0")],))
    assert not indexes["pinned"].asked_for("other")  # pip never had the pinned index as an index


def _rounds(monkeypatch) -> list[list[Pin]]:
    """Each pip-compile run's pins as the pip-tools resolver gets them (the real runs, recorded)."""
    seen: list[list[Pin]] = []
    real = PipToolsResolver.resolve_on_host

    def recorded(self, request):
        pins = real(self, request)
        seen.append(pins)
        return pins

    monkeypatch.setattr(PipToolsResolver, "resolve_on_host", recorded)
    return seen


def test_pip_tools_refuses_the_look_alike_then_excludes_it_and_resolves_again(tmp_path, indexes, monkeypatch):
    """The first pip-compile run also sees pinme on the general index and prefers its 3.0: such
    a result is refused, naming the versions the pinned index has. So the pip-tools resolver runs
    pip-compile again with pinme!=3.0: pinme 2.0 from its index. (One resolution: its first run
    is the lone pip-compile run that was a test of its own.)"""
    request = _request(tmp_path, indexes, "other\n")
    rounds = _rounds(monkeypatch)
    pins = _by_name(restrict_hashes(PipToolsResolver().resolve(request), request.package_indexes))
    assert len(rounds) == 2 and _by_name(rounds[0])["pinme"].version == "3.0"
    with pytest.raises(
        ResolutionError, match=r"pinme==3.0 was resolved from files that are not on its index .*1.0, 2.0"
    ):
        restrict_hashes(rounds[0], request.package_indexes)
    assert pins["pinme"] == Pin("pinme", "2.0", (indexes["pinned"].hashes[("pinme", "2.0")],))
    assert pins["other"] == Pin("other", "1.0", (indexes["general"].hashes[("other", "1.0")],))
    assert not indexes["pinned"].asked_for("other")


def test_look_alikes_without_end_fail_closed(tmp_path, monkeypatch):
    """An index publishing look-alike after look-alike: LOOK_ALIKE_ROUNDS rounds, then the lock's
    refusal. Two rounds here: the product's five are three more pip-compile runs of the same loop."""
    monkeypatch.setattr(piptools_resolver, "LOOK_ALIKE_ROUNDS", 2)
    contents = {"general": [("pinme", f"{v}.0") for v in range(3, 6)], "pinned": [("pinme", "2.0")]}
    with serve_indexes(tmp_path / "many", contents) as idx:
        request = _request(tmp_path, idx, "pinme\n")
        rounds = _rounds(monkeypatch)
        pins = PipToolsResolver().resolve(request)
        assert [_by_name(r)["pinme"].version for r in rounds] == ["5.0", "4.0"]  # each round excludes the last
        assert _by_name(pins)["pinme"].version == "4.0"
        with pytest.raises(ResolutionError, match=r"pinme==4.0 .* \(it has 2.0\)"):
            restrict_hashes(pins, request.package_indexes)


def test_the_host_wheel_download_takes_each_file_from_its_index(tmp_path, indexes, monkeypatch):
    """pinme==1.0 exists on both indexes with different files: the download asks the pinned
    index alone (even with the host's pip set to an extra index), the rest the general one."""
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", indexes["general"].url)
    lock = _lock(
        index_url=indexes["general"].url,
        package_indexes=(("pinme", indexes["pinned"].url),),
        packages=(
            Pin("other", "1.0", (indexes["general"].hashes[("other", "1.0")],)),
            Pin("pinme", "1.0", (indexes["pinned"].hashes[("pinme", "1.0")],)),
        ),
        installer=(),  # these indexes serve no installer wheel
    )
    house = WheelCache(tmp_path / "cache").wheelhouse(lock)
    assert not indexes["general"].asked_for("pinme") and not indexes["pinned"].asked_for("other")
    import zipfile

    for name in ("pinme-1.0", "other-1.0"):
        with zipfile.ZipFile(house / f"{name}-py3-none-any.whl") as zf:
            assert (
                zf.read(f"{name.split('-')[0]}/__init__.py")
                .decode()
                .endswith("FROM = 'pinned'\n" if name.startswith("pinme") else "FROM = 'general'\n")
            )


def test_a_pinned_private_index_gets_the_hosts_credentials(tmp_path, indexes, private_index, monkeypatch):  # noqa: F811
    """A pinned index that demands a password gets the host's netrc entry, like any index:
    uv's resolution and the page imagesmith reads both authenticate; nothing prints it."""
    private, seen = private_index
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    request = _request(tmp_path, indexes, "privpkg==1.0\n", (("privpkg", private),))
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    with pytest.raises(ResolutionError) as refused:
        restrict_hashes(UvResolver().resolve(request), request.package_indexes, request.netrc())
    assert SECRET not in str(refused.value)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login ci password {SECRET}\n")
    monkeypatch.setenv("NETRC", str(netrc))
    pins = restrict_hashes(UvResolver().resolve(request), request.package_indexes, request.netrc())
    assert [(p.name, p.version) for p in pins] == [("privpkg", "1.0")]
    assert seen["authorised"] > 0 and not indexes["general"].asked_for("privpkg")
