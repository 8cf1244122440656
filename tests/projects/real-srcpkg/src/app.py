"""The Flask app: POST /predict {"petal_length": …, "petal_width": …} -> the nearest species."""

import json

from flask import Flask, render_template, request

from src.features.build import features

app = Flask(__name__)

with open("model/centroids.json") as fh:
    CENTROIDS = json.load(fh)


@app.get("/")
def index():
    return render_template("index.html", species=sorted(CENTROIDS))


@app.post("/predict")
def predict():
    body = request.get_json(force=True)
    x = features(float(body["petal_length"]), float(body["petal_width"]))
    best = min(CENTROIDS, key=lambda name: sum((a - b) ** 2 for a, b in zip(x, CENTROIDS[name])))
    return {"species": best}
