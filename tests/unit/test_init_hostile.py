"""`imagesmith init` on project files written to harm: what it quotes from them (a Dockerfile's
CMD, a uv workspace's members) must stay one line of plain text in the spec and on the terminal,
and what it expands (a Makefile's variables) must stay small."""

from __future__ import annotations

import json

import yaml

from imagesmith.init.write import write_spec
from tests.helpers import cli

ESC = "\x1b]0;pwned\x07\x1b[31m"


def _forging_project(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "h"\nversion = "0.1"\ndependencies = ["numpy"]\n'
        '[tool.uv.workspace]\nmembers = ["a\\nforged: 1"]\n'
    )
    (tmp_path / "uv.lock").write_text("version = 1\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "Dockerfile").write_text("FROM python:3.11\nCMD " + json.dumps(["python", ESC]) + "\n")
    return tmp_path


def test_what_init_quotes_from_the_project_stays_one_plain_line_in_the_spec(tmp_path):
    _, text, proposal = write_spec(_forging_project(tmp_path), dry_run=True)  # yaml used to refuse the ESC
    assert any("\x1b" in n for n in proposal.notes) and any("\n" in n for n in proposal.notes)
    assert "\x1b" not in text and "\x07" not in text
    assert "forged" not in yaml.safe_load(text)  # the member's newline started no spec line of its own
    assert "a\\nforged: 1" in text


def test_what_init_quotes_from_the_project_reaches_the_terminal_escaped(tmp_path):
    err = cli("init", "--print", "-p", str(_forging_project(tmp_path))).stderr
    assert "\x1b" not in err and "\x07" not in err
    assert "\\x1b]0;pwned\\x07" in err
