"""Shared fixtures. Four tiers:

- pure unit tests (tests/unit, no marker) need nothing but Python;
- tests/tools (no marker) runs the real package tools (uv, pip-compile, pip) against package
  indexes on 127.0.0.1: no engine, but seconds, so not in the quick loop (`make test-unit`);
- ``engine`` tests build real images on the real Docker engine with buildx;
- ``registry`` tests also push to the loopback registry on 127.0.0.1.

Every tier runs on several workers in `make test` (see ``pytest_collection_modifyitems``): a test
makes its own image tags, projects and engines, or reads images made once per worker.

`make test` (scripts/setup-engine.sh) installs and starts the engine, the registry and the base
image before pytest runs; these fixtures fail loudly, never skip, when something is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Bytecode: a caller that forbids writing it beside the sources (PYTHONDONTWRITEBYTECODE) would
# make every test process compile imagesmith and rewrite the tests' asserts again (a second or
# more of CPU per worker, each run). Until collection ends, this process keeps that bytecode
# under build/pycache (gitignored) instead; then ``pytest_collection_finish`` puts the caller's
# settings back, so no test runs with them changed (the runtime's own compile steps read them).
# Subprocesses keep the caller's environment as it is.
_CALLERS_BYTECODE = (sys.dont_write_bytecode, sys.pycache_prefix)
if sys.dont_write_bytecode and not sys.pycache_prefix:
    sys.pycache_prefix = str(REPO / "build" / "pycache")
    sys.dont_write_bytecode = False


def pytest_collection_finish(session):
    sys.dont_write_bytecode, sys.pycache_prefix = _CALLERS_BYTECODE


from imagesmith.build import BuildOptions, build_project  # noqa: E402 (after the bytecode setting)
from imagesmith.engine import Engine  # noqa: E402 (after the bytecode setting)
from imagesmith.render import generated  # noqa: E402 (after the bytecode setting)
from imagesmith.spec.load import load_spec  # noqa: E402 (after the bytecode setting)
from tests.helpers import remove_tags  # noqa: E402 (after the bytecode setting)

EXAMPLES = REPO / "examples"
PROJECTS = Path(__file__).resolve().parent / "projects"
BASE_IMAGE = os.environ.get("IMAGESMITH_TEST_BASE", "imagesmith-base:bookworm-py311")
REGISTRY = os.environ.get("IMAGESMITH_TEST_REGISTRY", "127.0.0.1:5000")
# Made by scripts/setup-engine.sh --platforms linux/arm64 (`make engine`): a local single-platform
# linux/arm64 base, and in the registry an image index of the amd64 base (BASE_IMAGE) and that one.
ARM64_BASE_IMAGE = os.environ.get("IMAGESMITH_TEST_ARM64_BASE", "imagesmith-base:bookworm-py311-arm64")
REGISTRY_BASE = os.environ.get("IMAGESMITH_TEST_REGISTRY_BASE", f"{REGISTRY}/imagesmith-base:bookworm-py311")
FIXED_EPOCH = 1700000000


def pytest_configure(config):
    """Names this run's images with an id of its own (``IMAGESMITH_TEST_RUN``, set by the controller
    and inherited by its xdist workers), unless the caller set one: see ``shared_repo``."""
    if not hasattr(config, "workerinput"):
        import uuid

        os.environ.setdefault("IMAGESMITH_TEST_RUN", uuid.uuid4().hex[:10])
        # The groups go out in the order pytest_collection_modifyitems gives them, not xdist's
        # default (most tests first, which sends the engine modules, few tests but long, last).
        config.option.loadscopereorder = False
        _LOADGROUP["on"] = getattr(config.option, "dist", "no") == "loadgroup"


def shared_repo(name: str) -> str:
    """The repository of an image that a session fixture builds on every worker that needs it
    (``iris_built``, ``tiny_built``): ``imagesmith-test/NAME-<run id>``, new for each run, so each run
    names images this engine never had, as a fresh machine does, whichever ran before. The
    controller removes these tags when the run ends."""
    return f"imagesmith-test/{name}-{os.environ['IMAGESMITH_TEST_RUN']}"


def _run_dir(config, tmp_path_factory) -> Path:
    """A folder every worker of this run shares: the run's base temp folder (xdist gives each
    worker a folder inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if hasattr(config, "workerinput") else base


