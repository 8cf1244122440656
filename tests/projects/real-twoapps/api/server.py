"""The prediction service: the word counts train.py learned, scored against a sentence."""

import json
import os

from fastapi import FastAPI
from pydantic import BaseModel

MODEL_DIR = os.environ.get("MODEL_DIR", "model")

with open(os.path.join(MODEL_DIR, "weights.json")) as fh:
    WEIGHTS = json.load(fh)

api = FastAPI(title="sentiment")


class Text(BaseModel):
    text: str


@api.post("/v1/predict")
def predict(body: Text) -> dict:
    score = sum(WEIGHTS.get(word, 0) for word in body.text.lower().split())
    return {"score": score, "label": "positive" if score > 0 else "negative"}
