"""`imagesmith init` on project shapes it was not written for (an outside-in audit): a Poetry 1
project, Pipenv, setup.py/setup.cfg only, a notebook, symlinks. What it proposes must be what
the project says, and what it cannot read must be said by name."""

from __future__ import annotations

from imagesmith.init.write import write_spec

POETRY1 = """[tool.poetry]
name = "Poetry-Svc"
version = "0.1.0"

[tool.poetry.dependencies]
python = "^3.10"
flask = "^3.0"

[build-system]
requires = ["poetry-core"]
build-backend = "poetry.core.masonry.api"
"""


def test_a_poetry1_project_without_project_table_gets_its_poetry_lock(tmp_path):
    (tmp_path / "pyproject.toml").write_text(POETRY1)
    (tmp_path / "poetry.lock").write_text('[metadata]\nlock-version = "2.0"\n')
    (tmp_path / "train.py").write_text("print(1)\n")
    _, _, proposal = write_spec(tmp_path, dry_run=True)  # the spec parser accepts it
    assert proposal.values["requirements"] == {"poetry_lock": True}
    assert proposal.values["name"] == "poetry-svc"
    assert proposal.reasons["name"] == "[tool.poetry].name"
