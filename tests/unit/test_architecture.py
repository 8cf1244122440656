"""The shape the code keeps (CONTRIBUTING.md): no import cycles between imagesmith's modules, and
the in-image package imports nothing but the standard library and itself. Read from the source
with ``ast`` (imports inside functions count too), so a cycle cannot hide behind a lazy import."""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "imagesmith"


@functools.cache
def _tree(path: Path) -> ast.Module:
    """A source file's syntax tree, parsed once for all the tests here (they only read it)."""
    return ast.parse(path.read_text(encoding="utf-8"))


@pytest.fixture(autouse=True, scope="module")
def _trees_let_go():
    """The syntax trees are a few hundred thousand objects: kept for the tests here, then let go,
    so that every later garbage collection of this worker (pytest runs five at its end) need not
    walk them."""
    yield
    _tree.cache_clear()
    _graph.cache_clear()


@functools.cache
def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path], tree: ast.Module | None = None) -> set[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree or _tree(path)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for candidate in [target] + [f"{target}.{alias.name}" for alias in node.names]:
                if candidate in known and candidate != name:
                    found.add(candidate)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    """Each module's imports of imagesmith's modules (made once for the tests here; they only read it)."""
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def test_no_import_cycles():
    graph = _graph()
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []
    assert "imagesmith.diff" not in graph["imagesmith.verify"] and "imagesmith.wheels" not in graph["imagesmith.lock"]


def test_the_in_image_package_imports_only_the_standard_library_and_itself():
    for path in sorted((PACKAGE / "runtime").glob("*.py")):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, f"{path.name} reaches outside the runtime package"
            elif isinstance(node, ast.ImportFrom):
                top = (node.module or "").split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", f"{path.name} imports {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    allowed = top in sys.stdlib_module_names or (
                        path.name == "signoff_probe.py" and top == "threadpoolctl"
                    )
                    assert allowed, f"{path.name} imports {alias.name}"


def test_every_import_of_our_own_names_resolves():
    """Lazy imports inside functions are not run by most tests: a name that moved to another
    module would fail only when a user reaches that command. Every `from imagesmith... import X`
    (relative too) must name a module or an attribute that exists."""
    import importlib

    known = _modules()
    missing = []
    for name, path in sorted(known.items()):
        if name.startswith("imagesmith.runtime"):
            continue  # runs inside images as `imagesmith_runtime` (checked by the stdlib test above)
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(_tree(path)):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] != "imagesmith":
                continue
            module = importlib.import_module(target)
            for alias in node.names:
                if not hasattr(module, alias.name) and f"{target}.{alias.name}" not in known:
                    missing.append(f"{name}: from {target} import {alias.name}")
    assert missing == []


# ---- start-up: what a command imports (issue #17; figures in bench/, never timed here) ----------

# Slow to import and not needed before a command asks for them: the Docker SDK (and requests and
# urllib3 under it) only once a command talks to the engine through it; jinja2 only to render;
# pip-tools never in-process; packaging and urllib.request only to resolve or fetch; http.client
# only to replay a signoff's requests (engine/local_api.py writes its one request itself).
NOT_AT_START_UP = ("docker", "requests", "urllib3", "jinja2", "piptools", "packaging", "urllib.request", "http.client")


# One interpreter for all the runs a test makes: it imports typer (which every command imports
# first, and which imports none of NOT_AT_START_UP) and forks a child for each run, which imports
# the rest as a fresh ``imagesmith`` process would and reports its modules on a pipe. Modules the
# parent holds are only ever more, never fewer, than a run of its own would hold.
_FORKING_RUNNER = """\
import json, os, sys
import typer

for argv in json.loads(sys.argv[1]):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        from imagesmith.cli import main

        main(argv)
        sys.stdout.flush()
        with os.fdopen(write, "w") as out:
            json.dump([sorted(sys.modules), typer.__version__], out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as got:
        answer = got.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not answer:
        sys.exit(f"imagesmith {argv} ended with status {status}")
    print("\\n" + answer)
"""


def _imported_by_each(argvs: list[list[str]], cwd: Path) -> list[tuple[set[str], str]]:
    """For each ARGV, the modules a fresh interpreter holds after ``imagesmith ARGV`` ran in it,
    and its typer's version."""
    import json
    import os
    import subprocess

    from tests.helpers import _bytecode_kept

    path = os.pathsep.join(p for p in (str(PACKAGE.parent), os.environ.get("PYTHONPATH")) if p)
    # the project's spec alone decides what the lock is (IMAGESMITH_BASE, e.g. from `make bench`'s
    # environment, would name another base: then the lock is not a no-op and reaches the engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGESMITH_")}
    env["PYTHONPATH"] = path
    env = _bytecode_kept(env)  # the children load imagesmith's bytecode instead of compiling it each
    proc = subprocess.run(
        [sys.executable, "-c", _FORKING_RUNNER, json.dumps(argvs)], capture_output=True, text=True, cwd=cwd, env=env
    )
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("[[")]
    assert len(answers) == len(argvs), proc.stdout[-2000:]
    return [(set(modules), typer_version) for modules, typer_version in answers]


