"""The unit tier: no engine, and the CLI run in-process (``tests/helpers.py: cli``), so the tier
stays quick; test_cli.py keeps one real subprocess run of the console entry point."""

from __future__ import annotations

import pytest

from tests import helpers


@pytest.fixture(autouse=True)
def _cli_in_process():
    helpers.IN_PROCESS["on"] = True
    yield
    helpers.IN_PROCESS["on"] = False
