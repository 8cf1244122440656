"""Learns the mean of a few numbers; writes $ARTIFACTS_DIR/mean.json."""

import json
import os
from pathlib import Path

out = Path(os.getenv("ARTIFACTS_DIR", "artifacts"))
out.mkdir(parents=True, exist_ok=True)
values = [2.0, 4.0, 9.0]
(out / "mean.json").write_text(json.dumps({"mean": sum(values) / len(values)}))
print("trained")
