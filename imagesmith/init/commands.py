"""The train and serve commands ``imagesmith init`` proposes: the ones the project declares (its
PDM, Rye or Hatch run scripts, its Makefile's ``train:`` recipe, a ``train.sh``, a Procfile's
``web:``; its own Dockerfile's CMD, which is only named), else what the code shows: a training
script (and whether it runs from its own folder), and what serves (a FastAPI or Flask app read by
``project_code``, Django, BentoML, Streamlit, Gradio, a script that starts its own server) or a
``serve.py``."""

from __future__ import annotations

import ast
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .. import layout, project_code
from ..render import generated
from .project_files import in_package, module_name, read_text


def train_script(root: Path, modules: dict[str, tuple[Path, ast.Module]], code_layout: str) -> Path | None:
    """train.py (or train_*.py) at the root, else in src/ or a package, else in scripts/."""

    def rank(path: Path) -> tuple:
        where = 0 if path.parent == root else 1 if in_package(root, path, code_layout) else 2
        scripts = 0 if path.parent == root / "scripts" else 1
        return (where, scripts, path.name != "train.py", path.as_posix())

    found = [p for p, _ in modules.values() if re.fullmatch(r"train(?:_\w+)?\.py", p.name)]
    return min(found, key=rank, default=None)


# What a saved model's file is called: pickle/joblib, PyTorch, Keras/TF, ONNX, XGBoost/LightGBM, safetensors.
MODEL_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".h5", ".keras", ".onnx", ".ubj", ".safetensors")


def model_writer(root: Path, modules: dict[str, tuple[Path, ast.Module]], code_layout: str) -> tuple[Path, str] | None:
    """The one script at the root (or in a package, or in scripts/) that writes a model file by a
    written name (``pickle.dump(m, open("model.pkl", "wb"))``, ``torch.save(m, "model.pt")``) when
    no file is named train*.py: the training script, and the file; None when none or several do
    (a guess between them would be a silent one). A module that serves (an app, a Streamlit or
    Gradio script) is never it."""
    found: dict[Path, str] = {}
    serving = {app.module for app in project_code.find_apps(modules)}
    for name, (path, tree) in modules.items():
        if not (path.parent in (root, root / "scripts") or in_package(root, path, code_layout)):
            continue
        if name in serving or any(_imports(tree, ui) for ui in ("streamlit", "gradio")):
            continue  # a server that trains when its model is missing: run as train, it would never end
        for use in project_code.path_uses(tree, path):
            name = use.where.rel or use.where.default or ""
            if use.write and not use.folder and name.lower().endswith(MODEL_SUFFIXES):
                found.setdefault(path, name)
    return next(iter(found.items())) if len(found) == 1 else None


def runs_from_its_folder(root: Path, script: Path, tree: ast.Module) -> bool:
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


@dataclass
class Serve:
    command: list[str]
    port: int
    reason: str
    app: project_code.App | None = None
    module: str | None = None  # the module that serves (the app's, or serve.py's)
    env: dict = field(default_factory=dict)  # what the server needs set to listen beyond the container
    cwd: str = layout.APP_DIR  # the folder it runs in
    notes: list[str] = field(default_factory=list)  # what the user should check about it


def find_serve(
    root: Path, modules: dict[str, tuple[Path, ast.Module]], requirements: str, code_layout: str, installable: bool
) -> tuple[Serve | None, list[str]]:
    notes: list[str] = []
    apps = project_code.find_apps(modules)
    chosen = project_code.choose_app(apps)
    if chosen is not None:
        if len(apps) > 1:
            others = "; ".join(a.describe() for a in apps if a != chosen)
            why = "it has prediction routes" if chosen.rank == 2 else "the first by name"
            notes.append(f"{len(apps)} apps found: serving {chosen.describe()} ({why}); not {others}")
        return _app_serve(root, modules, chosen, requirements, installable), notes
    # what the project says serves (a Procfile), before what its code shows
    ui = (
        _procfile(root)
        or _django(root, modules, requirements, code_layout)
        or _bento(root, modules)
        or _ui_app(root, modules, installable)
        or _self_serving(root, modules)
    )
    if ui is not None:
        return ui, notes + ui.notes
    for path, _ in modules.values():
        if path.name == "serve.py" and (path.parent == root or installable or in_package(root, path, code_layout)):
            rel, module = path.relative_to(root).as_posix(), module_name(root, path, code_layout)
            if installable or path.parent != root:
                return Serve(["python", "-m", module], 8000, f"{rel} (port guessed)", module=module), notes
            return Serve(["python", rel], 8000, f"{rel} (port guessed)", module=module), notes
    return None, notes


