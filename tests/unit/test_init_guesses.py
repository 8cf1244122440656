"""`imagesmith init`'s guesses on ordinary projects that the shapes it learnt tonight must not
turn wrong (a review of tests/unit/test_init_shapes.py's changes)."""

from __future__ import annotations

from imagesmith.init.propose import propose

FLASK_THAT_TRAINS = """import os, pickle
from flask import Flask

app = Flask(__name__)
if not os.path.exists("model.pkl"):
    pickle.dump({"w": 1}, open("model.pkl", "wb"))
model = pickle.load(open("model.pkl", "rb"))


@app.route("/predict", methods=["POST"])
def predict():
    return str(model)
"""


def test_a_server_that_writes_its_model_when_missing_is_no_training_script(tmp_path):
    (tmp_path / "requirements.txt").write_text("flask\n")
    (tmp_path / "app.py").write_text(FLASK_THAT_TRAINS)
    proposal = propose(tmp_path)
    assert proposal.values["serve"]["command"][-1] == "8000" and "app:app" in proposal.values["serve"]["command"]
    # `python app.py` as train started the server in the train container: `imagesmith run train` never ended
    assert proposal.values["train"] == {"command": ["python", "train.py"]}
    assert "no training script found: edit train.command" in proposal.notes


def test_a_script_that_runs_a_job_when_run_is_no_server(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "download.py").write_text(
        'import subprocess\n\nif __name__ == "__main__":\n    subprocess.run(["curl", "-O", "https://x/d.csv"], check=True)\n'
    )
    proposal = propose(tmp_path)  # it was "download.py starts its own server when run"
    assert proposal.values["serve"] == {"command": ["python", "serve.py"], "port": 8000}
    assert "no server found: edit serve.command and serve.port" in proposal.notes


def test_a_model_loaded_from_a_path_the_project_lacks_is_no_hub_download(tmp_path):
    (tmp_path / "requirements.txt").write_text("fastapi\nuvicorn\ntransformers\n")
    (tmp_path / "main.py").write_text(
        "from fastapi import FastAPI\nfrom transformers import AutoModel\n\napp = FastAPI()\n"
        'model = AutoModel.from_pretrained("./outputs/checkpoint-final")\n'
        'tokenizer = AutoModel.from_pretrained("/models/tokenizer")\n'
    )
    notes = propose(tmp_path).notes  # the checkpoint train writes was "fetched from a hub when it starts"
    assert not [n for n in notes if "from a hub" in n]
    assert any(n.startswith("where train saves the model was not found") for n in notes)


def test_a_conda_package_the_requirements_spell_otherwise_is_not_said_missing(tmp_path):
    (tmp_path / "environment.yml").write_text(
        "dependencies:\n  - python=3.10\n  - scikit-learn=1.3\n  - ruamel.yaml\n  - cudatoolkit=11.8\n"
    )
    (tmp_path / "requirements.txt").write_text("scikit_learn==1.3.0\nruamel-yaml\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    said = [n for n in propose(tmp_path).notes if n.startswith("environment.yml is not read")]
    assert said and "(cudatoolkit)" in said[0]  # it said (scikit-learn, ruamel.yaml, cudatoolkit)


def test_a_makefile_recipe_line_that_changes_folder_does_not_move_the_next_line(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "download.py").write_text("print(1)\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "Makefile").write_text("train:\n\tcd data && python download.py\n\tpython train.py --epochs 3\n")
    command = propose(tmp_path).values["train"]["command"]
    # joined as `cd data && python download.py && python train.py`, train.py was looked for in data/
    assert command == ["sh", "-c", "(cd data && python download.py) && python train.py --epochs 3"]


def test_a_blank_or_comment_line_inside_a_makefile_recipe_does_not_end_it(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "prep.py").write_text("print(1)\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "Makefile").write_text(
        "train:\n\tpython prep.py\n\n# then the model\n\tpython train.py --epochs 3\n\n## Evaluate\nevaluate:\n\tpython ev.py\n"
    )
    command = propose(tmp_path).values["train"]["command"]  # it was python prep.py alone
    assert command == ["sh", "-c", "python prep.py && python train.py --epochs 3"]
