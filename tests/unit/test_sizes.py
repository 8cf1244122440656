"""`inspect --sizes`: what a RECORD says a distribution weighs, the .dist-info names tried, the
archive reader's bound on the bytes it keeps, and the report's text."""

from __future__ import annotations

import io
import tarfile

from imagesmith.engine.container_files import SMALL_FILE, archive_entries
from imagesmith.sizes import MAX_FILE_SIZE, dist_info_names, human, record_bytes, sizes_lines

RECORD = """\
nvidia/cuda_runtime/lib/libcudart.so.12,sha256=abc,707904
nvidia/cuda_runtime/__init__.py,sha256=def,0
"nvidia/cuda_runtime/odd,name.txt",sha256=ghi,12
nvidia_cuda_runtime_cu12-12.4.127.dist-info/RECORD,,
nvidia/__pycache__/__init__.cpython-311.pyc,,
"""


def test_record_bytes_sums_the_size_column():
    assert record_bytes(RECORD) == (707904 + 0 + 12, 3)


def test_record_bytes_believes_no_forged_or_broken_size():
    forged = f"a,sha256=x,{MAX_FILE_SIZE + 1}\nb,sha256=y,-5\nc,sha256=z,1e9\nd,sha256=w,{'9' * 40}\ne,sha256=v,7\nshort,row\n"
    assert record_bytes(forged) == (7, 1)
    assert record_bytes("") == (0, 0)


def test_dist_info_names_try_the_standard_spelling_first():
    assert dist_info_names("nvidia-cuda-runtime-cu12", "12.4.127") == [
        "nvidia_cuda_runtime_cu12-12.4.127.dist-info",
        "nvidia-cuda-runtime-cu12-12.4.127.dist-info",
    ]
    assert dist_info_names("PyYAML", "6.0.1") == ["pyyaml-6.0.1.dist-info", "PyYAML-6.0.1.dist-info"]
    assert dist_info_names("six", "1.16.0") == ["six-1.16.0.dist-info"]


def _tar(name: str, size: int) -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        tar.addfile(info, io.BytesIO(b"x" * size))
    return [buf.getvalue()]


def test_archive_entries_keep_a_larger_file_only_when_asked():
    size = SMALL_FILE + 10  # a RECORD as large as torch's is over the default
    (default,) = archive_entries("/v/RECORD", _tar("RECORD", size))
    assert default.kind == "file" and default.data is None and default.sha256
    (asked,) = archive_entries("/v/RECORD", _tar("RECORD", size), small=4 << 20)
    assert asked.path == "/v/RECORD" and asked.data == b"x" * size


def test_human_units():
    assert [human(n) for n in (None, 0, 999, 1000, 1_234_567, 4_000_000_000, 12_345_000_000_000)] == [
        "?",
        "0 B",
        "999 B",
        "1.0 kB",
        "1.2 MB",
        "4.0 GB",
        "12345.0 GB",
    ]


def test_sizes_lines_largest_first_with_cuda_summed():
    data = {
        "source": "img:serve",
        "kind": "image",
        "id": "sha256:1",
        "compressed": False,
        "total": 3_000_000,
        "layers": [
            {"index": 1, "diff_id": "sha256:" + "a" * 64, "bytes": 1_000_000, "step": None},
            {"index": 2, "diff_id": "sha256:" + "b" * 64, "bytes": 2_000_000, "step": "COPY /python-env/ /"},
        ],
        "distributions": {
            "six": {"version": "1.16.0", "bytes": 40_000, "files": 3},
            "nvidia-cuda-runtime-cu12": {"version": "12.4.127", "bytes": 900_000, "files": 20},
        },
        "distributions_total": 940_000,
        "unread": {"odd": "no odd-1.dist-info/RECORD in /opt/venv/lib/python3.11/site-packages"},
        "cuda": {"bytes": 900_000, "distributions": ["nvidia-cuda-runtime-cu12"]},
        "notes": [],
    }
    assert sizes_lines(data) == [
        "image: img:serve",
        "id:       sha256:1",
        "layers (2, 3.0 MB uncompressed):",
        "    1     1.0 MB  sha256:aaaaaaaaaaaa",
        "    2     2.0 MB  COPY /python-env/ /",
        "distributions (2, 940.0 kB as their RECORDs list):",
        "  nvidia-cuda-runtime-cu12   900.0 kB  12.4.127  (20 files)  CUDA",
        "  six                         40.0 kB  1.16.0  (3 files)",
        "  odd: not read (no odd-1.dist-info/RECORD in /opt/venv/lib/python3.11/site-packages)",
        "CUDA:     900.0 kB in 1 distribution (nvidia-cuda-runtime-cu12)",
    ]


def test_layers_without_a_matching_history_have_no_sizes():
    from imagesmith.engine import HistoryEntry, ImageInfo
    from imagesmith.sizes import _layers
    from imagesmith.verify_source import Source

    info = ImageInfo(
        ref="img", id="sha256:1", labels={}, layers=("sha256:a", "sha256:b"), repo_digests=(), config={},
        size=0, created="",
    )  # fmt: skip

    class Engine:
        def __init__(self, history):
            self.answer = history

        def history(self, image, layers):
            return self.answer

    notes: list[str] = []
    steps = (HistoryEntry("", False, 10), HistoryEntry("ENV A=1", True, 0), HistoryEntry("RUN b", False, 20))
    layers, compressed = _layers(Engine(steps), Source("img", "image", info=info), notes)  # type: ignore[arg-type]
    assert [(x["bytes"], x["step"]) for x in layers] == [(10, None), (20, "RUN b")] and not compressed and notes == []
    layers, _ = _layers(Engine(None), Source("img", "image", info=info), notes)  # type: ignore[arg-type]
    assert [x["bytes"] for x in layers] == [None, None]
    assert notes == ["the engine's build history does not match the image's layers: layer sizes are not known"]
