"""``imagesmith init``: a commented spec for an existing project, from what is in it.

``propose(root)`` reads the project (never runs any of it) and returns the spec's values, each
with the reason it was chosen; ``spec_yaml`` / ``spec_toml`` turn that into text; ``write_spec``
checks the text with the real parser and writes it atomically, never over an existing spec.

What it looks at (the code is read with ``ast`` by ``project_code``, never imported or run):
- name: ``[project].name``, else the folder's name;
- python: ``--python``, else ``.python-version``, the project's own Dockerfile (``FROM python:X``),
  its CI files, the ``--base`` image's name, else the newest 3.x that ``requires-python``
  allows, else 3.11;
- requirements: the project's lock (uv.lock, pylock.toml, poetry.lock) when it has one, else its
  declared ``[project]`` dependencies (static or dynamic), else ``requirements.txt`` (or ``.in``);
- code: top-level modules and packages (``src/`` packages too; ``src/`` itself when the code
  imports it as a package), minus tests, docs and virtualenvs; a ``preprocessing``/``features``
  package becomes ``preprocessing:``;
- an installable project (``[project]`` and ``[build-system]`` with a ``build-backend``): it is
  built into a wheel and installed into both images, so its code is not copied as ``source``
  too (an edit must rebuild one layer); ``[project.scripts]`` named ``*train*``/``*serve*``
  become the train and serve commands;
- train: ``train.py`` (or ``train_*.py``) at the root, in a package (``python -m PKG.train``) or in
  ``scripts/``; a script that opens files beside it by relative names runs from its folder;
- serve: a FastAPI or Flask app, also one made by a factory, the one with prediction routes
  before a health check (served with uvicorn or gunicorn/flask), else ``serve.py``;
- data files the code opens by a written name, and a Flask app's templates/static: in ``source``;
- artifacts: the folder train writes the model to and serve reads it from, as the code names it
  (a folder in /app, or ``/artifacts`` with the environment variable the code reads set to it),
  else ``/artifacts``;
- dockerfile: ``imagesmith.Dockerfile`` when the project has a Dockerfile of its own (imagesmith
  never writes over a file it did not generate).
"""

from __future__ import annotations

import ast
import json
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import layout, project_code
from .errors import SpecError, UsageError
from .fsutil import atomic_write, tomllib
from .render import generated
from .spec import DOCKERFILE, PYPROJECT, SPEC_FILE
from .spec.parse import parse_spec
from .spec.pyproject import project_package, src_layout
from .spec.schema import CONTAINER_PATH_RE, LOCK_SOURCES

SKIP_DIRS = {
    "tests",
    "test",
    "docs",
    "doc",
    "examples",
    "scripts",
    "build",
    "dist",
    "artifacts",
    "notebooks",
    "node_modules",
    "venv",
    "env",
    "site-packages",
    "__pycache__",
}
PREPROCESSING_NAMES = ("preprocessing", "features", "transforms")
MINORS = [f"3.{m}" for m in range(8, 14)]  # 3.8 .. 3.13: what official python images serve
_APP_RE = re.compile(r"^(\w+)\s*=\s*(FastAPI|Flask)\(", re.M)


@dataclass
class Proposal:
    values: dict
    reasons: dict = field(default_factory=dict)  # key -> why this value
    notes: list[str] = field(default_factory=list)  # what the user should look at


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


PYTHON_RE = re.compile(r"3\.\d{1,2}")
_FROM_PYTHON = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(?:\S*/)?python:(3\.\d{1,2})\b", re.M | re.I)
_CI_PYTHON = re.compile(r"(?:python[-_]version|python)\s*[:=]\s*\[?([^\n\]#]*)", re.I)
_BASE_PYTHON = re.compile(r"(?:python|py)[:-]?(3)\.?(\d{1,2})(?!\d)", re.I)


def _allowed(project: dict) -> tuple[list[str], str | None]:
    """The minors ``requires-python`` allows (all when it says nothing), and its text."""
    requires = project.get("requires-python")
    if not isinstance(requires, str):
        return list(MINORS), None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return [v for v in MINORS if SpecifierSet(requires).contains(v + ".0")], requires
    except InvalidSpecifier:
        return list(MINORS), requires


def _read(path: Path, limit: int = 200_000) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(limit)
    except OSError:
        return ""