def _forbidden(typer_version: str) -> tuple[str, ...]:
    """Plus pydantic, unless the installed typer imports it itself to parse options (typer 0.29
    and later: pyproject.toml keeps typer below that version for this reason)."""
    major, minor = (int(p) for p in typer_version.split(".")[:2])
    return NOT_AT_START_UP + (("pydantic",) if (major, minor) < (0, 29) else ())


def test_help_and_a_no_op_lock_import_nothing_slow(tmp_path, monkeypatch):
    from tests.unit.test_statcache import locked_project

    root = locked_project(tmp_path, monkeypatch)
    argvs = [["lock", "--help"], ["verify", "--help"], ["lock", "-q"], ["lock", "--check", "-q"]]
    for argv, (imported, typer_version) in zip(argvs, _imported_by_each(argvs, root)):
        assert not [m for m in _forbidden(typer_version) if m in imported], argv


# Not needed by a command that does not use them: another command's module, an engine backend a
# no-op lock never calls (it reads no image) and the engine's records and protocols, the resolvers
# when nothing is resolved, the image plan (--json's parity only), PyYAML when the spec's text was
# parsed before (spec/load.py remembers it), a TOML parser in a project with no pyproject.toml
# (fsutil.tomllib)
NOT_FOR_A_NO_OP_LOCK = (
    "yaml",
    "tomllib",
    "imagesmith.cli.build",
    "imagesmith.cli.verify",
    "imagesmith.engine.images",
    "imagesmith.engine.containers",
    "imagesmith.engine.registry",
    "imagesmith.engine.buildx",
    "imagesmith.engine.local_api",
    "imagesmith.engine.protocols",
    "imagesmith.engine.records",
    "imagesmith.lock.resolvers",
    "imagesmith.lock.uv_resolver",
    "imagesmith.plan",
    "imagesmith.lock.piptools_resolver",
)


def test_a_command_loads_only_its_own_module_and_a_no_op_lock_no_backend(tmp_path, monkeypatch):
    from tests.unit.test_statcache import locked_project

    root = locked_project(tmp_path, monkeypatch)
    argvs = [["lock", "-q"], ["-q", "-p", str(root), "lock", "--check"], ["--help"]]  # options before the command
    (lock, _), (check, _), (help_, _) = _imported_by_each(argvs, root)
    assert [m for m in NOT_FOR_A_NO_OP_LOCK if m in lock] == []
    assert "imagesmith.cli.lock" in lock and "imagesmith.lock.update" in lock  # the real path ran
    assert [m for m in NOT_FOR_A_NO_OP_LOCK if m in check] == []
    assert {"imagesmith.cli.build", "imagesmith.cli.verify", "imagesmith.cli.export"} <= help_  # all loaded


# Not needed to verify a local image without --lock: the lock package (and the spec, the runtime
# wheel builder and the GPU tables under it) reads a lock file only; tarfile reads a registry
# image's layer only (a local image's facts come from the engine as bytes); the stamp, --model only.
NOT_FOR_A_LOCAL_VERIFY = (
    *("imagesmith.lock", "imagesmith.spec", "imagesmith.runtime_wheel", "imagesmith.gpu", "tarfile"),
    "imagesmith.runtime.stamp",
)


def _modules_loaded(command: str, modules: str) -> set[str]:
    """The modules a fresh interpreter holds after loading the CLI's ``command`` and importing
    ``modules`` (a comma-separated import list), as that command's run would."""
    import os
    import subprocess

    from tests.helpers import _bytecode_kept

    script = (
        f"import sys\nfrom imagesmith.cli import base\nbase.load_commands([{command!r}])\n"
        f"import {modules}\nprint(' '.join(sorted(sys.modules)))\n"
    )
    env = _bytecode_kept(dict(os.environ))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent, env=env)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_verifying_a_local_image_loads_no_lock_package():
    imported = _modules_loaded("verify", "imagesmith.deploy, imagesmith.verify, imagesmith.engine.images")
    assert "imagesmith.cli.verify" in imported and "imagesmith.verify_base" in imported  # the real modules loaded
    assert [m for m in NOT_FOR_A_LOCAL_VERIFY if m in imported] == []


