"""The batch prediction function signoff runs (``signoff.predict`` in imagesmith.yaml):
``predict(samples)`` takes the samples (one row of FEATURES values per line of
``signoff/samples.jsonl``) and returns each sample's two class probabilities, from the same
model the server's ``/predict`` answers with."""

import os

import torch

from app.model import make_model

ARTIFACTS = os.environ.get("ARTIFACTS", "/artifacts")


def predict(samples):
    model = make_model()
    model.load_state_dict(torch.load(os.path.join(ARTIFACTS, "model.pt"), map_location="cpu"))
    model.eval()
    with torch.no_grad():
        scores = torch.softmax(model(torch.tensor(samples, dtype=torch.float32)), dim=1)
    return scores.tolist()
