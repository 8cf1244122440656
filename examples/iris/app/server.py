"""Serve the trained iris model over HTTP: POST /predict with a list of measurements."""

import os
from typing import List

import joblib
from fastapi import FastAPI
from pydantic import BaseModel

from preprocessing.features import transform

ARTIFACTS = os.environ.get("ARTIFACTS", "/artifacts")

app = FastAPI(title="iris")
_bundle = joblib.load(os.path.join(ARTIFACTS, "model.joblib"))


class Flower(BaseModel):
    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float


@app.get("/healthz")
def healthz():
    return {"ok": True}


@app.post("/predict")
def predict(flowers: List[Flower]):
    x = transform([f.model_dump() for f in flowers])
    model = _bundle["model"]
    probabilities = model.predict_proba(x)
    return {
        "classes": [_bundle["classes"][i] for i in probabilities.argmax(axis=1)],
        "probabilities": probabilities.tolist(),
    }
