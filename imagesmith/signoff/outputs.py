"""Comparing outputs, pure: row by row and value by value against the golden outputs
(numpy's ``allclose`` rule), and the predicted classes of rows with two or more values."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import PER_SAMPLE, WORST

_FLOATS = {"golden", "now", "abs_error", "rel_error", "max_abs_error", "max_rel_error"}  # of worst and per_sample rows


def finite(value: float) -> float | str:
    """A number as a signoff record holds it: itself when finite, else ``"NaN"``, ``"Infinity"``
    or ``"-Infinity"``. JSON has no such numbers: Python writes a bare ``NaN``, which
    ``JSON.parse`` and Go refuse and jq 1.6 reads as null (and ``Infinity`` as 1.8e308)."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _finite_row(row: dict) -> dict:
    """A ``worst`` or ``per_sample`` row as the record holds it: its numbers ``finite``."""
    return {k: finite(v) if k in _FLOATS else v for k, v in row.items()}


@dataclass
class Comparison:
    rtol: float
    atol: float
    samples: int = 0
    values: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    out_of_tolerance: int = 0
    worst: list[dict] = field(default_factory=list)  # the largest deviations beyond tolerance
    classes_checked: bool = False
    flipped: list[dict] = field(default_factory=list)  # {"sample", "golden", "now"}
    shape: list[str] = field(default_factory=list)  # rows that cannot be compared
    per_sample: list[dict] = field(default_factory=list)  # each sample's largest deviation (see listed_samples)

    @property
    def outputs_ok(self) -> bool:
        return not self.shape and self.out_of_tolerance == 0

    @property
    def classes_ok(self) -> bool:
        return not self.flipped

    def as_json(self) -> dict:
        return {
            "samples": self.samples,
            "values": self.values,
            "max_abs_error": finite(self.max_abs),
            "max_rel_error": finite(self.max_rel),
            "out_of_tolerance": self.out_of_tolerance,
            "classes_checked": self.classes_checked,
            "flipped": self.flipped[:WORST],
            "flipped_count": len(self.flipped),
            "worst": [_finite_row(w) for w in self.worst],
            "shape": self.shape[:WORST],
            "shape_count": len(self.shape),
            "per_sample": [_finite_row(r) for r in self.listed_samples()],
            "per_sample_count": len(self.per_sample),
        }

    def listed_samples(self, limit: int = PER_SAMPLE) -> list[dict]:
        """``per_sample`` as the record lists it: every row when there are at most ``limit``, else
        the ``limit`` rows that moved most (a flipped class first, then the largest absolute
        error), in sample order: the record stays small whatever the number of samples."""
        if len(self.per_sample) <= limit:
            return self.per_sample
        ranked = sorted(self.per_sample, key=lambda r: (not r.get("class_flipped"), -r["max_abs_error"], r["sample"]))
        return sorted(ranked[:limit], key=lambda r: r["sample"])

    def outputs_detail(self) -> str:
        if self.shape:
            return "; ".join(self.shape[:3]) + (f" (and {len(self.shape) - 3} more)" if len(self.shape) > 3 else "")
        where = ""
        if self.worst:
            w = self.worst[0]
            where = f" at sample {w['sample']} output {w['output']}"
        head = (
            f"{self.out_of_tolerance} of {self.values} values out of tolerance"
            if self.out_of_tolerance
            else f"all {self.values} values within tolerance"
        )
        return (
            f"{head} (rtol {self.rtol:g}, atol {self.atol:g}); max abs error {self.max_abs:.3g}{where}, "
            f"max rel error {self.max_rel:.3g}"
        )

    def classes_detail(self) -> str:
        if not self.classes_checked:
            return "rows are single values: no classes to compare"
        if not self.flipped:
            return f"all {self.samples} predicted classes agree"
        shown = ", ".join(f"sample {f['sample']} ({f['golden']} -> {f['now']})" for f in self.flipped[:5])
        more = f", and {len(self.flipped) - 5} more" if len(self.flipped) > 5 else ""
        return f"{len(self.flipped)} of {self.samples} predicted classes flipped: {shown}{more}"


def _argmax(row: list[float]) -> int:
    best = 0
    for i, v in enumerate(row):
        if v > row[best] or (math.isnan(row[best]) and not math.isnan(v)):
            best = i
    return best


def compare(
    golden: list[list[float]], now: list[list[float]], *, rtol: float, atol: float, worst: int = WORST
) -> Comparison:
    """Compare outputs row by row, value by value (``|now - golden| <= atol + rtol * |golden|``;
    NaN only matches NaN), and the predicted classes of rows with two or more values."""
    result = Comparison(rtol=rtol, atol=atol, samples=len(golden))
    if len(golden) != len(now):
        result.shape.append(f"{len(now)} output rows for {len(golden)} golden rows")
        return result
    deviations = []  # (-abs error, sample, output, golden, now, rel error): sorted, largest first
    classes = bool(golden) and all(len(r) >= 2 for r in golden)
    result.classes_checked = classes
    isnan, inf = math.isnan, math.inf
    max_abs, max_rel, values, out_of_tolerance = result.max_abs, result.max_rel, 0, 0
    for i, (g_row, n_row) in enumerate(zip(golden, now)):
        if len(g_row) != len(n_row):
            result.shape.append(f"sample {i}: {len(n_row)} values, golden has {len(g_row)}")
            continue
        row_abs = row_rel = 0.0
        row_out = 0
        for j, (g, n) in enumerate(zip(g_row, n_row)):
            if isnan(g) or isnan(n):
                ok = isnan(g) and isnan(n)
                err = 0.0 if ok else inf
            else:
                err = abs(n - g)
                ok = err <= atol + rtol * abs(g)
            rel = err / abs(g) if g and not isnan(g) else (0.0 if err == 0 else inf)
            if err > row_abs:  # as max(row_abs, err): a NaN never replaces
                row_abs = err
            if rel > row_rel:
                row_rel = rel
            if not ok:
                row_out += 1
                deviations.append((-err, i, j, g, n, rel))
        values += len(g_row)
        out_of_tolerance += row_out
        if row_abs > max_abs:
            max_abs = row_abs
        if row_rel > max_rel:
            max_rel = row_rel
        row = {"sample": i, "max_abs_error": row_abs, "max_rel_error": row_rel, "out_of_tolerance": row_out}
        result.per_sample.append(row)
        if classes:
            was, is_now = _argmax(g_row), _argmax(n_row)
            row["class_flipped"] = was != is_now
            if was != is_now:
                result.flipped.append({"sample": i, "golden": was, "now": is_now})
    result.max_abs, result.max_rel, result.values, result.out_of_tolerance = max_abs, max_rel, values, out_of_tolerance
    if not values and not result.shape:  # every row empty (or no rows): nothing was compared, nothing holds
        result.shape.append(
            f"no values to compare: the batch function returned an empty row for all {len(golden)} samples"
        )
    deviations.sort()  # the order of (-abs error, sample, output): the same as sorting dicts by that key
    result.worst = [
        {"sample": i, "output": j, "golden": g, "now": n, "abs_error": -neg, "rel_error": rel}
        for neg, i, j, g, n, rel in deviations[:worst]
    ]
    return result
