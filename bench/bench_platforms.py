"""Cold builds for another platform (issue 27): a project built for linux/arm64 on this x86-64
machine with its Python environment installed natively (the default), beside the same build with
it installed under QEMU (`--python-env target`) and beside the native linux/amd64 build. Each run
is one cold `imagesmith build` (both images, `--no-cache`, a wheel cache of its own) of a fresh copy
of the project, from the loopback registry's two-platform base (the lock pins its amd64 image
for the arm64 build: `base.hosts`). The goal: arm64 at most 1.2x the native amd64 time, judged
on the medians of ``--runs`` cold runs of each (default 3), amd64 and arm64 interleaved (amd64,
arm64, amd64, arm64, ...) so that a change of load hits both. Then the two-platform build
(`platforms: [linux/amd64, linux/arm64]`, both images, pushed to the loopback registry): at most
2.5x the native amd64 time; it and the emulated path run once (each row says how many runs).

    python bench/bench_platforms.py [--project iris|scale] [--runs N] [--no-both]

IMAGESMITH_BENCH_PLATFORM_BASE names the base (default: the registry's two-platform base that
scripts/setup-engine.sh pushes).
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import uuid
from pathlib import Path

from benchlib import (
    IMAGESMITH,
    CommandFailed,
    Goal,
    Row,
    fresh_copy,
    imagesmith_env,
    median,
    remove_bench_images,
    timed,
)

BASE = os.environ.get("IMAGESMITH_BENCH_PLATFORM_BASE", "127.0.0.1:5000/imagesmith-base:bookworm-py311")
TIMEOUT = 3600.0
REGISTRY = BASE.split("/", 1)[0]  # where the two-platform build pushes
BOTH = "linux/amd64,linux/arm64"
GOALS = {"linux/arm64": 1.2, BOTH: 2.5}  # at most this many times the native amd64 build
# (label, platform(s), --python-env)
BUILDS = (
    ("linux/amd64, native", "linux/amd64", "build"),
    ("linux/arm64, Python environment installed natively", "linux/arm64", "build"),
    ("linux/arm64, emulated (--python-env target)", "linux/arm64", "target"),
    ("both platforms, pushed", BOTH, "build"),
)
RUNS = 3  # cold runs of each build judged by the arm64 goal (``MEDIAN_OF``); bench/run.py --arm64-runs
ONCE_RUNS = 1  # ... of the others (the emulated path, the two-platform build): time
MEDIAN_OF = {BUILDS[0][0], BUILDS[1][0]}


def _say(message: str) -> None:
    print(message, flush=True)


def cold(source: Path, platform: str, python_env: str, tmp: Path, token: str, run: int = 0) -> tuple[float | None, str]:
    """One cold build of a fresh copy of ``source`` for ``platform`` (its copy, wheel cache and tag
    of its own for each ``run``): (seconds, "") or (None, why)."""
    arch = "both" if platform == BOTH else platform.split("/")[1]
    name = f"{source.name}-{arch}-{python_env}-{run}"
    root = fresh_copy(source, tmp / name)
    spec = root / "imagesmith.yaml"
    text = re.sub(r"(?m)^platforms?:.*\n", "", spec.read_text())
    text = re.sub(r"(?m)^base:.*$", f"base: {BASE}", text)
    wanted = f"platforms: [{platform.replace(',', ', ')}]" if platform == BOTH else f"platform: {platform}"
    spec.write_text(text + wanted + "\n")
    argv = [*IMAGESMITH, "build", "-p", str(root), "--no-cache", "--progress", "plain", "--python-env", python_env]
    argv += ["--tag", f"imagesmith-bench-{token}/{name}", "--cache-dir", str(tmp / f"cache-{name}")]
    if platform == BOTH:
        argv += ["--push", f"{REGISTRY}/imagesmith-bench-{token}/{name}"]
    env = imagesmith_env(IMAGESMITH_BASE=BASE, PIP_NO_CACHE_DIR="1", UV_NO_CACHE="1")
    try:
        return timed(argv, root, env, timeout=TIMEOUT).seconds, ""
    except CommandFailed as exc:
        return None, f"not available: {exc.first_error()[:160]}"


def runs_of(builds, runs: int, once: int = ONCE_RUNS) -> dict[str, int]:
    """How many cold runs each build gets: ``runs`` for the native amd64 and the native-path arm64
    builds (the ratio judged by issue 27's goal is their medians'), ``once`` (at most ``runs``)
    for the emulated path and the two-platform build, each a minute or more for scale. Pure."""
    return {label: runs if label in MEDIAN_OF else min(once, runs) for label, _platform, _env in builds}


def schedule(builds, counts: dict[str, int]) -> list[tuple[int, tuple[str, str, str]]]:
    """The order of the cold builds: round by round, each round one run of every build that still
    has one, in ``builds``' order (amd64, arm64, ...), so that a change of load while the section
    runs hits the amd64 and the arm64 builds alike. ``(round, build)`` pairs. Pure."""
    order = []
    for i in range(max(counts.values(), default=0)):
        order += [(i, build) for build in builds if i < counts[build[0]]]
    return order


def figure(project: str, label: str, samples: int) -> str:
    """A row's name: the build and how many runs its number is the median of."""
    return f"{project}: cold build, {label} ({f'median of {samples}' if samples > 1 else 'one run'})"


