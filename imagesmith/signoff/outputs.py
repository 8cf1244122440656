"""Comparing outputs, pure: row by row and value by value against the golden outputs
(numpy's ``allclose`` rule), and the predicted classes of rows with two or more values."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import WORST


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
    per_sample: list[dict] = field(default_factory=list)  # each sample's largest deviation

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
            "max_abs_error": self.max_abs,
            "max_rel_error": self.max_rel,
            "out_of_tolerance": self.out_of_tolerance,
            "classes_checked": self.classes_checked,
            "flipped": self.flipped[:WORST],
            "flipped_count": len(self.flipped),
            "worst": self.worst,
            "shape": self.shape,
            "per_sample": self.per_sample,
        }

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
    deviations = []
    classes = bool(golden) and all(len(r) >= 2 for r in golden)
    result.classes_checked = classes
    for i, (g_row, n_row) in enumerate(zip(golden, now)):
        if len(g_row) != len(n_row):
            result.shape.append(f"sample {i}: {len(n_row)} values, golden has {len(g_row)}")
            continue
        row = {"sample": i, "max_abs_error": 0.0, "max_rel_error": 0.0, "out_of_tolerance": 0}
        result.per_sample.append(row)
        for j, (g, n) in enumerate(zip(g_row, n_row)):
            result.values += 1
            if math.isnan(g) or math.isnan(n):
                ok = math.isnan(g) and math.isnan(n)
                err = 0.0 if ok else math.inf
            else:
                err = abs(n - g)
                ok = err <= atol + rtol * abs(g)
            rel = err / abs(g) if g and not math.isnan(g) else (0.0 if err == 0 else math.inf)
            if err > result.max_abs:
                result.max_abs = err
            if rel > result.max_rel:
                result.max_rel = rel
            row["max_abs_error"] = max(row["max_abs_error"], err)
            row["max_rel_error"] = max(row["max_rel_error"], rel)
            if not ok:
                row["out_of_tolerance"] += 1
                result.out_of_tolerance += 1
                deviations.append({"sample": i, "output": j, "golden": g, "now": n, "abs_error": err, "rel_error": rel})
        if classes:
            row["class_flipped"] = _argmax(g_row) != _argmax(n_row)
        if classes and _argmax(g_row) != _argmax(n_row):
            result.flipped.append({"sample": i, "golden": _argmax(g_row), "now": _argmax(n_row)})
    deviations.sort(key=lambda d: (-d["abs_error"], d["sample"], d["output"]))
    result.worst = deviations[:worst]
    return result
