"""Builds of a benchmark project: imagesmith (both images) against the plain single-stage
Dockerfile most projects write (`COPY . .` then `pip install -r requirements.txt`) and against
uv's own Docker pattern (bench/Dockerfile.uv), side by side in one run.

For each of N runs, each tool in its own fresh copy of the project (a new git checkout):
- cold: no lock, an empty wheel cache (imagesmith), `--no-cache` for BuildKit and an empty uv
  cache mount (uv pattern); imagesmith also resolves and hash-pins its lock, the uv pattern's
  uv.lock is made beforehand and not timed;
- edit: a one-line edit of app/server.py, then the same build command again (imagesmith: the
  whole `imagesmith build`, lock check included);
- MB over the base image (the serve image for imagesmith), and whether clean builds gave one
  image digest.
BuildKit's per-step times (plain log) and imagesmith's own phases come with each build.

    python bench/bench_build.py [--runs N] [--project iris|scale|torch] [--tools imagesmith,plain,uv]

IMAGESMITH_BASE picks the base image; the CLI is this tree's (`python -m imagesmith`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    BASE,
    IMAGESMITH,
    REPO,
    TOOLS,
    CommandFailed,
    Goal,
    Row,
    Step,
    edit,
    free_gb,
    fresh_copy,
    imagesmith_env,
    inspect,
    layer_sizes,
    local_layers,
    mb_over_base,
    median,
    new_bytes,
    parse_steps,
    phases,
    push,
    remove_bench_images,
    table,
    timed,
)

HERE = Path(__file__).resolve().parent
UV_DOCKERFILE = HERE / "Dockerfile.uv"


@dataclass(frozen=True)
class Project:
    name: str
    source: Path
    plain_dockerfile: Path
    edit_file: str = "app/server.py"
    apt_packages: tuple[str, ...] = ()
    # one small dependency bumped: (the line in requirements.txt, the line after the bump)
    bump: tuple[str, str] | None = None
    # a build starts only with this much free disk (GB): each torch build leaves gigabytes in the
    # engine's build cache, which the bench cannot reclaim on a shared engine; a build skipped for
    # it is said in the log and left out of the table
    min_free_gb: float = 0.0
    # the other tools' images are removed as soon as their figures are taken (disk, again)
    drop_images: bool = False


PROJECTS = {
    "iris": Project("iris", REPO / "examples" / "iris", HERE / "projects" / "iris" / "Dockerfile.plain"),
    "scale": Project(
        "scale",
        HERE / "projects" / "scale",
        HERE / "projects" / "scale" / "Dockerfile.plain",
        apt_packages=("libgomp1",),
    ),
    # torch's CUDA build (about 3 GB of wheels), trained on the CPU: run.py --torch only
    "torch": Project(
        "torch",
        HERE / "projects" / "torch",
        HERE / "projects" / "torch" / "Dockerfile.plain",
        bump=("uvicorn==0.34.0", "uvicorn==0.34.1"),
        min_free_gb=25.0,  # an imagesmith build of it: about 20 GB (wheels, venv, heavy layers, export)
        drop_images=True,
    ),
}


@dataclass
class Build:
    """One tool's cold build and edit rebuild in one fresh copy."""

    tool: str
    root: Path
    ref: str  # the (serve) image
    cold: float = 0.0
    edit: float = 0.0
    mb: float = 0.0
    image_id: str = ""
    cold_steps: list[Step] = field(default_factory=list)
    edit_steps: list[Step] = field(default_factory=list)
    cold_phases: dict[str, float] = field(default_factory=dict)
    edit_phases: dict[str, float] = field(default_factory=dict)
    layers: list[tuple[float, str]] = field(default_factory=list)  # (MB, step) over the base, oldest first
    # after one small dependency's bump (Project.bump): the rebuild's seconds, and what a push of the
    # rebuilt image sends to a registry holding the image before it (layers it lacks, uncompressed MB,
    # and in % of the whole image's layers, the base's included); the same for the one-line edit
    bump: float | None = None
    bump_sent_mb: float | None = None
    bump_sent_pct: float | None = None
    edit_sent_mb: float | None = None
    edit_sent_pct: float | None = None
    # imagesmith's serve image pushed to the loopback registry for real: compressed bytes of the
    # image after the edit and of the blobs the push after the bump sent
    pushed_mb: float | None = None
    pushed_bump_mb: float | None = None


def _sent(before: list[tuple[str, int]] | None, after: list[tuple[str, int]] | None) -> tuple[float, float] | None:
    """(MB, % of ``after``) a push of ``after`` sends to a registry holding ``before``."""
    if before is None or after is None:
        return None
    sent, total = new_bytes(before, after), sum(size for _, size in after)
    return sent / 1e6, 100.0 * sent / total if total else 0.0


