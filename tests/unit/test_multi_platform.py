"""Several platforms (issue 16), pure parts: the spec's ``platforms``, one lock section per
platform (pins, base, parity of its own), the Dockerfile's per-platform stages, the bake
``platforms``, the index parity, base pinning per platform, and diff's explanation of what
differs between two platforms. The real builds are tests/engine/test_platforms_engine.py."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from imagesmith import parity
from imagesmith.build import bake_definition
from imagesmith.compare import Change
from imagesmith.diff import explain_platforms
from imagesmith.errors import LockError, SpecError
from imagesmith.lock.base import BasePin, pin_base
from imagesmith.lock.lockfile import read_lock, read_locks
from imagesmith.lock.pins import Pin
from imagesmith.lock.update import check_lock, ensure_fresh_all, lock_project
from imagesmith.render import render
from imagesmith.spec.load import load_spec
from tests.fakes import FakeEngine, image_info
from tests.helpers import fake_lock

SPEC = (
    'name: p\npython: "3.11"\nbase: 127.0.0.1:5000/base:py311\n'
    "requirements: [numpy]\n"
    'train: {command: ["python", "-V"]}\nserve: {command: ["python", "-V"]}\n'
)
AMD, ARM = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def write_spec(root, extra: str = "platforms: [linux/amd64, linux/arm64]\n"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "imagesmith.yaml").write_text(SPEC + extra)
    return root


@pytest.mark.parametrize(
    "extra, message",
    [
        ("platforms: [linux/amd64, linux/s390x]\n", "expected each of linux/amd64, linux/arm64"),
        ("platforms: []\n", "expected a list"),
        ("platforms: linux/arm64\n", "expected a list"),
        ("platforms: [linux/arm64, linux/arm64]\n", "listed twice"),
        ("platform: linux/amd64\nplatforms: [linux/arm64]\n", "not both"),
    ],
)
def test_platforms_are_checked(tmp_path, extra, message):
    with pytest.raises(SpecError, match=message):
        load_spec(write_spec(tmp_path / "p", extra))


def test_platforms_order_and_the_first_is_the_platform(tmp_path):
    spec = load_spec(write_spec(tmp_path / "p", "platforms: [linux/arm64, linux/amd64]\n"))
    assert spec.platforms == ("linux/arm64", "linux/amd64") and spec.platform == "linux/arm64"
    assert spec.multi_platform
    assert spec.requirements_lock_for("linux/amd64").name == "requirements-amd64.lock"
    one = load_spec(write_spec(tmp_path / "q", "platform: linux/arm64\n"))
    assert one.platforms == ("linux/arm64",) and not one.multi_platform
    assert one.requirements_lock_for("linux/arm64").name == "requirements.lock"


class PlatformResolver:
    """numpy has one wheel per platform; a marker adds a package on x86-64 only."""

    name = "uv"
    wheels_only = False

    def __init__(self):
        self.platforms = []

    def resolve(self, request):
        self.platforms.append(request.platform)
        pins = [Pin("numpy", "2.1.0", (AMD if request.platform == "linux/amd64" else ARM,))]
        if request.platform == "linux/amd64":
            pins.append(Pin("only-x86", "1.0", ("sha256:" + "3" * 64,)))
        return pins


class IndexEngine(FakeEngine):
    """A registry whose base is an image index: one manifest per platform."""

    def registry_platform_digest(self, ref, platform):
        self._record("registry_digest", ref, platform=platform)
        return {"linux/amd64": "sha256:" + "a" * 64, "linux/arm64": "sha256:" + "b" * 64}[
            platform
        ], "sha256:" + "c" * 64


@pytest.fixture
def multi(tmp_path, monkeypatch):
    root = write_spec(tmp_path / "p")
    resolver = PlatformResolver()
    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: resolver)
    monkeypatch.setattr("imagesmith.platforms.emulation_problem", lambda platform: None)  # as if QEMU were there
    engine = IndexEngine(runs=lambda image, command: "3.11.2\n", default=image_info("base"))
    return root, resolver, engine


def test_one_lock_section_per_platform_each_with_its_own_pins_base_and_parity(multi):
    root, resolver, engine = multi
    spec = load_spec(root)
    result = lock_project(spec, engine)
    assert sorted(set(resolver.platforms)) == ["linux/amd64", "linux/arm64"] and result.written
    resolved = len(resolver.platforms)  # requirements and the installer, for each platform
    data = json.loads((root / "imagesmith.lock").read_text())
    assert set(data) == {"imagesmith_lock", "generated_by", "platforms"}
    assert list(data["platforms"]) == ["linux/amd64", "linux/arm64"]
    locks = read_locks(root / "imagesmith.lock")
    amd, arm = locks["linux/amd64"], locks["linux/arm64"]
    assert amd.base.digest == "sha256:" + "a" * 64 and arm.base.digest == "sha256:" + "b" * 64
    assert amd.base.index == arm.base.index == "sha256:" + "c" * 64
    assert [p.name for p in amd.packages] == ["numpy", "only-x86"] and [p.name for p in arm.packages] == ["numpy"]
    assert parity.digest(parity.manifest_from_lock(amd)) != parity.digest(parity.manifest_from_lock(arm))
    assert (root / "requirements-amd64.lock").read_text().count("only-x86") == 1
    assert "only-x86" not in (root / "requirements-arm64.lock").read_text()
    assert not (root / "requirements.lock").exists()
    # unchanged: nothing redone, byte-identical
    before = (root / "imagesmith.lock").read_bytes()
    again = lock_project(load_spec(root), engine)
    assert again.changed == [] and not again.written and len(resolver.platforms) == resolved
    assert (root / "imagesmith.lock").read_bytes() == before
    assert check_lock(spec) == [] and list(ensure_fresh_all(spec)) == ["linux/amd64", "linux/arm64"]


def test_read_lock_picks_a_platform_and_names_the_missing_one(multi):
    root, _, engine = multi
    lock_project(load_spec(root), engine)
    assert read_lock(root / "imagesmith.lock", "linux/arm64").platform == "linux/arm64"
    one = write_spec(root.parent / "one", "platform: linux/arm64\n")
    lock_project(load_spec(one), engine)
    with pytest.raises(LockError, match=r"has no section for linux/amd64 \(it locks linux/arm64\)"):
        read_lock(one / "imagesmith.lock", "linux/amd64")


def test_a_platform_added_to_the_spec_makes_the_lock_stale(multi):
    root, _, engine = multi
    (root / "imagesmith.yaml").write_text(SPEC + "platform: linux/amd64\n")
    lock_project(load_spec(root), engine)
    (root / "imagesmith.yaml").write_text(SPEC + "platforms: [linux/amd64, linux/arm64]\n")
    assert check_lock(load_spec(root)) == ["target"]


def test_a_section_edited_to_another_platform_is_refused(multi):
    root, _, engine = multi
    lock_project(load_spec(root), engine)
    data = json.loads((root / "imagesmith.lock").read_text())
    data["platforms"]["linux/arm64"]["target"]["platform"] = "linux/amd64"
    (root / "imagesmith.lock").write_text(json.dumps(data))
    with pytest.raises(LockError, match=r"platforms.'?linux/arm64'?: the section's target.platform"):
        read_locks(root / "imagesmith.lock")


def test_a_lock_for_a_platform_this_machine_cannot_run_says_how_to_add_emulation(multi, monkeypatch):
    root, resolver, engine = multi
    monkeypatch.setattr("imagesmith.platforms.emulation_problem", lambda p: "no QEMU" if p == "linux/arm64" else None)
    with pytest.raises(LockError, match="no QEMU"):
        lock_project(load_spec(root), engine)
    assert not (root / "imagesmith.lock").exists() and set(resolver.platforms) == {"linux/amd64"}


def test_a_local_base_must_be_of_the_platform():
    engine = FakeEngine({"base:x": replace(image_info("base:x"), platform="linux/amd64")})
    with pytest.raises(LockError, match="is a linux/amd64 image, but the spec builds for linux/arm64"):
        pin_base(engine, "base:x", "linux/arm64")


def test_the_dockerfile_has_each_platform_s_stages_and_picks_by_targetarch(tmp_path):
    spec = load_spec(write_spec(tmp_path / "p"))
    amd = fake_lock()
    arm = fake_lock(
        platform="linux/arm64", base=BasePin("python:3.11-slim", "sha256:" + "e" * 64, "registry", "3.11.9")
    )
    text = render(spec, {"linux/amd64": amd, "linux/arm64": arm})
    assert text == render(spec, {"linux/amd64": amd, "linux/arm64": arm})  # deterministic
    for arch, lock in (("amd64", amd), ("arm64", arm)):
        assert f"ARG IMAGESMITH_BASE_{arch.upper()}={lock.base.ref}\n" in text
        assert f"FROM --platform=linux/{arch} ${{IMAGESMITH_BASE_{arch.upper()}}} AS base-{arch}\n" in text
        assert f"source=requirements-{arch}.lock," in text
        assert f'io.imagesmith.parity="{parity.digest(parity.manifest_from_lock(lock))}"' in text
        assert f"FROM shared-{arch} AS serve-{arch}\n" in text
    assert text.endswith("FROM train-${TARGETARCH} AS train\nFROM serve-${TARGETARCH} AS serve\n")
    assert "source=requirements.lock," not in text and " AS shared\n" not in text
    single = render(spec, {"linux/arm64": arm})
    assert "FROM --platform=linux/arm64 ${IMAGESMITH_BASE} AS base\n" in single and "TARGETARCH" not in single


def test_bake_sets_the_platforms():
    definition = bake_definition(
        context=__import__("pathlib").Path("/p"),
        dockerfile=__import__("pathlib").Path("/p/Dockerfile"),
        targets=("train", "serve"),
        names={"train": ["p:train"], "serve": ["p:serve"]},
        push={},
        load=False,
        driver="docker",
        build_args={},
        contexts={},
        platforms=("linux/amd64", "linux/arm64"),
    )
    assert all(t["platforms"] == ["linux/amd64", "linux/arm64"] for t in definition["target"].values())


def test_index_parity_names_the_set_of_platform_parities():
    a = {"linux/amd64": "sha256:" + "1" * 64, "linux/arm64": "sha256:" + "2" * 64}
    assert parity.index_digest(a) == parity.index_digest(dict(reversed(list(a.items()))))
    assert parity.index_digest(a) != parity.index_digest({**a, "linux/arm64": "sha256:" + "3" * 64})
    assert parity.index_digest(a) not in a.values()


def test_diff_across_platforms_says_why_each_distribution_differs():
    changes = [
        Change("distributions", "added", "only-x86", None, "1.0"),
        Change("distributions", "hash_changed", "numpy", "2.1.0", "2.1.0"),
        Change("distributions", "version_changed", "scipy", "1.13", "1.14"),
        Change("python", "changed", "platform", "linux/arm64", "linux/amd64"),
    ]
    out = explain_platforms(changes, "linux/arm64", "linux/amd64")
    assert out[0].detail.startswith("markers: only linux/amd64 installs it")
    assert out[1].detail.startswith("wheels: the same version's own wheel for each platform")
    assert out[2].detail.startswith("resolution:")
    assert out[3] == changes[3]


# ---- train on one platform, sign off on another


def _stamped(tmp_path, manifest: dict):
    from imagesmith.runtime.stamp import STAMP_FILE

    folder = tmp_path / "model"
    folder.mkdir()
    stamp = {"imagesmith_stamp": 1, "parity": parity.digest(manifest), "manifest": manifest, "artifacts": {}}
    (folder / STAMP_FILE).write_text(json.dumps(stamp))
    return folder


def test_a_model_from_a_sibling_platform_of_the_same_build_holds_and_says_so(tmp_path):
    from imagesmith.runtime.stamp import check_model

    amd = parity.manifest_from_lock(fake_lock())
    arm = parity.manifest_from_lock(fake_lock(platform="linux/arm64"))
    folder = _stamped(tmp_path, amd)
    siblings = {"linux/amd64": parity.digest(amd), "linux/arm64": parity.digest(arm)}
    check = check_model(str(folder), parity.digest(arm), arm, siblings=siblings)
    assert check.ok and "trained under the linux/amd64 image of this image's build" in check.checks[0]
    # without the build's platforms, or from another build, it is refused as before
    assert not check_model(str(folder), parity.digest(arm), arm).ok
    other = {"linux/amd64": "sha256:" + "9" * 64, "linux/arm64": parity.digest(arm)}
    assert not check_model(str(folder), parity.digest(arm), arm, siblings=other).ok


def test_per_sample_differences_are_recorded():
    from imagesmith.signoff import outputs as so_outputs
    from imagesmith.signoff import run as so_run

    result = so_outputs.compare([[0.9, 0.1], [0.2, 0.8]], [[0.9, 0.1], [0.6, 0.4]], rtol=1e-6, atol=1e-9)
    rows = result.as_json()["per_sample"]
    assert [r["sample"] for r in rows] == [0, 1]
    assert rows[0]["max_abs_error"] == 0.0 and rows[0]["class_flipped"] is False
    assert rows[1]["max_abs_error"] == pytest.approx(0.4) and rows[1]["class_flipped"] is True
    assert rows[1]["out_of_tolerance"] == 2
    record = {
        "checks": [{"check": "outputs", "ok": False, "detail": "x"}],
        "platform": "linux/arm64",
        "golden": {"platform": "linux/amd64"},
        "comparison": result.as_json(),
    }
    table = so_run.table(record)
    assert "per sample, linux/arm64 against the linux/amd64 golden outputs:" in table
    assert any(line.split()[:1] == ["1"] and line.rstrip().endswith("flipped") for line in table)


def test_the_gate_refuses_a_signoff_made_on_another_platform(tmp_path):
    from imagesmith.fsutil import sha256_file
    from imagesmith.runtime.stamp import STAMP_FILE
    from imagesmith.signoff import check as so_check

    folder = _stamped(tmp_path, parity.manifest_from_lock(fake_lock()))
    record = tmp_path / "signoff.json"
    digest = "sha256:" + "a" * 64
    record.write_text(
        json.dumps(
            {
                "imagesmith_signoff": 1,
                "passed": True,
                "platform": "linux/arm64",
                "image": {"digest": digest},
                "model": {"stamp": sha256_file(folder / STAMP_FILE)},
                "checks": [{"check": c, "ok": True, "detail": ""} for c in so_check.RAN],
            }
        )
    )
    for platform, ok in (("linux/arm64", True), ("linux/amd64", False)):
        engine = FakeEngine(default=replace(image_info(id=digest), platform=platform))
        gate = so_check.check_signoff(engine, "x:serve", record, folder)
        assert (gate.problems == []) is ok, gate.problems
    assert gate.problems[0].startswith("it was made on linux/arm64, and x:serve is a linux/amd64 image")


def test_a_signoff_of_many_samples_stays_a_record_the_deploy_gate_reads(tmp_path):
    """30,000 samples, one class flipped far down the list: per_sample listed every row, a record
    over MAX_SIGNOFF that `verify --signoff` then refused to read. Now the record lists the
    PER_SAMPLE rows that moved most (the flipped one first), in sample order, with the count."""
    from imagesmith.signoff import MAX_SIGNOFF, PER_SAMPLE
    from imagesmith.signoff import check as so_check
    from imagesmith.signoff import outputs as so_outputs
    from imagesmith.signoff import run as so_run

    n = 30_000
    golden = [[0.25 + i * 1e-6, 0.75, 0.125] for i in range(n)]
    now = [[g[0] + (i % 997) * 1e-9, g[1], g[2]] for i, g in enumerate(golden)]
    now[29_999] = [0.9, 0.05, 0.05]  # class 1 -> 0
    result = so_outputs.compare(golden, now, rtol=1e-6, atol=1e-9)
    comparison = result.as_json()
    rows = comparison["per_sample"]
    assert comparison["per_sample_count"] == n and len(rows) == PER_SAMPLE
    assert [r["sample"] for r in rows] == sorted(r["sample"] for r in rows)
    assert rows[-1]["sample"] == 29_999 and rows[-1]["class_flipped"] is True
    smallest_listed = min(r["max_abs_error"] for r in rows if not r["class_flipped"])
    listed = {r["sample"] for r in rows}
    assert all(r["max_abs_error"] <= smallest_listed for r in result.per_sample if r["sample"] not in listed)

    record = {
        "imagesmith_signoff": 1,
        "passed": False,
        "platform": "linux/arm64",
        "image": {"digest": "sha256:" + "a" * 64},
        "model": {"stamp": ""},
        "golden": {"platform": "linux/amd64", "samples": n},
        "comparison": comparison,
        "checks": [{"check": "outputs", "ok": False, "detail": result.outputs_detail()}],
    }
    path = tmp_path / "signoff.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    assert path.stat().st_size < MAX_SIGNOFF // 20
    assert so_check.read_signoff(path)["comparison"]["per_sample_count"] == n
    table = so_run.table(record)
    assert (
        f"per sample, linux/arm64 against the linux/amd64 golden outputs (the {PER_SAMPLE} that moved most, of {n}):"
        in table
    )


def test_a_signoff_record_with_nan_and_infinite_outputs_is_standard_json():
    """A model whose output is NaN where the golden one is a number (and the reverse): the errors
    are infinite. Python's json wrote bare NaN and Infinity, which a strict parser (JSON.parse,
    Go) refuses and jq 1.6 reads as null and 1.8e308; the record holds them as strings, and the
    table still shows them."""
    from imagesmith.signoff import outputs as so_outputs
    from imagesmith.signoff import run as so_run

    result = so_outputs.compare(
        [[1.0, float("nan")], [0.5, 0.5]], [[1.0, 2.0], [float("-inf"), 0.5]], rtol=1e-6, atol=0
    )
    comparison = result.as_json()

    def strict(constant: str):
        raise ValueError(f"not standard JSON: {constant}")

    parsed = json.loads(json.dumps({"comparison": comparison}), parse_constant=strict)["comparison"]
    assert parsed["max_abs_error"] == "Infinity" and parsed["out_of_tolerance"] == 2
    assert {(w["golden"], w["now"], w["abs_error"]) for w in parsed["worst"]} == {
        ("NaN", 2.0, "Infinity"),
        (0.5, "-Infinity", "Infinity"),
    }
    assert [r["max_abs_error"] for r in parsed["per_sample"]] == ["Infinity", "Infinity"]
    record = {
        "checks": [{"check": "outputs", "ok": False, "detail": result.outputs_detail()}],
        "platform": "linux/arm64",
        "golden": {"platform": "linux/amd64"},
        "comparison": parsed,
    }
    table = so_run.table(record)
    assert any(line.split()[:6] == ["0", "1", "NaN", "2", "Infinity", "Infinity"] for line in table), table