def _app_serve(
    root: Path, modules: dict[str, tuple[Path, ast.Module]], app: project_code.App, requirements: str, installable: bool
) -> Serve:
    """The command that serves a FastAPI (uvicorn) or Flask (gunicorn when installed, else
    flask's own server) app; from the app's folder when its code runs there (``cd app && uvicorn
    main:app``, as its own Dockerfile or README does): it imports the modules beside it by their
    own names, or opens files beside it by relative names."""
    folder = _runs_in_folder(root, modules, app) if not installable else None
    target = f"{app.path.stem}:{app.attr}" if folder else app.target
    target_call = f"{target}()" if app.factory and app.framework == "flask" else target
    if app.framework == "fastapi":
        made = f" (the factory {app.attr}(), --factory)" if app.factory else ""
        argv = ["uvicorn", *(["--factory"] if app.factory else []), target, "--host", "0.0.0.0", "--port", "8000"]
        reason = f"FastAPI app {target}{made}, served with uvicorn"
    elif "gunicorn" in requirements:
        argv, reason = ["gunicorn", "-b", "0.0.0.0:8000", target_call], f"Flask app {target_call}, served with gunicorn"
    else:
        argv = ["python", "-m", "flask", "--app", target_call, "run", "--host", "0.0.0.0", "--port", "8000"]
        reason = f"Flask app {target_call}, flask's own server (add gunicorn for production)"
    if folder is None:
        return Serve(argv, 8000, reason, app)
    rel, why = folder
    return Serve(
        ["sh", "-c", f"cd {shlex.quote(rel)} && exec {shlex.join(argv)}"],
        8000,
        f"{reason}, from {rel}/: {why}",
        app,
        cwd=f"{layout.APP_DIR}/{rel}",
    )


