"""How long people wait for the tests (goals: the unit tier <= 10 s, `make test` <= 8 min on 4
workers, on these 2 cores).

- The unit tier is measured here, as `make test-unit` runs it (`pytest -n 2 tests/unit`, this
  tree, interpreter start-up and collection included).
- `make test` is not run by the bench (it takes minutes and builds on the engine the bench
  measures): its last run recorded itself in build/test-times.json (tests/conftest.py, when a
  session started by `make test` ends: seconds from `make test`'s start, so install, lint and
  the engine set-up are in), and the bench reports that record with its date, tree and outcome.

    python bench/bench_tests.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import sys

from benchlib import REPO, imagesmith_env, timed

RECORD = REPO / "build" / "test-times.json"  # written by tests/conftest.py (pytest_sessionfinish)


def unit_times(runs: int) -> list[float]:
    """The unit tier as `make test-unit` runs it, in this tree, without the bench's IMAGESMITH_*
    settings (the tests make their own)."""
    argv = [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider", "tests/unit"]
    env = {k: v for k, v in imagesmith_env().items() if not k.startswith("IMAGESMITH_")}
    return [timed(argv, REPO, env).seconds for _ in range(runs)]


def make_test_record() -> tuple[float | None, str]:
    """(seconds, what the record is) of the last recorded `make test`; (None, why not) when there
    is no usable record (none, a failed or partial run)."""
    try:
        record = json.loads(RECORD.read_text())
    except (OSError, ValueError):
        return None, "no record: run `make test` first"
    said = f"last `make test` {record['ended'][:16].replace('T', ' ')} UTC, tree {record['tree']}"
    if record.get("failed") or record.get("errors"):
        return None, f"{said} had {record.get('failed', 0)} failed, {record.get('errors', 0)} errors"
    if record.get("selected") != "all":
        return None, f"{said} ran a selection ({record['selected']}), not the whole suite"
    return float(record["make_seconds"]), f"{said}, {record['passed']} passed on {record['workers']} workers"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    unit = sorted(unit_times(args.runs))
    print(f"unit tier: median {unit[len(unit) // 2]:.1f} s of {unit} (goal <= 10 s)")
    seconds, said = make_test_record()
    print(f"make test: {seconds:.0f} s ({said})" if seconds else f"make test: {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
