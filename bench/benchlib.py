"""What the bench scripts share: running a timed command, fresh project copies, and the pure
parts (BuildKit log parsing, imagesmith's build phases, medians, ratios and goals, the table).

The pure functions at the top take text and numbers only; tests/unit/test_bench.py covers them.
Every command is run as given (argument lists, no shell); the CLI is always
``python -m imagesmith`` with this interpreter, so a bench measures the tree it runs in when
PYTHONPATH points at it (never an installed console script).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = os.environ.get("IMAGESMITH_BASE", "imagesmith-base:bookworm-py311")
IMAGESMITH = [sys.executable, "-m", "imagesmith"]
# What a fresh copy of a project leaves behind: anything a previous build or lock wrote.
GENERATED = (
    *("imagesmith.lock", "requirements.lock", "Dockerfile", "Dockerfile.dockerignore", ".imagesmith"),
    *("artifacts", "__pycache__", "uv.lock", ".venv"),
)

# ---- pure: BuildKit's log ---------------------------------------------------------------------

# BuildKit's own plain log (docker buildx build --progress=plain)
_RAW_STEP = re.compile(r"^#(\d+) (.*)$")
_RAW_END = re.compile(r"^(DONE ([\d.]+)s|CACHED)$")
# imagesmith's labelled plain log (imagesmith/progress.py): "==> [serve shared 2/5] RUN ..." opens a
# step, "    [serve shared 2/5] done in 26.8s" (or "cached") ends it; steps without a stage
# label keep BuildKit's "#N title" / "    #N done in 1.0s".
_LABEL_OPEN = re.compile(r"^==> (\[[^\]]+\])\s*(.*)$")
_LABEL_END = re.compile(r"^    (\[[^\]]+\]|#\d+) (?:done in ([\d.]+)s|(cached))$")
_STAGE = re.compile(r"^\[(?:(?:train|serve) )?([^\]]*)\]$")


@dataclass
class Step:
    name: str  # "[shared 2/5] RUN ..." (the target's name dropped for a step both targets share)
    seconds: float
    cached: bool = False


def _step_key(label: str) -> str:
    """``[serve shared 2/5]`` and ``[train shared 2/5]`` are one vertex of the one bake solve;
    ``[train]``/``[serve]`` alone (exporting to image) are one step per target."""
    m = _STAGE.match(label)
    if label in ("[train]", "[serve]") or not m or not m.group(1):
        return label
    return f"[{m.group(1)}]"


def parse_steps(lines: list[str], width: int = 60) -> list[Step]:
    """Each step's duration from a BuildKit plain log, in BuildKit's raw form (``#N [stage 1/2]
    TITLE`` ... ``#N DONE 3.4s``) or imagesmith's labelled form (see imagesmith/progress.py, where
    an end line names its step by label only: it ends the step last opened under that label), in
    order of first appearance. A step reported twice keeps its longest time; ``[internal]`` steps
    and steps that never ended (CANCELED, ERROR) are left out."""
    titles: dict[str, str] = {}
    opened: dict[str, str] = {}  # label -> the key of the step last opened under it
    steps: dict[str, Step] = {}
    for line in lines:
        line = line.rstrip()
        m = _LABEL_OPEN.match(line)
        if m:
            label = _step_key(m.group(1))
            title = f"{label} {m.group(2)}".strip()[:width]
            opened[label] = title
            titles.setdefault(title, title)
            continue
        m = _LABEL_END.match(line)
        if m:
            label = _step_key(m.group(1))
            key = opened.get(label, label)
            seconds, cached = (float(m.group(2)), False) if m.group(2) else (0.0, True)
        else:
            m = _RAW_STEP.match(line)
            if not m:
                continue
            number, text = m.groups()
            end = _RAW_END.match(text)
            key = f"#{number}"
            if not end:
                if key not in titles and not re.match(r"^[\d.]+ ", text):
                    titles[key] = text[:width]
                continue
            seconds, cached = (float(end.group(2)), False) if end.group(2) else (0.0, True)
        name = titles.get(key, key)
        if "[internal]" in name or name.startswith("#0"):
            continue
        old = steps.get(key)
        if old is None or seconds > old.seconds:
            steps[key] = Step(name=name, seconds=seconds, cached=cached and (old is None or old.cached))
    return list(steps.values())


# ---- pure: imagesmith build's own phases ------------------------------------------------------

# imagesmith's progress lines ("imagesmith: ...", build_project and lock_project) that start a phase
_PHASE_START = (
    ("lock", re.compile(r"^imagesmith: (pinning base image|resolving requirements|pinning system packages)")),
    ("host wheel download", re.compile(r"^imagesmith: downloading \d+ wheel")),
    ("BuildKit (bake)", re.compile(r"^imagesmith: building ")),
)
_LOCK_END = re.compile(r"^imagesmith: (locked|rendered)")
_FETCHED = re.compile(r"^imagesmith: fetched ")


def phases(events: list[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds spent in each of imagesmith build's phases, from its stderr lines and the time
    each arrived (seconds since the command started) and the command's end:

    - ``start-up``: from the start to the first ``imagesmith:`` line (interpreter, imports,
      engine checks);
    - ``lock``: from the first lock message to ``locked``/``rendered`` (absent when the lock
      was up to date);
    - ``host wheel download``: ``downloading N wheel(s)`` to the last ``fetched`` line (these
      may overlap the bake when the tree overlaps them);
    - ``BuildKit (bake)``: ``building ...`` to the end, export into the engine included.

    A phase whose message never came is absent."""
    out: dict[str, float] = {}
    starts: dict[str, float] = {}
    first = next((t for t, line in events if line.startswith("imagesmith:")), None)
    if first is not None:
        out["start-up"] = first
    last_fetch = None
    lock_end = None
    for t, line in events:
        for name, pattern in _PHASE_START:
            if name not in starts and pattern.match(line):
                starts[name] = t
        if _FETCHED.match(line):
            last_fetch = t
        if lock_end is None and "lock" in starts and _LOCK_END.match(line):
            lock_end = t
    if "lock" in starts:
        after = [t for n, t in starts.items() if n != "lock" and t >= starts["lock"]]
        out["lock"] = (lock_end if lock_end is not None else min(after, default=end)) - starts["lock"]
    if "host wheel download" in starts:
        out["host wheel download"] = (last_fetch or starts["host wheel download"]) - starts["host wheel download"]
    if "BuildKit (bake)" in starts:
        out["BuildKit (bake)"] = end - starts["BuildKit (bake)"]
    return out


