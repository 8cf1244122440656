"""Lock times for both resolvers on the iris example, side by side, through the CLI.

For each resolver (uv, pip-tools), N times, interleaved:

- cold: a fresh copy of examples/iris with no lock, and every cache bypassed (a fresh
  XDG_CACHE_HOME per run, so uv's, pip's and pip-tools' caches start empty; UV_NO_CACHE=1 too):
  what a first lock costs on a new machine;
- warm (no-op): `imagesmith lock` again with nothing changed: it must do no resolution and stay
  under 0.15 s (the whole command, interpreter start-up included).

Prints medians, the cold pip-tools/uv ratio and the no-op target.

    python bench/bench_lock.py [--runs N]

The base image is IMAGESMITH_BASE (default imagesmith-base:bookworm-py311).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchlib import BASE, GENERATED, IMAGESMITH, REPO, imagesmith_env, timed

RESOLVERS = ("uv", "pip-tools")
NOOP_TARGET = 0.15


def lock(project: Path, resolver: str | None, env: dict) -> float:
    """One `imagesmith lock` through the CLI (this tree's), timed from start to exit."""
    argv = [*IMAGESMITH, "lock", "-q", "-p", str(project)] + (["--resolver", resolver] if resolver else [])
    return timed(argv, env=env).seconds


def noop_times(project: Path, runs: int) -> list[float]:
    """`imagesmith lock` on a locked project with nothing changed, ``runs`` times (one untimed
    first, which writes the lock if it is not up to date)."""
    env = imagesmith_env()
    lock(project, None, env)
    return [lock(project, None, env) for _ in range(runs)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times: dict[tuple[str, str], list[float]] = {(r, k): [] for r in RESOLVERS for k in ("cold", "no-op")}
    pins: dict[str, set] = {}
    with tempfile.TemporaryDirectory(prefix="imagesmith-bench-lock-") as tmp:
        for i in range(args.runs):
            for resolver in RESOLVERS:
                project = Path(tmp) / f"{resolver}-{i}"
                shutil.copytree(REPO / "examples" / "iris", project, ignore=shutil.ignore_patterns(*GENERATED))
                cache = Path(tmp) / f"cache-{resolver}-{i}"
                cold_env = imagesmith_env(XDG_CACHE_HOME=str(cache), UV_NO_CACHE="1")
                times[(resolver, "cold")].append(lock(project, resolver, cold_env))
                times[(resolver, "no-op")].append(lock(project, resolver, imagesmith_env()))
                pins.setdefault(resolver, set()).add(
                    tuple(ln for ln in (project / "requirements.lock").read_text().splitlines() if "==" in ln)
                )
                shutil.rmtree(cache, ignore_errors=True)
    med = {key: statistics.median(v) for key, v in times.items()}
    print(f"imagesmith lock on examples/iris, medians of {args.runs} runs (base {BASE})")
    print(f"{'':14}{'uv':>10}{'pip-tools':>12}{'pip-tools/uv':>15}")
    for kind in ("cold", "no-op"):
        uv, pt = med[("uv", kind)], med[("pip-tools", kind)]
        print(f"{kind:14}{uv:>9.2f}s{pt:>11.2f}s{pt / uv:>14.1f}x")
    same = len(pins["uv"]) == 1 and pins["uv"] == pins["pip-tools"]
    print(f"same pins from both resolvers in every run: {'yes' if same else 'NO'}")
    worst = max(med[(r, "no-op")] for r in RESOLVERS)
    print(f"no-op lock target <= {NOOP_TARGET:.2f} s: {'met' if worst <= NOOP_TARGET else 'MISSED'} ({worst:.2f} s)")
    return 0 if worst <= NOOP_TARGET and same else 1


if __name__ == "__main__":
    sys.exit(main())