def _own_dockerfiles(root: Path) -> list[Path]:
    found = [root / DOCKERFILE, *sorted(root.glob("*.Dockerfile")), *sorted(root.glob("docker/Dockerfile*"))]
    return [p for p in found if p.is_file() and not generated(p)]


def _ci_files(root: Path) -> list[Path]:
    return [
        *sorted((root / ".github" / "workflows").glob("*.y*ml")),
        *[
            root / n
            for n in (".gitlab-ci.yml", ".circleci/config.yml", "tox.ini", "runtime.txt")
            if (root / n).is_file()
        ],
    ]


def base_python(base: str) -> str | None:
    """The Python minor a base image's name says (``python:3.12-slim``, ``…:bookworm-py311``)."""
    name = base.split("@", 1)[0].rsplit("/", 1)[-1]
    m = _BASE_PYTHON.search(name)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _python(root: Path, project: dict, given: str | None, base: str | None) -> tuple[str, str, list[str]]:
    """(the images' Python, why, notes): --python, else what the project runs on (.python-version,
    its own Dockerfile's ``FROM python:X``, its CI files), else the --base image's, else the newest
    that requires-python allows, else 3.11."""
    allowed, requires = _allowed(project)
    found: list[tuple[str, str]] = []
    if given:
        if not PYTHON_RE.fullmatch(given):
            raise UsageError(f"--python {given!r} is not a Python version like 3.11", hint="pass --python 3.X")
        found.append((given, "given with --python"))
    pinned = root / ".python-version"
    m = re.match(r"\s*(3\.\d{1,2})", _read(pinned)) if pinned.is_file() else None
    if m:
        found.append((m.group(1), ".python-version"))
    for dockerfile in _own_dockerfiles(root):
        m = _FROM_PYTHON.search(_read(dockerfile))
        if m:
            found.append(
                (m.group(1), f"the project's own {dockerfile.relative_to(root).as_posix()} (FROM python:{m.group(1)})")
            )
            break
    for ci in _ci_files(root):
        versions = sorted(
            {v for line in _CI_PYTHON.findall(_read(ci)) for v in re.findall(r"3\.\d{1,2}", line)},
            key=lambda v: int(v.split(".")[1]),
        )
        usable = [v for v in versions if v in allowed] or versions
        if usable:
            found.append((usable[-1], f"{ci.relative_to(root).as_posix()} (CI runs Python {', '.join(versions)})"))
            break
    from_base = base_python(base) if base else None
    if from_base:
        found.append((from_base, f"the base {base} given with --base"))
    if allowed and requires:
        found.append((allowed[-1], f"the newest Python requires-python {requires!r} allows"))
    found.append(("3.11", "default (nothing in the project names a Python)"))
    python, why = found[0]
    notes = []
    if requires and python not in allowed:
        notes.append(f"python {python} ({why}) is not allowed by requires-python {requires!r}")
    if from_base and from_base != python:
        notes.append(f"the base {base} looks like Python {from_base}, not {python}: the lock refuses a mismatch")
    return python, why, notes


def _name(root: Path, project: dict) -> str:
    given = project.get("name")
    raw = given if isinstance(given, str) else root.resolve().name
    name = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._") or "app"
    return name[:60]


def _src_is_package(root: Path) -> bool:
    """``src/`` used as a package (``src/__init__.py``, or ``from src.x import …`` in the code):
    the code runs from the project's root with ``src`` importable, so it is not a src layout."""
    src = root / "src"
    if not src.is_dir():
        return False
    if (src / "__init__.py").is_file():
        return True
    for path in _python_files(root, limit=500):
        text = _read(path, 100_000)
        if re.search(r"^\s*(?:from\s+src(?:\.\w+)*\s+import|import\s+src\.)", text, re.M):
            return True
    return False


def _skipped(rel_parts: tuple[str, ...], root: Path) -> bool:
    return any(part.startswith(".") or part in SKIP_DIRS - {"scripts"} for part in rel_parts[:-1])


def _python_files(root: Path, limit: int = 3000) -> list[Path]:
    """The project's Python files, minus tests, docs, virtualenvs and hidden folders (scripts/ in)."""
    found: list[Path] = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if _skipped(parts, root) or any(
            (root.joinpath(*parts[:i]) / "pyvenv.cfg").exists() for i in range(1, len(parts))
        ):
            continue
        if path.name in ("setup.py", "conftest.py", "noxfile.py") or path.name.startswith("test_"):
            continue
        found.append(path)
        if len(found) >= limit:
            break
    return found


