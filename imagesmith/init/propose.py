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
from ..errors import ImagesmithError
from ..render import generated
from ..spec import DOCKERFILE, PYPROJECT
from ..spec.pyproject import project_package, src_layout
from ..spec.schema import LOCK_SOURCES
from . import Proposal
from .artifacts import MODEL_NOT_FOUND, code_uses, data_files, find_model, hub_downloads
from .commands import (
    Serve,
    command_module,
    command_port,
    declared_train,
    dockerfile_command,
    find_serve,
    model_writer,
    own_scripts,
    runs_from_its_folder,
    train_script,
)
from .project_files import (
    CONDA_FILES,
    code_layout,
    conda_packages,
    covered,
    in_package,
    module_name,
    project_modules,
    read_text,
    read_toml,
    src_is_package,
)
from .python_version import choose_python
from .requirement_files import REQUIREMENTS_FILES, no_requirements, requirements_files


@dataclass
class _Draft:
    """The proposal as it is being made, and what the steps learn about the project on the way."""

    root: Path
    pyproject: dict  # pyproject.toml, parsed ({} when none), read once
    project: dict  # [project] of pyproject.toml ({} when none)
    values: dict = field(default_factory=dict)
    why: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    env: dict = field(default_factory=dict)
    requirements_text: str = ""  # the dependencies, lower-case: which server is installed
    requirements_files: dict = field(default_factory=dict)  # {path: text} of the chosen file and its includes
    source: list[str] = field(default_factory=list)
    prep: list[str] = field(default_factory=list)
    code_layout: str = "flat"
    src_package: bool = False
    installable: bool = False
    scripts: dict = field(default_factory=dict)  # [project.scripts] of an installable project
    modules: dict = field(default_factory=dict)
    train_module: str | None = None
    train_cwd: str = layout.APP_DIR


def propose(
    root: Path, *, python: str | None = None, base: str | None = None, pyproject: dict | None = None
) -> Proposal:
    """``pyproject``: the project's pyproject.toml when the caller has read it (else read here)."""
    root = Path(root)
    if pyproject is None:
        pyproject = read_toml(root / PYPROJECT) if (root / PYPROJECT).is_file() else {}
    found = pyproject.get("project")
    draft = _Draft(root, pyproject, found if isinstance(found, dict) else {})
    _name_python_base(draft, python, base)
    _requirements(draft)
    _code(draft)
    script = {
        role: next((n for n in sorted(draft.scripts) if role in n and isinstance(n, str)), None)
        for role in ("train", "serve")
    }
    run_scripts = own_scripts(pyproject)
    declared = None if "train" in run_scripts else declared_train(root)
    if declared is not None:
        run_scripts["train"] = declared[:2]
        draft.source += [f for f in declared[2] if not covered(f, draft.source)]  # a shell script: in no wheel
    if "train" in run_scripts:
        values, why = draft.values, draft.why
        values["train"] = {"command": run_scripts["train"][0]}
        why["train"] = f"{run_scripts['train'][1]}: the project's own training command"
        draft.train_module = _own_code(draft, run_scripts["train"][0])
    else:
        _train(draft, script["train"])
    serve = _own_serve(draft, run_scripts["serve"]) if "serve" in run_scripts else _serve(draft, script["serve"])
    _namespace_folders(draft, serve)
    _model_and_data(draft, serve, script["serve"])
    values, why = draft.values, draft.why
    values["seed"] = 0
    why["seed"] = "set in every process of both images (random, NumPy, PyTorch, TensorFlow)"
    own = root / DOCKERFILE
    theirs = dockerfile_command(root)
    if theirs and (not _splits(theirs) or shlex.split(theirs) != values["serve"]["command"]):
        draft.notes.append(
            f"the project's own {DOCKERFILE} starts its container with `{theirs[:200]}`: serve.command is init's "
            "proposal; carry over what the image needs from it (workers, options; a port below 1024 needs root, "
            "which imagesmith's images do not run as, unless user: root)"
        )
    if (own.exists() or own.is_symlink()) and not generated(own):
        values["dockerfile"] = "imagesmith.Dockerfile"
        why["dockerfile"] = f"the project has its own {DOCKERFILE}: imagesmith writes its own beside it, never over it"
    return Proposal(values=values, reasons=why, notes=draft.notes)


def _splits(text: str) -> bool:
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


