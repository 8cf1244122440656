"""Serve the LightGBM model over HTTP: POST /predict with a list of rows (one value per feature)."""

import os
from typing import Dict, List

import joblib
import pandas as pd
from fastapi import FastAPI

from app.features import FEATURES

ARTIFACTS = os.environ.get("ARTIFACTS", "/artifacts")

app = FastAPI(title="scale")
_model = joblib.load(os.path.join(ARTIFACTS, "model.joblib"))


@app.get("/healthz")
def healthz():
    return {"ok": True}


@app.post("/predict")
def predict(rows: List[Dict[str, float]]):
    frame = pd.DataFrame(rows, columns=list(FEATURES))
    return {"probabilities": _model.predict_proba(frame)[:, 1].tolist()}
