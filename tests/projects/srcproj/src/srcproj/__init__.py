"""A tiny model: a weight per feature, read from package data, scaled at training time."""

import json
from importlib import resources

OFFSET = 0.0  # tests/engine/test_srcproj.py edits this line (a one-line code change)


def weights() -> list[float]:
    """The package data file, read the way an installed package reads it."""
    return json.loads(resources.files(__package__).joinpath("data/weights.json").read_text())["weights"]
