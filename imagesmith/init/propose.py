"""``propose(root)``: the spec ``imagesmith init`` proposes for a project, each value with the
reason it was chosen, in steps: name and Python, requirements, code, train, serve, then the
model's folder, the data files and the rest."""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .. import layout, project_code
from ..errors import UsageError
from ..render import generated
from ..spec import DOCKERFILE, PYPROJECT
from ..spec.pyproject import project_package, src_layout
from ..spec.schema import LOCK_SOURCES
from . import Proposal
from .artifacts import code_uses, data_files, find_model
from .commands import Serve, find_serve, runs_from_its_folder, train_script
from .project_files import (
    code_layout,
    covered,
    in_package,
    module_name,
    project_modules,
    read_text,
    read_toml,
    src_is_package,
)
from .python_version import choose_python


@dataclass
class _Draft:
    """The proposal as it is being made, and what the steps learn about the project on the way."""

    root: Path
    project: dict  # [project] of pyproject.toml ({} when none)
    values: dict = field(default_factory=dict)
    why: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    env: dict = field(default_factory=dict)
    requirements_text: str = ""  # the dependencies, lower-case: which server is installed
    source: list[str] = field(default_factory=list)
    prep: list[str] = field(default_factory=list)
    code_layout: str = "flat"
    src_package: bool = False
    installable: bool = False
    scripts: dict = field(default_factory=dict)  # [project.scripts] of an installable project
    modules: dict = field(default_factory=dict)
    train_module: str | None = None
    train_cwd: str = layout.APP_DIR


def propose(root: Path, *, python: str | None = None, base: str | None = None) -> Proposal:
    root = Path(root)
    pyproject = read_toml(root / PYPROJECT) if (root / PYPROJECT).is_file() else {}
    found = pyproject.get("project")
    draft = _Draft(root, found if isinstance(found, dict) else {})
    _name_python_base(draft, python, base)
    _requirements(draft)
    _code(draft, pyproject)
    script = {
        role: next((n for n in sorted(draft.scripts) if role in n and isinstance(n, str)), None)
        for role in ("train", "serve")
    }
    _train(draft, script["train"])
    serve = _serve(draft, script["serve"])
    _model_and_data(draft, serve, script["serve"])
    values, why = draft.values, draft.why
    values["seed"] = 0
    why["seed"] = "set in every process of both images (random, NumPy, PyTorch, TensorFlow)"
    own = root / DOCKERFILE
    if (own.exists() or own.is_symlink()) and not generated(own):
        values["dockerfile"] = "imagesmith.Dockerfile"
        why["dockerfile"] = f"the project has its own {DOCKERFILE}: imagesmith writes its own beside it, never over it"
    return Proposal(values=values, reasons=why, notes=draft.notes)


def _name_python_base(draft: _Draft, python: str | None, base: str | None) -> None:
    root, project, values, why = draft.root, draft.project, draft.values, draft.why
    values["name"] = _name(root, project)
    why["name"] = "[project].name" if project.get("name") else "the folder's name"
    values["python"], why["python"], python_notes = choose_python(root, project, python, base)
    draft.notes += python_notes
    if base:
        values["base"] = base
        why["base"] = "given with --base (pinned to a digest by `imagesmith lock`)"
    else:
        values["base"] = f"python:{values['python']}-slim"
        why["base"] = "the official image for that Python (pinned to a digest by `imagesmith lock`)"


def _name(root: Path, project: dict) -> str:
    given = project.get("name")
    raw = given if isinstance(given, str) else root.resolve().name
    name = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._") or "app"
    return name[:60]


def _requirements(draft: _Draft) -> None:
    """The project's own lock, else its declared dependencies (pyproject-native), else a requirements file."""
    root, project, values, why = draft.root, draft.project, draft.values, draft.why
    draft.requirements_text = " ".join(map(str, project.get("dependencies") or [])).lower()
    project_lock = next(
        (key for key, name in LOCK_SOURCES.items() if project and (root / name).is_file()), None
    )  # the project's own lock is the source of truth
    found_dynamic = project.get("dynamic")
    dynamic: list = found_dynamic if isinstance(found_dynamic, list) else []
    declared = isinstance(project.get("dependencies"), list) or "dependencies" in dynamic
    for candidate in ("requirements.txt", "requirements.in") if project_lock is None and not declared else ():
        if (root / candidate).is_file():
            values["requirements"] = candidate
            why["requirements"] = f"found {candidate}"
            draft.requirements_text = read_text(root / candidate, 1 << 20).lower()
            return
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


