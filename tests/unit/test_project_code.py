"""What init reads in a project's code with `ast` (issue 24): apps made by factories, the app with
prediction routes chosen over a health check, the paths code reads and writes, `src/` as a
package, scripts that run from their own folder, the Python a project names, and the model folder
train and serve share. The four tests/projects/real-* fixtures go through init here too; they
are built, trained, served and verified in tests/engine/test_real_shapes.py."""

from __future__ import annotations

import ast
import shutil
import textwrap
from pathlib import Path

import pytest

from imagesmith import project_code
from imagesmith.init.propose import propose
from imagesmith.init.python_version import base_python
from imagesmith.init.write import write_spec
from imagesmith.spec.load import load_spec
from tests.helpers import cli

PROJECTS = Path(__file__).resolve().parents[1] / "projects"


def _modules(**sources: str) -> dict:
    return {
        name: (Path(name.replace(".", "/") + ".py"), ast.parse(textwrap.dedent(text))) for name, text in sources.items()
    }


def test_apps_made_by_factories_are_apps():
    modules = _modules(
        **{
            "svc.factory": """
                from fastapi import FastAPI
                def create_app():
                    application = FastAPI()
                    @application.post("/predict")
                    def p(): ...
                    return application
            """,
            "svc.main": "from svc.factory import create_app\napp = create_app()\n",
            "web": """
                import flask
                def make():
                    app = flask.Flask(__name__)
                    @app.route("/score", methods=["POST"])
                    def s(): ...
                    return app
            """,
        }
    )
    apps = {a.target: a for a in project_code.find_apps(modules)}
    assert set(apps) == {"svc.main:app", "web:make"}  # create_app is called by svc.main: not served itself
    assert apps["svc.main:app"].framework == "fastapi" and not apps["svc.main:app"].factory
    assert apps["svc.main:app"].routes == ("/predict",)
    assert apps["web:make"].framework == "flask" and apps["web:make"].factory and apps["web:make"].rank == 2


def test_the_app_with_prediction_routes_is_chosen_over_a_health_check():
    modules = _modules(
        aaa="from fastapi import FastAPI\napp = FastAPI()\n@app.get('/health')\ndef h(): ...\n",
        zzz="from fastapi import FastAPI\napi = FastAPI()\n@api.post('/v1/predict')\ndef p(): ...\n",
    )
    chosen = project_code.choose_app(project_code.find_apps(modules))
    assert chosen is not None and chosen.target == "zzz:api"


def test_paths_the_code_reads_and_writes():
    tree = ast.parse(
        textwrap.dedent(
            """
            import os, json, joblib
            from pathlib import Path
            HERE = Path(__file__).resolve().parent
            MODEL_DIR = os.environ.get("MODEL_DIR", "model")
            out = Path("artifacts") / "m.joblib"
            joblib.dump(clf, out)
            df = pd.read_csv(HERE / "data" / "x.csv")
            with open(os.path.join(MODEL_DIR, "w.json"), "w") as fh: json.dump({}, fh)
            os.makedirs("logs", exist_ok=True)
            (Path(os.getenv("OUT", "o")) / "r.txt").write_text("x")
            print("not/a/path")
            """
        )
    )
    uses = {(u.where.anchor, u.where.rel, u.where.env, u.write) for u in project_code.path_uses(tree, Path("t.py"))}
    assert uses == {
        ("cwd", "artifacts/m.joblib", None, True),
        ("file", "data/x.csv", None, False),
        ("env", "w.json", "MODEL_DIR", True),
        ("cwd", "logs", None, True),
        ("env", "r.txt", "OUT", True),
    }
    where = project_code.Where("cwd", "../artifacts/model.json")
    assert project_code.resolve(where, "/app/scripts", "/app/scripts") == "/app/artifacts/model.json"


