"""Serve the MLP over HTTP: POST /predict with a list of rows (FEATURES values each)."""

import os
from typing import List

import torch
from fastapi import FastAPI

from app.model import device, make_model

ARTIFACTS = os.environ.get("ARTIFACTS", "/artifacts")

app = FastAPI(title="torch-bench")
_device = device()
_model = make_model()
_model.load_state_dict(torch.load(os.path.join(ARTIFACTS, "model.pt"), map_location=_device))
_model.to(_device).eval()


@app.get("/healthz")
def healthz():
    return {"ok": True, "device": str(_device)}


@app.post("/predict")
def predict(rows: List[List[float]]):
    with torch.no_grad():
        scores = torch.softmax(_model(torch.tensor(rows, dtype=torch.float32, device=_device)), dim=1)
    return {"probabilities": scores[:, 1].cpu().tolist()}