def measure(project: str, source: Path, tmp: Path, token: str, both: bool = True, runs: int = RUNS) -> list[Row]:
    """The cold builds of ``source``, interleaved (``schedule``), as rows of their samples: each
    other row against the native amd64 build's median (its ``reference``), with the goal where
    issue 27 sets one (its verdict computed by Goal from the medians)."""
    builds = [b for b in BUILDS if both or b[1] != BOTH]
    counts = runs_of(builds, runs)
    samples: dict[str, list[float]] = {label: [] for label, _p, _e in builds}
    notes: dict[str, str] = {}
    for i, (label, platform, python_env) in schedule(builds, counts):
        if label in notes:  # failed once: not again
            continue
        _say(f"builds: {project} for {label} (cold run {i + 1} of {counts[label]})")
        took, note = cold(source, platform, python_env, tmp, token, run=i)
        if took is None:
            notes[label] = note
        else:
            samples[label].append(took)
    rows = [
        Row(figure(project, label, counts[label]), "s", {"imagesmith": samples[label]}, note=notes.get(label, ""))
        for label, _p, _e in builds
    ]
    return against_native(rows, builds, {label: median(samples[label]) for label in samples})


def against_native(rows: list[Row], builds, seconds: dict[str, float | None]) -> list[Row]:
    """Each row after the native amd64 one compared with it (``seconds``: each build's median):
    a goal (``GOALS``) where there is one for the row's platform(s) and the build's path (the
    emulated one has none), else its ratio as a note. Pure."""
    native = seconds[BUILDS[0][0]]
    for row, (label, platform, python_env) in zip(rows, builds):
        if platform == BUILDS[0][1] or row.note:
            continue
        row.reference = native
        if python_env == "build":
            row.goal = Goal("times", GOALS[platform], of="native amd64")
        elif seconds[label] and native:
            row.note = f"{seconds[label] / native:.2f}x native amd64"
    return rows


def main() -> int:
    from bench_build import PROJECTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", choices=sorted(PROJECTS), default="iris")
    parser.add_argument("--no-both", action="store_true", help="skip the two-platform build")
    parser.add_argument(
        "--runs", type=int, default=RUNS, help=f"cold runs of amd64 and arm64, interleaved (default {RUNS})"
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    token = uuid.uuid4().hex[:8]
    try:
        with tempfile.TemporaryDirectory(prefix="imagesmith-bench-") as tmp:
            rows = measure(
                args.project, PROJECTS[args.project].source, Path(tmp), token, both=not args.no_both, runs=args.runs
            )
    finally:
        remove_bench_images(token)
    for row in rows:
        took = row.median("imagesmith")
        each = ", ".join(f"{s:.1f}" for s in row.values.get("imagesmith", []))
        _say(f"{row.figure}: {f'{took:.1f} s' if took else '-'} ({each}) {row.verdict()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
