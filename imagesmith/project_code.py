"""What a project's Python code says about itself, read with ``ast`` (never imported or run).

``imagesmith init`` asks three things of it:

- ``find_apps(modules)``: the FastAPI and Flask apps, as people write them: ``app = FastAPI()``,
  ``app = create_app()`` (a function that builds one, in this module or imported), or a factory
  no module calls (served with ``--factory`` / ``module:factory()``), each with the routes it
  declares; ``choose_app`` prefers one with prediction routes over a health check.
- ``path_uses(tree, path)``: the files and folders the code opens, writes and makes, as far as
  their names are written in it: string constants, ``os.path.join``, ``Path(...) / "x"``,
  ``os.environ.get("VAR", default)``/``os.getenv``, ``Path(__file__).parent`` and names
  assigned any of these. Each is anchored at the working folder, the file's own folder or an
  environment variable (``Where``); ``resolve`` turns it into a path in the image.
- ``imported_modules(...)``: the project modules a script imports (transitively), so the model a
  helper module saves is found from the training script.

Everything here is a heuristic over what is written literally; what it cannot see it leaves out.
"""

from __future__ import annotations

import ast
import posixpath
from dataclasses import dataclass
from pathlib import Path

from . import fsutil

FRAMEWORKS = {"FastAPI": "fastapi", "Flask": "flask"}
ROUTE_METHODS = {"get", "post", "put", "patch", "delete", "route", "api_route", "add_api_route", "add_url_rule"}
PREDICTION_WORDS = ("predict", "inference", "infer", "score", "classify", "invocations", "generate", "embed")
HEALTH_WORDS = {"", "health", "healthz", "ping", "ready", "readyz", "live", "livez", "status", "metrics", "version"}
WRITE_CALLS = {
    "dump",
    "save",
    "savez",
    "savetxt",
    "save_model",
    "save_pretrained",
    "to_csv",
    "to_json",
    "to_parquet",
    "to_pickle",
    "write_text",
    "write_bytes",
    "makedirs",
    "mkdir",
    "touch",
    "savefig",
}
READ_CALLS = {
    "load",
    "loads",
    "loadtxt",
    "genfromtxt",
    "load_model",
    "from_pretrained",
    "read_csv",
    "read_json",
    "read_parquet",
    "read_table",
    "read_excel",
    "read_pickle",
    "read_text",
    "read_bytes",
    "imread",
    "listdir",
    "scandir",
    "iterdir",
    "exists",
}
FILE_SUFFIXES = {
    ".csv",
    ".tsv",
    ".json",
    ".jsonl",
    ".parquet",
    ".txt",
    ".yaml",
    ".yml",
    ".pkl",
    ".pickle",
    ".joblib",
    ".pt",
    ".pth",
    ".h5",
    ".keras",
    ".onnx",
    ".bin",
    ".safetensors",
    ".npy",
    ".npz",
    ".model",
    ".cbm",
    ".ubj",
    ".html",
    ".xlsx",
}
_SELF = "\0self"  # Path(__file__): the file itself, before .parent


@dataclass(frozen=True)
class Where:
    """A path as the code writes it: ``rel`` from the working folder (``cwd``), from the folder of
    the file that names it (``file``) or from the value of ``env`` (``env``, whose ``default`` is
    what the code uses when the variable is not set)."""

    anchor: str
    rel: str = ""
    env: str | None = None
    default: str | None = None

    def join(self, part: str) -> Where:
        if part.startswith("/"):
            return Where("cwd", part)
        rel = self.rel
        if rel == _SELF:
            rel = ""
        return Where(self.anchor, posixpath.join(rel, part) if rel else part, self.env, self.default)

    def parent(self) -> Where:
        if self.rel == _SELF:
            return Where(self.anchor, "", self.env, self.default)
        return Where(self.anchor, posixpath.dirname(self.rel), self.env, self.default)


@dataclass(frozen=True)
class Use:
    """The code at ``line`` of ``path`` reads or writes (``write``) the file, or the folder
    (``folder``), at ``where``."""

    where: Where
    write: bool
    folder: bool
    path: Path
    line: int


@dataclass(frozen=True)
class App:
    module: str
    attr: str
    framework: str  # "fastapi" or "flask"
    factory: bool  # attr is a function that returns the app
    routes: tuple[str, ...]
    path: Path

    @property
    def target(self) -> str:
        return f"{self.module}:{self.attr}"

    @property
    def rank(self) -> int:
        """2: it declares a prediction route; 0: only health checks (or no routes); 1: others."""
        if any(word in route.lower() for route in self.routes for word in PREDICTION_WORDS):
            return 2
        if all(route.strip("/").split("/")[-1].lower() in HEALTH_WORDS for route in self.routes):
            return 0
        return 1

    def describe(self) -> str:
        routes = ", ".join(self.routes) if self.routes else "no routes found"
        made = f" (made by the factory {self.attr}())" if self.factory else ""
        return f"{self.target}{made}: {routes}"


MAX_SOURCE = 8 << 20  # bytes of a Python file read to find a project's commands and paths