def _code(root: Path, src_package: bool) -> tuple[list[str], list[str], str]:
    """(source paths, preprocessing paths, layout)."""
    src = root / "src"
    top = src if not src_package and src.is_dir() and any(src.glob("*/__init__.py")) else root
    layout = "src" if top != root else "flat"
    source: list[str] = []
    prep: list[str] = []
    for entry in sorted(top.iterdir()):
        rel = entry.relative_to(root).as_posix()
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_dir():
            if entry.name in SKIP_DIRS or (entry / "pyvenv.cfg").exists():
                continue
            if entry == src and src_package:
                source.append(rel + "/")  # src/ as a package: imported as src.x from the root
                continue
            if not (entry / "__init__.py").is_file():
                continue
            (prep if entry.name in PREPROCESSING_NAMES else source).append(rel + "/")
        elif entry.suffix == ".py" and entry.name not in ("setup.py", "conftest.py", "noxfile.py"):
            source.append(rel)
    return source, prep, layout


def _module(root: Path, path: Path, layout: str = "flat") -> str:
    base = root / "src" if layout == "src" and (root / "src") in path.parents else root
    parts = path.relative_to(base).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path, layout: str) -> dict[str, tuple[Path, ast.Module]]:
    modules: dict[str, tuple[Path, ast.Module]] = {}
    for path in _python_files(root):
        tree = project_code.read(path)
        if tree is not None:
            modules.setdefault(_module(root, path, layout), (path, tree))
    return modules


def _in_package(root: Path, path: Path, code_layout: str) -> bool:
    """Whether every folder from the project's root (src/ in the src layout) down to ``path`` is
    a package."""
    folder = path.parent
    stops = (root, root / "src") if code_layout == "src" else (root,)
    if folder in stops:
        return False
    while folder not in stops and folder != folder.parent:
        if not (folder / "__init__.py").is_file():
            return False
        folder = folder.parent
    return True


def _train_script(root: Path, modules: dict[str, tuple[Path, ast.Module]], code_layout: str) -> Path | None:
    """train.py (or train_*.py) at the root, else in src/ or a package, else in scripts/."""

    def rank(path: Path) -> tuple:
        where = 0 if path.parent == root else 1 if _in_package(root, path, code_layout) else 2
        scripts = 0 if path.parent == root / "scripts" else 1
        return (where, scripts, path.name != "train.py", path.as_posix())

    found = [p for p, _ in modules.values() if re.fullmatch(r"train(?:_\w+)?\.py", p.name)]
    return min(found, key=rank, default=None)


def _runs_from_its_folder(root: Path, script: Path, tree: ast.Module) -> bool:
    """Whether the script names files relative to its own folder as if it ran there: a file it
    reads by a relative name exists beside it but not from the project's root."""
    if script.parent == root:
        return False
    for use in project_code.path_uses(tree, script):
        rel = use.where.rel
        if use.write or use.where.anchor != "cwd" or rel.startswith("/"):
            continue
        if not (root / rel).exists() and (script.parent / rel).exists():
            return True
    return False


def _covered(rel: str, source: list[str]) -> bool:
    return any(rel == s.rstrip("/") or (s.endswith("/") and rel.startswith(s)) for s in source)


@dataclass
class _Serve:
    command: list[str]
    port: int
    reason: str
    app: project_code.App | None = None
    module: str | None = None  # the module that serves (the app's, or serve.py's)