# ---- pure: medians, ratios, goals, the table --------------------------------------------------


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass(frozen=True)
class Goal:
    """A target, and how a row's numbers meet it (the verdict is always computed, never written):

    - ``max``: imagesmith's median at most ``limit`` (in the row's unit);
    - ``peer``: imagesmith's median at most ``limit`` times ``of``'s (a tool: ``uv`` for "at or
      under uv's pattern");
    - ``least``: imagesmith's median the smallest of the tools measured;
    - ``times``: imagesmith's median at most ``limit`` times the row's ``reference`` (a number
      measured in the same run, named by ``of``: "native amd64");
    - ``speedup``: the row's ``reference`` (``of``: "cold") over imagesmith's median at least
      ``limit``."""

    kind: str
    limit: float = 1.0
    of: str = ""

    def describe(self, unit: str) -> str:
        if self.kind == "max":
            return f"<= {self.limit:g} {unit}"
        if self.kind == "peer":
            peer = TOOL_TITLES.get(self.of, self.of)
            return f"<= {peer}" if self.limit == 1 else f"<= {self.limit:g}x {peer}"
        if self.kind == "least":
            return "smallest"
        if self.kind == "times":
            return f"<= {self.limit:g}x {self.of}"
        if self.kind == "speedup":
            return f">= {self.limit:g}x faster than {self.of}"
        raise ValueError(f"unknown goal kind {self.kind!r}")

    def verdict(self, medians: dict[str, float], unit: str, reference: float | None = None) -> str:
        """``met`` (with the ratio it was met by where there is one) or by how much it was missed,
        from the tools' medians (``imagesmith`` is the one judged) and the row's reference."""
        got = medians.get("imagesmith")
        if got is None:
            return "not measured"
        if self.kind == "max":
            return "met" if _at_most(got, self.limit) else f"missed by {_amount(got - self.limit, unit)}"
        if self.kind == "peer":
            peer = medians.get(self.of)
            if not peer:
                return f"not measured: no {TOOL_TITLES.get(self.of, self.of)}"
            ratio = got / peer
            if _at_most(ratio, self.limit):
                return f"met: {ratio:.2f}x"
            return f"missed by {_amount(got - peer * self.limit, unit)}: {ratio:.2f}x"
        if self.kind == "least":
            others = {t: v for t, v in medians.items() if t != "imagesmith"}
            if not others:
                return "not measured: no other tool"
            smallest = min(others.values())
            return "met" if _at_most(got, smallest) else f"missed by {_amount(got - smallest, unit)}"
        if reference is None or reference <= 0 or got <= 0:
            return f"not measured: no {self.of}"
        if self.kind == "times":
            ratio = got / reference
            return f"met: {ratio:.2f}x" if _at_most(ratio, self.limit) else f"missed: {ratio:.2f}x"
        if self.kind == "speedup":
            ratio = reference / got
            return f"met: {ratio:.2f}x" if _at_most(self.limit, ratio) else f"missed: {ratio:.2f}x"
        raise ValueError(f"unknown goal kind {self.kind!r}")