def read(path: Path) -> ast.Module | None:
    """The module's syntax tree, or None when it cannot be read or parsed: not a regular file (a
    FIFO is not waited on), over ``MAX_SOURCE`` bytes, or beyond the parser (``x = ----…1``
    exhausts its memory, a long ``1+1+…`` its recursion)."""
    try:
        return ast.parse(fsutil.read_bounded(path, MAX_SOURCE), filename=str(path))
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _constructs(node: ast.AST) -> str | None:
    """The framework whose app ``node`` (a call) constructs, if any."""
    if isinstance(node, ast.Call):
        return FRAMEWORKS.get(_call_name(node) or "")
    return None


def _routes(node: ast.AST) -> tuple[str, ...]:
    found: list[str] = []
    for call in ast.walk(node):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr in ROUTE_METHODS
            and call.args
            and isinstance(call.args[0], ast.Constant)
            and isinstance(call.args[0].value, str)
            and call.args[0].value.startswith("/")
        ):
            found.append(call.args[0].value)
    return tuple(dict.fromkeys(found))


def _assigned(stmt: ast.stmt) -> tuple[str, ast.expr] | None:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return stmt.target.id, stmt.value
    return None


def find_apps(modules: dict[str, tuple[Path, ast.Module]]) -> list[App]:
    """Every FastAPI/Flask app the modules (dotted name -> (file, tree)) make, sorted by target."""
    factories: dict[str, tuple[str, ast.FunctionDef, str]] = {}  # function name -> (module, def, framework)
    for module, (_, tree) in modules.items():
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef):
                framework = next((f for n in ast.walk(stmt) if (f := _constructs(n))), None)
                if framework:
                    factories.setdefault(stmt.name, (module, stmt, framework))
    apps: list[App] = []
    called: set[str] = set()
    for module, (path, tree) in modules.items():
        for stmt in tree.body:
            assigned = _assigned(stmt)
            if assigned is None or not isinstance(assigned[1], ast.Call):
                continue
            name, call = assigned[0], assigned[1]
            framework = _constructs(call)
            maker = _call_name(call) or ""
            if framework:
                apps.append(App(module, name, framework, False, _routes(tree), path))
            elif maker in factories:
                _, func, framework = factories[maker]
                called.add(maker)
                apps.append(
                    App(module, name, framework, False, tuple(dict.fromkeys(_routes(func) + _routes(tree))), path)
                )
    for name, (module, func, framework) in factories.items():
        if name not in called:
            apps.append(App(module, name, framework, True, _routes(func), modules[module][0]))
    return sorted(apps, key=lambda a: (a.module, a.attr))


def choose_app(apps: list[App]) -> App | None:
    """The app to serve: one with prediction routes before any other, a health-check app last;
    among equals, a module-level app before a factory, then by name."""
    return min(apps, key=lambda a: (-a.rank, a.factory, a.module, a.attr), default=None)


# ---------------------------------------------------------------------------------------------
# Paths the code names


def _pathlike(text: str) -> bool:
    if not text or len(text) > 200 or "\n" in text or "://" in text or "{" in text or "%" in text:
        return False
    return "/" in text or posixpath.splitext(text)[1].lower() in FILE_SUFFIXES


