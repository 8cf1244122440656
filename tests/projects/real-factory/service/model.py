"""The model: a straight line fitted by scripts/train.py, read from the working folder."""

import json
import os

MODEL_PATH = os.path.join("artifacts", "model.json")


def load_model() -> dict:
    with open(MODEL_PATH) as fh:
        return json.load(fh)


def predict(model: dict, size: float) -> float:
    return model["slope"] * size + model["intercept"]
