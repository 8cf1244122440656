"""``write_spec``: the proposed spec, checked with the real parser and written atomically,
never over an existing spec."""

from __future__ import annotations

from pathlib import Path

from ..errors import FileWriteError, SpecError, UsageError
from ..fsutil import atomic_write, read_head, read_toml_text, tomllib
from ..spec import PYPROJECT, SPEC_FILE
from ..spec.parse import parse_spec
from ..spec.schema import MAX_SPEC_BYTES
from . import Proposal
from .project_files import read_toml
from .propose import propose
from .spec_text import spec_toml, spec_yaml


def write_spec(
    root: Path,
    *,
    pyproject: bool = False,
    dry_run: bool = False,
    python: str | None = None,
    base: str | None = None,
) -> tuple[Path, str, Proposal]:
    """Write the proposed spec (``imagesmith.yaml``, or a ``[tool.imagesmith]`` table appended to
    pyproject.toml); never over an existing spec. Returns (path, text written, proposal)."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder", hint="run `imagesmith init` in the project, or pass -p DIR")
    # pyproject.toml read once, here, for the proposal and the spec's check
    own = root / PYPROJECT
    if pyproject:
        current, found = _current_pyproject(own)
    else:
        current, found = "", read_toml(own) if own.is_file() else {}
    tool = found.get("tool")
    if pyproject and isinstance(tool, dict) and "imagesmith" in tool:
        raise UsageError(f"{own} already has a [tool.imagesmith] table; init never overwrites a spec")
    proposal = propose(root, python=python, base=base, pyproject=found)
    if pyproject:
        path = own
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
        # as the spec's reader reads pyproject.toml: a link is none (it may leave the project)
        parse_spec(data, root, origin=path.name, pyproject={} if own.is_symlink() else found)
    except SpecError as exc:  # never write a spec the parser would refuse
        raise UsageError(
            f"init could not make a valid spec for {root}:\n{exc}",
            hint="write imagesmith.yaml by hand (every key: docs/reference/spec.md)",
        ) from exc
    if not dry_run:
        # never over a spec (or an edit of pyproject.toml) that appeared while the project was read
        if pyproject and current and not _unchanged(path, current):
            raise UsageError(
                f"{path} changed while init read the project; nothing was written",
                hint="run `imagesmith init --pyproject` again",
            )
        try:
            atomic_write(path, new, new_only=not (pyproject and current))
        except FileWriteError as exc:
            if not isinstance(exc.__cause__, FileExistsError):
                raise
            raise UsageError(
                f"{path} appeared while init read the project; init never overwrites a spec",
                hint="--print shows what it would write",
            ) from exc
    return path, text, proposal


def _current_pyproject(path: Path) -> tuple[str, dict]:
    """The pyproject.toml init appends its table to, and what it holds (``""`` and ``{}`` when
    there is none), refused when it is not one the spec reader would read back: not a regular
    file, over ``MAX_SPEC_BYTES``, not UTF-8, or not valid TOML (a 2 GB one was a MemoryError, an
    invalid one a TOMLDecodeError traceback)."""
    if not (path.exists() or path.is_symlink()):
        return "", {}
    try:
        return read_toml_text(path, MAX_SPEC_BYTES)
    except (OSError, ValueError) as exc:  # ValueError: UnicodeDecodeError, TOMLDecodeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)[:200]
        raise UsageError(
            f"{path} cannot take a [tool.imagesmith] table: {reason}",
            hint="fix pyproject.toml first, or run `imagesmith init` without --pyproject (imagesmith.yaml)",
        ) from None


def _unchanged(path: Path, text: str) -> bool:
    """Whether ``path`` still holds exactly ``text`` (compared as bytes, read no further than that
    and one byte more: not parsed again, so a file made invalid meanwhile is "changed" too)."""
    raw = text.encode("utf-8")
    try:
        return read_head(path, len(raw) + 1) == raw
    except OSError:
        return False


def _parse_toml(text: str) -> dict:
    return tomllib.loads(text)