@contextlib.contextmanager
def one_build_at_a_time(run_dir: Path, repo: str):
    """Held while this worker builds ``repo``: workers that build the same names take turns. The
    first builds; the others find every step cached and the names made, so their exports only
    update the names (two exports that create one name at once make BuildKit fail one, which
    `imagesmith build` then retries: the suite does not rely on that). The lock file also tells
    the controller which repositories to remove at the end."""
    import fcntl

    folder = run_dir / "shared-images"
    folder.mkdir(exist_ok=True)
    with open(folder / repo.replace("/", "%"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _remove_shared_images(run_dir: Path) -> None:
    folder = run_dir / "shared-images"
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        remove_tags(entry.name.replace("%", "/"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """`make test` runs on several workers (pytest-xdist, ``--dist loadgroup``): the tests of one
    module stay together on one worker (its module-scoped fixtures, such as a second engine or a
    set of signed images, are made once), except where a test names its own group
    (``pytest.mark.xdist_group``: a long test that shares no module fixture). Before xdist's own
    hook, which reads the marks.

    xdist hands the groups out in the order the workers collected them: the groups are put in
    the order ``longest_first`` gives, from the seconds each took in the last recorded run, so the
    longest start first and the short ones fill the gaps at the end."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__ if item.module else item.nodeid))
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get(_SECONDS_KEY):
        groups = [_group(item) for item in items]
        units = [work_unit(item.nodeid.split("::", 1)[0], group) for item, group in zip(items, groups)]
        order = longest_first(groups, units, workerinput[_SECONDS_KEY])
        items[:] = [items[i] for i in order]


def _group(item) -> str:
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


def work_unit(path: str, group: str) -> str:
    """What the record times: a module's own group is its path (``tests/engine/test_x.py``),
    a group a test names is ``PATH@GROUP``."""
    return path if group == path.removesuffix(".py").replace("/", ".") else f"{path}@{group}"


def longest_first(groups: list[str], units: list[str], seconds: list[list]) -> list[int]:
    """The indexes of the items (item i is in xdist group ``groups[i]`` and record unit
    ``units[i]``, see ``work_unit``) with whole groups longest first, by ``seconds`` (the
    record's [unit, seconds] pairs). A unit the record lacks counts as its module's seconds (a
    test given a group of its own since), else as the mean of its tier (tests/engine/,
    tests/unit/, ...): a new engine module starts among the engine modules. Ties keep the
    collection order."""
    known = {unit: spent for unit, spent in seconds}
    tiers: dict[str, list[float]] = {}
    for unit, spent in known.items():
        tiers.setdefault(unit.rsplit("/", 1)[0], []).append(spent)
    mean = {tier: sum(spent) / len(spent) for tier, spent in tiers.items()}

    def guess(unit: str) -> float:
        module = unit.split("@", 1)[0]
        return known.get(unit, known.get(module, mean.get(module.rsplit("/", 1)[0], 0.0)))

    length: dict[str, float] = {}
    for group, unit in zip(groups, units):
        length[group] = max(length.get(group, 0.0), guess(unit))
    first = {group: i for i, group in reversed(list(enumerate(groups)))}
    return sorted(range(len(groups)), key=lambda i: (-length[groups[i]], first[groups[i]], i))


_SECONDS_KEY = "imagesmith_module_seconds"
RECORD = REPO / "build" / "test-times.json"
# A clean clone has no record: its first run orders the groups by these seconds (committed, from
# targeted runs of the long modules), so the long groups still start first instead of in
# collection order, where the arm64 and second-engine groups came late and ran on alone.
COMMITTED_RECORD = REPO / "tests" / "test-times.json"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """The controller reads the last run's seconds per group (build/test-times.json) once and hands
    the same list to every worker, so all collect the same order (xdist requires it)."""
    config = node.config
    if not hasattr(config, "_imagesmith_seconds"):
        config._imagesmith_seconds = _last_module_seconds()
    node.workerinput[_SECONDS_KEY] = config._imagesmith_seconds


def _last_module_seconds() -> list[list]:
    """The record's [unit, seconds] pairs: build/test-times.json's, else (a clean clone) the
    committed tests/test-times.json's; none without a readable one."""
    import json

    for record in (RECORD, COMMITTED_RECORD):
        try:
            modules = json.loads(record.read_text()).get("modules", [])
            return [[str(module), float(spent)] for module, spent in modules]
        except (OSError, ValueError, AttributeError, TypeError):
            continue
    return []


# Seconds each xdist group took (setup, call and teardown of its tests, summed from the reports
# the controller receives; keyed by ``work_unit``): with ``--dist loadgroup`` a group runs on one
# worker, so the longest bounds the run. build/test-times.json keeps them, longest first, with the
# last recorded seconds of the groups a run did not run (a selection keeps the others' numbers for
# the next ordering). xdist names a test ``NODEID@GROUP`` under loadgroup only.
_MODULE_SECONDS: dict[str, float] = {}
# Each test's own seconds (setup, call and teardown), for the record's ``slowest``: where a group's
# time goes, without a second run with --durations.
_TEST_SECONDS: dict[str, float] = {}
SLOWEST_KEPT = 60


def pytest_runtest_logreport(report):
    path, _, rest = report.nodeid.partition("::")
    group = rest.rpartition("@")[2] if _LOADGROUP["on"] and "@" in rest else ""
    unit = work_unit(path, group) if group else path
    _MODULE_SECONDS[unit] = _MODULE_SECONDS.get(unit, 0.0) + report.duration
    _TEST_SECONDS[report.nodeid] = _TEST_SECONDS.get(report.nodeid, 0.0) + report.duration


_LOADGROUP = {"on": False}


def module_seconds(seconds: dict[str, float]) -> list[list]:
    """``seconds`` as the record's ``modules``: [unit, seconds to 0.1 s] pairs (``work_unit``),
    longest first (ties by name)."""
    return sorted(([module, round(spent, 1)] for module, spent in seconds.items()), key=lambda m: (-m[1], m[0]))


def pytest_sessionfinish(session, exitstatus):
    """A session started by `make test` (which exports IMAGESMITH_MAKE_TEST_STARTED, its start
    time) records how long the whole `make test` took, how it ended, how long each test module
    took and its slowest tests, in build/test-times.json: what `make bench` reports
    (bench/bench_tests.py). Written by the controller, not by workers."""
    if hasattr(session.config, "workerinput"):
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None and factory._basetemp is not None:  # a run that made temp folders
        _remove_shared_images(_run_dir(session.config, factory))
    started = os.environ.get("IMAGESMITH_MAKE_TEST_STARTED")
    if not started:
        return
    import datetime as dt
    import json
    import time

    stats = session.config.pluginmanager.get_plugin("terminalreporter").stats
    whole = session.config.args_source == pytest.Config.ArgsSource.TESTPATHS and not stats.get("deselected")
    tree = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    record = {
        "make_seconds": round(time.time() - float(started), 1),
        "ended": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "tree": tree.stdout.strip() or "unknown",
        "workers": getattr(session.config.option, "numprocesses", None) or 1,
        "selected": "all" if whole else " ".join(session.config.args),
        "passed": len(stats.get("passed", [])),
        "failed": len(stats.get("failed", [])),
        "errors": len(stats.get("error", [])),
        "exit_status": int(exitstatus),
        "modules": module_seconds({**dict(_last_module_seconds()), **_MODULE_SECONDS}),
        "slowest": module_seconds(_TEST_SECONDS)[:SLOWEST_KEPT],
    }
    out = RECORD
    out.parent.mkdir(exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    tmp.replace(out)


def copy_project(src: Path, dest: Path, *, git: bool = True) -> Path:
    """A copy of a project in a fresh git repository (one commit at a fixed date), without the
    lock, Dockerfile or artifacts a previous run may have left in the source folder (a Dockerfile
    imagesmith did not generate is the project's own, and copied)."""
    left = shutil.ignore_patterns(
        "imagesmith.lock", "requirements.lock", ".imagesmith", "artifacts", "__pycache__", "*.pyc"
    )

    def ignore(folder: str, names: list[str]) -> set[str]:  # a project's own Dockerfile is part of it
        return set(left(folder, names)) | {
            n for n in names if n.endswith(("Dockerfile", ".dockerignore")) and generated(Path(folder) / n)
        }

    shutil.copytree(src, dest, ignore=ignore)
    if git:
        env = dict(
            os.environ,
            GIT_AUTHOR_DATE=f"@{FIXED_EPOCH} +0000",
            GIT_COMMITTER_DATE=f"@{FIXED_EPOCH} +0000",
            GIT_AUTHOR_NAME="t",
            GIT_AUTHOR_EMAIL="t@example.invalid",
            GIT_COMMITTER_NAME="t",
            GIT_COMMITTER_EMAIL="t@example.invalid",
        )
        for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "fixture"]):
            subprocess.run(argv, cwd=dest, env=env, check=True, capture_output=True)
    return dest


@pytest.fixture(scope="session")
def engine() -> Engine:
    eng = Engine()
    eng.client  # raises EngineError with a hint when there is no engine
    if not eng.has_image(BASE_IMAGE):
        pytest.fail(f"base image {BASE_IMAGE} is missing: run scripts/setup-engine.sh (make engine)")
    return eng


@pytest.fixture(scope="session")
def base_image(engine) -> str:
    return BASE_IMAGE


@pytest.fixture
def unbuilt_base(engine, base_image):
    """The base image under a name this engine never built ``FROM`` (new for each test), in the
    form a rendered Dockerfile names a local base: ``NAME:TAG@sha256:ID``. A plain BuildKit build
    from it asks the name's home registry, as it does on a fresh machine for any local base, so
    a test that passes with it passes on a fresh engine whatever ran before it. The tag is
    removed afterwards (the image stays under its own name)."""
    import uuid

    name = f"imagesmith-test/unbuilt-{uuid.uuid4().hex[:12]}:base"
    image_id = engine.image(base_image).id
    engine.tag(image_id, name)
    try:
        yield f"{name}@{image_id}"
    finally:
        subprocess.run(["docker", "image", "rm", name], capture_output=True)


@pytest.fixture(scope="session")
def arm64_base(engine) -> str:
    """The local linux/arm64 base image (runs under QEMU on an amd64 host)."""
    if not engine.has_image(ARM64_BASE_IMAGE):
        pytest.fail(
            f"base image {ARM64_BASE_IMAGE} is missing: run `make engine` (setup-engine.sh --platforms linux/arm64)"
        )
    return ARM64_BASE_IMAGE


@pytest.fixture(scope="session")
def registry() -> str:
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).read()
    except OSError as exc:
        pytest.fail(f"no registry at {REGISTRY} ({exc}): run scripts/setup-engine.sh (make engine)")
    return REGISTRY


def _shared_build(request, tmp_path_factory, engine, base_image, project: Path, name: str):
    root = copy_project(project, tmp_path_factory.mktemp(name) / name)
    spec = load_spec(root)
    repo = shared_repo(name)
    with one_build_at_a_time(_run_dir(request.config, tmp_path_factory), repo):
        result = build_project(spec, engine, BuildOptions(base=base_image, tag=repo))
    return spec, result


@pytest.fixture(scope="session")
def iris_built(request, tmp_path_factory, engine, base_image):
    """The iris example built once per worker as ``shared_repo("iris")``: (spec, BuildResult)."""
    return _shared_build(request, tmp_path_factory, engine, base_image, EXAMPLES / "iris", "iris")


@pytest.fixture(scope="session")
def tiny_built(request, tmp_path_factory, engine, base_image):
    """The small `tiny` project (one pure-Python dependency) built once per worker as
    ``shared_repo("tiny")``."""
    return _shared_build(request, tmp_path_factory, engine, base_image, PROJECTS / "tiny", "tiny")


@pytest.fixture(scope="session")
def iris_trained(request, tmp_path_factory, iris_built) -> Path:
    """The iris example trained once per run in its train image (`imagesmith run train`), with its
    golden outputs (`imagesmith golden`): a copy of that artifacts folder for this worker, which its
    tests may read and copy but not change. The workers that need it take turns (the first trains,
    the others find it made): the same image (``shared_repo("iris")``, the same ID on every worker)
    trains the same stamped model, so test_runtime_engine.py and test_signoff_engine.py share it."""
    import fcntl

    from tests.helpers import cli

    spec, _ = iris_built
    folder = _run_dir(request.config, tmp_path_factory) / "shared-models"
    folder.mkdir(exist_ok=True)
    made = folder / "iris"
    with open(folder / "iris.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not made.is_dir():
                art = tmp_path_factory.mktemp("iris-trained") / "artifacts"
                tag = shared_repo("iris")
                proc = cli("run", "train", "-p", str(spec.root), "-t", tag, "--artifacts", str(art))
                assert proc.returncode == 0, proc.stderr
                proc = cli("golden", "-p", str(spec.root), "--model", str(art), "--tag", tag, "--json")
                assert proc.returncode == 0, proc.stderr
                shutil.copytree(art, made.with_suffix(".tmp"))
                (made.with_suffix(".tmp")).rename(made)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return Path(shutil.copytree(made, tmp_path_factory.mktemp("iris-model") / "artifacts"))
