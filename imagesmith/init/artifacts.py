"""Where the model goes and what else the code needs in the image: the folder train writes the
model to and serve reads it from (the artifacts folder), and the data files the code opens by a
written name. Found in the code (``project_code.path_uses``), never by running it."""

from __future__ import annotations

import ast
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from .. import layout, project_code
from ..spec.schema import CONTAINER_PATH_RE
from .project_files import SKIP_DIRS, covered


@dataclass
class Model:
    artifacts: str
    reason: str
    env: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def code_uses(
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


def find_model(train: list, serve: list, source: list[str]) -> Model:
    """Where train's output must reach serve: the folder the training code writes its model to
    and the serving code reads it from, found in the code; mounted there as the artifacts folder
    (or, when an environment variable names it, that variable set to the artifacts folder)."""
    default = Model("/artifacts", "where train writes the model and serve reads it (mounted from the host)")
    written_env = {u.where.env for u, _ in train if u.write and u.where.anchor == "env"}
    read_env = {u.where.env for u, _ in serve if not u.write and u.where.anchor == "env"}
    for var in sorted(written_env & read_env) or sorted(written_env):
        how = "train writes and serve reads" if var in read_env else "train writes"
        defaults = {u.where.default for u, _ in train + serve if u.where.env == var}
        default_dir = next(iter(sorted(d for d in defaults if d)), None)
        if len(defaults) == 1 and default_dir and _mountable(default_dir):
            return Model(  # the code's own default is a folder of the image: no variable to set
                default_dir.rstrip("/"),
                f"{default_dir}: where the code writes and reads the model when {var} is not set ({how} under ${var})",
            )
        return Model(
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
    hidden: list[str] = []  # folders the model is written to that hold the code
    for folder in both:
        rel = folder[len(app) + 1 :] if folder.startswith(app + "/") else None
        if folder in ("/", app) or app.startswith(folder + "/"):
            hidden.append(folder)  # mounting there would hide the code
            continue
        if rel is not None and any(s.rstrip("/") == rel or s.startswith(rel + "/") for s in source):
            hidden.append(folder)  # a folder of code, not of the model
            continue
        how = "train writes the model there and serve reads it" if folder in read else "train writes the model there"
        shown = f"{rel}/ in the working folder" if rel is not None else folder
        model = Model(folder, f"{shown}: {how}; the host's artifacts folder is mounted there")
        if folder not in read:
            model.notes.append(f"serve's model path was not found in its code: check that it reads {folder}")
        return model
    if hidden:
        files = [w for u, w in train if u.write and w and _folder(u, w) == hidden[0]]
        shown = ", ".join(dict.fromkeys(files[:3])) or hidden[0]
        what = "the working folder itself" if hidden[0] == app else f"{hidden[0]}, a folder of the code"
        default.notes.append(
            f"train writes its model in {what} ({shown}): the artifacts folder cannot be mounted there without "
            "hiding the code, so the model would stay in the train container; make train write it in a folder "
            "of its own (models/…: init then proposes that folder as artifacts:) and serve read it from there"
        )
        return default
    default.notes.append(
        MODEL_NOT_FOUND + ": make train write it to the artifacts folder "
        "and serve read it from there (or set artifacts: to the folder they use)"
    )
    return default


MODEL_NOT_FOUND = "where train saves the model was not found in the code"  # the note a hub download replaces


def data_files(root: Path, uses: list, source: list[str], artifacts: str) -> list[str]:
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
        if not covered(rel, source + found):
            found.append(entry)
    return found


# Calls that fetch a model from a hub by its name when they run (Hugging Face, sentence-transformers, torch.hub).
_HUB_CALLS = {"from_pretrained", "pipeline", "hf_hub_download", "snapshot_download", "SentenceTransformer"}


def hub_downloads(root: Path, modules: dict[str, tuple[Path, ast.Module]], module: str | None) -> list[str]:
    """The models ``module`` (and the project modules it imports) fetches from a hub by name when
    it runs (``from_pretrained("distilbert-base-uncased")``, ``pipeline(model="…")``,
    ``hf_hub_download(repo_id="…")``, ``torch.hub.load("repo", "model")``), as ``name (file:line)``;
    a name that is a folder of the project, or a path (``./outputs/ckpt``), is local, not fetched."""
    found: list[str] = []
    for name in project_code.imported_modules(module, modules) if module else []:
        path, tree = modules[name]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            hub_load = called == "load" and isinstance(func, ast.Attribute) and ast.unparse(func.value) == "torch.hub"
            if called not in _HUB_CALLS and not hub_load:
                continue
            at = f"{path.relative_to(root).as_posix()}:{node.lineno}"
            given = [kw.value for kw in node.keywords if kw.arg in ("model", "repo_id", "model_name_or_path")]
            first = node.args[1:2] if called == "pipeline" else node.args[:1]
            if called == "pipeline" and not given + first:  # pipeline("sentiment-analysis"): the task's default model
                task = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "task"), None)
                if isinstance(task, ast.Constant) and isinstance(task.value, str):
                    found.append(f"the default model of pipeline({task.value!r}) ({at})")
            for value in given + first:
                if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.strip():
                    if not _a_path(value.value) and not (root / value.value).exists():
                        found.append(f"{value.value} ({at})")
                    break
    return list(dict.fromkeys(found))


def _a_path(name: str) -> bool:
    """Whether a model's name is a path on disk, not a hub's ``org/name``: ``./outputs/ckpt``,
    ``/models/bert``, ``~/x``, ``models/ft/final`` (a hub name has one slash at most)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
