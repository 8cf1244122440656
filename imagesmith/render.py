"""Render the one multi-stage Dockerfile from the spec and the lock.

``render(spec, lock)`` returns the Dockerfile as text; writing it, ``--check`` and printing are
the caller's. Values from the spec reach the template only through the filters below, which
quote them for the Dockerfile parser and refuse anything that could start a new instruction.

The Dockerfile holds no code: imagesmith's in-image code reaches the build as one file, the
``imagesmith-runtime`` wheel (``runtime_wheel.py``), which the caller writes to ``.imagesmith/``
in the build context (``runtime_wheel.write_beside``); the template names it and checks its
sha256 against the lock. Paths, labels and the venv come from ``layout.py`` (``layout`` in the
template).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, credentials, fsutil, layout, plan, python_env, runtime_wheel
from .errors import FileWriteError, RenderError
from .lock import Lock, cuda
from .plan import ImagePlan, image_user, plans_for, platforms_label
from .platforms import PLATFORMS, platform_arch
from .runtime import PACKAGE as RUNTIME_PACKAGE
from .runtime import preprocessing
from .runtime import wheel as wheelfiles
from .spec import Spec

if TYPE_CHECKING:  # jinja2 is imported where a Dockerfile is rendered, not before
    import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _no_breaks(value: str, what: str) -> str:
    if any(c in value for c in "\n\r\0"):
        raise RenderError(f"{what} {value[:40]!r} contains a line break or NUL; it cannot go into a Dockerfile")
    return value


# BuildKit refuses a Dockerfile line over 64 KiB. No value imagesmith writes comes near (the lock's
# data are context files); a longer one, should it come, is continued over lines of at most this
# many characters.
LINE_LIMIT = 16 * 1024


def dquote(value) -> str:
    """A double-quoted Dockerfile word (ENV/LABEL/ARG values): backslash, quote and $ escaped. A
    value longer than LINE_LIMIT is continued over several lines (a backslash at the end of each,
    which BuildKit removes with the line break before it reads the value: the value is the same),
    broken only between whole characters (never inside an escape), never after a space or an
    escaped backslash (BuildKit reads ``\\\\`` + ``\\`` at a line's end as no continuation) and never
    before a space or a ``#`` (a continued line that starts with one is trimmed or read as a comment)."""
    text = _no_breaks(str(value), "the value")
    tokens = ["\\" + c if c in '\\"$' else c for c in text]
    lines, line, size = [], [], 1
    for i, token in enumerate(tokens):
        line.append(token)
        size += len(token)
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        if size >= LINE_LIMIT and after and after[0] not in " \t#" and token[-1] not in " \t\\":
            lines.append("".join(line))
            line, size = [], 0
    lines.append("".join(line))
    return '"' + "\\\n".join(lines) + '"'


def exec_form(argv) -> str:
    """An exec-form (JSON array) ENTRYPOINT/CMD: no shell, no variable expansion."""
    for arg in argv:
        _no_breaks(arg, "the command argument")
    return json.dumps(list(argv))


def copy_args(rel: str, root: str = layout.APP_DIR) -> str:
    """``["<path>", "<root>/<path>"]`` for COPY, keeping the project-relative layout."""
    _no_breaks(rel, "the path")
    if rel.startswith("/") or ".." in rel.split("/") or any(c in rel for c in '*?[]"$\\'):
        raise RenderError(f"the path {rel!r} is not a plain relative path inside the project")
    dest = root + "/" + rel.rstrip("/")
    if rel == ".":
        dest = root + "/"
    return json.dumps([rel, dest + ("/" if (rel.endswith("/") or rel == ".") else "")])


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """The templates compiled once per template text, in the user's cache directory: compiling
    the Dockerfile template is most of a render after an edit. jinja2 keys each
    entry by the template's source checksum and writes it atomically; no cache when the folder
    cannot be made."""
    import jinja2

    from .cache import default_cache_dir

    folder = default_cache_dir() / "jinja2"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters.update(dquote=dquote, exec_form=exec_form, copy_args=copy_args)
    return env


# The files the Dockerfile copies from the build context besides the runtime wheel: one folder
# per platform under .imagesmith/, written by ``write_context`` (never inlined: the Dockerfile
# stays the same size whatever the number of pins)
INSTALLER_LOCK = "installer.lock"
BUILD_SYSTEM_LOCK = "build-system.lock"
CONTEXT_FILES = (layout.FACTS_FILE, INSTALLER_LOCK, BUILD_SYSTEM_LOCK)


def context_folder(platform: str) -> str:
    """The build context's folder of one platform's files (``.imagesmith/<arch>``)."""
    return f"{runtime_wheel.GENERATED_DIR}/{platform_arch(platform)}"


def facts_text(image: ImagePlan) -> str:
    """``imagesmith_image.json``: the plan's facts, canonical JSON (data, no code)."""
    return json.dumps(image.facts(), sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def context_files(spec: Spec, locks: dict[str, Lock]) -> dict[str, bytes]:
    """``{path in the build context: bytes}`` of every file the Dockerfile copies from
    ``.imagesmith/`` but the runtime wheel: each platform's image facts, its installer's pin
    and its project's build backend pins (those it has)."""
    plans = plans_for(spec, locks)
    out: dict[str, bytes] = {}
    for platform, lock in locks.items():
        folder = context_folder(platform)
        out[f"{folder}/{layout.FACTS_FILE}"] = facts_text(plans[platform]).encode()
        if lock.installer:
            out[f"{folder}/{INSTALLER_LOCK}"] = _ending(lock.installer_text()).encode()
        if spec.project is not None and lock.build_system:
            out[f"{folder}/{BUILD_SYSTEM_LOCK}"] = _ending(lock.build_system_text()).encode()
    return out


def _ending(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def write_context(spec: Spec, locks: dict[str, Lock]) -> Path:
    """Write what the Dockerfile copies from ``.imagesmith/`` in the build context: the runtime
    wheel (``runtime_wheel.write_beside``) and ``context_files`` (unchanged bytes are not
    rewritten; files of ours that the plan no longer names are removed). Returns the wheel's path."""
    from .fsutil import atomic_write

    wheel = runtime_wheel.write_beside(spec.root)  # checks .imagesmith/ before it writes
    wanted = context_files(spec, locks)
    for rel, data in wanted.items():
        path = spec.root / rel
        if not (path.is_file() and path.read_bytes() == data):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
    for platform in PLATFORMS:
        for name in CONTEXT_FILES:
            rel = f"{context_folder(platform)}/{name}"
            if rel not in wanted and (spec.root / rel).is_file():
                (spec.root / rel).unlink()
    return wheel


def stale_context(spec: Spec, locks: dict[str, Lock]) -> list[str]:
    """Why ``.imagesmith/`` does not hold what the Dockerfile copies from it ([]: it does)."""
    problems = []
    wheel = runtime_wheel.stale_beside(spec.root)
    if wheel:
        problems.append(wheel)
    for rel, data in context_files(spec, locks).items():
        path = spec.root / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif path.read_bytes() != data:
            problems.append(f"{rel} is stale: it differs from a fresh render")
    return problems


def runtime_context(lock: Lock) -> dict:
    """The runtime wheel as the lock pins it: what the template copies, checks and installs.
    The file itself is the caller's to write (``runtime_wheel.write_beside``)."""
    pin = lock.runtime
    if pin is None:
        raise RenderError(
            "the lock pins no imagesmith runtime (it was written by an older imagesmith)",
            hint="run `imagesmith lock` to update it",
        )
    filename = wheelfiles.filename(pin.name, pin.version)
    mount = f"{layout.BUILD_MOUNTS}/runtime"
    return {
        "name": pin.name,
        "version": pin.version,
        "wheel": filename,
        "source": f"{runtime_wheel.GENERATED_DIR}/{filename}",
        "sha256": pin.hashes[0].split(":", 1)[1],
        "mount": mount,
        "pythonpath": f"{mount}/{filename}",
        "module": RUNTIME_PACKAGE,
    }


def preprocessing_context(spec: Spec, lock: Lock) -> dict | None:
    """What the template needs to build the preprocessing wheel and install it (None: no files)."""
    version = lock.preprocessing_version
    if not spec.preprocessing or version is None:
        return None
    name = preprocessing.distribution_name(spec.name)
    site = layout.site_packages(lock.python)
    runtime = runtime_context(lock)
    return {
        "paths": list(spec.preprocessing),
        "build": [
            "env",
            f"PYTHONPATH={runtime['pythonpath']}",
            "python3",
            "-m",
            f"{RUNTIME_PACKAGE}.preprocessing",
            "--root",
            "/src",
            "--name",
            name,
            "--version",
            version,
            "--out",
            "/wheel",
            "--",
            *spec.preprocessing,
        ],
        "wheel": preprocessing.wheel_filename(name, version),
        "compile": " ".join(shlex.quote(f"{site}/{top}") for top in preprocessing.top_level(spec.preprocessing)),
    }


PROJECT_FACTS = "imagesmith_project.json"  # in site-packages: what project wheel was installed


def project_context(spec: Spec, lock: Lock) -> dict | None:
    """What the template needs to build the project's own wheel and install it (None: the spec
    does not install the project). The build backend's pins reach the build as a data file made
    from the lock (``context_files``)."""
    if spec.project is None:
        return None
    if not lock.build_system:
        raise RenderError(
            f"the spec installs the project {spec.project.name}, but the lock pins no build backend for it",
            hint="run `imagesmith lock` to update it",
        )
    return {
        "name": spec.project.name,
        "lock_name": BUILD_SYSTEM_LOCK,
        "source": f"{context_folder(lock.platform)}/{BUILD_SYSTEM_LOCK}",
        "facts_name": PROJECT_FACTS,
    }


def installer_context(lock: Lock) -> dict | None:
    """The installer (uv) as the lock pins it: its pin as a data file (the wheel-download
    stage fetches it, the install step checks and unpacks it: ``runtime/installer.py``). None
    when the lock pins none (the project's indexes have no uv): the base's pip installs."""
    if not lock.installer:
        return None
    return {
        "lock_name": INSTALLER_LOCK,
        "source": f"{context_folder(lock.platform)}/{INSTALLER_LOCK}",
    }


def user_context(spec: Spec) -> dict | None:
    """What the template needs to make the images' user (None: the spec opts out): its
    ``/etc/passwd``, ``/etc/group``, ``/etc/shadow`` and ``/etc/gshadow`` lines, fixed text (so
    every build writes the same bytes; ``useradd`` would stamp the day into /etc/shadow), shell-
    quoted, and the folders it owns: its home (made in the first layer of ``shared``) and the
    artifacts folder train writes to (made in the late project-setup layer: a new ``artifacts``
    path leaves every layer before it as it was)."""
    user = image_user(spec)
    if not user:
        return None
    name, uid, gid, home = layout.IMAGE_USER, layout.IMAGE_UID, layout.IMAGE_GID, layout.IMAGE_HOME
    lines = {
        "passwd": f"{name}:x:{uid}:{gid}:{name}:{home}:/usr/sbin/nologin",
        "group": f"{name}:x:{gid}:",
        "shadow": f"{name}:!:::::::",  # locked, no password ageing: no date in it
        "gshadow": f"{name}:!::",
    }
    return {
        "id": user,
        "name": name,
        "lines": {key: shlex.quote(_no_breaks(line, "the user line")) for key, line in lines.items()},
        "home": shlex.quote(_no_breaks(home, "the path")),
        "artifacts": shlex.quote(_no_breaks(spec.artifacts, "the artifacts path")),
    }


IGNORED = layout.IGNORED  # what never goes into an image (named in layout.py)


GENERATED_HEADER = fsutil.GENERATED_HEADER  # the first line of every file render writes
generated = fsutil.generated


def check_replaceable(dockerfile: Path, *, origin: str, output_option: bool = False) -> None:
    """Refuse (``FileWriteError``) when what sits where imagesmith would write the Dockerfile or
    its ignore file is not its own to replace (``fsutil.check_replaceable``: a file without
    imagesmith's header, a link, a folder), so a project's own Dockerfile is never lost. Nothing
    has been written when this raises."""
    hint = (
        f"set `dockerfile: imagesmith.Dockerfile` in {origin} (where imagesmith writes its own "
        "Dockerfile; its ignore file goes beside it)" + (", or pass -o FILE" if output_option else "")
    )
    for path, what in ((dockerfile, "Dockerfile"), (dockerignore_path(dockerfile), "Dockerfile's ignore file")):
        fsutil.check_replaceable(path, what=what, hint=hint)


def dockerignore_path(dockerfile: Path) -> Path:
    """Where BuildKit looks first for the Dockerfile's own ignore rules: ``<Dockerfile>.dockerignore``
    beside it (it then ignores the project's ``.dockerignore``, whose lines are folded in)."""
    return dockerfile.with_name(dockerfile.name + ".dockerignore")


def dockerignore(spec: Spec) -> str:
    """The ignore rules for the build context: imagesmith's (``IGNORED``, at any depth), then the
    project's own ``.dockerignore``. Deterministic."""
    lines = [
        f"# Generated by imagesmith {__version__} beside the Dockerfile; do not edit.",
        "# BuildKit reads it instead of .dockerignore; that file's rules are copied at the end.",
    ]
    for pattern in IGNORED:
        lines += [pattern, f"**/{pattern}"]
    own = spec.root / ".dockerignore"
    if own.is_file() and not own.is_symlink():
        try:
            text = fsutil.read_bounded(own, fsutil.MAX_USER_FILE).decode("utf-8")  # a 2 GB one: refused unread
        except OSError as exc:
            raise RenderError(f".dockerignore cannot be read: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise RenderError(f".dockerignore cannot be read as UTF-8 text ({exc})") from exc
        lines += ["# from .dockerignore", *text.splitlines()]
    return "\n".join(lines) + "\n"


# Prints a requirements.lock's entries whose name is (keep=1) or is not (keep=0) in the
# space-separated list ``names``; the header's comment lines are left out.
_SPLIT_LOCK_AWK = (
    '/^[a-z0-9]/ { n = $1; sub(/==.*/, "", n); s = (index(names, " " n " ") > 0) } /^[a-z0-9 ]/ && s == keep'
)


def package_indexes_context(lock: Lock) -> dict | None:
    """The wheel-download stage's split by index (spec package_indexes; None: no pinned package)."""
    if not lock.package_indexes:
        return None
    from .lock import indexes

    groups = indexes.names_by_index(lock.package_indexes)
    return {
        "awk": shlex.quote(_SPLIT_LOCK_AWK),
        "all_names": shlex.quote(" " + " ".join(sorted(n for n, _ in lock.package_indexes)) + " "),
        "groups": [
            {
                "index_url": shlex.quote(credentials.strip_userinfo(url)),
                "names": shlex.quote(" " + " ".join(names) + " "),
            }
            for url, names in groups
        ],
    }


def render(spec: Spec, lock: Lock | dict[str, Lock]) -> str:
    """The Dockerfile text for ``spec`` built from ``lock`` (one platform's), or from every
    platform's (``{platform: lock}``, the spec's order). Deterministic.

    One platform: its stages under their plain names, the base stage ``FROM --platform=`` it.
    Several: each platform's stages suffixed ``-<arch>`` (its own base, lock file, parity,
    labels, image facts), and ``train``/``serve`` chosen by BuildKit's ``TARGETARCH``, so one
    ``--platform a,b`` build makes one image index per target."""
    locks = lock if isinstance(lock, dict) else {lock.platform: lock}
    plans = plans_for(spec, locks)
    first = next(iter(locks.values()))
    context = {
        "version": __version__,
        "origin": spec.origin,
        "layout": layout.template_context(first.python),
        "runtime": runtime_context(first),
        "source": list(spec.source),
        "user": user_context(spec),
        "netrc_secret": credentials.SECRET_ID,
        "pip_isolated": credentials.pip_isolated_shell(),
        "platforms": [platform_context(spec, one, plans[platform]) for platform, one in locks.items()],
        "roles": list(layout.ROLES),
    }
    memo = _Memo(spec.root, context)
    text = memo.get()
    if text is not None:
        return text
    import jinja2

    try:
        text = environment().get_template("Dockerfile.jinja").render(**context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"the Dockerfile template failed: {exc}") from exc
    memo.put(text)
    return text


class _Memo:
    """The last Dockerfile rendered for a project, kept in the user's cache directory with the
    digest of everything the text depends on: the template context (JSON), the template's and
    this module's source (the filters) and imagesmith's version. After an edit nothing of that
    changes, and `build` skips importing jinja2 and rendering. One
    entry per project (entries of projects gone for a day are removed: ``cache.prune_gone``);
    an unreadable or unwritable cache is ignored (never needed for a correct answer). jinja2's own version is not in the key: a jinja2 upgrade that changed the output of
    this template would go unseen until the next change of the context."""

    def __init__(self, root: Path, context: dict) -> None:
        import hashlib

        from .cache import default_cache_dir, project_key

        digest = hashlib.sha256(__version__.encode())
        for source in (TEMPLATES / "Dockerfile.jinja", Path(__file__)):
            try:
                digest.update(source.read_bytes())
            except OSError:
                digest.update(b"?")
        digest.update(json.dumps(context, sort_keys=True, default=repr).encode())
        self.key = digest.hexdigest()
        self.root = str(Path(root).resolve())
        self.path = default_cache_dir() / "render" / f"{project_key(root)}.json"

    def get(self) -> str | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(data, dict) and data.get("key") == self.key and isinstance(data.get("text"), str):
            return data["text"]
        return None

    def put(self, text: str) -> None:
        from .fsutil import atomic_write

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps({"key": self.key, "root": self.root, "text": text}))
        except (OSError, FileWriteError):
            return
        from .cache import prune_gone

        prune_gone(self.path.parent)


def platform_context(spec: Spec, lock: Lock, image: ImagePlan) -> dict:
    """What the template needs of one platform's plan and lock: its stage-name suffix and base
    argument (none and ``IMAGESMITH_BASE`` when it is the only platform), lock file, parity,
    labels and the shared stage's steps."""
    multi = bool(image.siblings)
    arch = platform_arch(lock.platform)
    targets = [
        {
            "role": role,
            "port": spec.serve.port if role == "serve" else None,
            "entrypoint": image.configs[role]["Entrypoint"],
            "command": image.configs[role]["Cmd"],
        }
        for role in layout.ROLES
    ]
    return {
        "platform": lock.platform,
        "siblings": platforms_label(image.siblings) if image.siblings else None,
        "gpu": cuda.label(lock),
        "sfx": f"-{arch}" if multi else "",
        "base_arg": f"IMAGESMITH_BASE_{arch.upper()}" if multi else "IMAGESMITH_BASE",
        "requirements_lock": spec.requirements_lock_for(lock.platform).name,
        "parity": image.parity,
        "base_ref": lock.base.ref,
        "base_name": lock.base.name,
        "base_digest": lock.base.digest,
        "system_packages": [f"{n}={v}" for n, v in lock.system_packages],
        "sdist_toolchain": not lock.wheels_only,  # compilers only for a lock that may pin an sdist
        "facts_source": f"{context_folder(lock.platform)}/{layout.FACTS_FILE}",
        "steps": [step.name for step in image.steps],
        "heavy": {
            plan.HEAVY_PREFIX + group: {"group": group, "out": f"{python_env.HEAVY_OUT}/{group}"}
            for group in image.heavy
        },
        "preprocessing": preprocessing_context(spec, lock),
        "project": project_context(spec, lock),
        "installer": installer_context(lock),
        "python_env": python_env.template_context(lock),
        "env": sorted(image.env.items()),
        "targets": targets,
        "index_args": [shlex.quote(a) for a in credentials.index_args(lock.index_url, lock.extra_index_urls)],
        "package_indexes": package_indexes_context(lock),
    }
