"""The bench's pure helpers (bench/benchlib.py): BuildKit log parsing, imagesmith's build phases,
goals, the table, and which builds on the engine are someone else's. No timing is asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from benchlib import Goal, Row, compile_tree, foreign_builds, parse_steps, phases, table  # noqa: E402

RAW = """\
#0 building with "default" instance using docker driver

#1 [internal] load build definition from Dockerfile.plain
#1 transferring dockerfile: 391B done
#1 DONE 0.1s

#5 [1/3] WORKDIR /app
#5 CACHED

#7 [3/3] RUN python3 -m pip install --no-cache-dir -r requirements.txt
#7 1.203 Collecting scikit-learn==1.7.2
#7 DONE 27.4s

#8 exporting to image
#8 exporting layers 12.0s done
#8 DONE 14.6s
"""

# imagesmith build --progress plain (imagesmith/progress.py), as it came from a real bake
LABELLED = """\
#0 building with "default" instance using docker driver
==> [train internal] load build definition from Dockerfile
    [train internal] done in 0.1s
==> [serve shared 1/5] RUN --mount=type=tmpfs,target=/tmp     touch /tmp/.imagesmith-mark
    [serve shared 1/5] done in 2.2s
==> [serve source 1/3] COPY [app, /app/app]
    [serve source 1/3] CANCELED
==> [serve source 1/3] COPY [app, /app/app]
    [serve source 1/3] done in 0.4s
==> [serve context wheels] load .dockerignore
    [serve context wheels] done in 0.0s
==> [serve shared 2/5] RUN --network=none     --mount=type=tmpfs,target=/tmp
==> [serve context wheels] load from client
    [serve context wheels] done in 2.9s
    [serve shared 2/5] done in 26.8s
==> [train imagesmith-runtime 1/1] COPY [.imagesmith/imagesmith_runtime-0.whl]
    [train imagesmith-runtime 1/1] cached
    [serve shared 2/5] done in 26.8s
==> [train shared 4/5] RUN --network=none
    [train shared 4/5] done in 2.1s
==> [train] exporting to image
==> [serve] exporting to image
    [train] done in 21.9s
    [serve] done in 22.0s
