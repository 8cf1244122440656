"""What the seeding hook costs each Python process: interpreter start-up with and without it.

Two venvs on the host, one plain and one with the runtime as images get it
(the imagesmith-runtime wheel installed with pip, bytecode compiled); each command runs ROUNDS times in each, interleaved, alternating which goes first. Prints medians and
the ratio side by side. Host-only (no Docker):

    python bench/bench_runtime_startup.py [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from imagesmith import runtime_wheel  # noqa: E402

COMMANDS = {
    "python -c pass": "pass",
    "import random; random.random()": "import random; random.random()",
    "import json, subprocess": "import json, subprocess",
}


def make_venv(root: Path, with_runtime: bool) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    if with_runtime:
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        runtime_wheel.install_into(python, root.parent)
        # as in the image: bytecode compiled at build time (PYTHONDONTWRITEBYTECODE=1 at run time)
        subprocess.run(
            [str(python), "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", site], check=True
        )
    return python


def timed(python: Path, code: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([str(python), "-c", code], check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    env = dict(os.environ, IMAGESMITH_SEED="42", PYTHONDONTWRITEBYTECODE="1")
    with tempfile.TemporaryDirectory() as tmp:
        plain = make_venv(Path(tmp) / "plain", False)
        hooked = make_venv(Path(tmp) / "hooked", True)
        print(f"{'command':34} {'plain ms':>9} {'hooked ms':>10} {'ratio':>6}   ({rounds} rounds, medians)")
        for label, code in COMMANDS.items():
            a, b = [], []
            for i in range(rounds):  # alternate which goes first: the second run of a pair is favoured
                if i % 2:
                    a.append(timed(plain, code, env))
                    b.append(timed(hooked, code, env))
                else:
                    b.append(timed(hooked, code, env))
                    a.append(timed(plain, code, env))
            ma, mb = statistics.median(a) * 1000, statistics.median(b) * 1000
            print(f"{label:34} {ma:9.1f} {mb:10.1f} {mb / ma:6.2f}")


if __name__ == "__main__":
    main()
