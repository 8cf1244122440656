"""Render the one multi-stage Dockerfile from the spec and the lock.

``render(spec, lock)`` returns the Dockerfile as text; writing it, ``--check`` and printing are
the caller's. Values from the spec reach the template only through the filters below, which
quote them for the Dockerfile parser and refuse anything that could start a new instruction.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import jinja2

from . import __version__, credentials, parity, preprocessing, stamp
from .errors import RenderError
from .lock import Lock
from .spec import Spec

TEMPLATES = Path(__file__).resolve().parent / "templates"
RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
VENV = "/opt/venv"
RUNTIME_MODULE = "imagesmith_runtime"


def _no_breaks(value: str, what: str) -> str:
    if any(c in value for c in "\n\r\0"):
        raise RenderError(f"{what} {value[:40]!r} contains a line break or NUL; it cannot go into a Dockerfile")
    return value


def dquote(value) -> str:
    """A double-quoted Dockerfile word (ENV/LABEL/ARG values): backslash, quote and $ escaped."""
    text = _no_breaks(str(value), "the value")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def exec_form(argv) -> str:
    """An exec-form (JSON array) ENTRYPOINT/CMD: no shell, no variable expansion."""
    for arg in argv:
        _no_breaks(arg, "the command argument")
    return json.dumps(list(argv))


def copy_args(rel: str, root: str = "/app") -> str:
    """``["<path>", "<root>/<path>"]`` for COPY, keeping the project-relative layout."""
    _no_breaks(rel, "the path")
    if rel.startswith("/") or ".." in rel.split("/") or any(c in rel for c in '*?[]"$\\'):
        raise RenderError(f"the path {rel!r} is not a plain relative path inside the project")
    dest = root + "/" + rel.rstrip("/")
    if rel == ".":
        dest = root + "/"
    return json.dumps([rel, dest + ("/" if (rel.endswith("/") or rel == ".") else "")])


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters.update(dquote=dquote, exec_form=exec_form, copy_args=copy_args)
    return env


@dataclass(frozen=True)
class RuntimeFile:
    dest: str
    text: str
    delimiter: str


# Modules of the imagesmith package that are standard-library only and also go into every image,
# under these names: the runtime checks a model's stamp with the same code as `verify --model`.
EMBEDDED_MODULES = {"parity.py": "imagesmith_parity.py", "stamp.py": "imagesmith_stamp.py"}


def site_packages(python: str) -> str:
    return f"{VENV}/lib/python{python}/site-packages"


def heredoc_file(dest: str, text: str, name: str) -> RuntimeFile:
    """A file for a heredoc COPY; the delimiter is derived from ``name``."""
    if not text.endswith("\n"):
        text += "\n"
    delimiter = "IMAGESMITH_EOF_" + name.upper().replace("-", "_").replace(".", "_")
    if f"\n{delimiter}\n" in "\n" + text:
        raise RenderError(f"runtime file {name} contains its heredoc delimiter")
    return RuntimeFile(dest=dest, text=text, delimiter=delimiter)


def runtime_files(python: str) -> list[RuntimeFile]:
    """The standard-library runtime that goes into every image, embedded with heredocs so the
    Dockerfile needs nothing but the project as its build context. Destinations are in the
    `runtime` stage; the install step copies them into the venv's site-packages."""
    sources = [(src, src.name) for src in RUNTIME_DIR.iterdir()
               if src.suffix in (".py", ".pth") and not src.name.startswith("_")]
    package = Path(__file__).resolve().parent
    sources += [(package / name, dest) for name, dest in EMBEDDED_MODULES.items()]
    return [heredoc_file(f"/{dest}", src.read_text(encoding="utf-8"), Path(dest).stem)
            for src, dest in sorted(sources, key=lambda item: item[1])]