def _name_python_base(draft: _Draft, python: str | None, base: str | None) -> None:
    root, project, values, why = draft.root, draft.project, draft.values, draft.why
    tool = draft.pyproject.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    named = project if project.get("name") or not isinstance(poetry, dict) else poetry  # Poetry 1: [tool.poetry]
    values["name"] = _name(root, named)
    why["name"] = (
        "[project].name" if project.get("name") else "[tool.poetry].name" if named.get("name") else "the folder's name"
    )
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
    pyproject = root / PYPROJECT
    # the project's own lock is the source of truth, beside a pyproject.toml with [project]; for
    # one without (Poetry 1's [tool.poetry]) only when no requirements file says otherwise, as
    # before: poetry.lock is read through `poetry export`, which the locking machine may lack
    plain_file = any((root / name).is_file() for name in REQUIREMENTS_FILES)
    project_lock = next(
        (
            key
            for key, name in LOCK_SOURCES.items()
            if pyproject.is_file() and (project or not plain_file) and (root / name).is_file()
        ),
        None,
    )
    found_dynamic = project.get("dynamic")
    dynamic: list = found_dynamic if isinstance(found_dynamic, list) else []
    declared = isinstance(project.get("dependencies"), list) or "dependencies" in dynamic
    for candidate in REQUIREMENTS_FILES if project_lock is None and not declared else ():
        if (root / candidate).is_file():
            values["requirements"] = candidate
            why["requirements"] = f"found {candidate}"
            others = [f for f in requirements_files(root) if f != candidate and f != "requirements.in"]
            if candidate not in ("requirements.txt", "requirements.in") and others:
                draft.notes.append(f"requirements: {candidate}, the serving/production one; not {', '.join(others)}")
            _read_requirements(draft, root / candidate)
            _conda_note(draft)
            return
    if project_lock is not None:
        values["requirements"] = {project_lock: True}
        why["requirements"] = f"{LOCK_SOURCES[project_lock]}: its pins, exactly (the lock is the source of truth)"
        tool = draft.pyproject.get("tool")
        uv = tool.get("uv") if isinstance(tool, dict) else None
        workspace = uv.get("workspace") if isinstance(uv, dict) else None
        members = workspace.get("members") if isinstance(workspace, dict) else None
        if project_lock == "uv_lock" and isinstance(members, list) and members:
            draft.notes.append(
                f"a uv workspace (members: {', '.join(map(str, members[:4]))}): the images get the root project's "
                "dependencies from uv.lock, not a member's (imagesmith builds one project); declare what the images "
                "need in the root project's dependencies"
            )
    elif isinstance(project.get("dependencies"), list):
        values["requirements"] = {"pyproject": True}
        why["requirements"] = "[project].dependencies in pyproject.toml"
        if (root / "pdm.lock").is_file():
            draft.notes.append(
                "pdm.lock is not read (imagesmith reads uv.lock, pylock.toml or poetry.lock): the images get "
                "[project].dependencies resolved afresh, not its pins; `pdm export -f pylock -o pylock.toml` "
                "writes them as a pylock.toml, which init then takes (requirements: {pylock: true})"
            )
    elif "dependencies" in dynamic:
        values["requirements"] = {"pyproject": True}
        why["requirements"] = "dynamic dependencies: read by the build backend in a container of the base"
    else:
        raise no_requirements(root, draft.pyproject)


_CONDA_NAMES = {"pytorch": "torch", "py-xgboost": "xgboost", "tensorflow-gpu": "tensorflow"}  # conda's -> PyPI's


def _conda_note(draft: _Draft) -> None:
    """A conda environment file beside the requirements file is not read: what it alone installs
    (CUDA, system libraries) is named, as the images will not have it."""
    conda = next((draft.root / n for n in CONDA_FILES if (draft.root / n).is_file()), None)
    if conda is None:
        return

    from ..runtime.heavy import canonical as normal  # PEP 503: scikit_learn and Scikit.Learn are scikit-learn

    listed = {normal(n) for n in re.findall(r"[a-z0-9][a-z0-9._-]*", draft.requirements_text)}
    packages = [p for p in conda_packages(conda) if normal(_CONDA_NAMES.get(p.lower(), p)) not in listed]
    if packages:
        shown = ", ".join(packages[:6]) + (f" and {len(packages) - 6} more" if len(packages) > 6 else "")
        draft.notes.append(
            f"{conda.name} is not read, only {draft.values['requirements']}: its conda packages ({shown}) are not "
            "in the images; give the ones the code needs by their PyPI names in the requirements file"
        )