"""


def test_parse_steps_raw_buildkit_log():
    steps = {s.name: s for s in parse_steps(RAW.splitlines(), width=200)}
    assert steps["[3/3] RUN python3 -m pip install --no-cache-dir -r requirements.txt"].seconds == 27.4
    assert steps["exporting to image"].seconds == 14.6
    assert steps["[1/3] WORKDIR /app"].cached
    assert not any("internal" in name or "building with" in name for name in steps)


def test_parse_steps_imagesmith_labelled_log():
    steps = parse_steps(LABELLED.splitlines())
    by_name = {s.name.split("]")[0] + "]": s for s in steps}
    # a step both targets share is one step, reported twice, counted once
    assert by_name["[shared 2/5]"].seconds == 26.8
    assert by_name["[shared 4/5]"].seconds == 2.1
    assert by_name["[source 1/3]"].seconds == 0.4  # the cancelled attempt is not a time
    assert by_name["[imagesmith-runtime 1/1]"].cached
    assert by_name["[train]"].seconds == 21.9 and by_name["[serve]"].seconds == 22.0
    assert not any("internal" in s.name for s in steps)
    # one label, two steps: an end line ends the step last opened under its label
    wheels = {s.name: s.seconds for s in steps if s.name.startswith("[context wheels]")}
    assert wheels == {"[context wheels] load .dockerignore": 0.0, "[context wheels] load from client": 2.9}
    assert steps[0].name.startswith("[shared 1/5] RUN")


def test_phases_from_timed_progress_lines():
    events = [
        (0.4, "imagesmith: pinning base image base:1"),
        (0.9, "imagesmith: resolving requirements with uv for Python 3.11 on linux/amd64"),
        (2.0, "imagesmith: locked (requirements changed)"),
        (2.1, "imagesmith: rendered Dockerfile"),
        (2.2, "imagesmith: downloading 2 wheel(s) for Python 3.11 on linux/amd64"),
        (3.0, "imagesmith: fetched a.whl (1.0 MB)"),
        (7.2, "imagesmith: fetched b.whl (9.0 MB)"),
        (7.3, "imagesmith: building train and serve"),
        (8.0, "==> [serve shared 1/5] RUN ..."),
    ]
    got = phases(events, end=30.3)
    assert got["start-up"] == 0.4
    assert round(got["lock"], 6) == 1.6
    assert round(got["host wheel download"], 6) == 5.0
    assert round(got["BuildKit (bake)"], 6) == 23.0
    # a fresh lock and a full wheel cache: only start-up and the bake
    assert set(phases([(0.3, "imagesmith: building train and serve")], end=1.0)) == {"start-up", "BuildKit (bake)"}


def test_goals_and_verdicts():
    slow = Row("edit", "s", {"imagesmith": [2.5, 2.0, 3.0]}, Goal("max", 1.5))
    assert slow.median("imagesmith") == 2.5 and slow.verdict() == "missed by 1.00 s"
    assert Row("lock", "s", {"imagesmith": [0.1, 0.2, 0.15]}, Goal("max", 0.15)).verdict() == "met"
    assert Row("arm", "s", note="not available: error: no").verdict() == "not available: error: no"
    assert Row("x", "s", {}, Goal("max", 1.0)).verdict() == "not measured"


def test_at_or_under_uvs_pattern_is_judged_from_the_medians_of_the_same_run():
    goal = Goal("peer", 1.0, of="uv")
    assert goal.describe("s") == "<= uv's pattern"
    under = Row("cold", "s", {"imagesmith": [19.0, 19.5, 30.0], "plain": [24.5], "uv": [20.5, 20.0, 21.0]}, goal)
    assert under.verdict() == "met: 0.95x"
    equal = Row("cold", "s", {"imagesmith": [20.5], "uv": [20.5]}, goal)
    assert equal.verdict() == "met: 1.00x"
    over = Row("edit", "s", {"imagesmith": [1.57], "plain": [24.8], "uv": [1.05]}, goal)
    assert over.verdict() == "missed by 0.52 s: 1.50x"
    # the same numbers with uv slower turn the verdict: nothing is written down beforehand
    over.values["uv"] = [1.6]
    assert over.verdict() == "met: 0.98x"
    assert Row("cold", "s", {"imagesmith": [20.0], "plain": [30.0]}, goal).verdict() == "not measured: no uv's pattern"
    assert Goal("peer", 0.7, of="plain").describe("s") == "<= 0.7x plain Dockerfile"


def test_the_smallest_image_and_goals_against_a_reference_measured_in_the_same_run():
    least = Row("MB", "MB", {"imagesmith": [77.7], "plain": [87.4], "uv": [105.1]}, Goal("least"))
    assert least.goal is not None and least.goal.describe("MB") == "smallest" and least.verdict() == "met"
    least.values["plain"] = [70.0]
    assert least.verdict() == "missed by 7.70 MB"
    arm = Goal("times", 1.2, of="native amd64")
    assert arm.describe("s") == "<= 1.2x native amd64"
    assert Row("arm64", "s", {"imagesmith": [17.1]}, arm, reference=18.1).verdict() == "met: 0.94x"
    assert Row("arm64", "s", {"imagesmith": [54.2]}, arm, reference=32.4).verdict() == "missed: 1.67x"
    assert Row("arm64", "s", {"imagesmith": [54.2]}, arm).verdict() == "not measured: no native amd64"
    cache = Goal("speedup", 2.5, of="cold")
    assert cache.describe("s") == ">= 2.5x faster than cold"
    assert Row("cached", "s", {"imagesmith": [20.1, 19.0, 25.0]}, cache, reference=33.3).verdict() == "missed: 1.66x"
    assert Row("cached", "s", {"imagesmith": [8.0, 9.0, 12.0]}, cache, reference=33.3).verdict() == "met: 3.70x"
    assert Row("cached", "s", {"imagesmith": [13.32]}, cache, reference=33.3).verdict() == "met: 2.50x"
    assert Row("cached", "s", {}, cache, reference=33.3).verdict() == "not measured"
    with pytest.raises(ValueError):
        Goal("ratio", 0.7).describe("s")


def test_each_build_row_carries_issue_28s_goal_and_the_arm64_rows_issue_27s():
    import bench_build
    import bench_platforms

    builds = {
        "imagesmith": [bench_build.Build("imagesmith", Path("."), "x", cold=19.5, edit=1.57, mb=77.7)],
        "plain": [bench_build.Build("plain", Path("."), "x", cold=24.5, edit=24.8, mb=87.4)],
        "uv": [bench_build.Build("uv", Path("."), "x", cold=20.5, edit=1.05, mb=105.1)],
    }
    rows = bench_build.rows(bench_build.PROJECTS["iris"], builds)
    goals = {r.figure.split(": ", 1)[1]: (r.goal.describe(r.unit) if r.goal else "", r.verdict()) for r in rows}
    assert goals["cold build, both images"] == ("<= uv's pattern", "met: 0.95x")
    assert goals["one-line edit -> images"] == ("<= uv's pattern", "missed by 0.52 s: 1.50x")
    assert goals["size over the base"] == ("smallest", "met")
    labels = [b[0] for b in bench_platforms.BUILDS]
    seconds = dict(zip(labels, (18.1, 17.1, 33.6, 36.7)))
    platform_rows = [Row(label, "s", {"imagesmith": [s]}) for label, s in seconds.items()]
    judged = bench_platforms.against_native(platform_rows, list(bench_platforms.BUILDS), seconds)
    assert [r.goal.describe("s") if r.goal else "" for r in judged] == [
        "",
        "<= 1.2x native amd64",
        "",
        "<= 2.5x native amd64",
    ]
    assert [r.verdict() for r in judged] == ["", "met: 0.94x", "1.86x native amd64", "met: 2.03x"]


def test_the_arm64_section_interleaves_amd64_and_arm64_and_judges_their_medians():
    import bench_platforms

    builds = list(bench_platforms.BUILDS)
    amd64, arm64, emulated, both = (b[0] for b in builds)
    counts = bench_platforms.runs_of(builds, 3)
    assert counts == {amd64: 3, arm64: 3, emulated: 1, both: 1}
    assert bench_platforms.runs_of(builds, 1) == {amd64: 1, arm64: 1, emulated: 1, both: 1}
    order = [(i, b[0]) for i, b in bench_platforms.schedule(builds, counts)]
    assert order == [(0, amd64), (0, arm64), (0, emulated), (0, both), (1, amd64), (1, arm64), (2, amd64), (2, arm64)]
    assert bench_platforms.figure("scale", arm64, 3).endswith("(median of 3)")
    assert bench_platforms.figure("scale", emulated, 1).endswith("(one run)")
    # the ratio is median over median, not one run over one run: the fast last arm64 run over the
    # slow first amd64 run would say 0.80x (36.0 / 45.0), the slow first arm64 run over the last
    # amd64 run 1.30x (47.7 / 36.8), the last of each 0.98x
    samples = {amd64: [45.0, 30.0, 36.8], arm64: [47.7, 40.1, 36.0], emulated: [71.3], both: [75.3]}
    rows = [Row(label, "s", {"imagesmith": v}) for label, v in samples.items()]
    medians = {label: Row("", "s", {"imagesmith": v}).median("imagesmith") for label, v in samples.items()}
    judged = bench_platforms.against_native(rows, builds, medians)
    assert [r.verdict() for r in judged] == ["", "met: 1.09x", "1.94x native amd64", "met: 2.05x"]
    assert judged[1].as_json()["samples"] == {"imagesmith": [47.7, 40.1, 36.0]}
    assert judged[1].as_json()["reference"] == 36.8


def test_the_arm64_section_keeps_every_run_and_stops_a_build_that_failed(monkeypatch, tmp_path):
    import bench_platforms

    calls = []
    took = {"linux/amd64": [30.0, 31.0, 29.0], "linux/arm64": [33.0, 35.0, 34.0]}

    def cold(source, platform, python_env, tmp, token, run=0):
        calls.append((platform, python_env, run))
        if python_env == "target":
            return None, "not available: boom"
        return (took[platform][run] if platform in took else 70.0), ""

    monkeypatch.setattr(bench_platforms, "cold", cold)
    rows = bench_platforms.measure("iris", tmp_path, tmp_path, "t", runs=3)
    assert calls[:4] == [
        ("linux/amd64", "build", 0),
        ("linux/arm64", "build", 0),
        ("linux/arm64", "target", 0),
        (bench_platforms.BOTH, "build", 0),
    ]
    assert calls[4:] == [("linux/amd64", "build", 1), ("linux/arm64", "build", 1)] + [
        ("linux/amd64", "build", 2),
        ("linux/arm64", "build", 2),
    ]
    assert [r.values["imagesmith"] for r in rows] == [[30.0, 31.0, 29.0], [33.0, 35.0, 34.0], [], [70.0]]
    assert [r.verdict() for r in rows] == ["", "met: 1.13x", "not available: boom", "met: 2.33x"]


def test_table_has_one_line_per_row_with_medians_and_ratios():
    rows = [
        Row("iris: cold", "s", {"imagesmith": [20.0], "plain": [40.0], "uv": [30.0]}, Goal("peer", 1.0, of="uv")),
        Row("iris: MB", "MB", {"imagesmith": [88.0], "plain": [88.0], "uv": [90.0]}),
    ]
    text = table(rows).splitlines()
    assert len(text) == 3
    assert "0.50" in text[1] and "0.75" in text[1] and "0.67" in text[1]
    assert "<= uv's pattern" in text[1] and text[1].rstrip().endswith("met: 0.67x")
    md = table(rows, markdown=True).splitlines()
    assert md[0].startswith("| ") and md[1].startswith("|---") and len(md) == 4
    assert rows[0].as_json()["ratio_to_plain"] == {"imagesmith": 0.5, "uv": 0.75}
    assert rows[0].as_json()["goal"] == "<= uv's pattern" and rows[0].as_json()["verdict"] == "met: 0.67x"


def test_foreign_builds_are_the_ones_this_bench_did_not_start():
    procs = {
        1: (0, "init"),
        100: (1, "python3 bench/run.py"),
        101: (100, "python3 -m imagesmith build"),
        102: (101, "docker buildx bake --progress=plain -f bake.json"),
        200: (1, "pytest"),
        201: (200, "docker buildx build --load ."),
        202: (200, "docker buildx ls"),
        300: (299, "docker buildx build ."),  # parent gone
    }
    assert foreign_builds(procs, me=100) == [201, 300]


def test_make_test_is_reported_from_its_record_only_when_the_whole_suite_passed(tmp_path, monkeypatch):
    import json

    import bench_tests

    record = tmp_path / "test-times.json"
    monkeypatch.setattr(bench_tests, "RECORD", record)
    assert bench_tests.make_test_record() == (None, "no record: run `make test` first")
    good = {"make_seconds": 291.4, "ended": "2026-11-27T19:02:11+00:00", "tree": "abc1234", "workers": 4}
    good.update(selected="all", passed=670, failed=0, errors=0)
    record.write_text(json.dumps(good))
    seconds, said = bench_tests.make_test_record()
    assert seconds == 291.4 and "2026-11-27 19:02 UTC, tree abc1234, 670 passed on 4 workers" in said
    record.write_text(json.dumps(dict(good, failed=1)))
    assert bench_tests.make_test_record()[0] is None and "1 failed" in bench_tests.make_test_record()[1]
    record.write_text(json.dumps(dict(good, selected="tests/unit")))
    assert bench_tests.make_test_record() == (
        None,
        "last `make test` 2026-11-27 19:02 UTC, tree abc1234 ran a selection (tests/unit), not the whole suite",
    )


def test_the_cli_is_timed_with_its_bytecode_written_even_where_writing_it_is_forbidden(tmp_path, monkeypatch):
    import importlib.util

    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    sources = [package / "__init__.py", package / "sub" / "__init__.py", package / "sub" / "mod.py"]
    for source in sources:
        source.write_text("VALUE = 1\n")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    compile_tree(package)
    assert all(Path(importlib.util.cache_from_source(str(s))).is_file() for s in sources)


def test_a_push_sends_only_the_layers_the_registry_lacks():
    from benchlib import new_bytes, pair_layers

    before = pair_layers(["sha256:base", "sha256:cuda", "sha256:venv"], [80_000_000, 3_000_000_000, 40_000_000])
    after = pair_layers(["sha256:base", "sha256:cuda", "sha256:venv2"], [80_000_000, 3_000_000_000, 41_000_000])
    assert before is not None and after is not None
    assert new_bytes(before, after) == 41_000_000
    assert new_bytes(after, after) == 0
    # a step that added an empty layer: the history's sizes no longer pair with the layers
    assert pair_layers(["sha256:a", "sha256:b"], [5]) is None


def test_registry_manifests_give_their_blobs_and_the_platform_image():
    from benchlib import manifest_blobs, platform_manifest

    manifest = {
        "config": {"digest": "sha256:c", "size": 1500},
        "layers": [{"digest": "sha256:l1", "size": 30}, {"digest": "sha256:l2", "size": 2_000_000}],
    }
    assert manifest_blobs(manifest) == [("sha256:c", 1500), ("sha256:l1", 30), ("sha256:l2", 2_000_000)]
    index = {
        "manifests": [
            {"digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}},
            {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
        ]
    }
    assert platform_manifest(index) == "sha256:amd"
    assert platform_manifest(index, "linux/arm64") == "sha256:arm"
    assert platform_manifest({"manifests": []}) is None


def test_the_bump_rewrites_one_requirement_and_refuses_a_missing_line(tmp_path):
    from bench_build import bump_requirements
    from benchlib import CommandFailed

    (tmp_path / "requirements.txt").write_text("torch==2.14.1\nuvicorn==0.34.0\n")
    bump_requirements(tmp_path, ("uvicorn==0.34.0", "uvicorn==0.34.1"))
    assert (tmp_path / "requirements.txt").read_text() == "torch==2.14.1\nuvicorn==0.34.1\n"
    with pytest.raises(CommandFailed, match="no line 'uvicorn==0.34.0'"):
        bump_requirements(tmp_path, ("uvicorn==0.34.0", "uvicorn==0.34.1"))


def test_the_pipeline_runs_train_golden_signoff_verify_in_order_and_a_failure_is_a_row_of_its_own(tmp_path):
    import bench_pipeline

    steps = bench_pipeline.steps(tmp_path, "imagesmith-bench-x/torch-imagesmith-0")
    assert [name for name, _ in steps] == ["run train", "golden", "signoff", "verify"]
    verify = dict(steps)["verify"]
    assert verify[:2] == ["verify", "imagesmith-bench-x/torch-imagesmith-0:serve"]
    assert "--signoff" in verify and "--model" in verify and "--lock" in verify and "--pair" in verify
    rows = bench_pipeline.rows(
        "torch",
        [bench_pipeline.Stage("run train", 41.5, "stamped"), bench_pipeline.Stage("golden", None, "error: boom")],
    )
    assert [r.figure for r in rows] == ["torch: `imagesmith run train`", "torch: `imagesmith golden`"]
    assert rows[0].median("imagesmith") == 41.5 and rows[0].verdict() == ""
    assert rows[1].values["imagesmith"] == [] and rows[1].verdict() == "FAILED: error: boom"


def test_the_sections_a_run_measures():
    import run

    assert run.sections(None, {}) == ("builds", "remote-cache", "arm64", "tests")
    assert run.sections("remote-cache", {}) == ("remote-cache",)
    assert run.sections("tests, builds", {"tests": True}) == ("builds",)
    assert run.sections(None, {"remote-cache": True, "arm64": False}) == ("builds", "arm64", "tests")
    with pytest.raises(ValueError, match="unknown section"):
        run.sections("remote", {})


def test_the_registry_cache_row_is_judged_against_the_cold_median_unless_a_guarantee_broke():
    import bench_remote_cache

    recipe = bench_remote_cache.RECIPES[1]
    cold, cached = bench_remote_cache.judged(recipe, [33.0, 35.0, 31.0], [5.0, 6.0, 4.5], [])
    assert cold.goal is None and cold.median("imagesmith") == 33.0
    assert cached.goal is not None and cached.goal.describe("s") == ">= 2.5x faster than cold"
    assert cached.reference == 33.0 and cached.verdict() == "met: 6.60x"
    slow = bench_remote_cache.judged(recipe, [33.3], [20.1], [])[1]
    assert slow.verdict() == "missed: 1.66x"
    broken = bench_remote_cache.judged(
        recipe, [33.0], [5.0], ["missed: not the cold build's digests", "missed: not the cold build's digests"]
    )[1]
    assert broken.verdict() == "missed: not the cold build's digests"


# Three Solve handlers as dockerd 26.1's goroutine dump shows them (frames trimmed from a real
# dump of an edit's bake): one exporting, one inside the history record with a helper goroutine
# walking cache records for the record's provenance, one waiting for the history queue's lock.
GOROUTINES = """\
goroutine 11 [select]:
github.com/moby/buildkit/exporter/containerimage.(*imageExporterInstance).Export(0xc0, {0x5})
\tgithub.com/moby/buildkit/exporter/containerimage/export.go:200 +0x1
github.com/moby/buildkit/control.(*Controller).Solve(0xc0, {0x5}, 0xc1)
\tgithub.com/moby/buildkit/control/control.go:467 +0x1265

