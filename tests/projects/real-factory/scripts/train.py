"""Fits price = slope * size + intercept by least squares. Run from this folder:
`cd scripts && python train.py` (it reads houses.csv beside it, writes ../artifacts/model.json)."""

import csv
import json
import os

with open("houses.csv") as fh:
    rows = [(float(r["size"]), float(r["price"])) for r in csv.DictReader(fh)]
n = len(rows)
mean_x = sum(x for x, _ in rows) / n
mean_y = sum(y for _, y in rows) / n
slope = sum((x - mean_x) * (y - mean_y) for x, y in rows) / sum((x - mean_x) ** 2 for x, _ in rows)
model = {"slope": slope, "intercept": mean_y - slope * mean_x}
os.makedirs(os.path.join("..", "artifacts"), exist_ok=True)
with open(os.path.join("..", "artifacts", "model.json"), "w") as fh:
    json.dump(model, fh)
print("trained", model)
