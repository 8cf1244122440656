"""``imagesmith init``: a commented spec for an existing project, from what is in it.

``propose(root)`` reads the project (never runs any of it) and returns the spec's values, each
with the reason it was chosen; ``spec_yaml`` / ``spec_toml`` turn that into text; ``write_spec``
checks the text with the real parser and writes it atomically, never over an existing spec.

What it looks at:
- name: ``[project].name``, else the folder's name;
- python: ``.python-version``, else the newest 3.x that ``requires-python`` allows, else 3.11;
- requirements: the project's lock (uv.lock, pylock.toml, poetry.lock) when it has one, else its
  declared ``[project]`` dependencies (static or dynamic), else ``requirements.txt`` (or ``.in``);
- code: top-level modules and packages (``src/`` packages too), minus tests, docs and
  virtualenvs; a ``preprocessing``/``features`` package becomes ``preprocessing:``;
- an installable project (``[project]`` and ``[build-system]`` with a ``build-backend``): it is
  built into a wheel and installed into both images, so its code is not copied as ``source``
  too (an edit must rebuild one layer); ``[project.scripts]`` named ``*train*``/``*serve*``
  become the train and serve commands;
- train: ``train.py``, else ``PKG/train.py`` (``python -m PKG.train``);
- serve: a FastAPI or Flask app object (served with uvicorn or gunicorn), else ``serve.py``;
- artifacts: ``/artifacts`` (the folder both images mount).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import SpecError, UsageError
from .fsutil import atomic_write, tomllib
from .spec import LOCK_SOURCES, PYPROJECT, SPEC_FILE, parse_spec, project_package, src_layout

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


def _python(root: Path, project: dict) -> tuple[str, str]:
    pinned = root / ".python-version"
    if pinned.is_file():
        m = re.match(r"\s*(3\.\d+)", pinned.read_text(encoding="utf-8", errors="replace"))
        if m:
            return m.group(1), ".python-version"
    requires = project.get("requires-python")
    if isinstance(requires, str):
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            allowed = [v for v in MINORS if SpecifierSet(requires).contains(v + ".0")]
        except InvalidSpecifier:
            allowed = []
        if allowed:
            return allowed[-1], f"the newest Python requires-python {requires!r} allows"
    return "3.11", "default (no .python-version or requires-python)"


def _name(root: Path, project: dict) -> str:
    given = project.get("name")
    raw = given if isinstance(given, str) else root.resolve().name
    name = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._") or "app"
    return name[:60]


def _code(root: Path) -> tuple[list[str], list[str], str]:
    """(source paths, preprocessing paths, layout)."""
    top = root / "src" if (root / "src").is_dir() and any((root / "src").glob("*/__init__.py")) else root
    layout = "src" if top != root else "flat"
    source: list[str] = []
    prep: list[str] = []
    for entry in sorted(top.iterdir()):
        rel = entry.relative_to(root).as_posix()
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_dir():
            if entry.name in SKIP_DIRS or (entry / "pyvenv.cfg").exists() or not (entry / "__init__.py").is_file():
                continue
            (prep if entry.name in PREPROCESSING_NAMES else source).append(rel + "/")
        elif entry.suffix == ".py" and entry.name not in ("setup.py", "conftest.py", "noxfile.py"):
            source.append(rel)
    return source, prep, layout


def _module(root: Path, path: Path) -> str:
    rel = path.relative_to(root / "src" if (root / "src") in path.parents else root).with_suffix("")
    return ".".join(rel.parts)


def _serve(root: Path, files: list[Path], requirements: str) -> tuple[list[str], int, str] | None:
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        m = _APP_RE.search(text)
        if not m:
            continue
        target = f"{_module(root, path)}:{m.group(1)}"
        if m.group(2) == "FastAPI":
            return (
                ["uvicorn", target, "--host", "0.0.0.0", "--port", "8000"],
                8000,
                f"FastAPI app {target}, served with uvicorn",
            )
        if "gunicorn" in requirements:
            return ["gunicorn", "-b", "0.0.0.0:8000", target], 8000, f"Flask app {target}, served with gunicorn"
        return (
            ["python", "-m", "flask", "--app", target, "run", "--host", "0.0.0.0", "--port", "8000"],
            8000,
            f"Flask app {target}, flask's own server (add gunicorn for production)",
        )
    for path in files:
        if path.name == "serve.py":
            return ["python", path.relative_to(root).as_posix()], 8000, f"{path.relative_to(root)} (port guessed)"
    return None


def propose(root: Path) -> Proposal:
    root = Path(root)
    pyproject = _toml(root / PYPROJECT) if (root / PYPROJECT).is_file() else {}
    found = pyproject.get("project")
    project: dict = found if isinstance(found, dict) else {}
    values: dict = {}
    why: dict = {}
    notes: list[str] = []
    values["name"] = _name(root, project)
    why["name"] = "[project].name" if project.get("name") else "the folder's name"
    values["python"], why["python"] = _python(root, project)
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

    source, prep, layout = _code(root)
    package, _ = project_package(pyproject, src_layout=layout == "src" and src_layout(root))
    installable = package is not None
    scripts_found = project.get("scripts")
    scripts: dict = scripts_found if isinstance(scripts_found, dict) and installable else {}
    if installable:
        source = []  # its code reaches the images as its wheel (install_project: auto)
        notes.append(
            f"{layout} layout, installable ({package.backend if package else ''}): the project is built into a wheel "
            "and installed into both images (set install_project: false to copy it as source instead)"
        )
    if prep:
        values["preprocessing"] = prep
        why["preprocessing"] = "code both training and serving import; its content is in the parity"
    if source:
        values["source"] = source
        why["source"] = f"{layout} layout: the project's modules and packages (the last, small layer)"
    if layout == "src" and not installable:
        notes.append(
            "src layout without a build backend: the code is copied to /app/src; set PYTHONPATH in env:, "
            "or add [build-system] so imagesmith installs the project"
        )

    files = [root / s for s in source if s.endswith(".py")]
    files += sorted(p for s in source + prep if s.endswith("/") for p in (root / s).rglob("*.py"))
    if installable:  # its modules, for a FastAPI/Flask app or train.py
        code_root = root / "src" if layout == "src" else root
        files += sorted(p for p in code_root.rglob("*.py") if not set(p.relative_to(root).parts) & SKIP_DIRS)
    script = {
        role: next((n for n in sorted(scripts) if role in n and isinstance(n, str)), None)
        for role in ("train", "serve")
    }
    train = next((f for f in files if f.name == "train.py"), None)
    if script["train"]:
        values["train"] = {"command": [script["train"]]}
        why["train"] = f"the console script {script['train']} ([project.scripts])"
    elif train is not None and installable:
        values["train"] = {"command": ["python", "-m", _module(root, train)]}
        why["train"] = f"found {train.relative_to(root)} (installed with the project)"
    elif train is not None and train.parent in (root, root / "src"):
        values["train"] = {"command": ["python", train.relative_to(root).as_posix()]}
        why["train"] = f"found {train.relative_to(root)}"
    elif train is not None:
        values["train"] = {"command": ["python", "-m", _module(root, train)]}
        why["train"] = f"found {train.relative_to(root)}"
    else:
        values["train"] = {"command": ["python", "train.py"]}
        why["train"] = "no train.py found: replace with your training command"
        notes.append("no training script found: edit train.command")
    serve = _serve(root, files, requirements_text)
    if serve is not None and installable and serve[0][:1] == ["python"] and serve[0][1].endswith(".py"):
        module = _module(root, root / serve[0][1])  # installed with the project: no file in /app to run
        serve = (["python", "-m", module], serve[1], f"{serve[0][1]}, installed with the project (port guessed)")
    if script["serve"]:
        values["serve"] = {"command": [script["serve"]], "port": 8000}
        why["serve"] = f"the console script {script['serve']} ([project.scripts]; port guessed)"
        notes.append("serve.port is a guess: check it")
    elif serve is not None:
        values["serve"] = {"command": serve[0], "port": serve[1]}
        why["serve"] = serve[2]
    else:
        values["serve"] = {"command": ["python", "serve.py"], "port": 8000}
        why["serve"] = "no server found: replace with your serving command"
        notes.append("no server found: edit serve.command and serve.port")
    values["artifacts"] = "/artifacts"
    why["artifacts"] = "where train writes the model and serve reads it (mounted from the host)"
    values["seed"] = 0
    why["seed"] = "set in every process of both images (random, NumPy, PyTorch, TensorFlow)"
    return Proposal(values=values, reasons=why, notes=notes)


ORDER = ("name", "python", "base", "requirements", "preprocessing", "source", "train", "serve", "artifacts", "seed")


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


def write_spec(root: Path, *, pyproject: bool = False, dry_run: bool = False) -> tuple[Path, str, Proposal]:
    """Write the proposed spec (``imagesmith.yaml``, or a ``[tool.imagesmith]`` table appended to
    pyproject.toml); never over an existing spec. Returns (path, text written, proposal)."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder", hint="run `imagesmith init` in the project, or pass -p DIR")
    proposal = propose(root)
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
