"""Image references by Docker's rules, with no registry host named here."""

from __future__ import annotations


def registry_host(ref: str) -> str | None:
    """The registry host a reference names, by Docker's rule (the first path component has a dot
    or a colon, or is localhost); None for names the local engine resolves (e.g. ``app:serve``)."""
    if "/" not in ref:
        return None
    first = ref.split("/", 1)[0]
    return first if ("." in first or ":" in first or first == "localhost") else None


def is_loopback_registry(ref: str) -> bool:
    host = (registry_host(ref) or "").rsplit(":", 1)[0]
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


def repository(ref: str) -> str:
    """``ref`` without its tag or digest."""
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name
