"""`imagesmith init` on project shapes it was not written for (an outside-in audit): a Poetry 1
project, Pipenv, setup.py/setup.cfg only, a notebook, symlinks. What it proposes must be what
the project says, and what it cannot read must be said by name."""

from __future__ import annotations

import pytest

from imagesmith.errors import UsageError
from imagesmith.init.propose import propose
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


def _refusal(tmp_path) -> UsageError:
    with pytest.raises(UsageError) as err:
        propose(tmp_path)
    return err.value


@pytest.mark.parametrize(
    "name, text, said, hinted",
    [
        (
            "Pipfile",
            '[packages]\nflask = "*"\n',
            "Pipenv's Pipfile is not read",
            "pipenv requirements > requirements.txt",
        ),
        (
            "setup.py",
            'from setuptools import setup\nsetup(install_requires=["flask"])\n',
            "setup.py's install_requires",
            'dynamic = ["dependencies"]',
        ),
        ("setup.cfg", "[options]\ninstall_requires =\n    flask\n", "setup.cfg's install_requires", "requirements.txt"),
        (
            "environment.yml",
            "dependencies:\n  - python=3.11\n  - pip:\n    - flask\n",
            "conda's environment.yml",
            "PyPI names",
        ),
    ],
)
def test_dependencies_init_does_not_read_are_named_with_how_to_give_them(tmp_path, name, text, said, hinted):
    (tmp_path / name).write_text(text)
    if name == "setup.cfg":  # with the usual shim beside it: the setup.cfg holds the dependencies
        (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    err = _refusal(tmp_path)
    assert said in str(err) and hinted in (err.hint or "")


def test_a_poetry1_project_without_its_lock_is_told_to_lock(tmp_path):
    (tmp_path / "pyproject.toml").write_text(POETRY1)
    err = _refusal(tmp_path)
    assert "Poetry project without a poetry.lock" in str(err) and "poetry lock" in (err.hint or "")


def test_a_symlinked_module_is_never_what_serves_or_trains(tmp_path):
    """A link is not copied as code (source skips links), so serving or training by its name
    would fail in the image: the module it points to is found under its own name."""
    app = "from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.post('/predict')\ndef predict():\n    return {}\n"
    (tmp_path / "zapp.py").write_text(app)
    (tmp_path / "a_link.py").symlink_to("zapp.py")  # sorts first
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "train_model.py").write_text("print(1)\n")
    (tmp_path / "train.py").symlink_to("scripts/train_model.py")
    (tmp_path / "requirements.txt").write_text("flask\n")
    proposal = propose(tmp_path)
    assert proposal.values["serve"]["command"][4] == "zapp:app"
    assert proposal.values["train"]["command"] == ["python", "scripts/train_model.py"]
    assert all("a_link" not in note for note in proposal.notes)
    assert set(proposal.values["source"]) == {"zapp.py", "scripts/train_model.py"}


def test_a_notebook_only_project_is_told_its_notebook_is_not_read(tmp_path):
    (tmp_path / "requirements.txt").write_text("scikit-learn\n")
    (tmp_path / "notebooks").mkdir()
    for name in ("train.ipynb", "notebooks/explore.ipynb"):
        (tmp_path / name).write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
    _, text, proposal = write_spec(tmp_path, dry_run=True)
    note = next(n for n in proposal.notes if n.startswith("no training script found"))
    assert "(train.ipynb, notebooks/explore.ipynb: notebooks are not read" in note
    assert "jupyter nbconvert --to script train.ipynb" in note
    assert "# CHECK: " + note in text
    (tmp_path / "train.ipynb").rename(tmp_path / "Train Model.ipynb")  # a name with a space, as notebooks often have
    note = next(n for n in propose(tmp_path).notes if n.startswith("no training script found"))
    assert "`jupyter nbconvert --to script 'Train Model.ipynb'`" in note  # a command that runs as shown