def _value(node: ast.AST | None, names: dict[str, Where | str]) -> Where | str | None:
    """What ``node`` evaluates to as a path: a string constant, a ``Where``, or None."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        if node.id == "__file__":
            return Where("file", _SELF)
        return names.get(node.id)
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _value(node.value, names)
        if isinstance(inner, Where):
            return inner.parent()
        return posixpath.dirname(inner) if isinstance(inner, str) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _join(_value(node.left, names), [node.right], names)
    if isinstance(node, ast.Subscript) and _dotted(node.value) == "os.environ":
        key = _value(node.slice, names)
        return Where("env", "", key, None) if isinstance(key, str) else None
    if isinstance(node, ast.JoinedStr):
        parts: list[Where | str | None] = [
            _value(v.value, names) if isinstance(v, ast.FormattedValue) else _value(v, names) for v in node.values
        ]
        if not parts or any(p is None for p in parts) or any(isinstance(p, Where) for p in parts[1:]):
            return None
        head, rest = parts[0], "".join(str(p) for p in parts[1:])
        if isinstance(head, Where):
            return head.join(rest.lstrip("/")) if rest.startswith("/") else (head if not rest else None)
        return f"{head}{rest}"
    if not isinstance(node, ast.Call):
        return None
    name, dotted = _call_name(node), _dotted(node.func)
    if dotted in ("os.path.join", "posixpath.join", "path.join") or name in ("Path", "PurePath", "PosixPath"):
        if not node.args:
            return "." if name in ("Path", "PurePath", "PosixPath") else None
        return _join(_value(node.args[0], names), node.args[1:], names)
    if dotted in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
        key = _value(node.args[0], names) if node.args else None
        default = _value(node.args[1], names) if len(node.args) > 1 else None
        if not isinstance(key, str):
            return None
        return Where("env", "", key, default if isinstance(default, str) else None)
    if dotted in ("os.path.dirname", "path.dirname") and node.args:
        inner = _value(node.args[0], names)
        if isinstance(inner, Where):
            return inner.parent()
        return posixpath.dirname(inner) if isinstance(inner, str) else None
    if dotted in ("os.path.abspath", "os.path.realpath", "os.fspath", "str") and node.args:
        return _value(node.args[0], names)
    if name in ("resolve", "absolute", "expanduser") and isinstance(node.func, ast.Attribute):
        return _value(node.func.value, names)
    return None


def _join(head: Where | str | None, rest: list[ast.expr], names: dict[str, Where | str]) -> Where | str | None:
    for part in rest:
        value = _value(part, names)
        if not isinstance(value, str) or head is None:
            return None
        head = head.join(value) if isinstance(head, Where) else posixpath.join(head, value)
    return head


def _names(tree: ast.Module) -> dict[str, Where | str]:
    """Names assigned a path anywhere in the module, in source order (a later one wins)."""
    names: dict[str, Where | str] = {}
    statements = [n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))]
    for stmt in sorted(statements, key=lambda n: (n.lineno, n.col_offset)):
        assigned = _assigned(stmt)
        if assigned is None:
            continue
        value = _value(assigned[1], names)
        if isinstance(value, Where) or (isinstance(value, str) and isinstance(assigned[1], ast.Call)):
            names[assigned[0]] = value  # a Path(...)/join(...) of constants is a path, whatever its name
        elif isinstance(value, str) and _pathlike(value):
            names[assigned[0]] = value
    return names


def _mode(call: ast.Call) -> str:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else "r"


def path_uses(tree: ast.Module, path: Path) -> list[Use]:
    """Every file or folder the module reads or writes by a name written in it."""
    names = _names(tree)
    uses: list[Use] = []

    def add(value: Where | str | None, write: bool, folder: bool, line: int, explicit: bool) -> None:
        if isinstance(value, str):
            if not (explicit or _pathlike(value)) or not value:
                return
            value = Where("cwd", value)
        if isinstance(value, Where) and value.rel != _SELF:
            uses.append(Use(value, write, folder, path, line))

    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        name = _call_name(call) or ""
        line = call.lineno
        method = isinstance(call.func, ast.Attribute) and _dotted(call.func.value) not in ("os", "io", "codecs")
        receiver = _value(call.func.value, names) if method and isinstance(call.func, ast.Attribute) else None
        if name == "open":  # open(p, mode), io.open(...), or p.open(mode) on a path
            if method:
                mode_node = (
                    call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "mode"), None)
                )
                mode = (
                    mode_node.value if isinstance(mode_node, ast.Constant) and isinstance(mode_node.value, str) else "r"
                )
                add(receiver, "w" in mode or "a" in mode or "x" in mode, False, line, isinstance(receiver, Where))
            elif call.args:
                mode = _mode(call)
                add(_value(call.args[0], names), "w" in mode or "a" in mode or "x" in mode, False, line, True)
            continue
        if name in ("makedirs", "mkdir"):  # os.makedirs(p) or p.mkdir()
            add(receiver if method else (_value(call.args[0], names) if call.args else None), True, True, line, True)
            continue
        write = name in WRITE_CALLS
        if not write and name not in READ_CALLS:
            continue
        if method and name in ("write_text", "write_bytes", "read_text", "read_bytes", "touch", "iterdir", "exists"):
            add(receiver, write, name == "iterdir", line, True)
            continue
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            add(_value(arg, names), write, name in ("listdir", "scandir"), line, False)
    return uses


def resolve(where: Where, cwd: str, file_dir: str) -> str | None:
    """The path in the image ``where`` names, for a process in ``cwd`` and a file in ``file_dir``
    (None for an environment variable)."""
    if where.anchor == "env":
        return None
    base = file_dir if where.anchor == "file" else cwd
    return posixpath.normpath(posixpath.join(base, where.rel))


# ---------------------------------------------------------------------------------------------
# Imports


def imported_modules(module: str, modules: dict[str, tuple[Path, ast.Module]]) -> list[str]:
    """``module`` and the project modules it imports, transitively, in the order found."""
    seen: list[str] = []
    todo = [module]
    while todo:
        current = todo.pop(0)
        if current in seen or current not in modules:
            continue
        seen.append(current)
        path, tree = modules[current]
        package = current if path.name == "__init__.py" else current.rpartition(".")[0]
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".") if package else []
                    parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                    base = ".".join([*parts, base] if base else parts)
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                pieces = name.split(".")
                for i in range(len(pieces), 0, -1):  # the module itself and the packages above it
                    todo.append(".".join(pieces[:i]))
    return seen


def imports_top_level(modules: dict[str, tuple[Path, ast.Module]], top: str) -> bool:
    """Whether any module imports ``top`` or something in it (``import src.x``, ``from src.x import``)."""
    for _, tree in modules.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == top for a in node.names):
                return True
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == top:
                return True
    return False
