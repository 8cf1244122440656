"""A registry build cache between engines (issue 28: a rebuild on a clean engine at least 2.5x
faster than cold, to the same digests): the iris example on EMPTY second engines (tests/engines.py,
a stand-in for a CI runner or a remote build host), each started for one build and removed after
it. For each CI recipe, N cold builds (each on a new empty engine, writing a per-target registry
cache with ``mode=max``), then N rebuilds on new empty engines reading that cache
(``--cache-from``). Every build pushes both images to the loopback registry straight from the
build, as CI does. The rows: the cold median, and the cached median with its speed-up over the
cold median (goal >= 2.5x); a cached rebuild whose digests differ from the cold builds', or whose
pushed pair fails a full `imagesmith verify` (the first engine pulls it), says so instead.

The recipes (``RECIPES``):
- ``--push``: the engine's own BuildKit (driver ``docker``, containerd image store) pushes from
  the build and also stores both images in the engine, unpacking every layer into its snapshotter;
  on a cached rebuild that unpack is most of the time.
- ``--push --push-only``: the same exporter pushes and neither stores nor unpacks (push_only.py's
  ``PUSH_ONLY``); nothing of the images is left in the engine, which a runner that only builds and
  pushes does not need.
- ``classic`` (only with ``--recipe``): ``--push``, the rebuilds on engines with the classic image
  store (overlay2), which cannot write the cache but can read it.

The lock is made beforehand on the first engine (the second engines have no outbound network; the
build itself needs none: the wheels come from the host's cache).

    python bench/bench_remote_cache.py [--runs N] [--recipe push|push-only|classic]...
    (needs `make engine`, run as root; `make bench` runs it as its registry-cache rows)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    BASE,
    IMAGESMITH,
    REGISTRY,
    REPO,
    CommandFailed,
    Goal,
    Row,
    fresh_copy,
    imagesmith_env,
    median,
    table,
    timed,
)

sys.path.insert(0, str(REPO))

from tests.engines import start_second_engine  # noqa: E402

GOAL = Goal("speedup", 2.5, of="cold")
COLD_ENGINE, CACHED_ENGINE = 21, 22  # the second engines' subnets (172.30.N.0/24); one at a time
ROLES = ("train", "serve")


@dataclass(frozen=True)
class Recipe:
    name: str  # --recipe's value
    title: str
    flags: tuple[str, ...]  # on both the cold and the cached build, beside --push
    cached_store: bool = True  # the cached rebuilds' engines: containerd's image store, else the classic one


RECIPES = (
    Recipe("push", "--push (stored in the engine too)", ()),
    Recipe("push-only", "--push --push-only", ("--push-only",)),
)
# Run only when asked (--recipe): the classic store's docker driver cannot write the cache, so the
# cold builds keep containerd's store and only the rebuilds read the cache on the classic one.
OTHERS = (Recipe("classic", "--push, rebuilt on the classic image store", (), cached_store=False),)


def _say(message: str) -> None:
    print(message, flush=True)


def _build(argv: list[str], index: int, containerd: bool = True) -> tuple[float, dict[str, str], dict[str, str]]:
    """One `imagesmith build --json` on a new empty engine: (seconds, digests, pushed refs)."""
    engine = start_second_engine(index, containerd_store=containerd)
    env = imagesmith_env(DOCKER_HOST=engine.host)
    env.pop("DOCKER_CONTEXT", None)
    try:
        took = timed([*IMAGESMITH, *argv], env=env, timeout=1800)
    finally:
        engine.stop()
    images = json.loads(took.stdout)["images"]
    return took.seconds, {r: images[r]["digest"] for r in ROLES}, {r: images[r]["pushed"] for r in ROLES}


def judged(recipe: Recipe, colds: list[float], cached: list[float], problems: list[str]) -> list[Row]:
    """The recipe's two rows; the cached one is judged against the cold median (Goal ``speedup``)
    unless something broke the guarantees (then ``problems`` is its verdict). Pure."""
    cold = Row(f"iris, empty engine, {recipe.title}: cold, writes the cache", "s", {"imagesmith": colds})
    again = Row(
        f"iris, empty engine, {recipe.title}: rebuild from the registry cache",
        "s",
        {"imagesmith": cached},
        GOAL,
        note="; ".join(dict.fromkeys(problems)),
        reference=median(colds),
    )
    return [cold, again]


def measure_recipe(recipe: Recipe, root: Path, base: str, runs: int, token: str) -> list[Row]:
    push = f"{REGISTRY}/imagesmith-bench-{token}/iris-{recipe.name}"
    cache = f"{REGISTRY}/imagesmith-bench-{token}/iris-cache-{recipe.name}:build"
    common = ["build", "-p", str(root), "--base", base, "--locked", "--json", *recipe.flags]
    colds: list[float] = []
    cached: list[float] = []
    problems: list[str] = []
    digests: dict[str, str] | None = None
    pushed: dict[str, str] = {}
    try:
        for i in range(runs):
            seconds, got, _ = _build(
                [*common, "--push", f"{push}-cold{i}", "--cache-to", f"type=registry,ref={cache},mode=max"],
                COLD_ENGINE,
            )
            colds.append(seconds)
            digests = digests or got
            if got != digests:
                problems.append("missed: two cold builds gave different digests")
            _say(f"  {recipe.name}: cold {i + 1}/{runs} {seconds:.1f} s")
        for i in range(runs):
            seconds, got, pushed = _build(
                [*common, "--push", f"{push}-cached{i}", "--cache-from", f"type=registry,ref={cache}"],
                CACHED_ENGINE,
                recipe.cached_store,
            )
            cached.append(seconds)
            if got != digests:
                problems.append("missed: not the cold build's digests")
            _say(f"  {recipe.name}: cached {i + 1}/{runs} {seconds:.1f} s, same digests: {got == digests}")
        problems += _verified(root, pushed)
    except CommandFailed as exc:
        problems.append(f"not available: {exc.first_error()[:160]}")
    return judged(recipe, colds, cached, problems)


def _verified(root: Path, pushed: dict[str, str]) -> list[str]:
    """A full `imagesmith verify` of the last cached rebuild's pushed pair on the first engine (it
    pulls the serve image: every layer must be in the registry); the pulled image removed after."""
    argv = [*IMAGESMITH, "verify", pushed["serve"], "--lock", str(root / "imagesmith.lock"), "--pair", pushed["train"]]
    try:
        timed(argv, env=imagesmith_env(), timeout=900)
    except CommandFailed as exc:
        return [f"missed: verify of the pushed images failed: {exc.first_error()[:120]}"]
    finally:
        subprocess.run(["docker", "image", "rm", pushed["serve"]], capture_output=True)
    return []


def measure(runs: int, tmp: Path, token: str, recipes: tuple[Recipe, ...] = RECIPES) -> list[Row]:
    """Every recipe's rows, for `make bench` (run.py) and for this script alone."""
    base = f"{REGISTRY}/imagesmith-bench-{token}/base:bookworm-py311"  # what an empty engine can pull
    subprocess.run(["docker", "tag", BASE, base], check=True, capture_output=True)
    subprocess.run(["docker", "push", "-q", base], check=True, capture_output=True)
    root = fresh_copy(REPO / "examples" / "iris", tmp / "iris-remote-cache")
    timed([*IMAGESMITH, "lock", "-p", str(root), "--base", base], env=imagesmith_env())
    rows: list[Row] = []
    for recipe in recipes:
        _say(f"registry cache: iris, {recipe.title}, {runs} cold and {runs} cached builds on empty engines")
        rows += measure_recipe(recipe, root, base, runs, token)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--recipe",
        action="append",
        choices=[r.name for r in (*RECIPES, *OTHERS)],
        help=f"(repeatable) default: {', '.join(r.name for r in RECIPES)}",
    )
    opts = parser.parse_args()
    recipes = tuple(r for r in (*RECIPES, *OTHERS) if r.name in opts.recipe) if opts.recipe else RECIPES
    from benchlib import remove_bench_images

    token = uuid.uuid4().hex[:8]
    try:
        with tempfile.TemporaryDirectory(prefix="imagesmith-bench-") as tmp:
            rows = measure(opts.runs, Path(tmp), token, recipes)
    finally:
        remove_bench_images(token)
    _say(table(rows))
    return 0 if all(r.verdict().startswith("met") for r in rows if r.goal) else 1


if __name__ == "__main__":
    sys.exit(main())
