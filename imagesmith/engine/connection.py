"""Which engine, and where its containers' ports are reached.

imagesmith talks to the engine ``docker`` itself would use: ``DOCKER_HOST`` when set, else the
endpoint of ``DOCKER_CONTEXT`` or of the current docker context (the SDK alone ignores contexts,
which the CLI and buildx honour)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ..errors import EngineError
from ._common import ENGINE_HINT, first_line


def engine_endpoint() -> tuple[str | None, object]:
    """(host, TLS config) of the engine to use when ``DOCKER_HOST`` is not set (None: the SDK's
    default, from the environment)."""
    if os.environ.get("DOCKER_HOST"):
        return None, None
    try:
        from docker.context import ContextAPI

        name = os.environ.get("DOCKER_CONTEXT")
        context = ContextAPI.get_context(name) if name else ContextAPI.get_current_context()
    except Exception:  # an unreadable docker config: fall back to the defaults, as the SDK would
        return None, None
    if context is None or context.name == "default" or not context.Host:
        return None, None
    return context.Host, context.TLSConfig


def connect():
    """A Docker SDK client for the engine, checked with a ping; EngineError when unreachable."""
    import docker
    from docker.errors import DockerException

    try:
        host, tls = engine_endpoint()
        client = (
            docker.from_env(timeout=120) if host is None else docker.DockerClient(base_url=host, tls=tls, timeout=120)
        )
        client.ping()
    except DockerException as exc:
        raise EngineError(f"the Docker engine is not reachable ({first_line(exc)})", hint=ENGINE_HINT) from exc
    return client


def current_host() -> str:
    """The engine's address as a DOCKER_HOST-style URL ('' for the default local socket)."""
    return os.environ.get("DOCKER_HOST") or engine_endpoint()[0] or ""


def service_address(host: str) -> tuple[str, str]:
    """(address to publish container ports on, host to connect to them) for an engine at ``host``.

    A local engine (a unix socket, or TCP on loopback) publishes on 127.0.0.1 only. A remote
    engine (``tcp://HOST`` or ``ssh://HOST``, e.g. a CI job's docker:dind) publishes on its own
    interfaces and is reached at HOST, since its 127.0.0.1 is not this machine's."""
    if not host or host.startswith(("unix://", "npipe://", "fd://")):
        return "127.0.0.1", "127.0.0.1"
    name = urlsplit(host if "://" in host else f"tcp://{host}").hostname or ""
    if name in ("localhost", "::1") or name.startswith("127."):
        return "127.0.0.1", "127.0.0.1"
    return "0.0.0.0", name
