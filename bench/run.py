"""`make bench`: run every bench/bench_*.py in turn; each prints its own table of medians.

Numbers are noisy on these 2-core machines: each benchmark reports medians of several runs and
the ratio of imagesmith to the plain baseline it replaces, side by side in one run.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n### {script.name}", flush=True)
        if subprocess.call([sys.executable, str(script)]) != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
