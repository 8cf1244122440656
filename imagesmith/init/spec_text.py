"""A proposal as spec text: ``imagesmith.yaml``, or a ``[tool.imagesmith]`` table, each key
with the reason it was chosen as a comment above it."""

from __future__ import annotations

import json
from typing import Callable

from ..runtime.untrusted import printable
from . import Proposal

ORDER = (
    "name",
    "python",
    "base",
    "requirements",
    "index_url",
    "extra_index_urls",
    "preprocessing",
    "source",
    "train",
    "serve",
    "env",
    "artifacts",
    "seed",
    "dockerfile",
)


def _inline(value, assign: str, braces: tuple[str, str]) -> str:
    """One value on one line: a YAML flow mapping (``assign`` ": ", braces "{" "}") or a TOML
    inline table (" = ", "{ " " }"); lists alike; strings as JSON strings, valid in both."""
    if isinstance(value, dict):
        return braces[0] + ", ".join(f"{k}{assign}{_inline(v, assign, braces)}" for k, v in value.items()) + braces[1]
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v, assign, braces) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def _yaml_value(value) -> str:
    return _inline(value, ": ", ("{", "}"))


def _toml_value(value) -> str:
    return _inline(value, " = ", ("{ ", " }"))


def _spec_lines(proposal: Proposal, value: Callable[[object], str], assign: str) -> list[str]:
    """Each key with the reason it was chosen as a comment above it, then what to check. A reason
    or a note quotes the project's files (its Dockerfile's CMD, a run script's table, a model's
    name in the code): each is one line of printable text, or a newline in it would start a spec
    line of its own and an escape character would make the YAML unreadable."""
    lines = []
    for key in ORDER:
        if key in proposal.values:
            lines.append(f"# {key}: {printable(proposal.reasons.get(key, ''))}")
            lines.append(f"{key}{assign}{value(proposal.values[key])}")
    return lines + [f"# CHECK: {printable(note)}" for note in proposal.notes]


def spec_yaml(proposal: Proposal) -> str:
    head = [
        "# imagesmith.yaml, written by `imagesmith init` from what it found in this project.",
        "# Every key is described in imagesmith's docs/reference/spec.md; check the ones marked below.",
    ]
    return "\n".join(head + _spec_lines(proposal, _yaml_value, ": ")) + "\n"


def spec_toml(proposal: Proposal) -> str:
    head = [
        "",
        "# [tool.imagesmith], written by `imagesmith init`; every key is described in imagesmith's docs/reference/spec.md.",
        "[tool.imagesmith]",
    ]
    return "\n".join(head + _spec_lines(proposal, _toml_value, " = ")) + "\n"