def _read_requirements(draft: _Draft, path: Path) -> None:
    """The chosen requirements file and its -r/-c includes, each read once, as the lock reads
    them: what they install (which server) and the indexes they name. A file the lock would
    refuse (not UTF-8, an include that is no file) is read leniently for its server only."""
    from ..lock.requirement_lines import EDITABLE, OPTION_KINDS, requirement_lines
    from ..lock.resolution_files import read_requirement_files

    try:
        draft.requirements_files = read_requirement_files(path)
    except ImagesmithError:
        draft.requirements_text = read_text(path, 1 << 20).lower()
        return
    draft.requirements_text = " ".join(
        line.value
        for text in draft.requirements_files.values()
        for line in requirement_lines(text)
        if line.kind not in OPTION_KINDS or line.kind == EDITABLE
    ).lower()
    _file_indexes(draft, path)


def _file_indexes(draft: _Draft, path: Path) -> None:
    """The indexes the requirements file (and its -r/-c includes) names, into the spec: the lock
    reads the spec's indexes alone, and refuses a file's index the spec lacks."""
    from ..credentials import strip_userinfo
    from ..lock.resolution_files import index_hint, named_indexes
    from ..spec.schema import INDEX_URL_RE

    for option, url in (found for text in draft.requirements_files.values() for found in named_indexes(text)):
        if option in ("-f", "--find-links"):  # files, not an index: the lock will refuse it, so say so now
            draft.notes.append(f"{path.name} names --find-links {strip_userinfo(url)}: {index_hint(option, url)}")
            continue
        plain = strip_userinfo(url).rstrip("/")
        if not INDEX_URL_RE.fullmatch(plain):
            draft.notes.append(
                f"{path.name} names the index {plain!r}, which the spec cannot: "
                + (
                    "name the index itself in index_url: or extra_index_urls:"
                    if "$" in plain
                    else "publish to an http(s) index"
                )
            )
            continue
        if plain != url.rstrip("/"):
            draft.notes.append(
                f"the index {plain} has credentials in {path.name}: give them as docs/guides/private-indexes.md says"
            )
        if option == "--extra-index-url":
            extra = draft.values.setdefault("extra_index_urls", [])
            if plain not in extra:
                extra.append(plain)
            draft.why["extra_index_urls"] = (
                f"named in {path.name} (--extra-index-url): the lock reads the spec's indexes"
            )
        else:
            draft.values["index_url"] = plain
            draft.why["index_url"] = f"named in {path.name} ({option}): the lock reads the spec's indexes"


def _code(draft: _Draft) -> None:
    """Where the code is (flat or src layout), whether the project is installed, its preprocessing."""
    root, pyproject = draft.root, draft.pyproject
    draft.src_package = src_is_package(root)
    draft.source, draft.prep, draft.code_layout = code_layout(root, draft.src_package)
    package, _ = project_package(pyproject, src_layout=draft.code_layout == "src" and src_layout(root))
    draft.installable = package is not None
    scripts_found = draft.project.get("scripts")
    draft.scripts = scripts_found if isinstance(scripts_found, dict) and draft.installable else {}
    if draft.installable:
        # its code reaches the images as its wheel (install_project: auto); but a module at the
        # root (train.py, app.py) is in the wheel only when declared (setuptools' py-modules):
        # find_packages(), hatchling and flit leave such scripts out, so they are copied too
        tool = pyproject.get("tool")
        setuptools = tool.get("setuptools") if isinstance(tool, dict) else None
        declared = setuptools.get("py-modules") if isinstance(setuptools, dict) else None
        installed = {f"{m}.py" for m in declared if isinstance(m, str)} if isinstance(declared, list) else set()
        scripts = [s for s in draft.source if draft.code_layout == "flat" and s.endswith(".py") and "/" not in s]
        draft.source = [s for s in scripts if s not in installed]
        draft.notes.append(
            f"{draft.code_layout} layout, installable ({package.backend if package else ''}): the project is built "
            "into a wheel and installed into both images (set install_project: false to copy it as source instead)"
            + (f"; the modules at its root ({', '.join(draft.source)}) are copied too" if draft.source else "")
        )
    if draft.prep:
        draft.values["preprocessing"] = draft.prep
        draft.why["preprocessing"] = "code both training and serving import; its content is in the parity"
    if draft.code_layout == "src" and not draft.installable:
        draft.env["PYTHONPATH"] = _import_root(draft)  # python -m pkg.train, uvicorn pkg.main:app import from src/
        draft.notes.append(
            "src layout without a build backend: the code is copied to /app/src and imported from there "
            "(PYTHONPATH in env:); add [build-system] to have imagesmith install the project instead"
        )
    draft.modules = project_modules(root, draft.code_layout)


