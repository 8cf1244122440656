"""Where an edit's BuildKit time goes after the last step: sample the engine's goroutines.

`python3 bench/history_probe.py [--project iris] [--edits 5]` copies the project as `make bench`
does, builds it once, then makes one-line edits; during each edit's `imagesmith build` it reads
dockerd's goroutine dump (`GET /debug/pprof/goroutine?debug=2` on the engine's socket, which
Docker 26 serves without debug mode) as often as it can, and sorts every sample of every BuildKit
Solve handler (`control.(*Controller).Solve`: one per bake target) into what that handler was
doing: exporting the image, writing the build-history record (`recordBuildHistory.func1`,
BuildKit's deferred function that runs after the export and before the Solve response), or the
rest of the solve. It prints, per edit and target, the seconds from the first sample in the
record to the handler's end, and what the record's samples were inside (its provenance, which
walks every cache record of the build; its status log; the history queue's update and lock).

Not a row of `make bench`: the sampling costs the engine CPU, so every span it prints is an upper
bound at the sampling interval's resolution; the bench's own edit rows are the timings. What it
shows is which code of the engine the edit waits on (bench/README.md, "Why the edit still misses").
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench_build import PROJECTS
from benchlib import IMAGESMITH, edit, fresh_copy, imagesmith_env

SOLVE = "control.(*Controller).Solve"
RECORD = "recordBuildHistory.func1"
QUEUE_LOCK = "(*HistoryQueue).Update"


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self._path)


def engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        sys.exit(f"error: the probe reads the engine's goroutines over a unix socket, not {host}")
    return host[len("unix://") :]


def goroutines(sock: str) -> str:
    conn = _UnixHTTP(sock)
    try:
        conn.request("GET", "/debug/pprof/goroutine?debug=2")
        return conn.getresponse().read().decode("utf-8", "replace")
    finally:
        conn.close()


# what a record's helper goroutines (errgroup children of the Solve handler) are inside, by the
# first of these frames their stack holds
RECORD_PARTS = (
    ("NewProvenanceCreator", "provenance (walks the build's cache records)"),
    ("(*Capture)", "provenance (walks the build's cache records)"),
    ("provenance.go", "provenance (walks the build's cache records)"),
    ("OpenBlobWriter", "blob writes"),
    ("ImportStatus", "status log"),
    ("(*Job).Status", "status log"),
)


def solve_states(dump: str) -> dict[str, str]:
    """Each Solve handler goroutine in one dump -> 'export', 'solve', 'record: history queue'
    (the record's final update, its lock included) or 'record: PART' (what the record's helper
    goroutines are inside: RECORD_PARTS)."""
    blocks = dump.split("\n\n")
    states = {}
    for block in blocks:
        if SOLVE not in block:
            continue
        gid = block.split(" ", 2)[1]
        if RECORD not in block:
            states[gid] = "export" if "Export(" in block else "solve"
        elif QUEUE_LOCK in block:
            states[gid] = "record: history queue"
        else:
            children = [b for b in blocks if f" in goroutine {gid}\n" in b + "\n" and SOLVE not in b]
            parts = {label for b in children for frame, label in RECORD_PARTS if frame in b}
            states[gid] = "record: " + (" + ".join(sorted(parts)) or "other")
    return states


def probe(root: Path, cmd: list[str], env: dict, sock: str) -> tuple[float, dict[str, list[tuple[float, str]]]]:
    edit(root / "app" / "server.py")
    seen: dict[str, list[tuple[float, str]]] = {}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        at = time.monotonic() - start
        for gid, state in solve_states(goroutines(sock)).items():
            seen.setdefault(gid, []).append((at, state))
    whole = time.monotonic() - start
    if proc.returncode:
        sys.exit(f"error: the edit's build failed (exit {proc.returncode}); run it by hand: {' '.join(cmd)}")
    return whole, seen


def report(whole: float, seen: dict[str, list[tuple[float, str]]]) -> list[str]:
    lines = [f"edit {whole:.2f} s, {len(seen)} Solve handler(s) sampled"]
    for gid, samples in sorted(seen.items(), key=lambda kv: kv[1][0][0]):
        record = [at for at, state in samples if state.startswith("record")]
        parts: dict[str, int] = {}
        for _, state in samples:
            if state.startswith("record"):
                parts[state[8:]] = parts.get(state[8:], 0) + 1
        end = samples[-1][0]
        if not record:
            lines.append(f"  goroutine {gid}: {len(samples)} samples, none in the history record")
            continue
        lines.append(
            f"  goroutine {gid}: last sample {end:.2f} s; in the history record from {record[0]:.2f} s "
            f"({end - record[0]:.2f} s before the handler's end; {len(record)} of {len(samples)} samples)"
        )
        lines += [f"      {n:4d} samples: {part}" for part, n in sorted(parts.items(), key=lambda kv: -kv[1])]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", default="iris", choices=["iris", "scale"])
    ap.add_argument("--edits", type=int, default=5)
    args = ap.parse_args()
    sock = engine_socket()
    project = PROJECTS[args.project]
    with tempfile.TemporaryDirectory(prefix="imagesmith-probe-") as tmp:
        root = fresh_copy(project.source, Path(tmp) / project.name)
        tag = f"imagesmith-probe-{uuid.uuid4().hex[:8]}/{project.name}"
        cmd = [*IMAGESMITH, "build", "-p", str(root), "--progress", "plain", "--tag", tag]
        cmd += ["--cache-dir", str(Path(tmp) / "cache")]
        env = imagesmith_env()
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
        try:
            for i in range(args.edits):
                whole, seen = probe(root, cmd, env, sock)
                print(f"[{i + 1}/{args.edits}] " + "\n".join(report(whole, seen)), flush=True)
        finally:
            images = subprocess.run(
                ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", tag.split("/")[0] + "/*"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if images:
                subprocess.run(["docker", "image", "rm", "--force", *images], capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