def _serve(
    root: Path, modules: dict[str, tuple[Path, ast.Module]], requirements: str, code_layout: str, installable: bool
) -> tuple[_Serve | None, list[str]]:
    notes: list[str] = []
    apps = project_code.find_apps(modules)
    chosen = project_code.choose_app(apps)
    if chosen is not None:
        target = f"{chosen.target}()" if chosen.factory and chosen.framework == "flask" else chosen.target
        if len(apps) > 1:
            others = "; ".join(a.describe() for a in apps if a != chosen)
            why = "it has prediction routes" if chosen.rank == 2 else "the first by name"
            notes.append(f"{len(apps)} apps found: serving {chosen.describe()} ({why}); not {others}")
        if chosen.framework == "fastapi":
            factory = ["--factory"] if chosen.factory else []
            made = f" (the factory {chosen.attr}(), --factory)" if chosen.factory else ""
            return _Serve(
                ["uvicorn", *factory, chosen.target, "--host", "0.0.0.0", "--port", "8000"],
                8000,
                f"FastAPI app {chosen.target}{made}, served with uvicorn",
                chosen,
            ), notes
        if "gunicorn" in requirements:
            return _Serve(
                ["gunicorn", "-b", "0.0.0.0:8000", target], 8000, f"Flask app {target}, served with gunicorn", chosen
            ), notes
        return _Serve(
            ["python", "-m", "flask", "--app", target, "run", "--host", "0.0.0.0", "--port", "8000"],
            8000,
            f"Flask app {target}, flask's own server (add gunicorn for production)",
            chosen,
        ), notes
    for path, _ in modules.values():
        if path.name == "serve.py" and (path.parent == root or installable or _in_package(root, path, code_layout)):
            rel, module = path.relative_to(root).as_posix(), _module(root, path, code_layout)
            if installable or path.parent != root:
                return _Serve(["python", "-m", module], 8000, f"{rel} (port guessed)", module=module), notes
            return _Serve(["python", rel], 8000, f"{rel} (port guessed)", module=module), notes
    return None, notes


@dataclass
class _Model:
    artifacts: str
    reason: str
    env: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _uses(
    root: Path, modules: dict[str, tuple[Path, ast.Module]], module: str | None, cwd: str
) -> list[tuple[project_code.Use, str | None]]:
    """What ``module`` and the project modules it imports read and write, each with its path in
    the image for a process in ``cwd`` (None: named by an environment variable)."""
    out = []
    for name in project_code.imported_modules(module, modules) if module else []:
        path, tree = modules[name]
        file_dir = posixpath.join(layout.APP_DIR, path.parent.relative_to(root).as_posix()).rstrip("/.")
        for use in project_code.path_uses(tree, path):
            out.append((use, project_code.resolve(use.where, cwd, file_dir or layout.APP_DIR)))
    return out


def _folder(use: project_code.Use, where: str) -> str:
    return where if use.folder else posixpath.dirname(where)


def _mountable(folder: str) -> bool:
    """An absolute folder in the image the artifacts folder can be mounted at without hiding code."""
    app = layout.APP_DIR
    return (
        folder.startswith("/")
        and CONTAINER_PATH_RE.fullmatch(folder) is not None
        and posixpath.normpath(folder) not in ("/", app)
        and not (app + "/").startswith(posixpath.normpath(folder) + "/")
    )


def _model(train: list, serve: list, source: list[str]) -> _Model:
    """Where train's output must reach serve: the folder the training code writes its model to
    and the serving code reads it from, found in the code; mounted there as the artifacts folder
    (or, when an environment variable names it, that variable set to the artifacts folder)."""
    default = _Model("/artifacts", "where train writes the model and serve reads it (mounted from the host)")
    written_env = {u.where.env for u, _ in train if u.write and u.where.anchor == "env"}
    read_env = {u.where.env for u, _ in serve if not u.write and u.where.anchor == "env"}
    for var in sorted(written_env & read_env) or sorted(written_env):
        how = "train writes and serve reads" if var in read_env else "train writes"
        defaults = {u.where.default for u, _ in train + serve if u.where.env == var}
        default_dir = next(iter(sorted(d for d in defaults if d)), None)
        if len(defaults) == 1 and default_dir and _mountable(default_dir):
            return _Model(  # the code's own default is a folder of the image: no variable to set
                default_dir.rstrip("/"),
                f"{default_dir}: where the code writes and reads the model when {var} is not set ({how} under ${var})",
            )
        return _Model(
            default.artifacts,
            f"the mounted model folder; {var} names it for the code ({how} the model under ${var}"
            + (f", default {default_dir}/" if default_dir else "")
            + ")",
            env={var: default.artifacts},
        )
    app = layout.APP_DIR
    written = [_folder(u, w) for u, w in train if u.write and w]
    read = {_folder(u, w) for u, w in serve if not u.write and w}
    both = [d for d in dict.fromkeys(written) if d in read] or list(dict.fromkeys(written))
    for folder in both:
        rel = folder[len(app) + 1 :] if folder.startswith(app + "/") else None
        if folder in ("/", app) or app.startswith(folder + "/"):
            continue  # mounting there would hide the code
        if rel is not None and any(s.rstrip("/") == rel or s.startswith(rel + "/") for s in source):
            continue  # a folder of code, not of the model
        how = "train writes the model there and serve reads it" if folder in read else "train writes the model there"
        shown = f"{rel}/ in the working folder" if rel is not None else folder
        model = _Model(folder, f"{shown}: {how}; the host's artifacts folder is mounted there")
        if folder not in read:
            model.notes.append(f"serve's model path was not found in its code: check that it reads {folder}")
        return model
    default.notes.append(
        "where train saves the model was not found in the code: make train write it to the artifacts folder "
        "and serve read it from there (or set artifacts: to the folder they use)"
    )
    return default