@pytest.mark.parametrize(
    "files, given, base, expected",
    [
        ({".python-version": "3.11.9\n"}, None, None, ("3.11", ".python-version")),
        ({"Dockerfile": "FROM python:3.10-slim AS build\n"}, None, None, ("3.10", "own Dockerfile")),
        (
            {".github/workflows/ci.yml": 'jobs:\n  t:\n    with:\n      python-version: ["3.9", "3.11"]\n'},
            None,
            None,
            ("3.11", "CI runs"),
        ),
        ({}, None, "imagesmith-base:bookworm-py311", ("3.11", "--base")),
        ({}, "3.12", "python:3.11-slim", ("3.12", "--python")),
        ({}, None, None, ("3.13", "requires-python")),
    ],
)
def test_the_python_comes_from_what_the_project_runs_on(tmp_path, files, given, base, expected):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\nrequires-python = ">=3.9"\ndependencies = []\n')
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    p = propose(tmp_path, python=given, base=base)
    assert p.values["python"] == expected[0] and expected[1] in p.reasons["python"], p.reasons["python"]
    assert base_python("python:3.12-slim@sha256:" + "1" * 64) == "3.12"


def test_init_takes_base_and_python_on_the_command_line(tmp_path):
    (tmp_path / "requirements.txt").write_text("six\n")
    proc = cli("init", "-p", str(tmp_path), "--base", "imagesmith-base:bookworm-py311", "--python", "3.11")
    assert proc.returncode == 0, proc.stderr
    spec = load_spec(tmp_path)
    assert (spec.base, spec.python) == ("imagesmith-base:bookworm-py311", "3.11")
    bad = cli("init", "-p", str(tmp_path / "x"), "--python", "three")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def _init(name: str, tmp_path: Path):
    root = Path(shutil.copytree(PROJECTS / name, tmp_path / name))
    path, _, proposal = write_spec(root, base="imagesmith-base:bookworm-py311")
    return load_spec(root), proposal


def test_factory_app_and_a_script_in_scripts_that_reads_beside_itself(tmp_path):
    spec, p = _init("real-factory", tmp_path)
    assert spec.train.command == ("sh", "-c", "cd scripts && exec python train.py")
    assert spec.serve.command[:2] == ("uvicorn", "service.main:app")
    assert set(spec.source) >= {"service", "scripts/train.py", "scripts/houses.csv"}
    assert spec.artifacts == "/app/artifacts"  # ../artifacts from scripts/ is artifacts/ from /app
    assert spec.dockerfile == "imagesmith.Dockerfile" and spec.python == "3.11"
    assert "own Dockerfile" in p.reasons["python"]


def test_two_apps_serve_the_prediction_app_and_say_so(tmp_path):
    spec, p = _init("real-twoapps", tmp_path)
    assert spec.serve.command[:2] == ("uvicorn", "api.server:api")
    assert any("serving api.server:api" in n and "health:app" in n for n in p.notes)
    assert dict(spec.env)["MODEL_DIR"] == spec.artifacts == "/artifacts"


def test_init_names_the_app_it_serves_and_the_others_on_stderr(tmp_path):
    root = Path(shutil.copytree(PROJECTS / "real-twoapps", tmp_path / "real-twoapps"))
    proc = cli("init", "--print", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "serving api.server:api" in proc.stderr and "not health:app: /healthz" in proc.stderr
    assert not (root / "imagesmith.yaml").exists()


def test_a_model_folder_the_code_defaults_to_needs_no_variable(tmp_path):
    (tmp_path / "requirements.txt").write_text("six\n")
    code = "import os\nD = os.environ.get('OUT', '/models')\n"
    (tmp_path / "train.py").write_text(code + "open(os.path.join(D, 'm.json'), 'w')\n")
    (tmp_path / "serve.py").write_text(code + "open(os.path.join(D, 'm.json'))\n")
    p = propose(tmp_path)
    assert p.values["artifacts"] == "/models" and "env" not in p.values


def test_src_used_as_a_package_is_not_a_src_layout(tmp_path):
    spec, p = _init("real-srcpkg", tmp_path)
    assert spec.train.command == ("python", "-m", "src.train")
    assert spec.serve.command[:4] == ("python", "-m", "flask", "--app") and spec.serve.command[4] == "src.app:app"
    assert set(spec.source) == {"src", "data/flowers.csv"} and not spec.preprocessing
    assert spec.artifacts == "/app/model"


def test_a_uv_project_pinned_to_another_python(tmp_path):
    root = Path(shutil.copytree(PROJECTS / "real-uvpinned", tmp_path / "real-uvpinned"))
    p = propose(root)
    assert p.values["python"] == "3.11"  # .python-version, not 3.13 (the newest requires-python allows)
    assert p.values["serve"]["command"][4] == "predictor.serve:create_app()"
    assert p.values["env"] == {"ARTIFACTS_DIR": "/artifacts"}
