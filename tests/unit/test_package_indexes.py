"""Per-package indexes (spec ``package_indexes``): validation, the lock, the pure parts (the
restriction of hashes, the download groups, the Dockerfile) and a real index page read on
127.0.0.1 (tests/pkgindexes.py). The real tools (uv, pip-compile, pip's download) against two
such indexes are tests/tools/test_package_indexes_resolvers.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import tomllib

from imagesmith.errors import ResolutionError
from imagesmith.lock import LOCK_FILE, Lock
from imagesmith.lock.base import BasePin
from imagesmith.lock.indexes import (
    IndexFile,
    check_origins,
    download_groups,
    fetch_files,
    origins,
    parse_page,
    restrict_hashes,
    uv_project,
)
from imagesmith.lock.inputs import compute_inputs, runtime_pin
from imagesmith.lock.lockfile import read_lock
from imagesmith.lock.pins import Pin
from imagesmith.lock.piptools_resolver import PINNED_LINKS, PipToolsResolver
from imagesmith.lock.request import ResolveRequest
from imagesmith.lock.uv_resolver import UvResolver
from imagesmith.render import render
from imagesmith.spec.parse import parse_spec
from tests.fakes import FakeEngine
from tests.helpers import cli, fake_lock
from tests.pkgindexes import SCENARIO, serve_indexes
from tests.unit.test_credentials import SECRET, private_index  # noqa: F401 (a fixture)
from tests.unit.test_spec import VALID, problems

PINNED = "http://127.0.0.1:9/pinned/simple"
GENERAL = "http://127.0.0.1:8/simple"


@pytest.fixture
def root(tmp_path):
    (tmp_path / "app.py").write_text("print('hi')\n")
    return tmp_path


# --------------------------------------------------------------------------------------------
# The spec


def test_spec_package_indexes_are_canonical_and_sorted(root):
    spec = parse_spec({**VALID, "package_indexes": {"Torch_Vision": PINNED, "pinme": PINNED + "2"}}, root)
    assert spec.package_indexes == (("pinme", PINNED + "2"), ("torch-vision", PINNED))


@pytest.mark.parametrize(
    "value,expected",
    [
        ("http://127.0.0.1:9/s", "package_indexes: expected a mapping of distribution name: index URL, got a string"),
        ({"six; id": PINNED}, "package_indexes.six; id: expected a distribution name like 'torch', got 'six; id'"),
        ({"six": "http://u:tok@127.0.0.1:9/s"}, "package_indexes.six: holds a user name or password"),
        ({"six": "http://127.0.0.1:9/s?token=x"}, "package_indexes.six: expected an index URL like"),
        ({"six": 3}, "package_indexes.six: expected an index URL like"),
        ({"six": GENERAL}, "package_indexes.six: 'http://127.0.0.1:8/simple' is also index_url"),
        ({"Six": PINNED, "six": PINNED}, "package_indexes.six: names six a second time"),
    ],
)
def test_spec_package_indexes_are_validated(root, value, expected):
    found = problems({**VALID, "index_url": GENERAL, "package_indexes": value}, root)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_credential_in_a_package_index_fails_the_cli_with_exit_2(root):
    spec = dict(VALID, package_indexes={"six": "http://ci:s3cr3t@127.0.0.1:9/simple"})
    (root / "imagesmith.yaml").write_text(json.dumps(spec))
    proc = cli("render", "-p", str(root), in_process=True)
    assert proc.returncode == 2
    assert "package_indexes.six: holds a user name or password" in proc.stderr
    assert "keep credentials out of the spec" in proc.stderr and "s3cr3t" not in proc.stderr


# --------------------------------------------------------------------------------------------
# The lock


def _lock(**kw) -> Lock:
    """helpers.fake_lock with two packages, the second pinned to its own index."""
    base = dict(
        base=BasePin("python:3.11-slim", "sha256:" + "a" * 64, "registry", "3.11.2"),
        packages=(Pin("other", "1.0", ("sha256:" + "b" * 64,)), Pin("pinme", "2.0", ("sha256:" + "c" * 64,))),
        system_packages=(),
        preprocessing=(),
        seed=0,
        env=(),
        index_url=GENERAL,
        package_indexes=(("pinme", PINNED),),
        runtime=runtime_pin(),
    )
    return fake_lock(**{**base, **kw})


def test_lock_records_package_indexes_and_reads_them_back(tmp_path):
    lock = _lock()
    data = json.loads(lock.to_json())
    assert data["indexes"] == {"index_url": GENERAL, "extra_index_urls": [], "package_indexes": {"pinme": PINNED}}
    (tmp_path / LOCK_FILE).write_text(lock.to_json())
    assert read_lock(tmp_path / LOCK_FILE).package_indexes == (("pinme", PINNED),)
    assert lock.other_index_urls == [PINNED]


def test_a_lock_without_package_indexes_is_unchanged(tmp_path):
    assert "package_indexes" not in _lock(package_indexes=()).to_json()


@pytest.mark.parametrize(
    "pinned",
    [{"pinme": "http://u:p@127.0.0.1:9/s"}, {"pinme": GENERAL}, {"Pin Me": PINNED}, {"pinme": "x\nRUN id"}],
)
def test_lock_refuses_bad_package_indexes(tmp_path, pinned):
    data = json.loads(_lock().to_json())
    data["indexes"]["package_indexes"] = pinned
    (tmp_path / LOCK_FILE).write_text(json.dumps(data))
    with pytest.raises(Exception, match="indexes.package_indexes"):
        read_lock(tmp_path / LOCK_FILE)


def test_the_requirements_input_changes_with_a_pinned_index(root):
    """What `lock --check` compares: a new pinned index (or a new pin) is a changed input."""
    plain = parse_spec(VALID, root)
    one = parse_spec({**VALID, "package_indexes": {"six": PINNED}}, root)
    other = parse_spec({**VALID, "package_indexes": {"six": PINNED + "/other"}}, root)
    digests = [compute_inputs(s, s.base)["requirements"] for s in (plain, one, other)]
    assert len(set(digests)) == 3
    assert compute_inputs(one, one.base)["base"] == compute_inputs(plain, plain.base)["base"]


# --------------------------------------------------------------------------------------------
# The pure parts


def test_uv_project_pins_each_package_to_an_explicit_index():
    data = tomllib.loads(uv_project((("pinme", PINNED), ("torch", PINNED + "2"), ("zeta", PINNED))))
    assert data["project"]["dependencies"] == ["pinme", "torch", "zeta"]
    assert [(i["url"], i["explicit"]) for i in data["tool"]["uv"]["index"]] == [(PINNED, True), (PINNED + "2", True)]
    names = {i["url"]: i["name"] for i in data["tool"]["uv"]["index"]}
    assert data["tool"]["uv"]["sources"] == {
        "pinme": {"index": names[PINNED]},
        "torch": {"index": names[PINNED + "2"]},
        "zeta": {"index": names[PINNED]},
    }


def test_origins_are_read_from_uv_annotations_and_checked():
    compiled = (
        f"other==1.0 \\\n    --hash=sha256:{'b' * 64}\n    # from {GENERAL}\n"
        f"pinme==2.0 \\\n    --hash=sha256:{'c' * 64}\n    # from {PINNED}\n"
    )
    found = origins(compiled)
    assert found == {"other": GENERAL, "pinme": PINNED}
    check_origins(found, (("pinme", PINNED),))
    with pytest.raises(ResolutionError, match=r"other came from .*, an index reserved for pinme"):
        check_origins({**found, "other": PINNED + "/"}, (("pinme", PINNED),))
    with pytest.raises(ResolutionError, match="pinme came from http://127.0.0.1:8/simple, not from its index"):
        check_origins({**found, "pinme": GENERAL}, (("pinme", PINNED),))


def test_parse_page_reads_html_and_json_and_absolute_urls():
    html = b'<a href="../../files/pinme-2.0-py3-none-any.whl#sha256=' + b"c" * 64 + b'">x</a><a href="/f/junk">y</a>'
    files = parse_page(html, "text/html", "http://127.0.0.1:9/simple/pinme/")
    assert files[0] == IndexFile(
        "pinme-2.0-py3-none-any.whl", "http://127.0.0.1:9/files/pinme-2.0-py3-none-any.whl", "c" * 64
    )
    body = json.dumps(
        {"files": [{"filename": "pinme-2.0.tar.gz", "url": "x/pinme-2.0.tar.gz", "hashes": {"sha256": "d" * 64}}]}
    )
    files = parse_page(body.encode(), "application/vnd.pypi.simple.v1+json", "http://127.0.0.1:9/simple/pinme/")
    assert files == [IndexFile("pinme-2.0.tar.gz", "http://127.0.0.1:9/simple/pinme/x/pinme-2.0.tar.gz", "d" * 64)]


def test_restrict_hashes_keeps_only_the_pinned_index_files():
    on_index = [
        IndexFile("pinme-1.0-py3-none-any.whl", "u", "c" * 64),
        IndexFile("pinme-2.0-py3-none-any.whl", "u", "e" * 64),
    ]
    pins = [
        Pin("other", "1.0", ("sha256:" + "b" * 64,)),
        Pin("pinme", "1.0", ("sha256:" + "a" * 64, "sha256:" + "c" * 64)),
    ]
    out = restrict_hashes(pins, (("pinme", PINNED),), fetch=lambda url, name, netrc: on_index)
    assert out == [pins[0], Pin("pinme", "1.0", ("sha256:" + "c" * 64,))]
    with pytest.raises(
        ResolutionError, match=r"pinme==3.0 was resolved from files that are not on its index .* \(it has 1.0, 2.0\)"
    ):
        restrict_hashes([Pin("pinme", "3.0", ("sha256:" + "f" * 64,))], (("pinme", PINNED),), fetch=lambda *a: on_index)


def test_download_groups_split_general_and_each_pinned_index():
    pins = [Pin("a", "1", ("sha256:1",)), Pin("pinme", "2", ("sha256:2",)), Pin("torch", "3", ("sha256:3",))]
    groups = download_groups(pins, (("pinme", PINNED), ("torch", PINNED + "2")))
    assert groups == [(None, [pins[0]]), (PINNED, [pins[1]]), (PINNED + "2", [pins[2]])]
    assert download_groups(pins[1:2], (("pinme", PINNED),)) == [(PINNED, [pins[1]])]


def test_the_dockerfile_downloads_pinned_packages_from_their_index_only(root):
    spec = parse_spec({**VALID, "index_url": GENERAL}, root)
    text = render(spec, _lock())
    general = next(line for line in text.splitlines() if "-r /tmp/general.txt" in line)
    pinned = next(line for line in text.splitlines() if "-r /tmp/pinned-1.txt" in line)
    assert f"--index-url {GENERAL}" in general and PINNED not in general
    assert pinned.rstrip().endswith(f"--index-url {PINNED}; fi") and GENERAL not in pinned
    assert "awk -v names=' pinme ' -v keep=0" in text and "awk -v names=' pinme ' -v keep=1" in text
    assert "--extra-index-url" not in pinned
    # without package_indexes the stage is the one every other project renders
    assert "/tmp/general.txt" not in render(spec, _lock(package_indexes=()))


# --------------------------------------------------------------------------------------------
# Two real indexes on 127.0.0.1


@pytest.fixture
def indexes(tmp_path):
    with serve_indexes(tmp_path / "indexes", SCENARIO) as served:
        yield served


def _request(tmp_path: Path, indexes, requirements: str, package_indexes=None) -> ResolveRequest:
    """``requirements`` from the general index, pinme pinned to its own (or ``package_indexes``)."""
    req = tmp_path / "requirements.in"
    req.write_text(requirements)
    return ResolveRequest(
        inputs=(req,),
        extras=(),
        python="3.11",
        platform="linux/amd64",
        index_url=indexes["general"].url,
        package_indexes=package_indexes or (("pinme", indexes["pinned"].url),),
    )


def _by_name(pins) -> dict[str, Pin]:
    return {p.name: p for p in pins}


def test_fetch_files_reads_a_real_index_page(indexes):
    files = fetch_files(indexes["pinned"].url, "pinme")
    assert {f"sha256:{f.sha256}" for f in files} == {
        indexes["pinned"].hashes[("pinme", "1.0")],
        indexes["pinned"].hashes[("pinme", "2.0")],
    }
    assert fetch_files(indexes["pinned"].url, "absent") == []


class _CapturingEngine(FakeEngine):
    """pip-compile in the container, as far as the test needs: keeps what /in held and writes
    the pins the real run would (pinme==1.0 with both indexes' hashes, as pip-compile does)."""

    page: str = ""
    args: list[str] = []

    def run_to_end(self, image, what, timeout, **create):
        run = super().run_to_end(image, what, timeout, **create)
        mounts = {v["bind"]: Path(h) for h, v in create["volumes"].items()}
        self.page = (mounts["/in"] / PINNED_LINKS).read_text()
        self.args = list(create["command"])
        hashes = " ".join(f"--hash={h}" for h in self.hashes)
        (mounts["/out"] / "requirements.lock").write_text(f"pinme==1.0 {hashes}\n")
        return run


def test_pip_compile_in_the_base_gets_only_the_pinned_files_as_find_links(tmp_path, indexes):
    request = replace(_request(tmp_path, indexes, "pinme==1.0\n"), python="3.9", base_ref="b@sha256:" + "a" * 64)
    engine = _CapturingEngine()
    engine.hashes = [indexes["general"].hashes[("pinme", "1.0")], indexes["pinned"].hashes[("pinme", "1.0")]]
    pins = PipToolsResolver(engine).resolve_in_container(request)
    assert engine.args[engine.args.index("--find-links") + 1] == PINNED_LINKS
    assert indexes["pinned"].url not in engine.args and "--extra-index-url" not in engine.args
    assert "pinme-1.0-py3-none-any.whl" in engine.page and "pinme-2.0-py3-none-any.whl" in engine.page
    assert "other" not in engine.page  # the pinned index's other projects never reach pip
    assert restrict_hashes(pins, request.package_indexes) == [
        Pin("pinme", "1.0", (indexes["pinned"].hashes[("pinme", "1.0")],))
    ]


@pytest.mark.parametrize(
    "resolver,variable,value",
    [
        (UvResolver, "UV_INDEX", f"mirror={PINNED}/"),
        (UvResolver, "UV_EXTRA_INDEX_URL", PINNED + "/"),
        (PipToolsResolver, "PIP_EXTRA_INDEX_URL", PINNED + "/"),
    ],
)
def test_a_pinned_index_in_the_hosts_index_settings_is_refused(tmp_path, monkeypatch, resolver, variable, value):
    monkeypatch.setenv(variable, value)
    req = tmp_path / "requirements.in"
    req.write_text("other\n")
    request = ResolveRequest(
        inputs=(req,), extras=(), python="3.11", platform="linux/amd64", package_indexes=(("pinme", PINNED),)
    )
    with pytest.raises(
        ResolutionError, match=r"name http://127.0.0.1:9/pinned/simple/ as a general index, .* for pinme"
    ):
        resolver().resolve(request)