def _import_root(draft: _Draft) -> str:
    """Where the project's modules are imported from in the image, when it is copied as source."""
    return f"{layout.APP_DIR}/src" if draft.code_layout == "src" else layout.APP_DIR


def _train(draft: _Draft, script: str | None) -> None:
    root, modules, values, why = draft.root, draft.modules, draft.values, draft.why
    train = train_script(root, modules, draft.code_layout)
    writer = model_writer(root, modules, draft.code_layout) if train is None and not script else None
    if writer is not None:
        train = writer[0]
        draft.notes.append(
            f"train: {train.relative_to(root).as_posix()} is taken as the training script (no train*.py; "
            f"it writes the model file {writer[1]}): check it"
        )
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
            draft.env["PYTHONPATH"] = _import_root(draft)  # a script in a folder that imports the project's modules
    else:
        values["train"] = {"command": ["python", "train.py"]}
        why["train"] = "no train.py found: replace with your training command"
        draft.notes.append("no training script found: edit train.command" + _notebooks(root))


def _notebooks(root: Path) -> str:
    """What to say of the project's notebooks when no training script was found: init reads
    Python files only, and never runs a notebook."""
    found = sorted(
        (
            p.relative_to(root).as_posix()
            for p in list(root.glob("*.ipynb")) + list(root.glob("notebooks/*.ipynb"))
            if p.is_file()
        ),
        key=lambda rel: ("train" not in rel.rsplit("/", 1)[-1].lower(), rel),  # a training one first
    )
    if not found:
        return ""
    shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    return (
        f" ({shown}: notebooks are not read; export the training one as a script, e.g. "
        f"`jupyter nbconvert --to script {shlex.quote(found[0])}`, and point train.command at it)"
    )


def _own_code(draft: _Draft, argv: list[str]) -> str | None:
    """The project module a command of the project's own runs (``python -m X``, ``module:app``,
    ``python path/x.py``), its file put in ``source`` when no wheel carries it (and ``PYTHONPATH``
    set when, run from a folder, it imports the project's modules from the root)."""
    module = command_module(argv)
    if module in draft.modules:
        return module
    for word in argv[-1].split() if argv[:2] == ["sh", "-c"] else argv:
        rel = posixpath.normpath(word) if word.endswith(".py") else ""
        path = draft.root / rel
        # a file of the project: not /usr/lib/…/x.py, ../x.py, nor one reached through a link out of it
        inside = rel and not rel.startswith(("../", "/")) and path.resolve().is_relative_to(draft.root.resolve())
        if inside and path.is_file() and not path.is_symlink():
            in_wheel = draft.installable and in_package(draft.root, path, draft.code_layout)
            if not in_wheel and not covered(rel, draft.source + draft.prep):  # scripts/x.py is in no wheel
                draft.source.append(rel)
            found = module_name(draft.root, path, draft.code_layout)
            imported = project_code.imported_modules(found, draft.modules)[1:]
            if path.parent != draft.root and not draft.installable and imported:
                draft.env["PYTHONPATH"] = _import_root(draft)  # python scripts/x.py: sys.path[0] is scripts/
            return found if found in draft.modules else None
    return None


def _own_serve(draft: _Draft, own: tuple[list[str], str]) -> Serve:
    """The project's own serving command (a PDM or Hatch script), with the port it names."""
    argv, said = own
    port = command_port(argv)
    if port is None:
        draft.notes.append(f"serve.port is a guess: {said} names no port")
    words = " ".join(argv)
    if re.search(r"\b(?:uvicorn|gunicorn|flask|hypercorn)\b", words) and not re.search(r"0\.0\.0\.0|\[?::\]?", words):
        draft.notes.append(
            f"{said} names no address to listen on: its server listens on 127.0.0.1, which no published port "
            "reaches; add --host 0.0.0.0 (gunicorn: -b 0.0.0.0:PORT) to serve.command"
        )
    serve = Serve(argv, port or 8000, f"{said}: the project's own serving command", module=_own_code(draft, argv))
    draft.values["serve"] = {"command": argv, "port": serve.port}
    draft.why["serve"] = serve.reason
    return serve


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
        draft.env.update(serve.env)
    else:
        values["serve"] = {"command": ["python", "serve.py"], "port": 8000}
        why["serve"] = "no server found: replace with your serving command"
        draft.notes.append("no server found: edit serve.command and serve.port")
    return serve


