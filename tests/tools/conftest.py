"""The tools tier: the real package tools imagesmith drives on the host (uv, pip-compile, pip's
wheel download), against package indexes served on 127.0.0.1 (tests/pkgindexes.py). No engine,
but each test runs a tool a second or more, so the tier stays out of the quick loop
(`make test-unit`); `make test` runs it. The same environment as the unit tier: the caller's
imagesmith and engine variables cleared, a cache folder of this session's, the CLI in-process."""

from __future__ import annotations

from tests.unit.conftest import (  # noqa: F401 (fixtures)
    _caller_environment_cleared,
    _cli_command_made_once,
    _cli_in_process,
    _session_cache,
)
