"""The batch prediction function signoff runs (``signoff.predict`` in imagesmith.yaml).

``predict(samples)`` takes the samples (one dict of measurements per line of
``signoff/samples.jsonl``) and returns one row of class scores per sample: the model's
``predict_proba``, in the order of ``classes`` in the bundle. The server's ``/predict`` calls
the same model on the same features, so these are the numbers it serves.
"""

import os

import joblib

from preprocessing.features import transform

ARTIFACTS = os.environ.get("ARTIFACTS", "/artifacts")


def predict(samples):
    bundle = joblib.load(os.path.join(ARTIFACTS, "model.joblib"))
    return bundle["model"].predict_proba(transform(samples))
