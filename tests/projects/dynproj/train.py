"""Writes the version of six it was trained with."""

import json
import os

import six

folder = os.environ.get("IMAGESMITH_ARTIFACTS", "/artifacts")
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, "model.json"), "w") as fh:
    json.dump({"six": six.__version__}, fh)