goroutine 12031 [sync.WaitGroup.Wait]:
golang.org/x/sync/errgroup.(*Group).Wait(0xc002757140)
\tgolang.org/x/sync/errgroup/errgroup.go:56 +0x1e
github.com/moby/buildkit/solver/llbsolver.(*Solver).recordBuildHistory.func1(0xc0, {0xc0, 0x1}, {0x0, 0x0})
\tgithub.com/moby/buildkit/solver/llbsolver/solver.go:361 +0x93d
github.com/moby/buildkit/control.(*Controller).Solve(0xc0, {0x5}, 0xc1)
\tgithub.com/moby/buildkit/control/control.go:467 +0x1265

goroutine 15035 [select]:
github.com/moby/buildkit/cache.(*immutableRef).GetRemotes(0xc0, {0x5})
\tgithub.com/moby/buildkit/cache/remote.go:38 +0xd1
github.com/moby/buildkit/solver/llbsolver.NewProvenanceCreator.func1({0x5})
\tgithub.com/moby/buildkit/solver/llbsolver/provenance.go:413 +0x1
created by golang.org/x/sync/errgroup.(*Group).Go in goroutine 12031
\tgolang.org/x/sync/errgroup/errgroup.go:75 +0x96

goroutine 12165 [sync.Mutex.Lock]:
sync.(*Mutex).Lock(...)
\tsync/mutex.go:46
github.com/moby/buildkit/solver/llbsolver.(*HistoryQueue).Update(0xc0, {0x5}, 0xc1)
\tgithub.com/moby/buildkit/solver/llbsolver/history.go:565 +0x1
github.com/moby/buildkit/solver/llbsolver.(*Solver).recordBuildHistory.func1(0xc0, {0xc0, 0x1}, {0x0, 0x0})
\tgithub.com/moby/buildkit/solver/llbsolver/solver.go:378 +0x93d
github.com/moby/buildkit/control.(*Controller).Solve(0xc0, {0x5}, 0xc1)
\tgithub.com/moby/buildkit/control/control.go:467 +0x1265

goroutine 177 [sleep, 1 minutes]:
time.Sleep(0x3b9aca00)
\truntime/time.go:338 +0x165
"""


def test_history_probe_sorts_solve_handlers_by_what_they_wait_on():
    from history_probe import report, solve_states

    states = solve_states(GOROUTINES)
    assert states == {
        "11": "export",
        "12031": "record: provenance (walks the build's cache records)",
        "12165": "record: history queue",
    }
    lines = report(2.0, {"12031": [(0.5, "export"), (1.0, states["12031"]), (1.4, "record: history queue")]})
    assert "in the history record from 1.00 s (0.40 s before the handler's end; 2 of 3 samples)" in lines[1]
    assert lines[2:] == [
        "         1 samples: provenance (walks the build's cache records)",
        "         1 samples: history queue",
    ]
