"""The bench's growth table from iris to scale to torch, and the layer sizes read from
`docker history` (pure: Build records made here, docker's text as it prints it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_build  # noqa: E402
import run  # noqa: E402
from benchlib import parse_history  # noqa: E402

HISTORY = """\
0B\tCMD ["uvicorn" "app.server:app"]
12.3kB\tCOPY app /app/app # buildkit
2.91GB\tRUN /bin/sh -c uv pip install ... # buildkit
35.4MB\tRUN /bin/sh -c python3 -m venv /opt/venv # buildkit
0B\tENV PATH=/usr/local/bin
74.8MB\t/bin/sh -c #(nop) ADD file:abc in /
"""


def test_parse_history_keeps_the_layers_over_the_base_oldest_first():
    assert parse_history(HISTORY, 2) == [
        (35.4, "RUN /bin/sh -c python3 -m venv /opt/venv # buildkit"),
        (2910.0, "RUN /bin/sh -c uv pip install ... # buildkit"),
        (0.0123, "COPY app /app/app # buildkit"),
    ]
    assert parse_history(HISTORY, 9) == []


def _build(tool: str, cold: float, mb: float, layers: list[float]) -> bench_build.Build:
    b = bench_build.Build(tool, Path("."), "x", cold=cold, edit=1.0, mb=mb)
    b.layers = [(m, f"step {i}") for i, m in enumerate(layers)]
    return b


def test_growth_runs_from_iris_to_torch():
    results = {
        "iris": {"imagesmith": [_build("imagesmith", 20, 150, [1, 149])], "plain": [_build("plain", 30, 160, [160])]},
        "scale": {"imagesmith": [_build("imagesmith", 40, 400, [5, 395])], "plain": [_build("plain", 60, 420, [420])]},
        "torch": {
            "imagesmith": [_build("imagesmith", 200, 4000, [5, 3995])],
            "plain": [_build("plain", 400, 4100, [4100])],
        },
    }
    text = run.growth(results)
    head = text.splitlines()[0]
    assert "iris" in head and "scale" in head and "torch" in head and "torch/iris" in head
    cold = next(line for line in text.splitlines() if line.startswith("cold build (s)") and "imagesmith/plain" in line)
    assert "0.67" in cold and "0.50" in cold and "holds" in cold
    assert any(line.startswith("largest layer (MB)") and "3995.00" in line for line in text.splitlines())
    no_torch = run.growth({k: v for k, v in results.items() if k != "torch"})
    assert "scale/iris" in no_torch.splitlines()[0]
