"""`imagesmith init` on project files written to harm: what it quotes from them (a Dockerfile's
CMD, a uv workspace's members) must stay one line of plain text in the spec and on the terminal,
and what it expands (a Makefile's variables) must stay small."""

from __future__ import annotations

import json

import yaml

from imagesmith.init.propose import propose
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


def test_makefile_variables_that_multiply_each_other_are_no_training_command(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    refs_b, refs_c = "$(B)" * 12_000, "$(C)" * 12_000
    (tmp_path / "Makefile").write_text(
        f"A = {refs_b}\nB = {refs_c}\nC = {'x' * 50_000}\ntrain:\n\tpython train.py $(A)\n"
    )
    proposal = propose(tmp_path)  # expanded, the recipe was 7 GB: init ran out of memory
    assert proposal.values["train"] == {"command": ["python", "train.py"]}  # the script found by its name


def test_one_long_variable_referenced_thousands_of_times_is_refused_before_it_is_expanded(tmp_path):
    """One pass of a 20 kB variable referenced 2,000 times is 40 MB before its length could be
    checked (2.5 GB at the 200 kB a Makefile is read to): the length is counted while substituting."""
    import tracemalloc

    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "Makefile").write_text(f"A = {'x' * 20_000}\ntrain:\n\tpython train.py {'$(A)' * 2_000}\n")
    tracemalloc.start()
    try:
        proposal = propose(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert proposal.values["train"] == {"command": ["python", "train.py"]}
    assert peak < 10 << 20, peak


def test_a_makefile_variable_defined_by_itself_is_not_expanded_for_ever(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "Makefile").write_text("A = $(A) $(A)\ntrain:\n\tpython t.py $(A)\n")
    assert propose(tmp_path).values["train"] == {"command": ["python", "train.py"]}


def test_a_multi_line_run_script_is_left_for_the_code_to_show(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "m"\nversion = "0.1"\ndependencies = ["numpy"]\n'
        '[tool.pdm.scripts]\ntrain = {shell = """\npython prep.py\npython train.py\n"""}\n'
    )
    (tmp_path / "train.py").write_text("print(1)\n")
    _, _, proposal = write_spec(tmp_path, dry_run=True)  # a line break in a command: the spec refused it
    assert proposal.values["train"] == {"command": ["python", "train.py"]}


def test_a_conda_environment_nested_past_the_parser_s_depth_is_unread_not_a_traceback(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "environment.yml").write_text("dependencies:\n  - " + "[" * 50_000 + "]" * 50_000 + "\n")
    proposal = propose(tmp_path)  # a RecursionError escaped yaml.safe_load
    assert proposal.values["requirements"] == "requirements.txt"
    assert not [n for n in proposal.notes if n.startswith("environment.yml")]


def test_a_run_script_that_runs_a_file_outside_the_project_copies_nothing_of_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.py").write_text("print(1)\n")
    project = tmp_path / "p"
    project.mkdir()
    (project / "linked").symlink_to(outside)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "0.1"\ndependencies = ["numpy"]\n'
        f'[tool.pdm.scripts]\ntrain = "python {outside / "x.py"} --epochs 3"\nserve = "python linked/x.py"\n'
    )
    proposal = propose(project)  # the absolute path ended in a ValueError traceback
    assert proposal.values["train"]["command"][1] == str(outside / "x.py")
    assert not [s for s in proposal.values.get("source", []) if "x.py" in s]  # linked/x.py was copied as source