def _code(draft: _Draft, pyproject: dict) -> None:
    """Where the code is (flat or src layout), whether the project is installed, its preprocessing."""
    root = draft.root
    draft.src_package = src_is_package(root)
    draft.source, draft.prep, draft.code_layout = code_layout(root, draft.src_package)
    package, _ = project_package(pyproject, src_layout=draft.code_layout == "src" and src_layout(root))
    draft.installable = package is not None
    scripts_found = draft.project.get("scripts")
    draft.scripts = scripts_found if isinstance(scripts_found, dict) and draft.installable else {}
    if draft.installable:
        draft.source = []  # its code reaches the images as its wheel (install_project: auto)
        draft.notes.append(
            f"{draft.code_layout} layout, installable ({package.backend if package else ''}): the project is built "
            "into a wheel and installed into both images (set install_project: false to copy it as source instead)"
        )
    if draft.prep:
        draft.values["preprocessing"] = draft.prep
        draft.why["preprocessing"] = "code both training and serving import; its content is in the parity"
    if draft.code_layout == "src" and not draft.installable:
        draft.notes.append(
            "src layout without a build backend: the code is copied to /app/src; set PYTHONPATH in env:, "
            "or add [build-system] so imagesmith installs the project"
        )
    draft.modules = project_modules(root, draft.code_layout)


def _train(draft: _Draft, script: str | None) -> None:
    root, modules, values, why = draft.root, draft.modules, draft.values, draft.why
    train = train_script(root, modules, draft.code_layout)
    draft.train_module = module_name(root, train, draft.code_layout) if train is not None else None
    if script:
        values["train"] = {"command": [script]}
        why["train"] = f"the console script {script} ([project.scripts])"
    elif train is not None and (draft.installable or in_package(root, train, draft.code_layout)):
        values["train"] = {"command": ["python", "-m", module_name(root, train, draft.code_layout)]}
        why["train"] = f"found {train.relative_to(root)}" + (
            " (installed with the project)" if draft.installable else ""
        )
    elif train is not None:
        rel = train.relative_to(root).as_posix()
        if not covered(rel, draft.source):
            draft.source.append(rel)
        if runs_from_its_folder(root, train, modules[draft.train_module or ""][1]):
            folder = train.parent.relative_to(root).as_posix()
            draft.train_cwd = posixpath.join(layout.APP_DIR, folder)
            values["train"] = {
                "command": ["sh", "-c", f"cd {shlex.quote(folder)} && exec python {shlex.quote(train.name)}"]
            }
            why["train"] = f"found {rel}; it reads files beside it by relative names, so it runs from {folder}/"
        else:
            values["train"] = {"command": ["python", rel]}
            why["train"] = f"found {rel}"
        imported = project_code.imported_modules(draft.train_module or "", modules)[1:]
        if train.parent != root and any(m.split(".")[0] in {n.split(".")[0] for n in modules} for m in imported):
            draft.env["PYTHONPATH"] = layout.APP_DIR  # a script in a folder that imports the project's modules
    else:
        values["train"] = {"command": ["python", "train.py"]}
        why["train"] = "no train.py found: replace with your training command"
        draft.notes.append("no training script found: edit train.command")


def _serve(draft: _Draft, script: str | None) -> Serve | None:
    values, why = draft.values, draft.why
    serve, serve_notes = find_serve(
        draft.root, draft.modules, draft.requirements_text, draft.code_layout, draft.installable
    )
    draft.notes += serve_notes
    if script:
        values["serve"] = {"command": [script], "port": 8000}
        why["serve"] = f"the console script {script} ([project.scripts]; port guessed)"
        draft.notes.append("serve.port is a guess: check it")
    elif serve is not None:
        values["serve"] = {"command": serve.command, "port": serve.port}
        why["serve"] = serve.reason
    else:
        values["serve"] = {"command": ["python", "serve.py"], "port": 8000}
        why["serve"] = "no server found: replace with your serving command"
        draft.notes.append("no server found: edit serve.command and serve.port")
    return serve


def _model_and_data(draft: _Draft, serve: Serve | None, script: str | None) -> None:
    """The artifacts folder, the files the code opens (into ``source``), and ``env``."""
    root, modules, values, why = draft.root, draft.modules, draft.values, draft.why
    source, prep = draft.source, draft.prep
    train_uses = code_uses(root, modules, draft.train_module, draft.train_cwd)
    serve_module = serve.app.module if serve and serve.app else serve.module if serve else None
    if script and isinstance(draft.scripts.get(script), str):
        serve_module = draft.scripts[script].split(":")[0].strip()
    serve_uses = code_uses(root, modules, serve_module, layout.APP_DIR)
    model = find_model(train_uses, serve_uses, source + prep)
    draft.notes += model.notes
    env = draft.env
    env.update(model.env)
    data_uses = train_uses + serve_uses
    if draft.installable:  # its code is installed: only what it names from the working folder is in /app
        data_uses = [(u, w) for u, w in data_uses if u.where.anchor == "cwd"]
    data = data_files(root, data_uses, source + prep, model.artifacts)
    if serve and serve.app and serve.app.framework == "flask" and not draft.installable:
        app_dir = serve.app.path.parent
        for name in ("templates", "static"):
            rel = (app_dir / name).relative_to(root).as_posix()
            if (app_dir / name).is_dir() and not covered(rel, source + prep + data):
                data.append(rel + "/")
    if data:
        source += data
        draft.notes.append(f"files the code opens, added to source: {', '.join(data)}")
    if source:
        values["source"] = source
        why["source"] = (
            f"{draft.code_layout} layout: the project's modules and packages (the last, small layer)"
            + (
                "; src/ is imported as a package (from src.… import), so it is copied as one"
                if draft.src_package
                else ""
            )
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