def _at_most(value: float, limit: float) -> bool:
    """``value <= limit`` but for floating-point noise (33.3 / 13.32 is 2.4999999999999996)."""
    return value <= limit + 1e-9 * max(1.0, abs(limit))


def _amount(value: float, unit: str) -> str:
    return f"{value:.2f} {unit}" if unit else f"{value:.2f}"


TOOLS = ("imagesmith", "plain", "uv")
TOOL_TITLES = {"imagesmith": "imagesmith", "plain": "plain Dockerfile", "uv": "uv's pattern"}


@dataclass
class Row:
    figure: str
    unit: str  # "s" or "MB"
    values: dict[str, list[float]] = field(default_factory=dict)  # tool -> samples
    goal: Goal | None = None
    note: str = ""  # e.g. "not available: ..." when the figure could not be taken (it is then the verdict)
    reference: float | None = None  # what a ``times``/``speedup`` goal compares with (Goal.of names it)

    def median(self, tool: str) -> float | None:
        return median(self.values.get(tool, []))

    def ratio(self, tool: str = "imagesmith", to: str = "plain") -> float | None:
        a, b = self.median(tool), self.median(to)
        return a / b if a is not None and b else None

    def medians(self) -> dict[str, float]:
        return {t: m for t in self.values if (m := self.median(t)) is not None}

    def verdict(self) -> str:
        if self.note:
            return self.note
        return self.goal.verdict(self.medians(), self.unit, self.reference) if self.goal else ""

    def as_json(self) -> dict:
        return {
            "figure": self.figure,
            "unit": self.unit,
            "samples": {k: v for k, v in self.values.items() if v},
            "median": self.medians(),
            "ratio_to_plain": {k: self.ratio(k) for k in ("imagesmith", "uv") if self.ratio(k) is not None},
            "ratio_to_uv": self.ratio("imagesmith", "uv"),
            "reference": self.reference,
            "goal": self.goal.describe(self.unit) if self.goal else None,
            "verdict": self.verdict() or None,
        }


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if unit == "MB" or value >= 10 else f"{value:.2f}"