def _data_files(root: Path, uses: list, source: list[str], artifacts: str) -> list[str]:
    """Files and folders the code reads by a relative name that exist in the project and are not
    yet in ``source``: they must be in the image for the code to run."""
    app = layout.APP_DIR + "/"
    found: list[str] = []
    for use, where in uses:
        if (
            use.write
            or not where
            or not where.startswith(app)
            or where == artifacts
            or where.startswith(artifacts + "/")
        ):
            continue
        rel = where[len(app) :]
        parts = rel.split("/")
        if any(p.startswith(".") or p in layout.IGNORED or p in SKIP_DIRS - {"scripts"} for p in parts):
            continue
        full = root / rel
        if full.is_symlink() or not (full.is_file() or full.is_dir()):
            continue
        entry = rel + "/" if full.is_dir() else rel
        if not _covered(rel, source + found):
            found.append(entry)
    return found


def propose(root: Path, *, python: str | None = None, base: str | None = None) -> Proposal:
    root = Path(root)
    pyproject = _toml(root / PYPROJECT) if (root / PYPROJECT).is_file() else {}
    found = pyproject.get("project")
    project: dict = found if isinstance(found, dict) else {}
    values: dict = {}
    why: dict = {}
    notes: list[str] = []
    values["name"] = _name(root, project)
    why["name"] = "[project].name" if project.get("name") else "the folder's name"
    values["python"], why["python"], python_notes = _python(root, project, python, base)
    notes += python_notes
    if base:
        values["base"] = base
        why["base"] = "given with --base (pinned to a digest by `imagesmith lock`)"
    else:
        values["base"] = f"python:{values['python']}-slim"
        why["base"] = "the official image for that Python (pinned to a digest by `imagesmith lock`)"

    requirements_text = " ".join(map(str, project.get("dependencies") or [])).lower()
    project_lock = next(
        (key for key, name in LOCK_SOURCES.items() if project and (root / name).is_file()), None
    )  # the project's own lock is the source of truth
    found_dynamic = project.get("dynamic")
    dynamic: list = found_dynamic if isinstance(found_dynamic, list) else []
    declared = isinstance(project.get("dependencies"), list) or "dependencies" in dynamic
    # the project's own lock, else its declared dependencies (pyproject-native), else a requirements file
    for candidate in ("requirements.txt", "requirements.in") if project_lock is None and not declared else ():
        if (root / candidate).is_file():
            values["requirements"] = candidate
            why["requirements"] = f"found {candidate}"
            requirements_text = (root / candidate).read_text(encoding="utf-8", errors="replace").lower()
            break
    else:
        if project_lock is not None:
            values["requirements"] = {project_lock: True}
            why["requirements"] = f"{LOCK_SOURCES[project_lock]}: its pins, exactly (the lock is the source of truth)"
        elif isinstance(project.get("dependencies"), list):
            values["requirements"] = {"pyproject": True}
            why["requirements"] = "[project].dependencies in pyproject.toml"
        elif "dependencies" in dynamic:
            values["requirements"] = {"pyproject": True}
            why["requirements"] = "dynamic dependencies: read by the build backend in a container of the base"
        else:
            raise UsageError(
                f"found no requirements in {root}: no requirements.txt and no [project].dependencies",
                hint="add a requirements.txt (or [project].dependencies), then run `imagesmith init` again",
            )

    src_package = _src_is_package(root)
    source, prep, code_layout = _code(root, src_package)
    package, _ = project_package(pyproject, src_layout=code_layout == "src" and src_layout(root))
    installable = package is not None
    scripts_found = project.get("scripts")
    scripts: dict = scripts_found if isinstance(scripts_found, dict) and installable else {}
    if installable:
        source = []  # its code reaches the images as its wheel (install_project: auto)
        notes.append(
            f"{code_layout} layout, installable ({package.backend if package else ''}): the project is built into a "
            "wheel and installed into both images (set install_project: false to copy it as source instead)"
        )
    if prep:
        values["preprocessing"] = prep
        why["preprocessing"] = "code both training and serving import; its content is in the parity"
    if code_layout == "src" and not installable:
        notes.append(
            "src layout without a build backend: the code is copied to /app/src; set PYTHONPATH in env:, "
            "or add [build-system] so imagesmith installs the project"
        )

    modules = _modules(root, code_layout)
    env: dict = {}
    script = {
        role: next((n for n in sorted(scripts) if role in n and isinstance(n, str)), None)
        for role in ("train", "serve")
    }
    train = _train_script(root, modules, code_layout)
    train_module = _module(root, train, code_layout) if train is not None else None
    train_cwd = layout.APP_DIR
    if script["train"]:
        values["train"] = {"command": [script["train"]]}
        why["train"] = f"the console script {script['train']} ([project.scripts])"
    elif train is not None and (installable or _in_package(root, train, code_layout)):
        values["train"] = {"command": ["python", "-m", _module(root, train, code_layout)]}
        why["train"] = f"found {train.relative_to(root)}" + (" (installed with the project)" if installable else "")
    elif train is not None:
        rel = train.relative_to(root).as_posix()
        if not _covered(rel, source):
            source.append(rel)
        if _runs_from_its_folder(root, train, modules[train_module or ""][1]):
            folder = train.parent.relative_to(root).as_posix()
            train_cwd = posixpath.join(layout.APP_DIR, folder)
            values["train"] = {
                "command": ["sh", "-c", f"cd {shlex.quote(folder)} && exec python {shlex.quote(train.name)}"]
            }
            why["train"] = f"found {rel}; it reads files beside it by relative names, so it runs from {folder}/"
        else:
            values["train"] = {"command": ["python", rel]}
            why["train"] = f"found {rel}"
        imported = project_code.imported_modules(train_module or "", modules)[1:]
        if train.parent != root and any(m.split(".")[0] in {n.split(".")[0] for n in modules} for m in imported):
            env["PYTHONPATH"] = layout.APP_DIR  # a script in a folder that imports the project's modules
    else:
        values["train"] = {"command": ["python", "train.py"]}
        why["train"] = "no train.py found: replace with your training command"
        notes.append("no training script found: edit train.command")

    serve, serve_notes = _serve(root, modules, requirements_text, code_layout, installable)
    notes += serve_notes
    if script["serve"]:
        values["serve"] = {"command": [script["serve"]], "port": 8000}
        why["serve"] = f"the console script {script['serve']} ([project.scripts]; port guessed)"
        notes.append("serve.port is a guess: check it")
    elif serve is not None:
        values["serve"] = {"command": serve.command, "port": serve.port}
        why["serve"] = serve.reason
    else:
        values["serve"] = {"command": ["python", "serve.py"], "port": 8000}
        why["serve"] = "no server found: replace with your serving command"
        notes.append("no server found: edit serve.command and serve.port")

    train_uses = _uses(root, modules, train_module, train_cwd)
    serve_module = serve.app.module if serve and serve.app else serve.module if serve else None
    if script["serve"] and isinstance(scripts.get(script["serve"]), str):
        serve_module = scripts[script["serve"]].split(":")[0].strip()
    serve_uses = _uses(root, modules, serve_module, layout.APP_DIR)
    model = _model(train_uses, serve_uses, source + prep)
    notes += model.notes
    env.update(model.env)
    data_uses = train_uses + serve_uses
    if installable:  # its code is installed: only what it names from the working folder is in /app
        data_uses = [(u, w) for u, w in data_uses if u.where.anchor == "cwd"]
    data = _data_files(root, data_uses, source + prep, model.artifacts)
    if serve and serve.app and serve.app.framework == "flask" and not installable:
        app_dir = serve.app.path.parent
        for name in ("templates", "static"):
            rel = (app_dir / name).relative_to(root).as_posix()
            if (app_dir / name).is_dir() and not _covered(rel, source + prep + data):
                data.append(rel + "/")
    if data:
        source += data
        notes.append(f"files the code opens, added to source: {', '.join(data)}")
    if source:
        values["source"] = source
        why["source"] = (
            f"{code_layout} layout: the project's modules and packages (the last, small layer)"
            + ("; src/ is imported as a package (from src.… import), so it is copied as one" if src_package else "")
            + ("; and the files the code opens" if data else "")
        )
    if env:
        values["env"] = env
        why["env"] = "; ".join(
            f"{key}: {'the artifacts folder, where the code looks for its model' if key in model.env else 'the scripts import the project from /app'}"
            for key in env
        )
    values["artifacts"] = model.artifacts
    why["artifacts"] = model.reason
    values["seed"] = 0
    why["seed"] = "set in every process of both images (random, NumPy, PyTorch, TensorFlow)"
    own = root / DOCKERFILE
    if (own.exists() or own.is_symlink()) and not generated(own):
        values["dockerfile"] = "imagesmith.Dockerfile"
        why["dockerfile"] = f"the project has its own {DOCKERFILE}: imagesmith writes its own beside it, never over it"
    return Proposal(values=values, reasons=why, notes=notes)