def test_an_installable_flat_project_s_root_scripts_are_copied_unless_declared(tmp_path):
    """setup.py's find_packages() (and hatchling, flit) put only the packages in the wheel: a
    train.py at the root run as `python -m train` was missing from both images."""
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "__init__.py").write_text("")
    (tmp_path / "train.py").write_text("import svc\nprint(1)\n")
    (tmp_path / "setup.py").write_text("from setuptools import find_packages, setup\nsetup(packages=find_packages())\n")
    pyproject = (
        '[project]\nname = "s"\nversion = "0.1"\ndynamic = ["dependencies"]\n\n'
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    (tmp_path / "pyproject.toml").write_text(pyproject)
    proposal = propose(tmp_path)
    assert proposal.values["source"] == ["train.py"]  # svc/ is in the wheel
    assert any("the modules at its root (train.py) are copied too" in n for n in proposal.notes)
    (tmp_path / "pyproject.toml").write_text(pyproject + '\n[tool.setuptools]\npy-modules = ["train"]\n')
    assert "source" not in propose(tmp_path).values  # declared: the wheel has it


def test_a_streamlit_or_gradio_app_is_what_serves(tmp_path):
    """Either was 'no server found: edit serve.command' with `python serve.py`, a file the project lacks."""
    (tmp_path / "requirements.txt").write_text("streamlit\ngradio\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "ui.py").write_text(
        "import gradio as gr\n\ndemo = gr.Interface(fn=str, inputs='text', outputs='text')\n"
        "if __name__ == '__main__':\n    demo.launch(server_name='0.0.0.0', server_port=7000)\n"
    )
    proposal = propose(tmp_path)
    assert proposal.values["serve"] == {"command": ["python", "ui.py"], "port": 7000}
    assert "Gradio app ui.py" in proposal.reasons["serve"]
    assert "ui.py" in proposal.values["source"] and "env" not in proposal.values  # it names its address
    (tmp_path / "ui.py").write_text((tmp_path / "ui.py").read_text().replace("server_name='0.0.0.0', ", ""))
    proposal = propose(tmp_path)  # Gradio's default, 127.0.0.1, is unreachable from outside the container
    assert proposal.values["env"] == {"GRADIO_SERVER_NAME": "0.0.0.0"}
    assert "GRADIO_SERVER_NAME: the Gradio app listens beyond the container" in proposal.reasons["env"]
    (tmp_path / "dashboard.py").write_text("import streamlit as st\n\nst.title('demo')\n")
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["serve"] == {
        "command": ["streamlit", "run", "dashboard.py", "--server.address", "0.0.0.0", "--server.port", "8501"],
        "port": 8501,
    }
    assert not any(n.startswith("no server found") for n in proposal.notes)


def test_a_procfile_web_command_serves_when_no_app_is_found(tmp_path):
    (tmp_path / "requirements.txt").write_text("aiohttp\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "server.py").write_text("from aiohttp import web\n\nweb.run_app(web.Application())\n")
    (tmp_path / "Procfile").write_text("release: python migrate.py\nweb: python server.py --port $PORT\n")
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["serve"] == {"command": ["python", "server.py", "--port", "8000"], "port": 8000}
    assert "Procfile" in proposal.reasons["serve"]
    (tmp_path / "server.py").write_text(  # the platform sets PORT: the app may read it and not take --port
        "import os\nfrom aiohttp import web\n\nweb.run_app(web.Application(), port=int(os.environ['PORT']))\n"
    )
    (tmp_path / "Procfile").write_text("web: python server.py\n")
    proposal = propose(tmp_path)
    assert proposal.values["serve"]["command"] == ["python", "server.py"] and proposal.values["env"] == {"PORT": "8000"}
    assert "PORT: the Procfile's web: process reads the port" in proposal.reasons["env"]
    (tmp_path / "Procfile").write_text("web: cd app && exec python server.py --port=${PORT}\n")
    serve = propose(tmp_path).values["serve"]
    assert serve["command"] == ["sh", "-c", "cd app && exec python server.py --port=8000"]
    (tmp_path / "explore.py").write_text("import streamlit as st\n\nst.write('a look at the data')\n")
    assert propose(tmp_path).values["serve"]["command"][:2] == ["sh", "-c"]  # the Procfile's, not a Streamlit guess
    (tmp_path / "Procfile").write_text("web: WEB_CONCURRENCY=2 gunicorn server:app -b 0.0.0.0:$PORT\n")
    serve = propose(tmp_path).values["serve"]  # as argv, the engine would exec a program named 'WEB_CONCURRENCY=2'
    assert serve["command"] == ["sh", "-c", "WEB_CONCURRENCY=2 gunicorn server:app -b 0.0.0.0:8000"]


def test_the_indexes_a_requirements_file_names_go_into_the_spec(tmp_path):
    """The lock refuses an index only the file names (the wheel download would not read it)."""
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "gpu.txt").write_text("--extra-index-url https://download.example/whl/cpu/\ntorch\n")
    (tmp_path / "requirements.txt").write_text(
        "-r requirements/gpu.txt\n--index-url=https://mirror.example/simple\nsix\n"
    )
    (tmp_path / "train.py").write_text("print(1)\n")
    _, text, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["extra_index_urls"] == ["https://download.example/whl/cpu"]
    assert proposal.values["index_url"] == "https://mirror.example/simple"
    assert 'extra_index_urls: ["https://download.example/whl/cpu"]' in text


def test_the_indexes_init_writes_are_the_ones_the_lock_reads(tmp_path):
    """Init and the lock read a file's index lines alike (-iURL, a continued line) and the spec
    gets them without credentials: the lock takes the written spec as it is."""
    from imagesmith.lock.inputs import compute_inputs
    from imagesmith.spec.load import load_spec

    (tmp_path / "requirements.txt").write_text(
        "-ihttps://mirror.example/simple\n--extra-index-url \\\n  https://ci:s3cret@download.example/whl/cpu\nsix\n"
    )
    (tmp_path / "train.py").write_text("print(1)\n")
    path, text, proposal = write_spec(tmp_path)
    assert proposal.values["index_url"] == "https://mirror.example/simple"
    assert proposal.values["extra_index_urls"] == ["https://download.example/whl/cpu"]
    assert "s3cret" not in text + " ".join(proposal.notes) and path.read_text() == text
    assert compute_inputs(load_spec(tmp_path), "b")["requirements"]


def test_an_index_named_through_a_variable_is_left_to_the_user(tmp_path):
    (tmp_path / "requirements.txt").write_text("--extra-index-url ${ARTIFACTORY_URL}/simple\nsix\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    proposal = propose(tmp_path)
    assert "extra_index_urls" not in proposal.values
    note = next(n for n in proposal.notes if "ARTIFACTORY_URL" in n)
    assert "name the index itself in index_url: or extra_index_urls:" in note and "publish" not in note


def test_a_find_links_page_is_pointed_out_as_what_the_lock_will_refuse(tmp_path):
    """init wrote nothing about `-f`, and the lock then refused the spec init had just written."""
    (tmp_path / "requirements.txt").write_text("-f https://u:pw@download.example/whl/torch_stable.html\nsix\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    proposal = propose(tmp_path)
    note = next(n for n in proposal.notes if "--find-links" in n)
    assert "https://download.example/whl/torch_stable.html" in note and "is not a package index" in note
    assert "pw" not in " ".join(proposal.notes)


def test_a_large_data_file_the_code_opens_is_pointed_out(tmp_path):
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "data").mkdir()
    with open(tmp_path / "data" / "big.bin", "wb") as handle:
        handle.truncate(60_000_000)  # sparse: no 60 MB written
    (tmp_path / "data" / "small.csv").write_text("a,b\n")
    (tmp_path / "train.py").write_text("open('data/big.bin', 'rb').read(1)\nopen('data/small.csv').read()\n")
    proposal = propose(tmp_path)
    assert "data/big.bin" in proposal.values["source"]
    large = [n for n in proposal.notes if n.startswith("large data in source")]
    assert large == [
        "large data in source, copied into both images: data/big.bin (60 MB); "
        "to keep it out, drop it from source and give it to the code at run time (e.g. in the artifacts folder)"
    ]


def test_a_namespace_package_the_app_lives_in_is_copied(tmp_path):
    """app/main.py with no app/__init__.py: served as `uvicorn app.main:app`, and source held
    regular packages only, so the serve image had no app/ (No module named 'app')."""
    (tmp_path / "requirements.txt").write_text("fastapi\nuvicorn\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text(
        "from fastapi import FastAPI\nfrom app.model import predict_one\n\napp = FastAPI()\n\n\n"
        "@app.post('/predict')\ndef predict(x: float):\n    return {'y': predict_one(x)}\n"
    )
    (tmp_path / "app" / "model.py").write_text("def predict_one(x):\n    return 2 * x\n")
    (tmp_path / "tools").mkdir()  # a folder of scripts nothing imports stays out
    (tmp_path / "tools" / "lint.py").write_text("print(1)\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    proposal = propose(tmp_path)
    assert proposal.values["serve"]["command"][:2] == ["uvicorn", "app.main:app"]
    assert sorted(proposal.values["source"]) == ["app/", "train.py"]


def test_a_requirements_folder_gives_its_production_file(tmp_path):
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "prod.txt").write_text("six\n")
    (tmp_path / "requirements" / "dev.txt").write_text("-r prod.txt\npytest\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["requirements"] == "requirements/prod.txt"
    assert "requirements: requirements/prod.txt, the serving/production one; not requirements/dev.txt" in proposal.notes
    (tmp_path / "requirements" / "prod.txt").unlink()
    err = _refusal(tmp_path)
    assert "requirements/dev.txt" in str(err) and "requirements: requirements/dev.txt" in (err.hint or "")


def test_a_poetry1_project_with_a_requirements_txt_keeps_using_it(tmp_path):
    """As before the poetry.lock reading: poetry.lock needs poetry on the locking machine, and
    the project's requirements.txt is what it asks for without it."""
    (tmp_path / "pyproject.toml").write_text(POETRY1)
    (tmp_path / "poetry.lock").write_text('[metadata]\nlock-version = "2.0"\n')
    (tmp_path / "requirements.txt").write_text("flask\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    assert propose(tmp_path).values["requirements"] == "requirements.txt"


@pytest.mark.parametrize("services", [("modelserver", "webserver"), ("services/api", "services/trainer")])
def test_a_monorepo_s_root_names_the_folders_that_are_projects(tmp_path, services):
    """The shape of shanesoh/deploy-ml-fastapi-redis-docker (modelserver/ and webserver/, each
    with its requirements.txt and Dockerfile, a docker-compose.yml and a locustfile.py at the
    root), and of services/<name>/ monorepos: init at the root said only 'no requirements.txt'."""
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    (tmp_path / "locustfile.py").write_text("print(1)\n")
    for folder in services:
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "requirements.txt").write_text("fastapi\n")
        (tmp_path / folder / "main.py").write_text("print(1)\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "requirements.txt").write_text("x\n")  # never a project
    err = _refusal(tmp_path)
    assert f"{services[0]}/ (requirements.txt), {services[1]}/ (requirements.txt)" in str(err)
    assert ".venv" not in str(err)
    assert f"imagesmith init -p {services[0]}" in (err.hint or "")


def test_a_conda_environment_beside_requirements_gives_its_python_and_names_its_conda_packages(tmp_path):
    """The shape of Stability-AI/stablediffusion: environment.yaml pins python=3.8.5 and lists
    conda packages (cudatoolkit, pytorch, torchvision), with a requirements.txt beside it.
    Init took requirements.txt and Python 3.11, and said nothing of the environment file."""
    (tmp_path / "environment.yaml").write_text(
        "name: ldm\nchannels:\n  - pytorch\ndependencies:\n  - python=3.8.5\n  - pip=20.3\n"
        "  - cudatoolkit=11.3\n  - pytorch=1.12.1\n  - conda-forge::ffmpeg\n  - pip:\n    - einops==0.3.0\n"
    )
    (tmp_path / "requirements.txt").write_text("torch==1.12.1\neinops==0.3.0\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["python"] == "3.8"
    assert proposal.reasons["python"] == "environment.yaml (python=3.8)"
    said = [n for n in proposal.notes if n.startswith("environment.yaml is not read")]
    assert said and "(cudatoolkit, ffmpeg)" in said[0]  # pytorch is torch in requirements.txt


def test_a_conda_environment_does_not_outrank_python_version(tmp_path):
    (tmp_path / "environment.yml").write_text("dependencies:\n  - python==3.10\n")
    (tmp_path / ".python-version").write_text("3.12\n")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    assert propose(tmp_path).values["python"] == "3.12"


def test_the_project_s_own_pdm_scripts_are_its_train_and_serve_commands(tmp_path):
    """The shape pdm-project/pdm's docs/usage/scripts.md gives: `start = "flask run -p 54321"`
    (with `start.env`), `pdm run train`, and a pdm.lock beside [project].dependencies. Init
    proposed flask's own server on port 8000 and said nothing of the lock it did not read."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "svc"\nversion = "0.1"\ndependencies = ["flask"]\n\n'
        '[tool.pdm.scripts]\ntrain = "python jobs/fit.py {args:--epochs 3}"\nlint = "ruff check ."\n'
        '[tool.pdm.scripts.start]\ncmd = ["flask", "run", "-p", "54321"]\nenv = {FLASK_APP = "web"}\n'
    )
    (tmp_path / "pdm.lock").write_text('[metadata]\nlock_version = "4.4"\n')
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "fit.py").write_text("import pickle\npickle.dump(1, open('out/model.pkl', 'wb'))\n")
    (tmp_path / "web.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    values = proposal.values
    assert values["train"] == {"command": ["python", "jobs/fit.py", "--epochs", "3"]}
    assert "jobs/fit.py" in values["source"]  # the script the command runs is in the image
    assert values["serve"] == {"command": ["env", "FLASK_APP=web", "flask", "run", "-p", "54321"], "port": 54321}
    assert proposal.reasons["serve"].startswith("[tool.pdm.scripts] start (`pdm run start`)")
    notes = " ".join(proposal.notes)
    assert "names no address to listen on" in notes  # flask run listens on 127.0.0.1
    assert "pdm.lock is not read" in notes and "pdm export -f pylock -o pylock.toml" in notes


def test_a_hatch_environment_s_start_script_serves(tmp_path):
    """The shape of ash-wini-kumar/saathi-langgraph: a src layout built by hatchling, its server
    started by `hatch run server:start` ([tool.hatch.envs.server.scripts] start = "uvicorn
    saathi.server:app --host 0.0.0.0 --port 8000 --reload"); a function call or a chain of
    scripts is no command."""
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "saathi"\nversion = "0.1"\ndependencies = ["fastapi", "uvicorn"]\n\n'
        '[tool.hatch.envs.default.scripts]\ntest = "pytest"\ntrain = ["prep", "fit"]\n\n'
        '[tool.hatch.envs.server.scripts]\nstart = "uvicorn saathi.server:app --port 9000 --reload"\n'
    )
    (tmp_path / "src" / "saathi").mkdir(parents=True)
    (tmp_path / "src" / "saathi" / "__init__.py").write_text("")
    (tmp_path / "src" / "saathi" / "server.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["serve"] == {
        "command": ["uvicorn", "saathi.server:app", "--port", "9000", "--reload"],
        "port": 9000,
    }
    assert "`hatch run server:start`" in proposal.reasons["serve"]
    assert proposal.values["train"]["command"] == ["python", "train.py"]  # two commands: not taken
    assert any("names no address to listen on" in n for n in proposal.notes)


def test_a_makefile_train_target_is_the_training_command(tmp_path):
    """The Makefile of drivendataorg/cookiecutter-data-science (PYTHON_INTERPRETER = python,
    recipes like `$(PYTHON_INTERPRETER) pkg/dataset.py`), with the `train:` target such projects
    add: init proposed `python -m pkg.modeling.train` (found by its name) and ignored the
    arguments the project trains with."""
    (tmp_path / "requirements.txt").write_text("scikit-learn\n")
    (tmp_path / "pkg" / "modeling").mkdir(parents=True)
    for name in ("pkg/__init__.py", "pkg/modeling/__init__.py", "pkg/modeling/train.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "Makefile").write_text(
        "PYTHON_INTERPRETER = python\nPROJECT ?= pkg\n\n## Install\nrequirements:\n"
        "\t$(PYTHON_INTERPRETER) -m pip install -r requirements.txt\n\n"
        "train: requirements\n\t@uv run $(PYTHON_INTERPRETER) -m ${PROJECT}.modeling.train \\\n\t\t--epochs 5\n"
    )
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["train"] == {"command": ["python", "-m", "pkg.modeling.train", "--epochs", "5"]}
    assert proposal.reasons["train"].startswith("the Makefile's train: target (`make train`)")


def test_a_makefile_train_target_init_cannot_expand_is_not_taken(tmp_path):
    (tmp_path / "requirements.txt").write_text("torch\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "Makefile").write_text("train:\n\tpython train.py --data $(DATA)\n")
    assert propose(tmp_path).values["train"] == {"command": ["python", "train.py"]}


def test_a_train_sh_beside_a_hugging_face_run_script_trains(tmp_path):
    """The shape of repositories built on huggingface/transformers' examples: a run_*.py script
    (no train.py) driven by a train.sh with its arguments; init said 'no training script found'
    and proposed `python train.py`, a file the project lacks."""
    (tmp_path / "requirements.txt").write_text("transformers\ndatasets\n")
    (tmp_path / "run_classification.py").write_text("print(1)\n")
    (tmp_path / "train.sh").write_text("#!/usr/bin/env bash\npython run_classification.py --output_dir out\n")
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["train"] == {"command": ["bash", "train.sh"]}
    assert "train.sh" in proposal.values["source"]  # the script is copied, as it is in no wheel


@pytest.mark.parametrize("folder", ["", "ml/"])
def test_a_model_py_that_writes_the_model_serve_loads_is_the_training_script(tmp_path, folder):
    """The shape of krishnaik06/Deployment-flask: model.py trains and pickles model.pkl in the
    working folder, app.py (Flask) loads it, hiring.csv and model.pkl beside them. Init said 'no
    training script found' and 'where train saves the model was not found', though the code says
    both; and with the model in a folder of code (ml/train.py writing ml/model.pkl) it said 'not
    found' too, where the truth is that the folder cannot be mounted."""
    (tmp_path / "requirements.txt").write_text("flask\nscikit-learn\n")
    (tmp_path / "hiring.csv").write_text("a,b\n")
    script = "ml/train.py" if folder else "model.py"
    (tmp_path / script).parent.mkdir(exist_ok=True)
    (tmp_path / script).write_text(
        f"import pickle\nimport pandas as pd\ndf = pd.read_csv('hiring.csv')\npickle.dump(1, open('{folder}model.pkl', 'wb'))\n"
    )
    (tmp_path / "request.py").write_text("import requests\nrequests.post('http://localhost:5000/predict')\n")
    (tmp_path / "app.py").write_text(
        "import pickle\nfrom flask import Flask\napp = Flask(__name__)\n"
        f"model = pickle.load(open('{folder}model.pkl', 'rb'))\n"
        "@app.route('/predict', methods=['POST'])\ndef predict():\n    return '1'\n"
    )
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["train"] == {"command": ["python", script]}
    assert proposal.values["artifacts"] == "/artifacts"
    notes = " ".join(proposal.notes)
    assert "was not found in the code" not in notes
    where = "the working folder itself (/app/model.pkl)" if not folder else "/app/ml, a folder of the code"
    assert f"train writes its model in {where}" in notes


def test_two_scripts_that_write_model_files_are_no_training_script(tmp_path):
    (tmp_path / "requirements.txt").write_text("torch\n")
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text("import torch\ntorch.save(1, 'm.pt')\n")
    assert propose(tmp_path).values["train"] == {"command": ["python", "train.py"]}


@pytest.mark.parametrize(
    "load, named",
    [
        ('pipeline("sentiment-analysis")', "the default model of pipeline('sentiment-analysis') (sentiment.py:4)"),
        ('AutoModel.from_pretrained("bert-base-uncased")', "bert-base-uncased (sentiment.py:4)"),
        ('torch.hub.load("pytorch/vision", "resnet18")', "pytorch/vision (sentiment.py:4)"),
    ],
)
def test_a_server_that_fetches_its_model_at_start_up_is_told_so(tmp_path, load, named):
    """The shape of Alexey26101980/ml_sentiment (sentiment.py: a FastAPI app whose module-level
    `classifier = pipeline("sentiment-analysis")` downloads the task's default model when the
    server starts; no training): init said 'where train saves the model was not found in the
    code', though the code fetches it from the Hub."""
    (tmp_path / "requirements.txt").write_text("fastapi\nuvicorn\ntransformers\ntorch\n")
    (tmp_path / "sentiment.py").write_text(
        f"import torch\nfrom fastapi import FastAPI\nfrom transformers import AutoModel, pipeline\nclassifier = {load}\n"
        "app = FastAPI()\n@app.post('/predict/')\ndef predict(text: str):\n    return classifier(text)\n"
    )
    notes = " ".join(propose(tmp_path).notes)
    assert f"serve fetches its model from a hub when it starts: {named}" in notes
    assert "HF_HOME" in notes and "was not found in the code" not in notes


def test_a_local_model_folder_is_not_a_download(tmp_path):
    (tmp_path / "requirements.txt").write_text("fastapi\ntransformers\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "main.py").write_text(
        "from fastapi import FastAPI\nfrom transformers import AutoModel\nm = AutoModel.from_pretrained('model')\n"
        "app = FastAPI()\n"
    )
    assert not any("fetches its model" in n for n in propose(tmp_path).notes)


@pytest.mark.parametrize(
    "head, why",
    [
        ("from model import predict\n", "it imports model, beside it, by that name"),
        ("import json\nids = json.load(open('ids.json'))\n", "it opens files beside it by relative names"),
    ],
)
def test_an_app_folder_run_from_inside_is_served_from_there(tmp_path, head, why):
    """The shape of makhalifa/search_by_image_makask: app/main.py (no app/__init__.py) beside
    app/model.py and app/ids.json, run by its Dockerfile from the folder (WORKDIR /app/app,
    `uvicorn main:app`). Init served `uvicorn app.main:app` from the root, where `from model
    import …` and open('ids.json') fail."""
    (tmp_path / "requirements.txt").write_text("fastapi\nuvicorn\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "model.py").write_text("def predict():\n    return 1\n")
    (tmp_path / "app" / "ids.json").write_text("[]\n")
    (tmp_path / "app" / "main.py").write_text(
        head + "from fastapi import FastAPI\napp = FastAPI()\n@app.post('/predict')\ndef p():\n    return 1\n"
    )
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["serve"]["command"] == [
        "sh",
        "-c",
        "cd app && exec uvicorn main:app --host 0.0.0.0 --port 8000",
    ]
    assert proposal.reasons["serve"].endswith(f"from app/: {why}")
    assert proposal.values["source"] == ["app/"]


def test_an_app_folder_that_imports_from_the_root_is_served_from_the_root(tmp_path):
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "model.py").write_text("def predict():\n    return 1\n")
    (tmp_path / "app" / "main.py").write_text(
        "from model import predict\nfrom fastapi import FastAPI\napp = FastAPI()\n"
    )
    assert propose(tmp_path).values["serve"]["command"][:2] == ["uvicorn", "app.main:app"]


def test_the_model_an_app_run_from_its_folder_reads_is_found_from_there():
    """tests/projects/real-appfolder (built end to end in tests/engine/test_real_shapes.py):
    app/model.py, imported by app/main.py as `model`, reads ../models/model.json from app/; init
    did not follow the import, and said serve's model path was not found."""
    from tests.conftest import PROJECTS

    proposal = propose(PROJECTS / "real-appfolder")
    assert proposal.values["artifacts"] == "/app/models"
    assert "train writes the model there and serve reads it" in proposal.reasons["artifacts"]
    assert not any("model path was not found" in n for n in proposal.notes)


def test_a_heroku_runtime_txt_gives_the_python(tmp_path):
    """The shape of heroku/python-getting-started: runtime.txt pins `python-3.10.12`, a Procfile
    serves with gunicorn. runtime.txt was read as a CI file (`python: 3.X` lines), which it has
    none of, so init proposed 3.11."""
    (tmp_path / "requirements.txt").write_text("flask\ngunicorn\n")
    (tmp_path / "runtime.txt").write_text("python-3.10.12\n")
    (tmp_path / "Procfile").write_text("web: gunicorn app:app\n")
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    proposal = propose(tmp_path)
    assert proposal.values["python"] == "3.10" and proposal.reasons["python"] == "runtime.txt (python-3.10)"


def test_a_hugging_face_space_s_python_version_is_its_python(tmp_path):
    """The configuration huggingface/hub-docs' docs/hub/spaces-config-reference.md describes: a
    Space's README.md opens with YAML (sdk: gradio, python_version: "3.10", app_file: app.py)
    beside app.py and requirements.txt; init proposed 3.11."""
    (tmp_path / "README.md").write_text(
        '---\ntitle: Demo\nsdk: gradio\npython_version: "3.10"\napp_file: app.py\n---\n\npython_version: 3.12\n'
    )
    (tmp_path / "requirements.txt").write_text("gradio\n")
    (tmp_path / "app.py").write_text("import gradio as gr\ngr.Interface(str, 'text', 'text').launch()\n")
    proposal = propose(tmp_path)
    assert proposal.values["python"] == "3.10"
    assert proposal.values["serve"] == {"command": ["python", "app.py"], "port": 7860}
    (tmp_path / "README.md").write_text("# Demo\n\npython_version: 3.12\n")  # prose is no configuration
    assert propose(tmp_path).values["python"] == "3.11"


DJANGO_WSGI = (
    "import os\nfrom django.core.wsgi import get_wsgi_application\n"
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\napplication = get_wsgi_application()\n"
)


@pytest.mark.parametrize(
    "requirements, command",
    [
        ("django\ngunicorn\n", ["gunicorn", "-b", "0.0.0.0:8000", "mysite.wsgi:application"]),
        ("django\nuvicorn\n", ["uvicorn", "mysite.asgi:application", "--host", "0.0.0.0", "--port", "8000"]),
        ("django\n", ["python", "manage.py", "runserver", "0.0.0.0:8000", "--noreload"]),
    ],
)
def test_a_django_project_is_served_by_its_wsgi_or_asgi_application(tmp_path, requirements, command):
    """The layout django/django's project template (conf/project_template) makes: manage.py at the
    root, mysite/ with settings.py, wsgi.py (application = get_wsgi_application()) and asgi.py;
    an ML app's views load the model. Init said 'no server found' and proposed `python serve.py`."""
    (tmp_path / "requirements.txt").write_text(requirements + "scikit-learn\n")
    (tmp_path / "manage.py").write_text("import sys\nfrom django.core.management import execute_from_command_line\n")
    (tmp_path / "mysite").mkdir()
    (tmp_path / "mysite" / "__init__.py").write_text("")
    (tmp_path / "mysite" / "settings.py").write_text("ALLOWED_HOSTS = []\n")
    (tmp_path / "mysite" / "wsgi.py").write_text(DJANGO_WSGI)
    (tmp_path / "mysite" / "asgi.py").write_text(DJANGO_WSGI.replace("wsgi", "asgi"))
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["serve"] == {"command": command, "port": 8000}
    assert any(n.startswith("Django: its settings' ALLOWED_HOSTS") for n in proposal.notes)


@pytest.mark.parametrize(
    "recipe",
    [
        "\t. .venv/bin/activate && python train.py --epochs 5\n",
        "\tsource venv/bin/activate\n\tpython train.py --epochs 5\n",
        "\t$(VENV)/bin/python train.py --epochs 5\n",
    ],
)
def test_a_makefile_train_recipe_run_in_the_developer_s_virtualenv_runs_in_the_image(tmp_path, recipe):
    """Makefiles of the cookiecutter-data-science kind often run the step in the developer's
    virtualenv (VENV = .venv; $(VENV)/bin/python, or `. .venv/bin/activate &&`): the image has
    none, its interpreter is `python`."""
    (tmp_path / "requirements.txt").write_text("torch\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "Makefile").write_text(f"VENV = .venv\n\ntrain:\n{recipe}")
    assert propose(tmp_path).values["train"] == {"command": ["python", "train.py", "--epochs", "5"]}


def test_a_run_script_s_file_outside_the_wheel_is_copied_and_finds_the_project(tmp_path):
    """`hatch run train` as `python scripts/train.py` in a src-layout project built by hatchling
    (the shape of ash-wini-kumar/saathi-langgraph's scripts): the wheel carries src/ only, so
    scripts/train.py was missing from the image; in a project copied as source, the script in
    scripts/ imports the project's package from the root, which needs PYTHONPATH."""
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "pkg"\nversion = "0.1"\ndependencies = ["numpy"]\n\n'
        '[tool.hatch.envs.default.scripts]\ntrain = "python scripts/train.py"\n'
    )
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "train.py").write_text("import pkg\n")
    proposal = propose(tmp_path)
    assert proposal.values["train"] == {"command": ["python", "scripts/train.py"]}
    assert "scripts/train.py" in proposal.values["source"] and "env" not in proposal.values  # pkg is installed

    (tmp_path / "pyproject.toml").write_text('[tool.pdm.scripts]\ntrain = "python scripts/train.py"\n')
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "src" / "pkg").rename(tmp_path / "pkg")
    proposal = propose(tmp_path)
    assert "scripts/train.py" in proposal.values["source"]
    assert proposal.values["env"] == {"PYTHONPATH": "/app"}


@pytest.mark.parametrize("bentofile", [True, False])
def test_a_bentoml_service_is_served_with_bentoml_serve(tmp_path, bentofile):
    """The shape of bentoml/quickstart: service.py with a class decorated @bentoml.service
    (Summarization, a Hugging Face pipeline), bentofile.yaml naming it (service:
    "service:Summarization"), requirements.txt. Init said 'no server found'."""
    (tmp_path / "requirements.txt").write_text("bentoml\ntorch\ntransformers\n")
    if bentofile:
        (tmp_path / "bentofile.yaml").write_text('service: "service:Summarization"\ninclude:\n  - "*.py"\n')
    (tmp_path / "service.py").write_text(
        "import bentoml\n\n@bentoml.service(resources={'cpu': '2'})\nclass Summarization:\n"
        "    @bentoml.api\n    def summarize(self, text: str) -> str:\n        return text\n"
    )
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    assert proposal.values["serve"] == {
        "command": ["bentoml", "serve", "service:Summarization", "--host", "0.0.0.0", "--port", "3000"],
        "port": 3000,
    }


def test_a_script_that_starts_its_own_server_serves(tmp_path):
    """The shape of Lightning-AI/LitServe's README: server.py defines a LitAPI and, under
    `if __name__ == "__main__":`, runs `ls.LitServer(api).run(port=8000)`. Init said 'no server
    found' and proposed `python serve.py`, a file the project lacks."""
    (tmp_path / "requirements.txt").write_text("litserve\n")
    (tmp_path / "jobs.py").write_text("if __name__ == '__main__':\n    pipeline.run()\n")  # no server
    (tmp_path / "server.py").write_text(
        "import litserve as ls\n\nclass API(ls.LitAPI):\n    def predict(self, x):\n        return x\n\n"
        "if __name__ == '__main__':\n    server = ls.LitServer(API())\n    server.run(port=8001)\n"
    )
    proposal = propose(tmp_path)
    assert proposal.values["serve"] == {"command": ["python", "server.py"], "port": 8001}
    assert any("without host='0.0.0.0' (line 9)" in n for n in proposal.notes)


def test_a_src_package_copied_as_source_is_imported_from_src(tmp_path):
    """A shape common in public services (no one repository's code modelled): requirements.txt,
    src/<pkg>/ with no pyproject.toml, served as `uvicorn <pkg>.api:app` by a Dockerfile that
    copies src/ and sets ENV PYTHONPATH=/app/src. Init proposed `uvicorn heartlab.api:app` and
    `python -m heartlab.train` and only noted that PYTHONPATH should be set: both failed with
    No module named 'heartlab'."""
    (tmp_path / "requirements.txt").write_text("fastapi\nuvicorn\n")
    (tmp_path / "src" / "heartlab").mkdir(parents=True)
    (tmp_path / "src" / "heartlab" / "__init__.py").write_text("")
    (tmp_path / "src" / "heartlab" / "api.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "src" / "heartlab" / "train.py").write_text("print(1)\n")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "evaluate.py").write_text("import heartlab\n")
    _, _, proposal = write_spec(tmp_path, dry_run=True)
    values = proposal.values
    assert values["serve"]["command"][:2] == ["uvicorn", "heartlab.api:app"]
    assert values["train"] == {"command": ["python", "-m", "heartlab.train"]}
    assert values["env"] == {"PYTHONPATH": "/app/src"}
    assert values["source"] == ["src/heartlab/"]


def test_the_project_s_own_dockerfile_command_is_named_beside_init_s(tmp_path):
    """The shape of dpanangian/sentiment-analysis-challenge: app/main.py (a package) and a
    Dockerfile of its own ending `CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port",
    "15400"]`. Init proposed its own uvicorn command on 8000 and said nothing of the command the
    project runs with (its port, its workers)."""
    (tmp_path / "requirements.txt").write_text("fastapi\nuvicorn\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        'FROM python:3.7\nCOPY ./app /app\nCMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", \\\n  "--port", "15400"]\n'
    )
    notes = propose(tmp_path).notes
    assert any(
        n.startswith(
            "the project's own Dockerfile starts its container with `uvicorn app.main:app --host 0.0.0.0 --port 15400`"
        )
        for n in notes
    ), notes
    dockerfile.write_text('FROM python:3.7\nENTRYPOINT ["uvicorn"]\nCMD app.main:app --host 0.0.0.0 --port 8000\n')
    assert not any("starts its container" in n for n in propose(tmp_path).notes)  # the same command


def test_a_uv_workspace_root_says_its_members_dependencies_are_not_in_the_images(tmp_path):
    """The layout of uv's workspace documentation (astral-sh/uv: a root project with
    [tool.uv.workspace] members = ["packages/*"], one uv.lock at the root): the lock gives the
    root project's dependencies (uv export), so a service whose FastAPI is declared by a member
    got images without it, and init said nothing."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "albatross"\nversion = "0.1"\ndependencies = []\n\n'
        '[tool.uv.workspace]\nmembers = ["packages/*"]\n'
    )
    (tmp_path / "uv.lock").write_text("version = 1\n")
    (tmp_path / "packages" / "api").mkdir(parents=True)
    (tmp_path / "packages" / "api" / "pyproject.toml").write_text(
        '[project]\nname = "api"\nversion = "0.1"\ndependencies = ["fastapi"]\n'
    )
    proposal = propose(tmp_path)
    assert proposal.values["requirements"] == {"uv_lock": True}
    assert any(n.startswith("a uv workspace (members: packages/*)") for n in proposal.notes)


def test_a_hub_download_replaces_only_the_not_found_note(tmp_path):
    """A training script that saves its model in the working folder itself, and a server that
    fetches one from the Hub: both are said (the hub note replaced every model note before)."""
    (tmp_path / "requirements.txt").write_text("fastapi\nuvicorn\ntransformers\ntorch\n")
    (tmp_path / "train.py").write_text("import torch\ntorch.save(1, 'model.pt')\n")
    (tmp_path / "sentiment.py").write_text(
        "from fastapi import FastAPI\nfrom transformers import pipeline\nclassifier = pipeline('sentiment-analysis')\n"
        "app = FastAPI()\n@app.post('/predict/')\ndef predict(text: str):\n    return classifier(text)\n"
    )
    notes = " ".join(propose(tmp_path).notes)
    assert "serve fetches its model from a hub when it starts" in notes
    assert "train writes its model in the working folder itself (/app/model.pt)" in notes, notes
