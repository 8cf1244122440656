"""Deploy-time verification of the iris serve image, end to end through the CLI.

Times `imagesmith verify --labels-only IMAGE` (labels and image config, no container) and
`imagesmith verify IMAGE` (the content probe in a container: every installed file hashed against
its RECORD), each run N times, interleaved, as a deploy script runs them (`python -m imagesmith`
with this interpreter and this tree, so a shell shim is not measured). Prints medians against
the targets (labels-only <= 0.2 s, full <= 0.8 s) and the ratio, beside the CLI's own
start-up (`--help`).

    python bench/bench_verify.py [--runs N] [--image REF]

Without --image it uses imagesmith-bench/iris:serve, building the iris example into that tag
first (from a copy, with IMAGESMITH_BASE, default imagesmith-base:bookworm-py311) when the tag
is missing or was built by another imagesmith (its labels no longer verify).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import BASE, IMAGESMITH, REPO, imagesmith_env, timed

TAG = "imagesmith-bench/iris"
TARGETS = {"labels-only": 0.2, "full": 0.8}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*IMAGESMITH, *args], capture_output=True, text=True, env=imagesmith_env())


def cli_time(*args: str) -> float:
    """One `imagesmith ARGS` through the CLI, timed from start to exit (must exit 0)."""
    return timed([*IMAGESMITH, *args], env=imagesmith_env()).seconds


def measure(image: str, runs: int) -> dict[str, list[float]]:
    """CLI start-up, labels-only and full verify of ``image``, interleaved, ``runs`` times each
    (after one untimed full verify that warms the engine's caches)."""
    cli_time("verify", image)
    times: dict[str, list[float]] = {"cli start-up (--help)": [], "labels-only": [], "full": []}
    for _ in range(runs):
        times["cli start-up (--help)"].append(cli_time("--help"))
        times["labels-only"].append(cli_time("verify", image, "--labels-only"))
        times["full"].append(cli_time("verify", image))
    return times


def ensure_image() -> str:
    image = f"{TAG}:serve"
    if cli("verify", image, "--labels-only").returncode == 0:
        return image
    print(f"building the iris example into {TAG} (base {BASE})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        root = Path(tmp) / "iris"
        shutil.copytree(
            REPO / "examples" / "iris", root, ignore=shutil.ignore_patterns("artifacts", "__pycache__", "*.pyc")
        )
        proc = cli("build", "-p", str(root), "--tag", TAG, "--quiet")
        if proc.returncode != 0:
            sys.exit(f"building iris failed:\n{proc.stderr}")
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", default=None)
    args, _ = parser.parse_known_args()
    image = args.image or ensure_image()
    times = measure(image, args.runs)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"verify {image}: medians of {args.runs} runs through the CLI ({sys.executable} -m imagesmith)")
    print(f"  {'':24} {'median':>8} {'min':>8} {'max':>8}   target")
    failed = False
    for name, values in times.items():
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            good = medians[name] <= target
            failed |= not good
            verdict = f"<= {target:.1f} s  {'ok' if good else 'OVER'}"
        print(f"  {name:24} {medians[name]:7.2f}s {min(values):7.2f}s {max(values):7.2f}s   {verdict}")
    print(
        f"  full / labels-only: {medians['full'] / medians['labels-only']:.1f}x; "
        f"labels-only minus CLI start-up: {medians['labels-only'] - medians['cli start-up (--help)']:.2f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