# Not needed by an edit's rebuild, whose wheels are all in the host cache: the index readers
# (download_groups, and html.parser under them) serve a download only (wheels.WheelCache._download)
NOT_FOR_A_CACHED_BUILD = ("imagesmith.lock.indexes", "html.parser")


def test_the_build_command_loads_no_index_reader_until_it_downloads():
    imported = _modules_loaded("build", "imagesmith.build, imagesmith.wheels, imagesmith.engine.buildx")
    assert "imagesmith.cli.build" in imported and "imagesmith.wheels" in imported  # the real modules loaded
    assert [m for m in NOT_FOR_A_CACHED_BUILD if m in imported] == []


# ---- size: no module over 600 lines, no function over 80 -----------------------------------------

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
# Modules still over a limit, each with why; an entry that no longer applies fails the test, so
# the list only shrinks. (cli.py and verify.py, build.py and runtime/stamp.py are being split on
# their own branches: their entries go when those land.)
OVER_THE_LIMIT = {
    "imagesmith/build.py:build_project": "the build's steps come from the image plan",
    "imagesmith/runtime/stamp.py:check_model": "runs inside images; its split is not this list's to make",
}


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    modules, functions = {}, {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        modules[rel] = path.read_text(encoding="utf-8").count("\n")
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                key = f"{rel}:{node.name}"
                functions[key] = max(length, functions.get(key, 0))
    return modules, functions


def test_no_module_over_600_lines_and_no_function_over_80():
    modules, functions = _sizes()
    allowed = {key.split(":")[0] for key in OVER_THE_LIMIT}  # a module on the list may hold long functions
    long_modules = [f"{m} ({n} lines)" for m, n in modules.items() if n > MAX_MODULE_LINES and m not in OVER_THE_LIMIT]
    long_functions = [
        f"{f} ({n} lines)"
        for f, n in functions.items()
        if n > MAX_FUNCTION_LINES and f not in OVER_THE_LIMIT and f.split(":")[0] not in OVER_THE_LIMIT
    ]
    assert long_modules == [] and long_functions == []
    stale = [
        key
        for key in OVER_THE_LIMIT
        if not (
            (key in modules and modules[key] > MAX_MODULE_LINES)
            or (key in functions and functions[key] > MAX_FUNCTION_LINES)
            or (
                key in allowed and any(f.startswith(key + ":") and n > MAX_FUNCTION_LINES for f, n in functions.items())
            )
        )
    ]
    assert stale == [], "no longer over the limit: take it off OVER_THE_LIMIT"


def test_split_packages_read_top_down():
    """A package's ``__init__`` holds its value (the Spec, the Lock, the Proposal, the signoff's
    shared facts) and imports none of its own modules but the parts of that value: they build on it. The platform tables are
    below the spec, and the deploy gate's reading of a signoff record reaches no spec and nothing
    of the build side."""
    graph = _graph()
    for package in ("imagesmith.spec", "imagesmith.init", "imagesmith.signoff"):
        assert not [m for m in graph[package] if m.startswith(package + ".")], package
    lock_parts = sorted(m for m in graph["imagesmith.lock"] if m.startswith("imagesmith.lock."))
    # the Lock's own parts: BasePin, Pin, and its derived gpu section (cuda.section)
    assert lock_parts == ["imagesmith.lock.base", "imagesmith.lock.cuda", "imagesmith.lock.pins"]
    assert not [m for m in graph["imagesmith.platforms"] if m.startswith("imagesmith.spec")]

    def reached(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    deploy_reads = reached("imagesmith.signoff.check")
    build_side = {"imagesmith.render", "imagesmith.build", "imagesmith.runtime_wheel", "imagesmith.verify"}
    assert not {m for m in deploy_reads if m.startswith("imagesmith.spec")} | (deploy_reads & build_side)


def test_the_deploy_side_imports_nothing_from_the_build_side():
    """verify and what it is made of judge an image by its own facts (the image plan read back from
    them), never by re-rendering today's project: no render, build, spec or runtime wheel builder."""
    known = _modules()
    build_side = {f"imagesmith.{m}" for m in ("render", "build", "spec", "runtime_wheel", "source_context", "wheels")}
    deploy_side = [n for n in known if n.startswith(("imagesmith.verify", "imagesmith.facts"))]
    deploy_side += ["imagesmith.plan", "imagesmith.record", "imagesmith.diff", "imagesmith.compare"]
    assert len(deploy_side) > 8
    for name in deploy_side:
        # names for type checking only are no import at run time: the `if TYPE_CHECKING:` blocks are left out
        tree = ast.parse(known[name].read_text(encoding="utf-8"))
        tree.body = [n for n in tree.body if not (isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")]
        found = _imports(name, known[name], known, tree)
        assert not {m for m in found if m in build_side or m.startswith(tuple(b + "." for b in build_side))}, name
