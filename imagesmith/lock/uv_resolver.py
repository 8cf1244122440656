"""The uv resolver: ``uv pip compile --generate-hashes --no-build`` with ``--python-version`` and
``--python-platform``, so it resolves for the target whatever the host is, and never runs a
package's build code on the host. ``uv_bin`` is the one uv every call runs."""

from __future__ import annotations

import re

from ..errors import ResolutionError
from ..platforms import RESOLVER_PLATFORMS
from .failures import NETWORK_RE, configured_indexes, explain_failure
from .pins import Pin, parse_compiled
from .piptools_resolver import resolve_in_base
from .request import NeedsBuild, ResolveRequest, compile_output, run_with_credentials


def uv_bin() -> str:
    """The uv that imagesmith installs (its ``uv`` dependency, found by ``uv.find_uv_bin()``),
    never another uv on PATH (a pyenv shim, another version): every uv call goes through it."""
    try:
        from uv import find_uv_bin
    except ImportError as exc:  # a broken install: uv is a dependency of imagesmith
        raise ResolutionError(
            "the uv package that imagesmith depends on is not installed", hint="pip install imagesmith installs it"
        ) from exc
    try:
        return str(find_uv_bin())
    except FileNotFoundError as exc:
        raise ResolutionError(
            f"uv's binary is missing ({exc})", hint="reinstall uv: pip install --force-reinstall uv"
        ) from exc


# uv's words when --no-build meets a distribution that publishes only an sdist for the target.
_NEEDS_BUILD_RE = re.compile(
    r"building from source is disabled|building source distributions is disabled|has no usable wheels|--no-build", re.I
)


class UvResolver:
    """``uv pip compile --no-build``: uv never runs a package's build code on the host. When a
    distribution publishes only an sdist for the target, reading its metadata means running its
    setup.py, so the resolution moves into a container of the base (``PipToolsResolver``'s)."""

    name = "uv"

    def __init__(self, engine=None) -> None:
        self._engine = engine
        self.wheels_only = False  # True once resolved on the host: --no-build found a wheel of every pin

    def resolve(self, request: ResolveRequest) -> list[Pin]:
        self.wheels_only = False
        try:
            pins = self._resolve_on_host(request)
        except NeedsBuild:
            return resolve_in_base(self._engine, request)
        self.wheels_only = True
        return pins

    def _resolve_on_host(self, request: ResolveRequest) -> list[Pin]:
        from .indexes import check_origins, refuse_general, uv_project
        from .indexes import origins as index_origins

        with compile_output(request, "uv") as out:
            argv = [
                uv_bin(),
                "pip",
                "compile",
                "--quiet",
                "--generate-hashes",
                "--no-header",
                "--no-annotate",
                "--no-build",
                "--python-version",
                request.python,
                "--python-platform",
                RESOLVER_PLATFORMS[request.platform],
                "--output-file",
                str(out),
                *request.compile_options(),
                *request.index_options(),
                *[str(p) for p in request.inputs],
            ]
            if request.package_indexes:  # each pinned to its explicit index (indexes.py)
                refuse_general("uv", configured_indexes("uv"), request.package_indexes)
                pins_project = out.parent / "package-indexes" / "pyproject.toml"
                pins_project.parent.mkdir()
                pins_project.write_text(uv_project(request.package_indexes))
                argv += ["--emit-index-annotation", str(pins_project)]
            proc = run_with_credentials(argv, request, UV_NO_PROGRESS="1")
            if proc.returncode != 0:
                if _NEEDS_BUILD_RE.search(proc.stderr + proc.stdout) and not NETWORK_RE.search(proc.stderr):
                    raise NeedsBuild()
                raise explain_failure("uv", proc.stderr + proc.stdout, request)
            compiled = out.read_text()
            if request.package_indexes:
                check_origins(index_origins(compiled), request.package_indexes)
            return parse_compiled(compiled)
