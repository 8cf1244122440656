"""``imagesmith init``: a commented spec for an existing project, from what is in it.

``propose(root)`` reads the project (never runs any of it) and returns the spec's values, each
with the reason it was chosen; ``spec_yaml`` / ``spec_toml`` turn that into text; ``write_spec``
checks the text with the real parser and writes it atomically, never over an existing spec.

What it looks at (the code is read with ``ast`` by ``project_code``, never imported or run):
- name: ``[project].name`` (Poetry 1: ``[tool.poetry].name``), else the folder's name;
- python: ``--python``, else ``.python-version``, ``runtime.txt``, a Hugging Face Space's
  ``python_version``, a conda environment file's ``python=3.X``, the project's own Dockerfile (``FROM python:X``), its CI files, the ``--base``
  image's name, else the newest 3.x that ``requires-python`` allows, else 3.11;
- requirements: the project's lock (uv.lock, pylock.toml, poetry.lock) when it has one, else its
  declared ``[project]`` dependencies (static or dynamic), else ``requirements.txt`` (or ``.in``,
  or a production one in ``requirements/``), the indexes it names into the spec; a Pipfile,
  setup.py/setup.cfg or conda file alone is named in the error, with how to give its dependencies
  (a conda file beside a requirements file: its conda packages the file lacks are named); at a
  monorepo's root, the folders that declare their own dependencies are named in the error;
- code: top-level modules and packages (``src/`` packages too; ``src/`` itself when the code
  imports it as a package; a folder without ``__init__.py`` that the code imports), minus tests,
  docs, virtualenvs and symlinks; a ``preprocessing``/``features`` package becomes ``preprocessing:``;
- an installable project (``[project]`` and ``[build-system]`` with a ``build-backend``): it is
  built into a wheel and installed into both images, so its code is not copied as ``source``
  too (an edit must rebuild one layer), but for the modules at its root that the wheel may lack
  (not in setuptools' ``py-modules``); ``[project.scripts]`` named ``*train*``/``*serve*``
  become the train and serve commands;
- the project's own run scripts named train and serve (``start``, …) in ``[tool.pdm.scripts]``,
  ``[tool.rye.scripts]`` or a Hatch environment's ``scripts``: its train and serve commands,
  before what the code shows (``commands.own_scripts``); a ``pdm.lock`` is named as not read;
- train: the project's own command, with its arguments (the Makefile's ``train:`` recipe, else a
  ``train.sh``), else ``train.py`` (or ``train_*.py``) at the root, in a package (``python -m
  PKG.train``) or in ``scripts/``, else the one script that writes a model file (``model.py``
  pickling ``model.pkl``); a script that opens files beside it by relative names runs from its
  folder;
- serve: a FastAPI or Flask app, also one made by a factory, the one with prediction routes
  before a health check (served with uvicorn or gunicorn/flask; from its own folder when it
  imports the modules beside it by their own names), a Procfile's ``web:`` command, a Django
  project's wsgi.py (gunicorn) or asgi.py (uvicorn), a BentoML service, a Streamlit script or a
  Gradio app that launches itself, a script that starts its own server when run, else
  ``serve.py``;
- data files the code opens by a written name, and a Flask app's templates/static: in ``source``;
- artifacts: the folder train writes the model to and serve reads it from, as the code names it
  (a folder in /app, or ``/artifacts`` with the environment variable the code reads set to it),
  else ``/artifacts`` (a model written in /app itself or in a folder of code is named: that
  folder cannot be mounted; so is a model the server fetches from a hub when it starts);
- dockerfile: ``imagesmith.Dockerfile`` when the project has a Dockerfile of its own (imagesmith
  never writes over a file it did not generate).

The package, top-down: ``propose`` assembles the proposal from ``project_files`` (which files are
the code, read leniently), ``python_version``, ``requirement_files`` (the files it looks for, and
the error naming what the project has instead), ``commands`` (train and serve) and ``artifacts``
(where the model goes, the data files the code opens); ``spec_text`` writes it as YAML or TOML;
``write`` checks and writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Proposal:
    values: dict
    reasons: dict = field(default_factory=dict)  # key -> why this value
    notes: list[str] = field(default_factory=list)  # what the user should look at