def table(rows: list[Row], markdown: bool = False) -> str:
    """One table: the median of each tool, imagesmith/plain, uv/plain and imagesmith/uv, the goal and
    the verdict."""
    pairs = (("imagesmith", "plain"), ("uv", "plain"), ("imagesmith", "uv"))
    head = ["", *(TOOL_TITLES[t] for t in TOOLS), "imagesmith/plain", "uv/plain", "imagesmith/uv", "goal", "verdict"]
    body = []
    for row in rows:
        ratios = [row.ratio(a, b) for a, b in pairs]
        body.append(
            [
                f"{row.figure} ({row.unit})",
                *(_num(row.median(t), row.unit) for t in TOOLS),
                *(f"{r:.2f}" if r is not None else "-" for r in ratios),
                row.goal.describe(row.unit) if row.goal else "",
                row.verdict(),
            ]
        )
    return grid(head, body, markdown)


def grid(head: list[str], body: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(head), *(fmt(r) for r in body)]).rstrip()


# ---- running things ---------------------------------------------------------------------------


class CommandFailed(Exception):
    def __init__(self, message: str, lines: list[str]):
        super().__init__(message)
        self.lines = lines  # the command's stderr

    def first_error(self) -> str:
        """The command's own first error line (``error: ...``), else its last line."""
        found = next((ln for ln in self.lines if ln.startswith("error:")), None)
        found = found or next((ln for ln in self.lines if ln.startswith("ERROR:")), None)
        return (found or (self.lines[-1] if self.lines else str(self).splitlines()[0])).strip()


@dataclass
class Timed:
    seconds: float
    stdout: str
    events: list[tuple[float, str]]  # (seconds since start, stderr line)

    @property
    def lines(self) -> list[str]:
        return [line for _, line in self.events]


def timed(argv: list[str], cwd: Path | None = None, env: dict | None = None, timeout: float = 3600) -> Timed:
    """Run ``argv``, timing it from start to exit; stderr (and stdout merged into it unless the
    command writes a result on stdout) is read line by line as it comes, each line with the time
    it arrived. Raises CommandFailed with the log's end on a non-zero exit."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        stop = lambda: os.killpg(proc.pid, signal.SIGKILL)  # noqa: E731 (the command and what it started)
        timer = threading.Timer(timeout, stop)
        timer.start()
        events = []
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                events.append((time.perf_counter() - start, line.rstrip("\n")))
        except BaseException:  # interrupted: the command must not outlive the bench
            stop()
            proc.wait()
            timer.cancel()
            raise
        rc = proc.wait()
        elapsed = time.perf_counter() - start
        timer.cancel()
        out.seek(0)
        stdout = out.read()
    if rc != 0:
        tail = "\n".join(line for _, line in events[-30:])
        message = f"`{' '.join(map(str, argv))}` exited {rc} after {elapsed:.0f} s:\n{stdout[-1500:]}{tail}"
        raise CommandFailed(message, [line for _, line in events])
    return Timed(elapsed, stdout, events)


_BUILDX = re.compile(r"buildx (?:build|bake)\b")


def foreign_builds(procs: dict[int, tuple[int, str]], me: int) -> list[int]:
    """The buildx processes in ``procs`` ({pid: (parent pid, command line)}) that ``me`` did not
    start (directly or not): other people's builds on the shared engine."""
    out = []
    for pid, (_, cmdline) in procs.items():
        if not _BUILDX.search(cmdline):
            continue
        seen, up = set(), pid
        while up in procs and up not in seen and up != me:
            seen.add(up)
            up = procs[up][0]
        if up != me:
            out.append(pid)
    return sorted(out)


