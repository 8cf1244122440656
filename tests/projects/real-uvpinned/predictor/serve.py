"""POST /predict {"x": …} -> how far x is from the learned mean. The app comes from a factory."""

import json
import os
from pathlib import Path

from flask import Flask, request


def create_app() -> Flask:
    app = Flask(__name__)
    model = json.loads((Path(os.getenv("ARTIFACTS_DIR", "artifacts")) / "mean.json").read_text())

    @app.route("/predict", methods=["POST"])
    def predict():
        return {"distance": float(request.get_json(force=True)["x"]) - model["mean"]}

    return app