LARGE_DATA = 50_000_000  # bytes: a data file worth a second thought before it goes into both images


def _size(path: Path, limit: int = 20_000) -> int:
    """The bytes of a file, or of the regular files under a folder (links not followed; the
    first ``limit`` files: enough to tell a large folder)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for i, found in enumerate(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
        if i >= limit:
            break
        total += found.stat().st_size
    return total


def _namespace_folders(draft: _Draft, serve: Serve | None) -> None:
    """Folders without ``__init__.py`` (namespace packages, as in ``app/main.py``) that the serving
    or training code imports: into ``source``, which otherwise holds regular packages only."""
    if draft.installable:
        return
    root, modules = draft.root, draft.modules
    serve_module = serve.app.module if serve and serve.app else serve.module if serve else None
    used = [
        m
        for start in (serve_module, draft.train_module)
        if start
        for m in project_code.imported_modules(start, modules)
    ]
    for name in dict.fromkeys(used):
        parts = modules[name][0].relative_to(root).parts
        if draft.code_layout == "src" and parts[0] == "src":
            continue
        folder = parts[0] + "/"
        have = draft.source + draft.prep
        if len(parts) > 1 and not covered("/".join(parts), have) and not covered(parts[0], have):
            draft.source.append(folder)
            draft.notes.append(
                f"{folder} has no __init__.py (a namespace package) and the code imports it: added to source"
            )


def _model_and_data(draft: _Draft, serve: Serve | None, script: str | None) -> None:
    """The artifacts folder, the files the code opens (into ``source``), and ``env``."""
    root, modules, values, why = draft.root, draft.modules, draft.values, draft.why
    source, prep = draft.source, draft.prep
    train_uses = code_uses(root, modules, draft.train_module, draft.train_cwd)
    serve_module = serve.app.module if serve and serve.app else serve.module if serve else None
    if script and isinstance(draft.scripts.get(script), str):
        serve_module = draft.scripts[script].split(":")[0].strip()
    serve_modules = modules
    if serve and serve.cwd != layout.APP_DIR:  # run from its folder: the modules there import by their own names
        prefix = serve.cwd[len(layout.APP_DIR) + 1 :].replace("/", ".") + "."
        serve_modules = {**modules, **{n[len(prefix) :]: m for n, m in modules.items() if n.startswith(prefix)}}
    serve_uses = code_uses(root, serve_modules, serve_module, serve.cwd if serve else layout.APP_DIR)
    model = find_model(train_uses, serve_uses, source + prep)
    fetched = hub_downloads(root, serve_modules, serve_module)
    if fetched and model.artifacts == "/artifacts" and not model.env:
        model.notes = [n for n in model.notes if not n.startswith(MODEL_NOT_FOUND)]  # what the code does instead
        model.notes.append(
            f"serve fetches its model from a hub when it starts: {', '.join(fetched[:3])}; the serve container "
            "needs the network and fetches it on every start unless its cache is kept in the mounted folder (env: "
            "HF_HOME: /artifacts/hf; torch.hub: TORCH_HOME), or save the model with train and load it from /artifacts"
        )
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
        large = [f"{rel} ({size / 1e6:.0f} MB)" for rel in data for size in [_size(root / rel)] if size >= LARGE_DATA]
        if large:
            draft.notes.append(
                f"large data in source, copied into both images: {', '.join(large)}; "
                "to keep it out, drop it from source and give it to the code at run time (e.g. in the artifacts folder)"
            )
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
        said = {
            "PYTHONPATH": "where the project's modules are imported from (the code is copied, not installed)",
            "GRADIO_SERVER_NAME": "the Gradio app listens beyond the container (its default is 127.0.0.1)",
            "PORT": "the Procfile's web: process reads the port the platform gives it",
        }
        why["env"] = "; ".join(
            f"{key}: {'the artifacts folder, where the code looks for its model' if key in model.env else said.get(key, '')}"
            for key in env
        )
    values["artifacts"] = model.artifacts
    why["artifacts"] = model.reason