def bump_requirements(root: Path, bump: tuple[str, str]) -> None:
    """Bump the one dependency: its line in requirements.txt rewritten."""
    path = root / "requirements.txt"
    lines = path.read_text().splitlines()
    if bump[0] not in lines:
        raise CommandFailed(f"{path}: no line {bump[0]!r} to bump", [])
    path.write_text("\n".join(bump[1] if line == bump[0] else line for line in lines) + "\n")


def build_imagesmith(project: Project, root: Path, tag: str, cache: Path) -> Build:
    env = imagesmith_env(PIP_NO_CACHE_DIR="1", UV_NO_CACHE="1")
    cmd = [*IMAGESMITH, "build", "-p", str(root), "--progress", "plain", "--tag", tag, "--cache-dir", str(cache)]
    b = Build("imagesmith", root, f"{tag}:serve")
    cold = timed([*cmd, "--no-cache"], root, env)
    b.cold, b.cold_steps, b.cold_phases = cold.seconds, parse_steps(cold.lines), phases(cold.events, cold.seconds)
    b.image_id, b.mb = inspect(b.ref, ".Id"), mb_over_base(b.ref)
    b.layers = layer_sizes(b.ref)
    cold_layers = local_layers(b.ref)
    edit(root / project.edit_file)
    warm = timed(cmd, root, env)
    b.edit, b.edit_steps, b.edit_phases = warm.seconds, parse_steps(warm.lines), phases(warm.events, warm.seconds)
    edit_layers = local_layers(b.ref)
    b.edit_sent_mb, b.edit_sent_pct = _sent(cold_layers, edit_layers) or (None, None)
    if project.bump:
        pushed = push(b.ref, tag, "edit")  # to 127.0.0.1:5000/TAG:edit
        b.pushed_mb = sum(size for _, size in pushed) / 1e6
        bump_requirements(root, project.bump)
        bumped = timed(cmd, root, env)  # the lock is out of date: build locks again
        b.bump = bumped.seconds
        b.bump_sent_mb, b.bump_sent_pct = _sent(edit_layers, local_layers(b.ref)) or (None, None)
        b.pushed_bump_mb = new_bytes(pushed, push(b.ref, tag, "bump")) / 1e6
    return b


def _buildx(dockerfile: Path, tag: str, args: dict[str, str], no_cache: bool) -> list[str]:
    argv = ["docker", "buildx", "build", "--progress=plain", "--provenance=false", "--load", "-f", str(dockerfile)]
    for key, value in args.items():
        argv += ["--build-arg", f"{key}={value}"]
    return argv + (["--no-cache"] if no_cache else []) + ["-t", tag, "."]


def build_docker(
    tool: str, root: Path, dockerfile: Path, tag: str, args: dict[str, str], project: Project, relock=None
) -> Build:
    """``relock``: what the tool's user runs after editing requirements.txt (not timed)."""
    b = Build(tool, root, tag)
    cold = timed(_buildx(dockerfile, tag, args, True), root)
    b.cold, b.cold_steps = cold.seconds, parse_steps(cold.lines)
    b.image_id, b.mb = inspect(tag, ".Id"), mb_over_base(tag)
    b.layers = layer_sizes(tag)
    cold_layers = local_layers(tag)
    edit(root / project.edit_file)
    warm = timed(_buildx(dockerfile, tag, args, False), root)
    b.edit, b.edit_steps = warm.seconds, parse_steps(warm.lines)
    edit_layers = local_layers(tag)
    b.edit_sent_mb, b.edit_sent_pct = _sent(cold_layers, edit_layers) or (None, None)
    if project.bump:
        bump_requirements(root, project.bump)
        if relock:
            relock(root)
        bumped = timed(_buildx(dockerfile, tag, args, False), root)
        b.bump = bumped.seconds
        b.bump_sent_mb, b.bump_sent_pct = _sent(edit_layers, local_layers(tag)) or (None, None)
    return b


def _say(message: str) -> None:
    print(message, flush=True)


def uv_version() -> str:
    out = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def uv_project(root: Path) -> None:
    """pyproject.toml (an application: [tool.uv] package = false) and uv.lock from the project's
    requirements.txt, for uv's pattern; locked with the host's uv, not timed."""
    reqs = [ln.strip() for ln in (root / "requirements.txt").read_text().splitlines()]
    deps = "".join(f'    "{r}",\n' for r in reqs if r and not r.startswith("#"))
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "bench-app"\nversion = "0"\nrequires-python = "==3.11.*"\ndependencies = [\n{deps}]\n'
        "\n[tool.uv]\npackage = false\n"
    )
    subprocess.run([sys.executable, "-m", "uv", "lock", "-q"], cwd=root, check=True, capture_output=True)


