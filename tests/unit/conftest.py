"""The unit tier: no engine, and the CLI run in-process (``tests/helpers.py: cli``), so the tier
stays quick; test_cli.py keeps one real subprocess run of the console entry point.

Every unit test starts from the same environment, whatever the caller's shell holds (CI and the
README's own instructions export ``IMAGESMITH_BASE``): imagesmith's variables and the engine's
(``DOCKER_HOST`` and its friends) are cleared, and ``XDG_CACHE_HOME`` is a folder of this
session's. A test that needs one sets it itself (``monkeypatch.setenv`` or ``cli(env=...)``)."""

from __future__ import annotations

import os

import pytest

from tests import helpers

# Read by the docker command, the Docker SDK or imagesmith's engine seam.
ENGINE_VARIABLES = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
# The test harness's own settings (tests/conftest.py), not imagesmith's.
HARNESS_PREFIXES = ("IMAGESMITH_TEST_", "IMAGESMITH_MAKE_TEST_")


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(autouse=True)
def _caller_environment_cleared(monkeypatch, _session_cache):
    for name in list(os.environ):
        if name.startswith("IMAGESMITH_") and not name.startswith(HARNESS_PREFIXES):
            monkeypatch.delenv(name)
    for name in ENGINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(_session_cache))


@pytest.fixture(autouse=True, scope="session")
def _cli_command_made_once():
    """typer turns the app into its click command on every call (``Typer.__call__`` runs
    ``get_command``), which costs an in-process run more than most commands do: the unit tier
    makes it once per app and set of commands and reuses it, as one process of the console script
    would (``cli.main`` adds a command to the app when it is first run: a command made before that
    would not know it). The command is the one typer makes; it parses and runs as before."""
    import typer.main

    made: dict[tuple, object] = {}
    real = typer.main.get_command

    def get_command(typer_instance):
        key = (id(typer_instance), tuple(info.name for info in typer_instance.registered_commands))
        if key not in made:
            made[key] = (typer_instance, real(typer_instance))
        return made[key][1]

    typer.main.get_command = get_command
    yield
    typer.main.get_command = real


@pytest.fixture(autouse=True)
def _cli_in_process():
    helpers.IN_PROCESS["on"] = True
    yield
    helpers.IN_PROCESS["on"] = False
