"""A failed resolution as one error a user can act on: the index unreachable (naming it), no
wheel for the target (naming the distribution), an unknown package, or a conflict (the
resolver's own explanation, which names the clashing packages and versions)."""

from __future__ import annotations

import os
import re
from typing import Mapping

from ..credentials import redact
from ..errors import ResolutionError
from ..platforms import RESOLVER_PLATFORMS
from .request import ResolveRequest

# Index settings each resolver reads from the environment (pip also reads its config files).
INDEX_ENV = {
    "uv": ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_INDEX", "UV_EXTRA_INDEX_URL"),
    "pip-compile": ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"),
}
NETWORK_RE = re.compile(
    r"Failed to fetch|Could not fetch URL|NewConnectionError|Connection refused|Max retries exceeded|"
    r"Name or service not known|Temporary failure in name resolution|ConnectTimeout|timed out|"
    r"tcp connect error|dns error|error sending request",
    re.I,
)
_FETCH_URL_RE = re.compile(r"(?:Failed to fetch:?|Could not fetch URL)\s+`?(\w+://[^\s`'\"]+)")
# any run of whitespace between the words: uv wraps its messages at the terminal's width
_NO_WHEEL_RE = re.compile(
    r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:==\S+)?\s+has\s+no\s+wheels\s+with\s+a\s+matching\s+(?:platform|Python)[^.(]*",
    re.I,
)
NOT_FOUND_RE = re.compile(
    r"(?:Because )?([A-Za-z0-9][A-Za-z0-9._-]*) was not found in the package registry|"
    r"there is no version of ([A-Za-z0-9][A-Za-z0-9._-]*(?:[=<>!~]=?[^\s,]+)?)|"
    r"No matching distribution found for ([^\s;]+)|"
    r"Could not find a version that satisfies the requirement ([^\s;]+)",
    re.I,
)
# uv reads the requirements files itself and refuses a line it cannot parse (pip-compile fails the
# same way through pip's own parser, with a traceback-shaped message this leaves to the default)
_UNREADABLE_RE = re.compile(r"Couldn't parse requirement in `([^`]+)`")
_CONFLICT_RE = re.compile(r"No solution found|ResolutionImpossible|conflicting dependencies|unsatisfiable", re.I)
# The lines of pip's and uv's output that explain a failure (the rest is traceback and retries).
_KEEP_RE = re.compile(
    r"^\s*(?:error|ERROR|cause|hint|  cause|Because|And because|Cannot install|The conflict|"
    r"\S.* depends on|Could not|No matching|.*conflicting dependencies|.*unsatisfiable)",
    re.M,
)


def _index_of(url: str) -> str:
    """The index root of a URL pip or uv failed to fetch (``.../simple/idna/`` -> ``.../simple``)."""
    url = redact(url.rstrip(":.,)"))
    m = re.match(r"(.*?/simple)(?:/|$)", url)
    return m.group(1) if m else url.rstrip("/")


def configured_indexes(tool: str, env: Mapping[str, str] | None = None) -> list[str]:
    source: Mapping[str, str] = os.environ if env is None else env
    urls: list[str] = []
    for key in INDEX_ENV[tool]:
        urls += [redact(u) for u in source.get(key, "").split() if u]
    return urls


def explain_failure(tool: str, output: str, request: ResolveRequest, env: dict | None = None) -> ResolutionError:
    """One readable error for a failed resolution, classified: index unreachable (naming the index),
    no wheel for the target (naming it), unknown package, or a conflict (the resolver's own
    explanation, which names the clashing packages and versions)."""
    target = f"Python {request.python} on {request.platform}"
    output = redact(output)
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    kept = [ln for ln in lines if _KEEP_RE.match(ln) and "Traceback" not in ln and "Retrying" not in ln]
    body = "\n".join(dict.fromkeys(kept[-15:] or lines[-15:])) or "(no output)"
    m = _UNREADABLE_RE.search(output)
    if m:
        if "found `\\`" in output:  # `name \` then `>=1.0` on the next line: pip reads it, uv does not
            hint = f"write that requirement on one line in {m.group(1)}: uv does not read a backslash continuation inside a requirement (uv issue 20744)"
        else:
            hint = f"correct that line of {m.group(1)}: a requirement is a name, then extras, a version and markers (PEP 508)"
        return ResolutionError(f"{tool} could not read a requirement in {m.group(1)}:\n{body}", hint=hint)
    if NETWORK_RE.search(output):
        fetched = [_index_of(u) for u in _FETCH_URL_RE.findall(output)]
        indexes = list(dict.fromkeys(fetched or configured_indexes(tool, env)))
        named = f"the package index {', '.join(indexes)}" if indexes else "the default package index (PyPI)"
        return ResolutionError(
            f"{tool} could not reach {named} while resolving for {target}",
            hint="check the network, or the index settings (" + " / ".join(INDEX_ENV[tool]) + ")",
        )
    m = _NO_WHEEL_RE.search(output)
    if m:
        return ResolutionError(
            f"{m.group(1)} has no wheel for the target, {target} ({RESOLVER_PLATFORMS[request.platform]}):\n{body}",
            hint="choose a version that publishes wheels for this Python and platform, or change python:/platform:",
        )
    m = NOT_FOUND_RE.search(output)
    if m and not re.search(r"conflicting dependencies|depends on", output):
        name = next(g for g in m.groups() if g)
        return ResolutionError(
            f"no distribution of {name} for {target} was found on the package index:\n{body}",
            hint="check the package name and version exist, and publish a wheel or sdist for this Python and platform",
        )
    if _CONFLICT_RE.search(output):
        return ResolutionError(
            f"the requirements conflict for {target}:\n{body}", hint="relax one of the versions named above"
        )
    return ResolutionError(
        f"{tool} could not resolve the requirements for {target}:\n{body}", hint="see the resolver's message above"
    )