def measure(
    project: Project,
    runs: int,
    tmp: Path,
    tools: tuple[str, ...] = TOOLS,
    token: str | None = None,
    log=None,
    results: dict[str, list[Build]] | None = None,
) -> dict[str, list[Build]]:
    """Every tool's builds of ``project``, ``runs`` times each (tools interleaved within a run),
    added to ``results`` as each ends (so an interrupted run keeps what it measured). The copies
    stay in ``tmp`` (the caller's) for benches that read them afterwards; the images are tagged
    imagesmith-bench-TOKEN/..."""
    token = token or uuid.uuid4().hex[:8]
    results = {} if results is None else results
    for t in tools:
        results.setdefault(t, [])
    version = uv_version() if "uv" in tools else ""
    for i in range(runs):
        for tool in tools:
            if free_gb() < project.min_free_gb:
                (log or _say)(
                    f"  {project.name} run {i + 1}/{runs} {tool}: SKIPPED, {free_gb():.1f} GB free on disk "
                    f"(a build needs {project.min_free_gb:g})"
                )
                continue
            root = fresh_copy(project.source, tmp / f"{project.name}-{tool}-{i}")
            tag = f"imagesmith-bench-{token}/{project.name}-{tool}-{i}"
            if tool == "imagesmith":
                b = build_imagesmith(project, root, tag, tmp / f"cache-{project.name}-{i}")
            elif tool == "plain":
                dockerfile = root / project.plain_dockerfile.name
                dockerfile.write_text(project.plain_dockerfile.read_text())
                b = build_docker(tool, root, dockerfile, tag, {"BASE": BASE}, project)
            else:
                uv_project(root)
                args = {
                    "BASE": BASE,
                    "UV_VERSION": version,
                    "APT_PACKAGES": " ".join(project.apt_packages),
                    "CACHE_ID": f"imagesmith-bench-{token}-{project.name}-{i}",
                }
                b = build_docker(tool, root, UV_DOCKERFILE, tag, args, project, relock=uv_project)
            results[tool].append(b)
            if project.drop_images and tool != "imagesmith":
                subprocess.run(["docker", "image", "rm", "--force", tag], capture_output=True)
            bumped = f", bump {b.bump:.1f} s sending {b.bump_sent_pct or 0:.1f} % of the image" if b.bump else ""
            (log or _say)(
                f"  {project.name} run {i + 1}/{runs} {tool}: cold {b.cold:.1f} s, edit {b.edit:.2f} s, "
                f"{b.mb:.1f} MB{bumped}"
            )
    return results


def rows(project: Project, results: dict[str, list[Build]]) -> list[Row]:
    """The table's rows for one project, with their goals (the same at every size)."""

    def values(key: str) -> dict[str, list[float]]:
        return {
            tool: [getattr(b, key) for b in builds if getattr(b, key) is not None] for tool, builds in results.items()
        }

    out = [
        # issue 28: imagesmith (both images, the lock included) at or under uv's pattern (one image)
        Row(f"{project.name}: cold build, both images", "s", values("cold"), Goal("peer", 1.0, of="uv")),
        Row(f"{project.name}: one-line edit -> images", "s", values("edit"), Goal("peer", 1.0, of="uv")),
        Row(f"{project.name}: size over the base", "MB", values("mb"), Goal("least")),
    ]
    if project.bump:
        out += [
            Row(f"{project.name}: push after the edit, new layers", "MB", values("edit_sent_mb")),
            Row(f"{project.name}: one dependency bumped -> images", "s", values("bump")),
            Row(f"{project.name}: push after the bump, new layers", "MB", values("bump_sent_mb")),
            Row(f"{project.name}: push after the bump, of the image", "%", values("bump_sent_pct"), Goal("max", 5)),
            Row(f"{project.name}: serve image pushed (compressed)", "MB", values("pushed_mb")),
            Row(f"{project.name}: push after the bump, sent (compressed)", "MB", values("pushed_bump_mb")),
        ]
    return out


def step_medians(builds: list[Build], which: str = "cold_steps") -> list[tuple[str, float, bool]]:
    """Each step's median time over the runs, longest first: (name, seconds, cached in every run)."""
    samples: dict[str, list[float]] = {}
    cached: dict[str, bool] = {}
    for b in builds:
        for s in getattr(b, which):
            samples.setdefault(s.name, []).append(s.seconds)
            cached[s.name] = cached.get(s.name, True) and s.cached
    out = [(name, median(v) or 0.0, cached[name]) for name, v in samples.items()]
    return sorted(out, key=lambda x: -x[1])


