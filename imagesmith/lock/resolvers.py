"""Resolvers: turn requirement inputs into exact pins with hashes for the image's Python and platform.

Both implement the ``Resolver`` protocol and return the same ``Pin`` list, so the lock file has
one format whichever resolved it. The resolver is chosen in one place, ``get_resolver``.

- ``UvResolver`` runs ``uv pip compile --generate-hashes`` with ``--python-version`` and
  ``--python-platform``, so it resolves for the target whatever the host is.
- ``PipToolsResolver`` runs ``pip-compile --generate-hashes --allow-unsafe``. pip-compile only
  resolves for the interpreter that runs it, so when the host's Python version or platform is not
  the target's, it runs inside a container of the pinned base image (see ``engine.py``).

The package's resolving modules, top-down: this one chooses; ``uv_resolver`` and
``piptools_resolver`` implement; ``request`` (the request, the protocol, running a tool),
``failures`` (classifying a failure), ``resolution_files`` (what a resolution reads) and
``pins`` (pip's format) are shared by both.
"""

from __future__ import annotations

from ..errors import ResolutionError
from .piptools_resolver import PipToolsResolver
from .request import Resolver
from .uv_resolver import UvResolver


def get_resolver(name: str, engine=None) -> Resolver:
    if name == "uv":
        return UvResolver(engine)
    if name == "pip-tools":
        return PipToolsResolver(engine)
    raise ResolutionError(f"unknown resolver {name!r}", hint="use uv or pip-tools")