def _processes() -> dict[int, tuple[int, str]]:
    procs: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        procs[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return procs


class Neighbours:
    """Samples, every few seconds while a bench runs, how many builds others run on the engine
    (buildx processes this bench did not start) and the load average: timings taken beside them
    are noisy, and the report says so."""

    def __init__(self, every: float = 3.0):
        self.every, self.samples, self.busy, self.most = every, 0, 0, 0
        self.loads: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            n = len(foreign_builds(_processes(), os.getpid()))
            self.samples += 1
            self.busy += n > 0
            self.most = max(self.most, n)
            self.loads.append(os.getloadavg()[0])

    def __enter__(self) -> Neighbours:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def as_json(self) -> dict:
        return {
            "samples": self.samples,
            "samples_with_other_builds": self.busy,
            "most_other_builds_at_once": self.most,
            "load_average_1min_median": median(self.loads),
        }

    def describe(self) -> str:
        if not self.samples:
            return "other builds on the engine: not sampled"
        share = self.busy / self.samples
        load = median(self.loads) or 0.0
        if not self.busy:
            return f"no other builds seen on the engine ({self.samples} samples; median load {load:.1f})"
        return (
            f"OTHER BUILDS RAN on the shared engine during {share:.0%} of this run ({self.busy}/{self.samples} "
            f"samples, up to {self.most} at once; median 1-min load {load:.1f}): figures are noisy, re-run on a quiet engine"
        )


@functools.cache
def _compiled_once() -> None:
    compile_tree()


def compile_tree(package: Path = REPO / "imagesmith") -> None:
    """Write the bytecode of every module of ``package`` beside its sources, as installing
    imagesmith does: a caller that forbids writing bytecode (PYTHONDONTWRITEBYTECODE, as on this
    machine) would otherwise have every timed ``python -m imagesmith`` compile the modules it
    imports again (about 50 ms of a labels-only verify). ``__pycache__`` is gitignored."""
    import compileall

    if not compileall.compile_dir(str(package), quiet=1):
        raise RuntimeError(f"compiling {package} failed")


def imagesmith_env(**extra: str) -> dict:
    """The environment for ``python -m imagesmith``: this tree first on the path (its bytecode
    written: ``compile_tree``), the bench's base."""
    _compiled_once()
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "IMAGESMITH_BASE": BASE, **extra}