def phase_medians(builds: list[Build], which: str = "cold_phases") -> dict[str, float]:
    names = dict.fromkeys(n for b in builds for n in getattr(b, which))
    return {n: median([getattr(b, which)[n] for b in builds if n in getattr(b, which)]) or 0.0 for n in names}


def breakdown(results: dict[str, list[Build]], top: int = 12) -> str:
    """Where a cold build's seconds go: imagesmith's phases, then each tool's longest steps."""
    lines = []
    if results.get("imagesmith"):
        builds = results["imagesmith"]
        total = median([b.cold for b in builds]) or 0.0
        parts = ", ".join(f"{n} {s:.1f} s" for n, s in phase_medians(builds).items())
        lines.append(f"imagesmith cold build {total:.1f} s: {parts}")
        parts = ", ".join(f"{n} {s:.2f} s" for n, s in phase_medians(builds, "edit_phases").items())
        lines.append(f"imagesmith edit rebuild {median([b.edit for b in builds]) or 0:.2f} s: {parts}")
    if results.get("imagesmith"):
        edit_steps = [s for s in step_medians(results["imagesmith"], "edit_steps") if not s[2]]
        lines.append("imagesmith: BuildKit steps of the edit rebuild that were not cached")
        lines += [f"  {seconds:7.2f}  {name}" for name, seconds, _ in edit_steps[:top]]
    for tool, builds in results.items():
        steps = step_medians(builds)
        if not steps:
            continue
        lines.append(f"{tool}: BuildKit steps of the cold build (median s, longest first)")
        for name, seconds, cached in steps[:top]:
            lines.append(f"  {seconds:7.2f}  {name}{'  (cached)' if cached else ''}")
    return "\n".join(lines)


def _short_step(step: str) -> str:
    """A layer's step without the shell prefix and imagesmith's timestamp-mark preamble."""
    step = step.removeprefix("RUN /bin/sh -c ")
    return step.removeprefix("touch /tmp/.imagesmith-mark && sleep 0.05 && ")


def layers(results: dict[str, list[Build]], top: int = 8) -> str:
    """Each tool's largest layers over the base (its first run): where the megabytes are."""
    lines = []
    for tool, builds in results.items():
        if not builds or not builds[0].layers:
            continue
        found = builds[0].layers
        lines.append(f"{tool}: {len(found)} layers over the base, {sum(mb for mb, _ in found):.0f} MB; largest:")
        for mb, step in sorted(found, key=lambda x: -x[0])[:top]:
            lines.append(f"  {mb:9.1f} MB  {_short_step(step)[:110]}")
    return "\n".join(lines)


def as_json(results: dict[str, list[Build]]) -> dict:
    return {
        tool: {
            "runs": [
                {
                    "cold_s": b.cold,
                    "edit_s": b.edit,
                    "edit_push_new_layers_mb": b.edit_sent_mb,
                    "edit_push_pct_of_image": b.edit_sent_pct,
                    "bump_s": b.bump,
                    "bump_push_new_layers_mb": b.bump_sent_mb,
                    "bump_push_pct_of_image": b.bump_sent_pct,
                    "registry_pushed_mb": b.pushed_mb,
                    "registry_bump_sent_mb": b.pushed_bump_mb,
                    "mb_over_base": b.mb,
                    "image_id": b.image_id,
                    "layers_mb": [{"mb": round(mb, 1), "step": step[:200]} for mb, step in b.layers],
                    "cold_phases_s": b.cold_phases,
                    "edit_phases_s": b.edit_phases,
                    "cold_steps": [s.__dict__ for s in b.cold_steps],
                    "edit_steps": [s.__dict__ for s in b.edit_steps],
                }
                for b in builds
            ],
            "cold_steps_median": [{"step": n, "s": s, "cached": c} for n, s, c in step_medians(builds)],
            "distinct_image_ids": len({b.image_id for b in builds}),
        }
        for tool, builds in results.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--project", choices=sorted(PROJECTS), default="iris")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated: imagesmith, plain, uv")
    args = parser.parse_args()
    tools = tuple(t for t in args.tools.split(",") if t)
    project = PROJECTS[args.project]
    token = uuid.uuid4().hex[:8]
    try:
        with tempfile.TemporaryDirectory(prefix="imagesmith-bench-") as tmp:
            results = measure(project, args.runs, Path(tmp), tools, token)
    finally:
        remove_bench_images(token)
    print(f"\n{project.name}, {args.runs} run(s) each, medians; base {BASE}")
    print(table(rows(project, results)))
    print()
    print(breakdown(results))
    for tool, builds in results.items():
        print(f"{tool}: {len({b.image_id for b in builds})} distinct image digest(s) over {len(builds)} clean builds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