ORDER = (
    "name",
    "python",
    "base",
    "requirements",
    "preprocessing",
    "source",
    "train",
    "serve",
    "env",
    "artifacts",
    "seed",
    "dockerfile",
)


def _inline(value, assign: str, braces: tuple[str, str]) -> str:
    """One value on one line: a YAML flow mapping (``assign`` ": ", braces "{" "}") or a TOML
    inline table (" = ", "{ " " }"); lists alike; strings as JSON strings, valid in both."""
    if isinstance(value, dict):
        return braces[0] + ", ".join(f"{k}{assign}{_inline(v, assign, braces)}" for k, v in value.items()) + braces[1]
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v, assign, braces) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def _yaml_value(value) -> str:
    return _inline(value, ": ", ("{", "}"))


def _toml_value(value) -> str:
    return _inline(value, " = ", ("{ ", " }"))


def _spec_lines(proposal: Proposal, value: Callable[[object], str], assign: str) -> list[str]:
    """Each key with the reason it was chosen as a comment above it, then what to check."""
    lines = []
    for key in ORDER:
        if key in proposal.values:
            lines.append(f"# {key}: {proposal.reasons.get(key, '')}")
            lines.append(f"{key}{assign}{value(proposal.values[key])}")
    return lines + [f"# CHECK: {note}" for note in proposal.notes]


