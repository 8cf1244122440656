"""Learns one weight per word from a few labelled sentences; writes $MODEL_DIR/weights.json."""

import json
import os

EXAMPLES = [("a good and great day", 1), ("bad and sad news", -1), ("great food", 1), ("sad ending", -1)]

weights: dict = {}
for text, label in EXAMPLES:
    for word in text.split():
        weights[word] = weights.get(word, 0) + label
model_dir = os.environ.get("MODEL_DIR", "model")
os.makedirs(model_dir, exist_ok=True)
with open(os.path.join(model_dir, "weights.json"), "w") as fh:
    json.dump(weights, fh, sort_keys=True)
print("trained", len(weights), "words")
