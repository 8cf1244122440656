"""Builds of the iris example: imagesmith against the plain single-stage Dockerfile most projects
write (`COPY . .` then `pip install -r requirements.txt`), side by side in one run.

For each of N runs, in a fresh copy of the example (a new git checkout, so new file times):
- cold: no lock, empty wheel and pip caches, `--no-cache` for BuildKit (both tools download
  everything; imagesmith also resolves the lock);
- warm: a one-line edit of app/server.py, then the same build command again;
- bytes over the base image, and whether two clean builds gave the same image digest.
Prints medians and the imagesmith/plain ratio.

    python bench/bench_build.py [--runs N]     (IMAGESMITH_BASE picks the base image)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = os.environ.get("IMAGESMITH_BASE", "imagesmith-base:bookworm-py311")
PLAIN = """FROM {base}
WORKDIR /app
COPY . .
RUN python3 -m pip install --no-cache-dir --break-system-packages -r requirements.txt
CMD ["uvicorn", "app.server:app", "--host", "0.0.0.0", "--port", "8000"]
"""


def run(argv, cwd, env=None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def fresh_copy(dest: Path) -> Path:
    shutil.copytree(
        REPO / "examples" / "iris",
        dest,
        ignore=shutil.ignore_patterns("imagesmith.lock", "requirements.lock", "Dockerfile", "artifacts", "__pycache__"),
    )
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="b",
        GIT_AUTHOR_EMAIL="b@example.invalid",
        GIT_COMMITTER_NAME="b",
        GIT_COMMITTER_EMAIL="b@example.invalid",
        GIT_AUTHOR_DATE="@1700000000 +0000",
        GIT_COMMITTER_DATE="@1700000000 +0000",
    )
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(argv, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def inspect(ref: str, field: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{" + field + "}}", ref], capture_output=True, text=True, check=True
    ).stdout.strip()


def edit(root: Path) -> None:
    server = root / "app" / "server.py"
    server.write_text(server.read_text() + f"# edit {time.time_ns()}\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args, _ = parser.parse_known_args()
    base_size = int(inspect(BASE, ".Size"))
    results = {
        "imagesmith": {"cold": [], "warm": [], "size": [], "ids": []},
        "plain": {"cold": [], "warm": [], "size": [], "ids": []},
    }
    with tempfile.TemporaryDirectory(prefix="imagesmith-bench-") as tmp:
        for i in range(args.runs):
            root = fresh_copy(Path(tmp) / f"iris-{i}")
            cache = Path(tmp) / f"cache-{i}"
            env = dict(os.environ, IMAGESMITH_BASE=BASE, PIP_NO_CACHE_DIR="1", UV_NO_CACHE="1")
            tag = f"imagesmith-bench/iris-{i}"
            cmd = [sys.executable, "-m", "imagesmith", "build", "-q", "--tag", tag, "--cache-dir", str(cache)]
            r = results["imagesmith"]
            r["cold"].append(run(cmd + ["--no-cache"], root, env))
            r["ids"].append(inspect(f"{tag}:serve", ".Id"))
            r["size"].append(int(inspect(f"{tag}:serve", ".Size")) - base_size)
            edit(root)
            r["warm"].append(run(cmd, root, env))

            (root / "Dockerfile.plain").write_text(PLAIN.format(base=BASE))
            ptag = f"imagesmith-bench/plain-{i}"
            pcmd = ["docker", "buildx", "build", "-q", "--load", "-f", "Dockerfile.plain", "-t", ptag, "."]
            p = results["plain"]
            p["cold"].append(run(pcmd[:3] + ["--no-cache"] + pcmd[3:], root))
            p["ids"].append(inspect(ptag, ".Id"))
            p["size"].append(int(inspect(ptag, ".Size")) - base_size)
            edit(root)
            p["warm"].append(run(pcmd, root))
            print(
                f"run {i + 1}/{args.runs}: imagesmith cold {r['cold'][-1]:.1f} s warm {r['warm'][-1]:.2f} s | "
                f"plain cold {p['cold'][-1]:.1f} s warm {p['warm'][-1]:.2f} s",
                flush=True,
            )

    def med(tool, key):
        return statistics.median(results[tool][key])

    rows = [
        ("cold build (s)", "cold", "{:.1f}"),
        ("rebuild after a one-line edit (s)", "warm", "{:.2f}"),
        ("MB over the base image", "size", "{:.1f}"),
    ]
    print(f"\niris example, {args.runs} runs each, medians; base {BASE}")
    print(f"{'':38} {'imagesmith':>12} {'plain':>12} {'ratio':>8}")
    for label, key, fmt in rows:
        a, b = med("imagesmith", key), med("plain", key)
        if key == "size":
            a, b = a / 1e6, b / 1e6
        print(f"{label:38} {fmt.format(a):>12} {fmt.format(b):>12} {a / b:>8.2f}")
    warm_share = med("imagesmith", "warm") / med("imagesmith", "cold")
    print(f"{'imagesmith warm / cold':38} {warm_share:>12.1%}")
    for tool in ("imagesmith", "plain"):
        ids = results[tool]["ids"]
        print(f"{tool:>10}: {len(set(ids))} distinct serve image digest(s) over {len(ids)} clean builds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