def spec_yaml(proposal: Proposal) -> str:
    head = [
        "# imagesmith.yaml, written by `imagesmith init` from what it found in this project.",
        '# Every key is described in imagesmith\'s README ("A project"); check the ones marked below.',
    ]
    return "\n".join(head + _spec_lines(proposal, _yaml_value, ": ")) + "\n"


def spec_toml(proposal: Proposal) -> str:
    head = [
        "",
        "# [tool.imagesmith], written by `imagesmith init`; every key is described in imagesmith's README.",
        "[tool.imagesmith]",
    ]
    return "\n".join(head + _spec_lines(proposal, _toml_value, " = ")) + "\n"


def write_spec(
    root: Path,
    *,
    pyproject: bool = False,
    dry_run: bool = False,
    python: str | None = None,
    base: str | None = None,
) -> tuple[Path, str, Proposal]:
    """Write the proposed spec (``imagesmith.yaml``, or a ``[tool.imagesmith]`` table appended to
    pyproject.toml); never over an existing spec. Returns (path, text written, proposal)."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder", hint="run `imagesmith init` in the project, or pass -p DIR")
    proposal = propose(root, python=python, base=base)
    if pyproject:
        path = root / PYPROJECT
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if "imagesmith" in (_toml(path).get("tool") or {}):
            raise UsageError(f"{path} already has a [tool.imagesmith] table; init never overwrites a spec")
        text = spec_toml(proposal)
        new = current + ("\n" if current and not current.endswith("\n") else "") + text
        data = (_parse_toml(new).get("tool") or {}).get("imagesmith")
    else:
        path = root / SPEC_FILE
        if path.exists():
            raise UsageError(f"{path} exists; init never overwrites a spec", hint="--print shows what it would write")
        text = spec_yaml(proposal)
        import yaml

        new, data = text, yaml.safe_load(text)
    try:
        parse_spec(data, root, origin=path.name)
    except SpecError as exc:  # never write a spec the parser would refuse
        raise UsageError(
            f"init could not make a valid spec for {root}:\n{exc}",
            hint='write imagesmith.yaml by hand (README: "A project")',
        ) from exc
    if not dry_run:
        atomic_write(path, new)
    return path, text, proposal


def _parse_toml(text: str) -> dict:
    return tomllib.loads(text)