def fresh_copy(source: Path, dest: Path) -> Path:
    """A copy of a project without anything a build wrote, committed to a new git repository
    with a fixed date (imagesmith takes SOURCE_DATE_EPOCH from the last commit)."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*GENERATED))
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


def free_gb(path: Path = Path(tempfile.gettempdir())) -> float:
    """Free space, in GB, of the disk holding ``path`` (the engine's, on these machines)."""
    return shutil.disk_usage(path).free / 1e9


def edit(path: Path) -> None:
    """The one-line code edit: a comment appended to a source file."""
    path.write_text(path.read_text() + f"# edit {time.time_ns()}\n")


def inspect(ref: str, field_: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{" + field_ + "}}", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def mb_over_base(ref: str) -> float:
    return (int(inspect(ref, ".Size")) - int(inspect(BASE, ".Size"))) / 1e6


def parse_history(text: str, base_layers: int) -> list[tuple[float, str]]:
    """``docker history --no-trunc --format '{{.Size}}\t{{.CreatedBy}}'`` (newest first) as
    (MB, step) of the layers over the base's ``base_layers``, oldest first; empty layers (ENV,
    LABEL, metadata) left out."""
    rows = []
    for line in text.splitlines():
        size, _, step = line.partition("\t")
        rows.append((_size_mb(size.strip()), " ".join(step.split())))
    rows.reverse()
    over = rows[base_layers:] if base_layers <= len(rows) else []
    return [(mb, step) for mb, step in over if mb > 0]


def _size_mb(text: str) -> float:
    """docker's human sizes ("1.2GB", "35.4MB", "0B", "512kB") in MB (10^6 bytes)."""
    units = {"B": 1e-6, "kB": 1e-3, "KB": 1e-3, "MB": 1.0, "GB": 1e3, "TB": 1e6}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * units[unit]
            except ValueError:
                return 0.0
    return 0.0


def layer_sizes(ref: str) -> list[tuple[float, str]]:
    """The layers ``ref`` adds to the bench's base image: (MB, the step that made it), oldest first."""
    base = len(
        subprocess.run(["docker", "history", "-q", BASE], capture_output=True, text=True, check=True).stdout.split()
    )
    text = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_history(text, base)


# ---- pure: what a push sends ------------------------------------------------------------------


def pair_layers(diff_ids: list[str], sizes: list[int]) -> list[tuple[str, int]] | None:
    """An image's layers as (diff ID, bytes), from its diff IDs (``RootFS.Layers``, oldest first)
    and the sizes of the build steps that added a layer (its history's non-empty steps, oldest
    first); None when the two do not pair one to one (a step that added an empty layer)."""
    return list(zip(diff_ids, sizes)) if len(diff_ids) == len(sizes) else None


def new_bytes(before: list[tuple[str, int]], after: list[tuple[str, int]]) -> int:
    """The bytes of ``after``'s layers (or blobs) that ``before`` does not have: what a push of
    ``after`` sends to a registry that holds ``before``."""
    have = {digest for digest, _ in before}
    return sum(size for digest, size in after if digest not in have)


def manifest_blobs(manifest: dict) -> list[tuple[str, int]]:
    """(digest, size) of an image manifest's config and layers (OCI or Docker v2 schema 2)."""
    blobs = [manifest["config"], *manifest.get("layers", [])]
    return [(b["digest"], int(b["size"])) for b in blobs]


def platform_manifest(index: dict, platform: str = "linux/amd64") -> str | None:
    """The digest of ``platform``'s image in an index (attestation manifests skipped)."""
    os_, arch = platform.split("/")
    for m in index.get("manifests", []):
        p = m.get("platform") or {}
        if p.get("os") == os_ and p.get("architecture") == arch:
            return m["digest"]
    return None


def local_layers(ref: str) -> list[tuple[str, int]] | None:
    """A local image's layers as (diff ID, uncompressed bytes), oldest first (``pair_layers``)."""
    diff_ids = json.loads(inspect(ref, "json .RootFS.Layers"))
    text = subprocess.run(
        ["docker", "history", "--no-trunc", "--human=false", "--format", "{{.Size}}", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sizes = [int(s) for s in reversed(text.split()) if s.isdigit() and int(s) > 0]
    return pair_layers(diff_ids, sizes)


REGISTRY = "127.0.0.1:5000"  # the loopback registry the bench pushes to
_MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def _registry_json(repo: str, reference: str) -> dict:
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repo}/manifests/{reference}", headers={"Accept": _MANIFEST_TYPES}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read(4 << 20))


def pushed_blobs(repo: str, tag: str) -> list[tuple[str, int]]:
    """(digest, compressed bytes) of the blobs of ``REGISTRY/repo:tag`` (its linux/amd64 image)."""
    doc = _registry_json(repo, tag)
    if "manifests" in doc:
        digest = platform_manifest(doc)
        if digest is None:
            raise CommandFailed(f"{REGISTRY}/{repo}:{tag} has no linux/amd64 image", [])
        doc = _registry_json(repo, digest)
    return manifest_blobs(doc)


def push(ref: str, repo: str, tag: str) -> list[tuple[str, int]]:
    """Tag ``ref`` as ``REGISTRY/repo:tag``, push it to the loopback registry and read back its blobs."""
    target = f"{REGISTRY}/{repo}:{tag}"
    subprocess.run(["docker", "tag", ref, target], check=True, capture_output=True)
    timed(["docker", "push", "--quiet", target])
    return pushed_blobs(repo, tag)


def remove_bench_images(token: str) -> None:
    """Untag (and so drop) the images one bench run made (every tag under imagesmith-bench-TOKEN/,
    here and as pushed to the loopback registry), never anything else."""
    listed = [
        ref
        for pattern in (f"imagesmith-bench-{token}/*", f"{REGISTRY}/imagesmith-bench-{token}/*")
        for ref in subprocess.run(
            ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter", f"reference={pattern}"],
            capture_output=True,
            text=True,
        ).stdout.split()
    ]
    if listed:
        subprocess.run(["docker", "image", "rm", "--force", *listed], capture_output=True)
