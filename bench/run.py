"""`make bench`: every speed target in ONE run and ONE table of medians and ratios against
the plain Dockerfile, then where the seconds go, how the figures grow from iris to the scale
project, and a JSON copy of all of it under bench/results/.

- builds (bench_build.py): iris and the scale project (bench/projects/scale), each with imagesmith
  (both images), the plain `COPY . .` + pip Dockerfile and uv's Docker pattern: cold, after a
  one-line edit, MB over the base; BuildKit's per-step times and imagesmith's own phases;
- cold builds for linux/arm64 on this x86-64 machine (bench_platforms.py), iris and the scale
  project: the Python environment installed natively, beside the emulated path and beside the
  native linux/amd64 build, from the loopback registry's two-platform base; amd64 and arm64 are
  medians of --arm64-runs cold runs each (default 3), interleaved, the emulated path and the
  two-platform build one run each;
- the registry-cache rebuild on a clean engine (bench_remote_cache.py): iris on empty second engines,
  cold (writing a registry cache) and then from the cache, per CI recipe (`--push`, `--push
  --push-only`), same digests asserted, goal >= 2.5x faster than cold;
- a no-op `imagesmith lock` (bench_lock.py) and labels-only / full `verify` (bench_verify.py),
  through the CLI, interpreter start-up included;
- the tests' time (bench_tests.py): the unit tier measured, `make test` from its last run's record;
- with --torch, the torch project too (bench/projects/torch: torch's CUDA build, about 3 GB of CUDA
  wheels, trained on the CPU): the same builds, then one small dependency bumped (each tool's
  rebuild, the layers a push then sends, and imagesmith's serve image pushed to the loopback
  registry for real: the compressed bytes the second push sent), each image's layers over the
  base, the growth from iris to scale to torch, and train, golden, signoff and verify of
  imagesmith's images through the CLI (bench_pipeline.py). Not in a plain `make bench` (`make bench BENCH_FLAGS=--torch`): the
  first run downloads the wheels once into the host cache and takes many minutes.

Numbers are noisy on these 2-core machines, more so when others build on the same engine: the
run samples the engine's other builds and says so beside the table.

    python bench/run.py [--runs N] [--scale-runs N] [--arm64-runs N] [--quick] [--no-arm64] [--no-scale] [--no-tests]
                        [--no-remote-cache] [--only SECTION[,SECTION]] [--torch] [--torch-runs N]
                        [--torch-only] [--tools imagesmith,plain,uv]

--only: the sections to run, of builds (the projects' builds and the CLI rows), remote-cache,
arm64, tests (default: all; each --no-* drops one).

--quick: 1 run (the arm64 rows too), iris only (development). IMAGESMITH_BASE picks the base image;
IMAGESMITH_BENCH_PLATFORM_BASE the platform rows' (default: the registry's two-platform base). The CLI is always this tree's
(`python -m imagesmith`, PYTHONPATH pointing here).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import bench_build
import bench_lock
import bench_pipeline
import bench_platforms
import bench_remote_cache
import bench_tests
import bench_verify
from benchlib import (
    BASE,
    REPO,
    TOOLS,
    CommandFailed,
    Goal,
    Neighbours,
    Row,
    grid,
    remove_bench_images,
    table,
)

RESULTS = Path(__file__).resolve().parent / "results"


def _say(message: str = "") -> None:
    print(message, flush=True)


def cli_figures(iris: bench_build.Build, runs: int) -> list[Row]:
    """No-op lock of the built iris copy and verify of its serve image, through the CLI."""
    _say(f"CLI: no-op lock and verify of {iris.ref}, {runs} runs each")
    noop = bench_lock.noop_times(iris.root, runs)
    verify = bench_verify.measure(iris.ref, runs)
    return [
        Row("no-op `imagesmith lock`", "s", {"imagesmith": noop}, Goal("max", 0.15)),
        Row("`verify --labels-only`", "s", {"imagesmith": verify["labels-only"]}, Goal("max", 0.2)),
        Row("`verify` (full)", "s", {"imagesmith": verify["full"]}, Goal("max", 0.8)),
        Row("CLI start-up (`--help`)", "s", {"imagesmith": verify["cli start-up (--help)"]}),
    ]


def test_figures(runs: int) -> tuple[list[Row], str]:
    """The unit tier (measured) and `make test` (its last run's record), and what that record is."""
    _say(f"tests: the unit tier, {runs} run(s); `make test` from {bench_tests.RECORD.relative_to(REPO)}")
    unit = Row("unit tier, `make test-unit`", "s", {"imagesmith": bench_tests.unit_times(runs)}, Goal("max", 10))
    seconds, said = bench_tests.make_test_record()
    make = Row(
        "`make test`, warm caches (last run)", "s", {"imagesmith": [seconds] if seconds else []}, Goal("max", 480)
    )
    if seconds is None:
        make.note = said
    return [unit, make], said


SECTIONS = ("builds", "remote-cache", "arm64", "tests")


def sections(only: str | None, dropped: dict[str, bool]) -> tuple[str, ...]:
    """The sections a run measures: ``--only``'s (comma-separated) or all, less those a ``--no-*``
    option drops (``dropped``: section -> given). Raises ValueError for an unknown name."""
    wanted = [s.strip() for s in only.split(",") if s.strip()] if only else list(SECTIONS)
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return tuple(s for s in SECTIONS if s in wanted and not dropped.get(s))


GROWTH = ("iris", "scale", "torch")  # the projects in the order the stack grows


def growth(results: dict[str, dict[str, list[bench_build.Build]]]) -> str:
    """How each figure grows from iris to the scale project (and torch, when measured), per tool,
    and whether imagesmith's ratio to the plain Dockerfile holds (the same or better) as the stack
    grows."""
    names = [p for p in GROWTH if any((results.get(p) or {}).values())]
    first, last = names[0], names[-1]
    figures = (
        ("cold build (s)", "cold"),
        ("edit -> images (s)", "edit"),
        ("MB over the base", "mb"),
        ("layers over the base", "layer_count"),
        ("largest layer (MB)", "largest_layer"),
    )
    body = []
    for title, key in figures:
        medians = {}
        for tool in (t for t in TOOLS if all(results[p].get(t) for p in names)):
            values = [bench_build.median([_figure(b, key) for b in results[p][tool]]) or 0.0 for p in names]
            medians[tool] = values
            a, z = values[0], values[-1]
            body.append([title, tool, *(f"{v:.2f}" for v in values), f"{z / a:.1f}x" if a else "-", ""])
        if "imagesmith" in medians and "plain" in medians and all(medians["plain"]):
            ratios = [i / p for i, p in zip(medians["imagesmith"], medians["plain"])]
            verdict = "holds" if ratios[-1] <= ratios[0] * 1.05 else f"worse by {ratios[-1] - ratios[0]:.2f}"
            body.append([title, "imagesmith/plain", *(f"{r:.2f}" for r in ratios), "", verdict])
    return grid(["", "", *names, f"{last}/{first}", "ratio as the stack grows"], body)


def _figure(build: bench_build.Build, key: str) -> float:
    if key == "layer_count":
        return float(len(build.layers))
    if key == "largest_layer":
        return max((mb for mb, _ in build.layers), default=0.0)
    return getattr(build, key)


def machine() -> dict:
    def out(*argv: str) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else "unknown"

    dirty = bool(out("git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"))
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "engine": out("docker", "version", "--format", "{{.Server.Version}}"),
        "buildx": out("docker", "buildx", "version"),
        "python": platform.python_version(),
        "tree": out("git", "-C", str(REPO), "rev-parse", "--short", "HEAD") + ("+dirty" if dirty else ""),
        "base": BASE,
    }


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # SIGTERM, and SIGINT even when started in the background (where a shell ignores it), stop the
    # builds and report what was measured
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale-runs", type=int, default=None, help="runs of the scale project (default: --runs)")
    parser.add_argument("--quick", action="store_true", help="1 run, iris only")
    parser.add_argument("--no-arm64", action="store_true", help="skip the linux/arm64 rows")
    parser.add_argument(
        "--arm64-runs",
        type=int,
        default=bench_platforms.RUNS,
        help=f"cold runs of amd64 and arm64 each, interleaved, for the arm64 rows' medians (default {bench_platforms.RUNS})",
    )
    parser.add_argument("--no-scale", action="store_true", help="skip the scale project")
    parser.add_argument("--no-tests", action="store_true", help="skip the tests' figures")
    parser.add_argument(
        "--no-remote-cache", action="store_true", help="skip the registry-cache rows (empty second engines)"
    )
    parser.add_argument("--only", help=f"comma-separated sections to run: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument(
        "--torch", action="store_true", help="also the torch project (about 3 GB of CUDA wheels; a long first run)"
    )
    parser.add_argument("--torch-runs", type=int, default=1, help="runs of the torch project (default 1)")
    parser.add_argument(
        "--torch-only", action="store_true", help="the torch project alone (its builds and pipeline; no iris, CLI rows)"
    )
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help="comma-separated: imagesmith, plain, uv (default: all three)"
    )
    args = parser.parse_args()
    try:
        chosen = sections(
            args.only,
            {"arm64": args.no_arm64, "tests": args.no_tests, "remote-cache": args.no_remote_cache},
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.arm64_runs < 1:
        parser.error("--arm64-runs must be at least 1")
    runs = 1 if args.quick else args.runs
    cli_runs = 3 if args.quick else max(7, runs)
    projects = ["iris"] if args.quick or args.no_scale else ["iris", "scale"]
    projects += ["torch"] if args.torch else []
    projects = ["torch"] if args.torch_only else projects
    if args.torch_only:  # the torch project alone: not iris's registry-cache rows
        chosen = tuple(s for s in chosen if s != "remote-cache")
    token = uuid.uuid4().hex[:8]
    started = dt.datetime.now(dt.timezone.utc)
    facts = machine()
    _say(f"imagesmith bench {started:%Y-%m-%d %H:%M} UTC, tree {facts['tree']}, {runs} run(s), base {BASE}")
    results: dict[str, dict[str, list[bench_build.Build]]] = {}
    cli_rows: list[Row] = []
    test_rows: list[Row] = []
    test_record = "not measured"
    pipeline: list[bench_pipeline.Stage] = []
    arm64 = [Row("linux/arm64 cold builds", "s", note="not measured" if "arm64" in chosen else "skipped")]
    remote: list[Row] = []
    if "remote-cache" not in chosen:
        remote = [Row("iris: registry-cache rebuild on an empty engine", "s", note="skipped")]
    interrupted = False
    failed = ""
    with Neighbours() as neighbours, tempfile.TemporaryDirectory(prefix="imagesmith-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            for name in projects if "builds" in chosen else ():
                _say(f"builds: {name}")
                n = args.scale_runs if name == "scale" and args.scale_runs else runs
                n = args.torch_runs if name == "torch" else n
                results[name] = {}
                tools = tuple(t for t in args.tools.split(",") if t in TOOLS)
                bench_build.measure(bench_build.PROJECTS[name], n, tmp, tools, token=token, results=results[name])
                if name == "iris" and results["iris"].get("imagesmith"):
                    cli_rows = cli_figures(results["iris"]["imagesmith"][0], cli_runs)
                if name == "torch" and results["torch"].get("imagesmith"):
                    built = results["torch"]["imagesmith"][0]
                    _say(f"torch: train, golden, signoff, verify of {built.ref} (torch's CUDA build on the CPU)")
                    try:
                        pipeline = bench_pipeline.run(built.root, built.ref.rsplit(":", 1)[0], _say)
                    except Exception as exc:  # noqa: BLE001 (the builds' figures are kept and reported)
                        _say(f"torch pipeline FAILED: {type(exc).__name__}: {exc}")
                        pipeline = [bench_pipeline.Stage("pipeline", None, f"{type(exc).__name__}: {exc}")]
            if "remote-cache" in chosen:
                _say(f"registry cache: iris on empty second engines, {runs} run(s) per recipe")
                try:
                    remote = bench_remote_cache.measure(runs, tmp, token)
                except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:  # a second engine
                    remote = [Row("iris: registry-cache rebuild on an empty engine", "s", note=f"not available: {exc}")]
            if "tests" in chosen:
                test_rows, test_record = test_figures(1 if args.quick else 3)
            if "arm64" in chosen:
                arm64 = [
                    row
                    for name in projects
                    if name in ("iris", "scale")
                    for row in bench_platforms.measure(
                        name, bench_build.PROJECTS[name].source, tmp, token, runs=1 if args.quick else args.arm64_runs
                    )
                ]
        except KeyboardInterrupt:
            interrupted = True
            _say("interrupted: reporting what was measured")
        except (CommandFailed, subprocess.CalledProcessError) as exc:
            failed = str(exc)
            _say(f"FAILED: {failed}\nreporting what was measured before")
        finally:
            remove_bench_images(token)
    rows = [
        r
        for name, res in results.items()
        if any(res.values())
        for r in bench_build.rows(bench_build.PROJECTS[name], res)
    ]
    rows += bench_pipeline.rows("torch", pipeline)
    rows += [*remote, *arm64, *cli_rows, *test_rows]
    ended = dt.datetime.now(dt.timezone.utc)

    _say()
    _say(
        f"imagesmith bench, {started:%Y-%m-%d %H:%M}-{ended:%H:%M} UTC; {facts['cores']} cores, "
        f"Docker {facts['engine']}, tree {facts['tree']}; medians of {runs} run(s)"
        + (f" (scale: {args.scale_runs})" if args.scale_runs and results.get("scale") else "")
        + f" (CLI rows: {cli_runs})"
    )
    _say(table(rows))
    _say(f"`make test`: {test_record}")
    _say(neighbours.describe())
    _say()
    _say("Where the seconds go (medians):")
    for name, res in results.items():
        _say(f"[{name}]")
        _say(bench_build.breakdown(res))
    if results.get("torch"):
        _say()
        _say("Layers over the base (MB, the first run's; where the gigabytes are):")
        for name, res in results.items():
            _say(f"[{name}]")
            _say(bench_build.layers(res))
    if interrupted or failed:
        _say("INCOMPLETE: the table holds only what was measured before the run stopped")
    grown = [p for p in GROWTH if results.get(p)]
    if len(grown) >= 2 and grown[0] == "iris":
        _say()
        _say(f"From {' to '.join(grown)} (medians):")
        _say(growth(results))

    document = {
        "bench": "imagesmith",
        "started": started.isoformat(timespec="seconds"),
        "ended": ended.isoformat(timespec="seconds"),
        "machine": facts,
        "runs": runs,
        "scale_runs": len(results.get("scale", {}).get("imagesmith", [])) or None,
        "torch": bool(results.get("torch")),
        "cli_runs": cli_runs,
        "arm64_runs": (1 if args.quick else args.arm64_runs) if "arm64" in chosen else None,
        "quick": args.quick,
        "sections": list(chosen),
        "other_builds_on_engine": neighbours.as_json(),
        "rows": [row.as_json() for row in rows],
        "builds": {name: bench_build.as_json(res) for name, res in results.items()},
        "torch_pipeline": bench_pipeline.as_json(pipeline) or None,
        "table": table(rows, markdown=True),
        "make_test_record": test_record,
        "growth": growth(results) if len(grown) >= 2 and grown[0] == "iris" else None,
        "interrupted": interrupted,
        "failed": failed or None,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{started:%Y-%m-%dT%H%M}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    _say(f"\nwrote {out}")
    return 1 if failed or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