def _runs_in_folder(
    root: Path, modules: dict[str, tuple[Path, ast.Module]], app: project_code.App
) -> tuple[str, str] | None:
    """(the folder, why) when the app in a folder that is no package runs from that folder: it
    imports a module beside it by its own name (``from model import predict`` in app/main.py), or
    opens a file beside it by a relative name; None when it runs from the project's root."""
    folder = app.path.parent
    if folder == root or in_package(root, app.path, "flat"):
        return None
    rel = folder.relative_to(root).as_posix()
    tree = modules[app.module][1]
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in (n.split(".")[0] for n in names):
            beside = (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()
            if beside and not ((root / f"{name}.py").is_file() or (root / name).is_dir()):
                return rel, f"it imports {name}, beside it, by that name"
    if runs_from_its_folder(root, app.path, tree):
        return rel, "it opens files beside it by relative names"
    return None


def _django(
    root: Path, modules: dict[str, tuple[Path, ast.Module]], requirements: str, code_layout: str
) -> Serve | None:
    """A Django project's server: its ``wsgi.py`` (``application = get_wsgi_application()``) with
    gunicorn, or its ``asgi.py`` with uvicorn, when installed; else ``manage.py runserver``
    (Django's development server)."""
    found: dict[str, str] = {}  # "wsgi"/"asgi" -> module
    for name, (path, tree) in sorted(modules.items()):
        if path.parent == root or not in_package(root, path, code_layout):
            continue
        for kind in ("wsgi", "asgi"):
            if kind not in found and _calls(tree, f"get_{kind}_application"):
                found[kind] = name
    if not found:
        return None
    serve = _django_server(root, found, requirements)
    if serve is not None:
        serve.notes.append(
            "Django: its settings' ALLOWED_HOSTS must admit the name the server is reached by, and static "
            "files are not served by the application server (collectstatic, WhiteNoise)"
        )
    return serve


def _django_server(root: Path, found: dict[str, str], requirements: str) -> Serve | None:
    if "gunicorn" in requirements and "wsgi" in found:
        target = f"{found['wsgi']}:application"
        return Serve(["gunicorn", "-b", "0.0.0.0:8000", target], 8000, f"Django {target}, served with gunicorn")
    if "uvicorn" in requirements and "asgi" in found:
        target = f"{found['asgi']}:application"
        argv = ["uvicorn", target, "--host", "0.0.0.0", "--port", "8000"]
        return Serve(argv, 8000, f"Django {target}, served with uvicorn")
    if (root / "manage.py").is_file():
        argv = ["python", "manage.py", "runserver", "0.0.0.0:8000", "--noreload"]
        return Serve(argv, 8000, "Django's development server, manage.py runserver (add gunicorn for production)")
    return None


def _bento(root: Path, modules: dict[str, tuple[Path, ast.Module]]) -> Serve | None:
    """A BentoML service: ``bentofile.yaml``'s ``service: "module:Class"``, else a class at the
    root decorated ``@bentoml.service``; ``bentoml serve`` on its port, 3000."""
    text = read_text(root / "bentofile.yaml", 100_000) if (root / "bentofile.yaml").is_file() else ""
    m = re.search(r"^service:\s*[\"']?([A-Za-z_][\w.]*:[A-Za-z_]\w*)", text, re.M)
    target = m.group(1) if m else None
    for name, (path, tree) in sorted(modules.items()) if target is None else ():
        for node in tree.body if path.parent == root else ():
            if isinstance(node, ast.ClassDef) and any("bentoml.service" in ast.unparse(d) for d in node.decorator_list):
                target = f"{name}:{node.name}"
                break
        if target:
            break
    if target is None:
        return None
    said = "bentofile.yaml's service" if m else "a class decorated @bentoml.service"
    argv = ["bentoml", "serve", target, "--host", "0.0.0.0", "--port", "3000"]
    return Serve(
        argv, 3000, f"BentoML service {target} ({said}), served with bentoml serve", module=target.split(":")[0]
    )


def _self_serving(root: Path, modules: dict[str, tuple[Path, ast.Module]]) -> Serve | None:
    """A script at the root that starts its own server when run (``if __name__ == "__main__":``
    calling ``….run(port=N)``, ``uvicorn.run(…)``, ``web.run_app(…)``: LitServe, aiohttp, a
    server of its own): ``python FILE`` on the port it names (8000 when it names none)."""
    for name, (path, tree) in sorted(modules.items(), key=lambda item: item[1][0].as_posix()):
        if path.parent != root:
            continue
        for node in tree.body:
            test = ast.unparse(node.test) if isinstance(node, ast.If) else ""
            if test.replace("'", '"') != '__name__ == "__main__"':
                continue
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                func = call.func
                if not (isinstance(func, ast.Attribute) and func.attr in ("run", "run_app", "serve_forever")):
                    continue
                ports = [k.value.value for k in call.keywords if k.arg == "port" and isinstance(k.value, ast.Constant)]
                port = ports[0] if ports and isinstance(ports[0], int) else None
                named = {k.arg for k in call.keywords} & {"port", "host"}
                if func.attr == "run" and not named and ast.unparse(func.value) != "uvicorn":
                    continue  # x.run(), subprocess.run(cmd, check=True): a job, not a server, as far as the code shows
                rel = path.relative_to(root).as_posix()
                serve = Serve(["python", rel], port or 8000, f"{rel} starts its own server when run", module=name)
                hosts = [ast.unparse(k.value) for k in call.keywords if k.arg == "host"]
                if port is None:
                    serve.notes.append(f"serve.port is a guess: {rel} names no port")
                if not any("0.0.0.0" in h for h in hosts):
                    serve.notes.append(
                        f"{rel} starts its server without host='0.0.0.0' (line {call.lineno}): check that it listens "
                        "beyond the container (uvicorn.run and Flask's app.run listen on 127.0.0.1 by default)"
                    )
                return serve
    return None


def _calls(tree: ast.Module, name: str) -> bool:
    """Whether the module calls ``name(…)`` (or ``x.name(…)``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == name) or (
                isinstance(func, ast.Attribute) and func.attr == name
            ):
                return True
    return False


def _imports(tree: ast.Module, name: str) -> bool:
    """Whether the module imports ``name`` (``import name``, ``import name as x``, ``from name import …``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == name for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == name:
            return True
    return False


def _launch(tree: ast.Module) -> tuple[int, bool] | None:
    """How a Gradio app launches: (its port, ``X.launch(server_port=N)`` else Gradio's 7860;
    whether it names the address it listens on, ``server_name=``); None when nothing calls
    ``launch``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "launch":
            port, named = 7860, False
            for kw in node.keywords:
                if kw.arg == "server_port" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, int):
                    port = kw.value.value
                named = named or kw.arg == "server_name"
            return port, named
    return None


def _ui_app(root: Path, modules: dict[str, tuple[Path, ast.Module]], installable: bool) -> Serve | None:
    """A Streamlit script (``streamlit run FILE``, port 8501) or a Gradio app that launches itself
    (``python FILE``, its ``server_port`` or 7860): run from the file in /app, so at the root, or
    anywhere in a project copied as source."""
    found = sorted(
        ((n, p, t) for n, (p, t) in modules.items() if p.parent == root or not installable),
        key=lambda item: item[1].as_posix(),
    )
    for name, path, tree in found:
        if _imports(tree, "streamlit"):
            rel = path.relative_to(root).as_posix()
            command = ["streamlit", "run", rel, "--server.address", "0.0.0.0", "--server.port", "8501"]
            return Serve(command, 8501, f"Streamlit app {rel}, served with streamlit run", module=name)
    for name, path, tree in found:
        launch = _launch(tree) if _imports(tree, "gradio") else None
        if launch is not None:
            rel, (port, named) = path.relative_to(root).as_posix(), launch
            return Serve(
                ["python", rel],
                port,
                f"Gradio app {rel}, launched by itself on port {port}",
                module=name,
                env={} if named else {"GRADIO_SERVER_NAME": "0.0.0.0"},  # Gradio listens on 127.0.0.1 by default
            )
    return None


def _procfile(root: Path) -> Serve | None:
    """A Procfile's ``web:`` command (Heroku's, Dokku's), on port 8000 where it says ``$PORT``;
    through ``sh -c`` when it needs a shell."""
    procfile = root / "Procfile"
    if not procfile.is_file() or procfile.is_symlink():
        return None
    for line in read_text(procfile, 20_000).splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == "web" and command.strip():
            argv = command_argv(re.sub(r"\$\{PORT(?::-?[^}]*)?\}|\$PORT\b", "8000", command.strip()))
            # PORT in env too: the platform sets it, and an app may read it (os.environ["PORT"])
            return Serve(argv, 8000, "the Procfile's web: command ($PORT set to 8000)", env={"PORT": "8000"})
    return None


def command_argv(command: str) -> list[str]:
    """A command line as the argv a container runs: split as the shell would, or through
    ``sh -c`` when it needs a shell (variables, ``&&``, pipes, redirections, and ``NAME=value cmd``,
    which would be exec'd as a program named ``NAME=value``)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = []
    if not argv or re.search(r"[$&|;<>`]", command) or re.match(r"[A-Za-z_]\w*=", argv[0]):
        return ["sh", "-c", command]
    return argv


# The names a project's own run scripts give its training and its server.
SCRIPT_NAMES = {"train": ("train",), "serve": ("serve", "server", "start", "api")}


def own_scripts(pyproject: dict) -> dict[str, tuple[list[str], str]]:
    """The commands the project runs its training and its server with, named in its tool's run
    scripts: PDM's ``[tool.pdm.scripts]`` and Rye's ``[tool.rye.scripts]`` (``pdm run train``: a
    command line, or ``{cmd = …}``, ``{shell = …}``, with its ``env`` and ``working_dir``) and
    Hatch's environments' ``[tool.hatch.envs.NAME.scripts]`` (``hatch run train``, the default
    environment's first: a command line, or a list of one). Role -> (argv, what says so); a
    script that calls a function or chains others is left out (``call``, ``composite``)."""
    tool = pyproject.get("tool")
    tool = tool if isinstance(tool, dict) else {}
    tables = []
    for name in ("pdm", "rye"):
        found = tool.get(name)
        if isinstance(found, dict) and isinstance(found.get("scripts"), dict):
            tables.append((f"[tool.{name}.scripts]", f"{name} run ", found["scripts"]))
    hatch = tool.get("hatch")
    envs = hatch.get("envs") if isinstance(hatch, dict) else None
    envs = envs if isinstance(envs, dict) else {}
    for env in sorted(envs, key=lambda e: (e != "default", str(e))):
        table = envs[env]
        if isinstance(table, dict) and isinstance(table.get("scripts"), dict):
            prefix = "" if env == "default" else f"{env}:"
            tables.append((f"[tool.hatch.envs.{env}.scripts]", f"hatch run {prefix}", table["scripts"]))
    found_roles: dict[str, tuple[list[str], str]] = {}
    for where, runner, scripts in tables:
        for role, names in SCRIPT_NAMES.items():
            name = next((n for n in names if n in scripts), "")
            argv = _script_argv(scripts[name]) if name and role not in found_roles else None
            if argv:
                found_roles[role] = (argv, f"{where} {name} (`{runner}{name}`)")
    return found_roles


def _script_argv(value) -> list[str] | None:
    """A run script as an argv; None when it is not one command (a function call, a chain of
    scripts, several commands or lines, the ``{pdm}`` placeholder)."""
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None  # Hatch: a list of commands, run in turn
    options = value if isinstance(value, dict) else {}
    if options:
        value = options.get("shell") or options.get("cmd")
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            value = shlex.join(value)  # PDM: cmd = [...], the argv
    if not isinstance(value, str) or not value.strip() or "{pdm}" in value or re.search(r"[\n\r\0]", value.strip()):
        return None  # a multi-line shell script is no command a spec can hold
    # {args}: what `pdm run NAME ARGS` passes on; none here, so its default or nothing
    command = re.sub(r"\{args(?::([^}]*))?\}", lambda m: m.group(1) or "", value).strip()
    argv = ["sh", "-c", command] if "shell" in options else command_argv(command)
    env = options.get("env")
    if isinstance(env, dict) and env and all(isinstance(v, str) for v in env.values()):
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]  # the script's variables, for it alone
    folder = options.get("working_dir")
    if isinstance(folder, str) and folder.strip(" ./"):
        argv = ["sh", "-c", f"cd {shlex.quote(folder)} && exec {shlex.join(argv)}"]
    return argv


def command_port(argv: list[str]) -> int | None:
    """The port a server command names: ``--port N`` (uvicorn, flask, ``--server.port`` for
    streamlit), ``--port=N``, flask's ``-p N``, or gunicorn's ``-b``/``--bind HOST:N``; None when it names none."""
    words = " ".join(argv)
    m = re.search(r"(?:--port|--server\.port|-p)[= ](\d{2,5})\b", words) or re.search(
        r"(?:-b|--bind)[= ]?\S*:(\d{2,5})\b", words
    )
    return int(m.group(1)) if m and 0 < int(m.group(1)) < 65536 else None


def command_module(argv: list[str]) -> str | None:
    """The project module a command runs: ``python -m X``, or the ``module:app`` a server is
    given (``uvicorn pkg.api:app``); None when it names none."""
    words = argv[-1].split() if argv[:2] == ["sh", "-c"] else argv
    for i, word in enumerate(words):
        if word == "-m" and i + 1 < len(words):
            return words[i + 1]
        m = re.fullmatch(r"([A-Za-z_][\w.]*):[A-Za-z_][\w.]*(?:\(.*\))?", word.strip("'\""))
        if m:
            return m.group(1)
    return None


# A runner a command line starts with on the developer's machine, which the image has no need of
# (its environment is the image's own): `uv run python train.py` is `python train.py` there.
_RUNNER = re.compile(r"^(?:(?:uv|poetry|pipenv|pdm|rye|hatch)\s+run|conda\s+run\s+(?:-n|--name)\s+\S+)\s+")
# The developer's virtualenv, which the image has none of: its activation is dropped and its
# interpreter is the image's (`. .venv/bin/activate`, `$(VENV)/bin/python train.py`).
_ACTIVATE = re.compile(r"^(?:source|\.)\s+\S*bin/activate\s*(?:&&|;|$)\s*")
_VENV_PYTHON = re.compile(r"(?<![\w/.-])[\w./-]*/bin/(?=python)")


def _for_the_image(line: str) -> str:
    """A recipe line as the image runs it: without the developer's virtualenv (its activation,
    its interpreter's path) and without the runner it is started through (``uv run``)."""
    return _RUNNER.sub("", _VENV_PYTHON.sub("", _ACTIVATE.sub("", line))).strip()


_MAKE_VAR = re.compile(r"^([A-Za-z_][\w.]*)\s*(?::{1,3}=|\?=|=)\s*(.*?)\s*$")


def declared_train(root: Path) -> tuple[list[str], str, list[str]] | None:
    """The training command the project declares outside Python: its Makefile's ``train:``
    recipe (the variables it defines expanded; several lines joined with ``&&``, one that changes
    folder in a subshell of its own, as make runs each line in its own shell), else a
    ``train.sh`` at the root or in ``scripts/``. (argv, what says so, files the command needs in
    the image); None when there is none, or when the recipe is not one init can run (a variable it
    cannot expand, docker)."""
    recipe = _make_recipe(root / "Makefile", "train")
    if recipe:
        lines = [c for c in (_for_the_image(line) for line in recipe) if c]
        # make runs each line in a shell of its own: a `cd` on one line does not move the next
        command = " && ".join(f"({c})" if len(lines) > 1 and re.search(r"\bcd\b", c) else c for c in lines)
        unexpanded = re.search(r"\$[({@<^*?%]", command.replace("$$", ""))  # undefined or automatic variables
        if not unexpanded and not re.search(r"\bdocker\b|\bmake\b", command):
            return command_argv(command.replace("$$", "$")), "the Makefile's train: target (`make train`)", []
    for rel in ("train.sh", "scripts/train.sh"):
        path = root / rel
        if path.is_file() and not path.is_symlink():
            shell = "bash" if "bash" in read_text(path, 200).split("\n", 1)[0] else "sh"
            return [shell, rel], f"found {rel}", [rel]
    return None


def _make_recipe(makefile: Path, target: str) -> list[str]:
    """A Makefile target's recipe lines (``@``/``-`` dropped, continued lines joined), with the
    variables the Makefile defines (``VAR = value``, ``:=``, ``?=``) expanded; none when the
    Makefile or the target is not there."""
    if not makefile.is_file() or makefile.is_symlink():
        return []
    text = read_text(makefile, 200_000).replace("\\\n", " ")
    variables: dict[str, str] = {}
    recipe: list[str] = []
    inside = False
    for line in text.splitlines():
        if inside and (line.startswith("\t") or not line.strip() or line.lstrip().startswith("#")):
            # make ignores blank and comment lines among a recipe's lines: they do not end it
            if line.startswith("\t") and line.strip() and not line.strip().startswith("#"):
                recipe.append(line.strip().lstrip("@-+").strip())
            continue
        inside = False
        found = _MAKE_VAR.match(line)
        if found and not line.startswith("\t"):
            variables[found.group(1)] = found.group(2)
        elif re.match(rf"^{re.escape(target)}\s*:(?!=)", line):
            inside, recipe = True, []
    for _ in range(3):  # a variable defined by another
        try:
            recipe = [_expanded(line, variables, _MAX_RECIPE) for line in recipe]
        except _TooLong:
            return []  # variables that multiply each other: no command anyone would type
    return recipe


class _TooLong(Exception):
    pass


def _expanded(line: str, variables: dict[str, str], limit: int) -> str:
    """``line`` with ``$(VAR)``/``${VAR}`` replaced once; ``_TooLong`` as soon as the result would
    pass ``limit`` characters (counted while substituting: one pass of a long value referenced
    thousands of times is gigabytes before it could be measured)."""
    out: list[str] = []
    size = 0
    end = 0
    for m in re.finditer(r"\$[({]([A-Za-z_][\w.]*)[)}]", line):
        for piece in (line[end : m.start()], variables.get(m.group(1), m.group(0))):
            size += len(piece)
            if size > limit:
                raise _TooLong()
            out.append(piece)
        end = m.end()
    size += len(line) - end
    if size > limit:
        raise _TooLong()
    return "".join(out) + line[end:]


# The longest training command a recipe may expand to: each expansion multiplies the length
# (A = $(B)$(B)…, B = $(C)$(C)…), so a Makefile of a few hundred kilobytes grew to gigabytes.
_MAX_RECIPE = 20_000


def dockerfile_command(root: Path) -> str | None:
    """The command the project's own Dockerfile starts its container with (its last ``CMD``,
    after its ``ENTRYPOINT`` when it has one), as a command line; None when it has none (or the
    Dockerfile is imagesmith's)."""
    path = root / "Dockerfile"
    if not path.is_file() or path.is_symlink() or generated(path):
        return None
    found: dict[str, str] = {}
    for m in re.finditer(
        r"^\s*(CMD|ENTRYPOINT)\s+(.+?)\s*$", read_text(path, 200_000).replace("\\\n", " "), re.M | re.I
    ):
        text = m.group(2)
        try:
            words = json.loads(text) if text.startswith("[") else None
        except ValueError:
            words = None
        ok = isinstance(words, list) and all(isinstance(w, str) for w in words)
        found[m.group(1).upper()] = shlex.join(words) if ok and isinstance(words, list) else text
    command = " ".join(found[k] for k in ("ENTRYPOINT", "CMD") if k in found)
    return command or None
