"""Cold builds for another platform (issue 27): a project built for linux/arm64 on this x86-64
machine with its Python environment installed natively (the default), beside the same build with
it installed under QEMU (`--python-env target`) and beside the native linux/amd64 build. Each is
one cold `imagesmith build` (both images, `--no-cache`, a wheel cache of its own) of a fresh copy
of the project, from the loopback registry's two-platform base (the lock pins its amd64 image
for the arm64 build: `base.hosts`). The goal: arm64 at most 1.2x the native amd64 time. Then
the two-platform build (`platforms: [linux/amd64, linux/arm64]`, both images, pushed to the
loopback registry): at most 2.5x the native amd64 time.

    python bench/bench_platforms.py [--project iris|scale]

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

from benchlib import IMAGESMITH, CommandFailed, Goal, Row, fresh_copy, imagesmith_env, remove_bench_images, timed

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


def _say(message: str) -> None:
    print(message, flush=True)


def cold(source: Path, platform: str, python_env: str, tmp: Path, token: str) -> tuple[float | None, str]:
    """One cold build of a fresh copy of ``source`` for ``platform``: (seconds, "") or (None, why)."""
    arch = "both" if platform == BOTH else platform.split("/")[1]
    name = f"{source.name}-{arch}-{python_env}"
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


def measure(project: str, source: Path, tmp: Path, token: str, both: bool = True) -> list[Row]:
    """The cold builds of ``source``, as rows: each other row against the native amd64 build (its
    ``reference``), with the goal where issue 27 sets one (its verdict computed by Goal)."""
    seconds: dict[str, float | None] = {}
    rows = []
    builds = [b for b in BUILDS if both or b[1] != BOTH]
    for label, platform, python_env in builds:
        _say(f"builds: {project} for {label} (one cold run)")
        took, note = cold(source, platform, python_env, tmp, token)
        seconds[label] = took
        rows.append(Row(f"{project}: cold build, {label}", "s", {"imagesmith": [took] if took else []}, note=note))
    return against_native(rows, builds, seconds)


def against_native(rows: list[Row], builds, seconds: dict[str, float | None]) -> list[Row]:
    """Each row after the native amd64 one compared with it: a goal (``GOALS``) where there is one
    for the row's platform(s) and the build's path (the emulated one has none), else its ratio as a
    note. Pure."""
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
    args = parser.parse_args()
    token = uuid.uuid4().hex[:8]
    try:
        with tempfile.TemporaryDirectory(prefix="imagesmith-bench-") as tmp:
            rows = measure(args.project, PROJECTS[args.project].source, Path(tmp), token, both=not args.no_both)
    finally:
        remove_bench_images(token)
    for row in rows:
        took = row.median("imagesmith")
        _say(f"{row.figure}: {f'{took:.1f} s' if took else '-'} {row.verdict()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
