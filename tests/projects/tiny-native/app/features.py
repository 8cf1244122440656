"""The preprocessing step: two measurements and their ratio."""


def transform(rows):
    return [[float(r["length"]), float(r["width"]), float(r["length"]) / float(r["width"])] for r in rows]
