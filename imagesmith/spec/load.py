"""Reading a spec: find the file, read YAML or TOML, and turn every way that can fail into one
``SpecError``. ``load_spec(path)`` does the I/O; ``parse.parse_spec`` is the pure part.

The project root is the folder the spec is found in, and a spec symlinked from outside it is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import fsutil
from ..cache import default_cache_dir, project_key, prune_gone
from ..errors import FileWriteError, SpecError
from ..fsutil import atomic_write
from ..runtime.untrusted import kind
from . import PYPROJECT, SPEC_FILE, Spec
from .parse import parse_spec
from .problems import encodable, show, show_key, type_name
from .schema import MAX_DEPTH, MAX_SPEC_BYTES, MAX_STRING, MAX_VALUES


def find_spec(path: Path) -> Path:
    """The spec file for ``path``: the file itself, or the spec inside a project directory."""
    return _find(Path(path))[0]


def _find(path: Path) -> tuple[Path, dict | None]:
    """``find_spec``, and the parsed pyproject.toml when that is where the spec was found (read
    once: ``load_spec`` and the spec's parse use it)."""
    if path.is_dir():
        yml = path / SPEC_FILE
        if yml.is_file():
            return yml, None
        pyproject = path / PYPROJECT
        if pyproject.is_file():
            parsed = _read_toml(pyproject)
            if _tool_of(parsed, pyproject) is not None:
                return pyproject, parsed
        if os.path.lexists(yml):  # a folder, a FIFO, a dangling link: there, but not a spec to read
            raise SpecError(
                _short_path(yml),
                [f"is {kind(os.stat(yml).st_mode) if yml.exists() else 'a dangling symbolic link'}, not a spec file"],
                hint=f"make {SPEC_FILE} a regular file (every key is described in docs/reference/spec.md)",
            )
        raise SpecError(
            _short_path(path),
            [f"no {SPEC_FILE} here, and no [tool.imagesmith] table in {PYPROJECT}"],
            hint=f"create {SPEC_FILE} (every key is described in docs/reference/spec.md) or pass --project DIR",
        )
    if not path.is_file():
        raise SpecError(
            _short_path(path),
            ["file not found (or not a regular file)"],
            hint="pass the project directory or its spec file",
        )
    return path, None


def load_spec(path: Path | str = ".") -> Spec:
    """Find, read and validate the spec for a project directory or spec file.

    The project root is the folder the spec file is found in, not the folder a symlinked spec
    points into; a spec that is a symlink to a file outside that folder is refused."""
    found, parsed = _find(Path(path))
    found = Path(os.path.abspath(found))
    root = found.parent
    if found.is_symlink():
        try:
            found.resolve(strict=True).relative_to(root.resolve())
        except (OSError, RuntimeError, ValueError):
            raise SpecError(
                found.name,
                ["is a symlink that leaves the project directory"],
                hint="copy the spec into the project instead of linking it",
            ) from None
    pyproject = None
    if found.name == PYPROJECT or found.suffix == ".toml":
        parsed = _read_toml(found) if parsed is None else parsed
        data = _tool_of(parsed, found)
        origin = f"{found.name} [tool.imagesmith]"
        if data is None:
            raise SpecError(found.name, ["no [tool.imagesmith] table"])
        if found.name == PYPROJECT and not found.is_symlink():
            pyproject = parsed  # the project's own pyproject.toml, as read_pyproject would read it
    else:
        origin = found.name
        data = _read_yaml(found)
    _check_size(data, origin)
    return parse_spec(data, root, origin, pyproject=pyproject)


def _short_path(path: Path) -> str:
    return show(str(path), 200)[1:-1]


def _read_text(path: Path) -> str:
    try:
        raw = fsutil.read_bounded(path, MAX_SPEC_BYTES)
    except fsutil.FileTooLarge as exc:
        raise SpecError(path.name, [f"is {exc.size} bytes; a spec is at most {MAX_SPEC_BYTES}"]) from None
    except OSError as exc:
        raise SpecError(path.name, [f"cannot be read: {exc.strerror or exc}"]) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(path.name, [f"not UTF-8 text (byte {exc.start})"], hint="save the file as UTF-8") from exc


MAX_COMPOSE_DEPTH = 4 * MAX_DEPTH  # deeper than this is refused unread; up to it, _check_size names the path


@lru_cache(maxsize=None)
def _strict_loader() -> type:
    """PyYAML's safe loader, but a key given twice in one mapping is an error (the safe loader
    silently keeps the last one). Made on first use: PyYAML is imported only to read a spec whose
    text was not read before (``_read_yaml``). Nesting deeper than ``MAX_COMPOSE_DEPTH`` stops the
    parse as Python's recursion limit would, but sooner: a ``[`` or ``{`` opened that deep stops
    the scanner (which spends time quadratic in the depth of what it looks ahead at: 5,000 nested
    lists took a second of CPU), a node composed that deep stops the composer."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        _depth = 0

        def fetch_flow_collection_start(self, TokenClass):
            if self.flow_level >= MAX_COMPOSE_DEPTH:
                raise RecursionError("nested too deeply")  # _parse: "is nested too deeply to read"
            super().fetch_flow_collection_start(TokenClass)

        def compose_node(self, parent, index):
            if self._depth >= MAX_COMPOSE_DEPTH:
                raise RecursionError("nested too deeply")
            self._depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                self.flatten_mapping(node)
                seen: dict = {}
                for key_node, _ in node.value:
                    key = self.construct_object(key_node, deep=deep)
                    try:
                        if key in seen:
                            raise yaml.constructor.ConstructorError(
                                "while reading a mapping",
                                node.start_mark,
                                f"the key {show(key)} is given twice (first on line {seen[key] + 1})",
                                key_node.start_mark,
                            )
                        seen[key] = key_node.start_mark.line
                    except TypeError:  # an unhashable key: the base class reports it
                        pass
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


# What a YAML spec's text parsed to, remembered per spec file and keyed by a digest of the text,
# so that a command run again on an unchanged spec (a no-op `imagesmith lock`) does not import
# PyYAML (a sixth of that command's instructions: bench/README.md). Only data that JSON gives back
# exactly is kept (no dates, no non-string keys, no NaN); bump the format when the loader's rules
# change. A cache: unreadable or unwritable, it is ignored.
PARSED_FORMAT = 1


def _parsed_path(path: Path) -> Path:
    return default_cache_dir() / "spec" / f"{project_key(path)}.json"


def _text_key(text: str) -> str:
    return hashlib.sha256(f"imagesmith-spec-{PARSED_FORMAT}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


def _parsed_before(path: Path, key: str) -> Any:
    try:
        entry = json.loads(_parsed_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(entry, dict) and entry.get("format") == PARSED_FORMAT and entry.get("text_sha256") == key:
        return entry.get("data")
    return None


def _remember_parsed(path: Path, key: str, data: Any) -> None:
    try:
        if json.loads(json.dumps(data)) != data:
            return
        target = _parsed_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        entry = {"format": PARSED_FORMAT, "root": str(path.resolve().parent), "text_sha256": key, "data": data}
        atomic_write(target, json.dumps(entry, sort_keys=True))
    except (TypeError, ValueError, RecursionError, OSError, FileWriteError):
        return
    prune_gone(target.parent)


def _read_yaml(path: Path) -> Any:
    """The spec's YAML, parsed (or as it was parsed before, when its text is the same)."""
    text = _read_text(path)
    key = _text_key(text)
    data = _parsed_before(path, key)
    if data is not None:
        return data
    import yaml

    data = _parse(path, text, lambda text: yaml.load(text, Loader=_strict_loader()))  # noqa: S506 - a SafeLoader subclass
    _check_size(data, path.name)  # refused data is not remembered
    _remember_parsed(path, key, data)
    return data


def _read_toml(path: Path) -> dict:
    return _parse(path, _read_text(path), fsutil.tomllib.loads)


class _NoYAMLError(Exception):
    """Stands for PyYAML's error when PyYAML was never imported (then none was raised)."""


def _parse(path: Path, text: str, parser):
    """``parser`` over the file's ``text``, with every way it can fail as one ``SpecError``."""
    yaml = sys.modules.get("yaml")
    yaml_error = yaml.YAMLError if yaml else _NoYAMLError
    try:
        return parser(text)
    except yaml_error as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(
            path.name, [f"not valid YAML{where}: {show(problem, 200)[1:-1]}"], hint="fix the YAML syntax"
        ) from exc
    except fsutil.tomllib.TOMLDecodeError as exc:
        if text.startswith("\ufeff"):  # invisible in an editor; YAML allows it, TOML (and pip) do not
            raise SpecError(
                path.name,
                ["starts with a byte order mark (BOM), which TOML does not allow"],
                hint="save the file as UTF-8 without a BOM",
            ) from exc
        raise SpecError(
            path.name, [f"not valid TOML: {show(str(exc), 200)[1:-1]}"], hint="fix the TOML syntax"
        ) from exc
    except RecursionError:
        raise SpecError(
            path.name, ["is nested too deeply to read"], hint=f"a spec needs a handful of levels; at most {MAX_DEPTH}"
        ) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise SpecError(path.name, [f"holds a value that cannot be read: {show(str(exc), 80)[1:-1]}"]) from exc


def _tool_of(parsed: dict, path: Path) -> Any:
    """``[tool.imagesmith]`` of a parsed pyproject.toml (None when absent); a ``tool`` that is not a table is an error."""
    tool = parsed.get("tool", {})
    if not isinstance(tool, dict):
        raise SpecError(path.name, [f"[tool] must be a table, got {type_name(tool)}"], hint="fix the TOML")
    return tool.get("imagesmith")


def _check_size(data: Any, origin: str) -> None:
    """Refuse data that is too deep, too big once YAML aliases are expanded, or holds strings
    that cannot be encoded (lone surrogates): the parser and its messages stay small and fast."""
    budget = [MAX_VALUES]
    problems: list[str] = []

    def walk(value: Any, depth: int, key: str) -> None:
        budget[0] -= 1
        if budget[0] < 0 or problems:
            return
        if depth > MAX_DEPTH:
            problems.append(f"{key or 'the spec'}: nested more than {MAX_DEPTH} levels deep")
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k, depth + 1, key)
                walk(v, depth + 1, f"{key}.{show_key(k)}" if key else show_key(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, depth + 1, f"{key}[{i}]")
        elif isinstance(value, str):
            if len(value) > MAX_STRING:
                problems.append(f"{key or 'a key'}: a string of {len(value)} characters (at most {MAX_STRING})")
            elif not encodable(value):
                problems.append(f"{key or 'a key'}: holds a lone surrogate (\\ud800-\\udfff), which is not text")

    walk(data, 0, "")
    if budget[0] < 0:
        problems.append(f"holds more than {MAX_VALUES} values (YAML aliases expanded): refused as a resource bomb")
    if problems:
        raise SpecError(origin, problems[:1], hint=f"fix {origin}")
