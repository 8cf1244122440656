"""The deploy pipeline on an imagesmith build, through the CLI, as a user runs it: train in the
train image, golden (the signoff samples through the batch function in the train image), signoff
(the serve image on this machine: latency, outputs against the golden ones, hardware) and verify
(the serve image against its lock, paired with train, the model and the signoff record). For the
torch project this is torch's CUDA build running on the CPU.

    python bench/bench_pipeline.py --root PROJECT_COPY --tag REPO

PROJECT_COPY is a built copy (bench_build's, or any project whose REPO:train and REPO:serve
exist); each step is timed and must exit 0, and its last line is kept.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from benchlib import IMAGESMITH, CommandFailed, Row, imagesmith_env, timed

REQUESTS = 50  # signoff's replayed requests (the default 200 takes long on a shared 2-core machine)


@dataclass
class Stage:
    name: str
    seconds: float | None  # None: it failed
    said: str  # its last output line (or its first error)


def steps(root: Path, tag: str) -> list[tuple[str, list[str]]]:
    """The pipeline's commands, in order (the CLI's arguments)."""
    model, record = str(root / "artifacts"), str(root / "signoff.json")
    project = ["-p", str(root)]
    return [
        ("run train", ["run", "train", *project, "--tag", tag, "--artifacts", model]),
        ("golden", ["golden", *project, "--tag", tag, "--model", model]),
        ("signoff", ["signoff", f"{tag}:serve", *project, "--model", model, "-o", record, "--requests", str(REQUESTS)]),
        (
            "verify",
            [
                "verify",
                f"{tag}:serve",
                *project,
                "--lock",
                str(root / "imagesmith.lock"),
                "--pair",
                f"{tag}:train",
                "--model",
                model,
                "--signoff",
                record,
            ],
        ),
    ]


def run(root: Path, tag: str, log=print) -> list[Stage]:
    """Each step timed; the first that fails ends the pipeline (the later ones need its output)."""
    out: list[Stage] = []
    for name, args in steps(root, tag):
        try:
            done = timed([*IMAGESMITH, *args], root, imagesmith_env())
        except CommandFailed as exc:
            out.append(Stage(name, None, exc.first_error()))
            log(f"  {name}: FAILED: {exc.first_error()}")
            break
        lines = [ln for ln in (done.stdout.splitlines() + done.lines) if ln.strip()]
        out.append(Stage(name, done.seconds, lines[-1].strip() if lines else ""))
        log(f"  {name}: {done.seconds:.1f} s: {out[-1].said[:140]}")
    return out


def rows(project: str, stages: list[Stage]) -> list[Row]:
    """One row per step (imagesmith only); a failed step says so instead of a time."""
    out = []
    for s in stages:
        row = Row(f"{project}: `imagesmith {s.name}`", "s", {"imagesmith": [s.seconds] if s.seconds else []})
        if s.seconds is None:
            row.note = f"FAILED: {s.said[:80]}"
        out.append(row)
    return out


def as_json(stages: list[Stage]) -> list[dict]:
    return [{"step": s.name, "s": s.seconds, "ok": s.seconds is not None, "said": s.said} for s in stages]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="a built project copy")
    parser.add_argument("--tag", required=True, help="the repository of its train and serve images")
    args = parser.parse_args()
    stages = run(args.root.resolve(), args.tag)
    return 0 if stages and all(s.seconds is not None for s in stages) else 1


if __name__ == "__main__":
    sys.exit(main())
