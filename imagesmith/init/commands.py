"""The train and serve commands ``imagesmith init`` proposes, from the code: a training script
(and whether it runs from its own folder), and the app that serves (FastAPI or Flask, read by
``project_code``) or a ``serve.py``."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from .. import project_code
from .project_files import in_package, module_name


def train_script(root: Path, modules: dict[str, tuple[Path, ast.Module]], code_layout: str) -> Path | None:
    """train.py (or train_*.py) at the root, else in src/ or a package, else in scripts/."""

    def rank(path: Path) -> tuple:
        where = 0 if path.parent == root else 1 if in_package(root, path, code_layout) else 2
        scripts = 0 if path.parent == root / "scripts" else 1
        return (where, scripts, path.name != "train.py", path.as_posix())

    found = [p for p, _ in modules.values() if re.fullmatch(r"train(?:_\w+)?\.py", p.name)]
    return min(found, key=rank, default=None)


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


def find_serve(
    root: Path, modules: dict[str, tuple[Path, ast.Module]], requirements: str, code_layout: str, installable: bool
) -> tuple[Serve | None, list[str]]:
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
            return Serve(
                ["uvicorn", *factory, chosen.target, "--host", "0.0.0.0", "--port", "8000"],
                8000,
                f"FastAPI app {chosen.target}{made}, served with uvicorn",
                chosen,
            ), notes
        if "gunicorn" in requirements:
            return Serve(
                ["gunicorn", "-b", "0.0.0.0:8000", target], 8000, f"Flask app {target}, served with gunicorn", chosen
            ), notes
        return Serve(
            ["python", "-m", "flask", "--app", target, "run", "--host", "0.0.0.0", "--port", "8000"],
            8000,
            f"Flask app {target}, flask's own server (add gunicorn for production)",
            chosen,
        ), notes
    for path, _ in modules.values():
        if path.name == "serve.py" and (path.parent == root or installable or in_package(root, path, code_layout)):
            rel, module = path.relative_to(root).as_posix(), module_name(root, path, code_layout)
            if installable or path.parent != root:
                return Serve(["python", "-m", module], 8000, f"{rel} (port guessed)", module=module), notes
            return Serve(["python", rel], 8000, f"{rel} (port guessed)", module=module), notes
    return None, notes
