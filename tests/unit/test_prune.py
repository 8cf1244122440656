"""`imagesmith prune` (imagesmith/prune.py) against the fake engine: which parity tags it keeps
and why, what it removes, a dry run by default. The real engine: tests/engine/test_run_engine.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imagesmith import parity
from imagesmith.errors import EngineError, UsageError
from imagesmith.layout import LABEL_PARITY, LABEL_PLATFORMS, LABEL_ROLE
from imagesmith.lock.lockfile import write_lock
from imagesmith.prune import PARITY_TAG, Kept, apply_prune, kept_by_records, plan_prune, repository_of
from imagesmith.runtime import stamp
from imagesmith.spec.load import load_spec
from tests.fakes import FakeEngine, image_info
from tests.helpers import cli, fake_lock

TINY = Path(__file__).resolve().parents[1] / "projects" / "tiny"


def _p(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


def _id(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


def _engine(images: dict[str, tuple[int, str]]) -> FakeEngine:
    """{ref: (image number, parity)}."""
    return FakeEngine(
        {
            ref: image_info(ref, id=_id(n), labels={LABEL_PARITY: p, LABEL_ROLE: ref.split(":")[1][:5]})
            for ref, (n, p) in images.items()
        }
    )


@pytest.fixture
def project(tmp_path):
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    return load_spec(tmp_path)


def test_keeps_the_lock_the_records_the_latest_and_used_images_and_removes_the_rest(project, tmp_path):
    spec = project
    lock = fake_lock()
    write_lock(spec, lock)
    now = parity.digest(parity.manifest_from_lock(lock))
    p_now = now.split(":")[1][:12]
    engine = _engine(
        {
            "tiny:train": (1, _p(1)),  # the latest build, from an older lock (not rebuilt since)
            "tiny:serve": (2, _p(1)),
            "tiny:train-" + "1" * 12: (1, _p(1)),
            "tiny:serve-" + "1" * 12: (2, _p(1)),
            f"tiny:serve-{p_now}": (3, now),
            "tiny:serve-" + "4" * 12: (4, _p(4)),  # the model in artifacts/ was trained under it
            "tiny:serve-" + "5" * 12: (5, _p(5)),  # a signoff names this image
            "tiny:serve-" + "6" * 12: (6, _p(6)),  # a stopped container uses it
            "tiny:serve-" + "7" * 12: (7, _p(7)),  # old: goes
            "tiny:train-" + "7" * 12: (8, _p(7)),  # old: goes
            "tiny:v2-serve": (9, _p(9)),  # not a parity tag: never touched
            "other:serve-" + "7" * 12: (10, _p(7)),  # another repository: never touched
        }
    )
    engine.containers = {_id(6): ["debugging"]}
    art = tmp_path / "artifacts"
    art.mkdir()
    (art / "model.bin").write_text("w")
    stamp.write_stamp(str(art), stamp.make_stamp({"parity": _p(4), "manifest": {}, "seed": 7}, str(art)))
    (tmp_path / "signoff.json").write_text(
        json.dumps({"imagesmith_signoff": 1, "image": {"digest": _id(5), "parity": "sha256:00"}, "checks": []})
    )

    kept = kept_by_records(spec, default_artifacts=art)
    plan = plan_prune(engine, "tiny", kept)
    why = {d.ref: d.why for d in plan.keep}
    assert [d.ref for d in plan.remove] == ["tiny:serve-" + "7" * 12, "tiny:train-" + "7" * 12]
    assert why == {
        "tiny:serve-" + "1" * 12: "tiny:serve names it (the latest build)",
        "tiny:train-" + "1" * 12: "tiny:train names it (the latest build)",
        f"tiny:serve-{p_now}": "the current lock's parity (linux/amd64)",
        "tiny:serve-" + "4" * 12: f"the model in {art} was trained under it",
        "tiny:serve-" + "5" * 12: f"the signoff record {tmp_path / 'signoff.json'} names it",
        "tiny:serve-" + "6" * 12: "used by container debugging",
    }
    assert not engine.called("remove_tag")  # planning removes nothing

    removed, failed = apply_prune(engine, plan)
    assert removed == ["tiny:serve-" + "7" * 12, "tiny:train-" + "7" * 12] and failed == []
    assert "tiny:v2-serve" in engine.store and "other:serve-" + "7" * 12 in engine.store
    assert plan_prune(engine, "tiny", kept).remove == []  # nothing left to prune


def test_a_tag_a_build_moved_after_the_plan_is_kept(project):
    """prune and a build at once: a tag the plan would remove that a build re-tags meanwhile (an
    old lock built again) names an image the plan never judged; it stays, with a note."""
    ref = "tiny:serve-" + "7" * 12
    engine = _engine({ref: (7, _p(7)), "tiny:serve-" + "8" * 12: (8, _p(8))})
    plan = plan_prune(engine, "tiny", kept_by_records(project))
    assert [d.ref for d in plan.remove] == [ref, "tiny:serve-" + "8" * 12]
    engine.store[ref] = image_info(ref, id=_id(9), labels={LABEL_PARITY: _p(7), LABEL_ROLE: "serve"})
    del engine.store["tiny:serve-" + "8" * 12]  # removed by someone else meanwhile
    removed, failed = apply_prune(engine, plan)
    assert removed == ["tiny:serve-" + "8" * 12] and failed == [] and engine.store[ref].id == _id(9)
    assert plan.notes[-1] == f"{ref} names another image ({_id(9)[7:19]}) since the plan: kept"


def test_a_tag_the_engine_cannot_say_anything_of_is_not_counted_as_removed(project, monkeypatch):
    """The engine stops answering between the plan and the removal: its tags are not removed
    (exit 2, with the engine's reason), not reported as gone."""
    ref = "tiny:serve-" + "7" * 12
    engine = _engine({ref: (7, _p(7))})
    plan = plan_prune(engine, "tiny", kept_by_records(project))
    assert [d.ref for d in plan.remove] == [ref]

    def stopped(ref: str) -> None:
        raise EngineError(f"cannot inspect {ref}: the engine is not running")

    monkeypatch.setattr(engine, "image", stopped)
    monkeypatch.setattr(engine, "find_image", stopped)
    removed, failed = apply_prune(engine, plan)
    assert removed == [] and failed == [f"{ref}: cannot inspect {ref}: the engine is not running"]
    assert ref in engine.store


def test_a_container_started_after_the_plan_keeps_its_image(project):
    engine = _engine({"tiny:serve-" + "7" * 12: (7, _p(7))})
    plan = plan_prune(engine, "tiny", kept_by_records(project))
    engine.containers = {_id(7): ["late"]}
    removed, failed = apply_prune(engine, plan)
    assert removed == [] and failed and "being used by a container" in failed[0]
    assert "tiny:serve-" + "7" * 12 in engine.store


def test_parity_tags_repositories_and_bad_records(project, tmp_path):
    assert PARITY_TAG.fullmatch("serve-0123456789ab") and PARITY_TAG.fullmatch("train-0123456789ab")
    for tag in ("serve", "v1-serve", "serve-0123456789a", "serve-0123456789AB", "predict-0123456789ab"):
        assert not PARITY_TAG.fullmatch(tag)
    assert repository_of(project, None) == "tiny"
    assert repository_of(project, "127.0.0.1:5000/team/tiny") == "127.0.0.1:5000/team/tiny"
    assert repository_of(project, "127.0.0.1:5000/team/tiny:v1") == "127.0.0.1:5000/team/tiny"
    for bad in ("Bad Repo!!", "Tiny", "tiny:", "tiny:-x"):  # build refuses these too: prune said nothing to prune
        with pytest.raises(UsageError, match="is not an image repository or REPO:TAG reference"):
            repository_of(project, bad)
    with pytest.raises(UsageError, match="missing does not exist"):
        kept_by_records(project, models=[tmp_path / "missing"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / stamp.STAMP_FILE).write_text("{not json")
    with pytest.raises(UsageError, match="is not a readable stamp"):
        kept_by_records(project, models=[broken])
    assert "no parity is kept for the current lock" in kept_by_records(project).notes[0]


def test_prune_is_a_dry_run_unless_yes(project, tmp_path, monkeypatch):
    engine = _engine({"tiny:serve-" + "7" * 12: (7, _p(7)), "tiny:serve": (8, _p(8))})
    monkeypatch.setattr("imagesmith.cli.prune.Engine", lambda progress=None: engine)
    dry = cli("prune", "-p", str(tmp_path))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == f"would remove tiny:serve-{'7' * 12} ({'7' * 12})\n"
    assert "dry run: 1 tag(s) of tiny would be removed, 0 kept; `imagesmith prune --yes` removes them" in dry.stderr
    assert "tiny:serve-" + "7" * 12 in engine.store
    doc = json.loads(cli("prune", "-p", str(tmp_path), "--json").stdout)
    assert doc["dry_run"] is True and doc["remove"] == [{"ref": "tiny:serve-" + "7" * 12, "id": _id(7)}]
    done = cli("prune", "-p", str(tmp_path), "--yes")
    assert done.returncode == 0 and "removed 1 tag(s) of tiny, kept 0" in done.stderr
    assert set(engine.store) == {"tiny:serve"}


def test_a_hostile_platforms_label_keeps_nothing_and_breaks_nothing(project):
    """A parity tag of the repository can be any image, its labels anyone's: a platforms label of
    the wrong types, nested 10^5 deep or not JSON names no parity (the tag is removed unless
    something else keeps it), never a traceback."""
    kept_parity = _p(7)
    labels = {
        1: '{"linux/amd64": 5, "x": [1]}',
        2: "[" * 100_000 + "]" * 100_000,
        3: "\xff not json",
        4: '["' + kept_parity + '"]',
        5: json.dumps({"linux/amd64": kept_parity, "x": {"y": 1}}),
    }
    engine = FakeEngine(
        {
            f"tiny:train-{_p(n)[7:19]}": image_info(
                f"tiny:train-{_p(n)[7:19]}",
                id=_id(n),
                labels={LABEL_PARITY: _p(n), LABEL_ROLE: "train", LABEL_PLATFORMS: text},
            )
            for n, text in labels.items()
        }
    )
    kept = Kept()
    kept.parity(kept_parity, "the current lock's parity (linux/amd64)")
    plan = plan_prune(engine, "tiny", kept)
    assert [(d.ref, d.why) for d in plan.keep] == [
        (f"tiny:train-{_p(5)[7:19]}", "the current lock's parity (linux/amd64)")
    ]
    assert [d.ref for d in plan.remove] == [f"tiny:train-{_p(n)[7:19]}" for n in range(1, 5)]


def test_a_tag_imagesmith_did_not_make_is_kept(project):
    """REPO:train-<12 hex> on an image whose labels do not name that parity and role (the
    user's own image tagged so, a bare base, another role's image) is not imagesmith's to remove:
    removing the user's only tag of an image deletes the image."""
    engine = FakeEngine(
        {
            "tiny:train-0123456789ab": image_info("tiny:train-0123456789ab", id=_id(1), labels={}),
            f"tiny:serve-{_p(2)[7:19]}": image_info(
                f"tiny:serve-{_p(2)[7:19]}", id=_id(2), labels={LABEL_PARITY: _p(2), LABEL_ROLE: "train"}
            ),
            f"tiny:train-{_p(3)[7:19]}": image_info(
                f"tiny:train-{_p(3)[7:19]}", id=_id(3), labels={LABEL_PARITY: _p(3), LABEL_ROLE: "train"}
            ),
        }
    )
    plan = plan_prune(engine, "tiny", Kept())
    assert [d.ref for d in plan.keep] == ["tiny:serve-" + _p(2)[7:19], "tiny:train-0123456789ab"]
    assert all(d.why and d.why.startswith("not a tag imagesmith made") for d in plan.keep)
    assert [d.ref for d in plan.remove] == [f"tiny:train-{_p(3)[7:19]}"]