def image_facts_file(spec: Spec, lock: Lock) -> RuntimeFile:
    """``imagesmith_image.json``, copied beside the runtime: what the image knows about itself."""
    text = json.dumps(stamp.image_facts(spec, lock), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return heredoc_file(f"/{stamp.FACTS_FILE}", text, "image_facts")


def preprocessing_context(spec: Spec, lock: Lock) -> dict | None:
    """What the template needs to build the preprocessing wheel and install it (None: no files)."""
    version = lock.preprocessing_version
    if not spec.preprocessing or version is None:
        return None
    name = preprocessing.distribution_name(spec.name)
    builder = heredoc_file(f"/run/imagesmith/{preprocessing.BUILDER_NAME}",
                           (Path(__file__).resolve().parent / "preprocessing.py").read_text(encoding="utf-8"),
                           "preprocessing")
    site = site_packages(lock.python)
    return {
        "builder": builder,
        "paths": list(spec.preprocessing),
        "build": ["python3", builder.dest, "--root", "/src", "--name", name, "--version", version,
                  "--out", "/wheel", "--", *spec.preprocessing],
        "wheel": preprocessing.wheel_filename(name, version),
        "compile": " ".join(shlex.quote(f"{site}/{top}") for top in preprocessing.top_level(spec.preprocessing)),
    }


def image_env(lock: Lock) -> dict[str, str]:
    """The environment every image gets: the spec's env, then the seed and determinism settings
    (these win: they are part of the parity)."""
    env = dict(lock.env)
    env.update({
        "PYTHONHASHSEED": str(lock.seed),
        "IMAGESMITH_SEED": str(lock.seed),
        "IMAGESMITH_DETERMINISM": "on" if lock.determinism else "off",
    })
    if lock.determinism:
        env.update({
            "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
            "MKL_CBWR": "COMPATIBLE",
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
            "OPENBLAS_NUM_THREADS": env.get("OPENBLAS_NUM_THREADS", "1"),
            "MKL_NUM_THREADS": env.get("MKL_NUM_THREADS", "1"),
            "TF_DETERMINISTIC_OPS": "1",
        })
    return dict(sorted(env.items()))


# What never goes into an image, whatever `source:` or `preprocessing:` names: version control,
# environment files (they hold secrets), the host's artifacts folder, virtualenvs and caches.
IGNORED = (".git", ".hg", ".svn", ".env", ".env.*", ".envrc", "artifacts", ".venv", "venv", ".tox", ".nox",
           "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".cache", ".ipynb_checkpoints",
           "node_modules", "*.egg-info", ".netrc", ".pypirc", ".docker")


def dockerignore_path(dockerfile: Path) -> Path:
    """Where BuildKit looks first for the Dockerfile's own ignore rules: ``<Dockerfile>.dockerignore``
    beside it (it then ignores the project's ``.dockerignore``, whose lines are folded in)."""
    return dockerfile.with_name(dockerfile.name + ".dockerignore")


def dockerignore(spec: Spec) -> str:
    """The ignore rules for the build context: imagesmith's (``IGNORED``, at any depth), then the
    project's own ``.dockerignore``. Deterministic."""
    lines = [f"# Generated by imagesmith {__version__} beside the Dockerfile; do not edit.",
             "# BuildKit reads it instead of .dockerignore; that file's rules are copied at the end."]
    for pattern in IGNORED:
        lines += [pattern, f"**/{pattern}"]
    own = spec.root / ".dockerignore"
    if own.is_file() and not own.is_symlink():
        try:
            text = own.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RenderError(f".dockerignore cannot be read as UTF-8 text ({exc})") from exc
        lines += ["# from .dockerignore", *text.splitlines()]
    return "\n".join(lines) + "\n"


def render(spec: Spec, lock: Lock) -> str:
    """The Dockerfile text for ``spec`` built from ``lock``. Deterministic."""
    manifest = parity.manifest_from_lock(lock)
    entry = [f"{VENV}/bin/python", "-m", RUNTIME_MODULE]
    targets = [
        {"role": "train", "port": None, "entrypoint": entry + ["train", "--"], "command": list(spec.train.command)},
        {"role": "serve", "port": spec.serve.port, "entrypoint": entry + ["serve", "--"], "command": list(spec.serve.command)},
    ]
    context = {
        "version": __version__,
        "origin": spec.origin,
        "parity": parity.digest(manifest),
        "manifest": parity.canonical(manifest),
        "base_ref": lock.base.ref,
        "base_name": lock.base.name,
        "base_digest": lock.base.digest,
        "system_packages": [f"{n}={v}" for n, v in lock.system_packages],
        "runtime_files": runtime_files(lock.python),
        "build_tools": heredoc_file("/sdists.py", (Path(__file__).resolve().parent / "sdists.py").read_text(encoding="utf-8"), "sdists"),
        "image_facts": image_facts_file(spec, lock),
        "site_packages": site_packages(lock.python),
        "preprocessing": preprocessing_context(spec, lock),
        "source": list(spec.source),
        "env": sorted(image_env(lock).items()),
        "targets": targets,
        "netrc_secret": credentials.SECRET_ID,
        "index_args": [shlex.quote(a) for a in credentials.index_args(lock.index_url, lock.extra_index_urls)],
    }
    try:
        return environment().get_template("Dockerfile.jinja").render(**context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"the Dockerfile template failed: {exc}") from exc
