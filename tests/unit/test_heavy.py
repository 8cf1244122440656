"""runtime/heavy.py: a heavy distribution's files moved out of a venv, to a folder of their own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagesmith.runtime import heavy

SITE = "opt/venv/lib/python3.11/site-packages"


def _install(venv_root: Path, name: str, files: dict[str, str], record_extra: tuple[str, ...] = ()) -> None:
    """A distribution as an installer leaves it: its files and a dist-info whose RECORD lists them."""
    site = venv_root / SITE
    info = f"{name.replace('-', '_')}-1.0.dist-info"
    rows = []
    for rel, text in {**files, f"{info}/METADATA": f"Name: {name}\n"}.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        rows.append(f"{rel},sha256=x,1")
    (site / info / "RECORD").write_text("\n".join([*rows, *record_extra, f"{info}/RECORD,,"]) + "\n")


@pytest.fixture
def venv(tmp_path):
    root = tmp_path / "root"
    _install(
        root,
        "nvidia-cuda-runtime-cu12",
        {"nvidia/__init__.py": "", "nvidia/cuda_runtime/lib/libcudart.so.12": "elf", "../../../bin/cudart-tool": "#!"},
    )
    _install(root, "nvidia-cublas-cu12", {"nvidia/cublas/lib/libcublas.so.12": "elf"})
    _install(root, "six", {"six.py": "x = 1\n"})
    cache = root / SITE / "nvidia" / "__pycache__"
    cache.mkdir()
    (cache / "__init__.cpython-311.pyc").write_bytes(b"pyc")
    (root / SITE / "nvidia_cuda_runtime_cu12-1.0.dist-info" / "INSTALLER").write_text("uv\n")  # not in RECORD
    return root


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def test_each_heavy_distribution_moves_whole_to_its_own_folder(venv, tmp_path):
    out = tmp_path / "root" / "python-env-heavy"
    site = str(venv) + "/" + SITE
    moved = heavy.move(site, str(out), ["nvidia-cuda-runtime-cu12"])
    assert moved == {"nvidia-cuda-runtime-cu12": 7}
    prefix = "nvidia-cuda-runtime-cu12" + str(venv) + "/"
    assert _tree(out) == sorted(
        prefix + p
        for p in (
            "opt/venv/bin/cudart-tool",
            f"{SITE}/nvidia/__init__.py",
            f"{SITE}/nvidia/__pycache__/__init__.cpython-311.pyc",
            f"{SITE}/nvidia/cuda_runtime/lib/libcudart.so.12",
            *(f"{SITE}/nvidia_cuda_runtime_cu12-1.0.dist-info/{f}" for f in ("INSTALLER", "METADATA", "RECORD")),
        )
    )
    left = _tree(venv / "opt")
    assert not any("cuda_runtime" in p or p.endswith("cudart-tool") for p in left)
    assert "venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12" in left  # the other one stays
    assert not (venv / SITE / "nvidia" / "cuda_runtime").exists()  # emptied folders go
    assert not (venv / SITE / "nvidia_cuda_runtime_cu12-1.0.dist-info").exists()
    assert (venv / SITE / "six.py").is_file()


def test_refusals_move_nothing(venv, tmp_path):
    site = str(venv) + "/" + SITE
    before = _tree(venv)
    with pytest.raises(heavy.HeavyError, match="the heavy distribution torch is not installed"):
        heavy.move(site, str(tmp_path / "out"), ["six", "torch"])
    with pytest.raises(heavy.HeavyError, match="not a canonical distribution name"):
        heavy.move(site, str(tmp_path / "out"), ["../six"])
    _install(venv, "evil", {"evil.py": ""}, record_extra=("../../../../../etc/passwd,,",))
    with pytest.raises(heavy.HeavyError, match="outside the venv"):
        heavy.move(site, str(tmp_path / "out"), ["six", "evil"])
    assert _tree(venv) == sorted([*before, *_tree_of_evil(venv)])
    assert not (tmp_path / "out").exists()
    assert heavy.main([site]) == 2
    assert heavy.main([site, str(tmp_path / "out"), "torch"]) == 1


def _tree_of_evil(venv: Path) -> list[str]:
    return [p for p in _tree(venv) if "evil" in p]


def test_the_module_is_in_the_runtime_registry():
    from imagesmith import runtime

    assert "heavy" in runtime.MODULES
    assert os.path.basename(heavy.__file__) == "heavy.py"


def test_a_file_two_heavy_records_list_moves_once_with_the_first(venv, tmp_path):
    """nvidia-*-cu12 wheels each list the namespace's nvidia/__init__.py in their RECORD."""
    site = venv / SITE
    record = site / "nvidia_cublas_cu12-1.0.dist-info" / "RECORD"
    record.write_text("nvidia/__init__.py,sha256=x,0\n" + record.read_text())
    out = tmp_path / "out"
    moved = heavy.move(str(site), str(out), ["nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"])
    assert moved == {"nvidia-cublas-cu12": 5, "nvidia-cuda-runtime-cu12": 5}
    init = f"{SITE}/nvidia/__init__.py"
    assert (out / ("nvidia-cublas-cu12" + str(venv)) / init).is_file()
    assert not (out / ("nvidia-cuda-runtime-cu12" + str(venv)) / init).exists()
    assert not (site / "nvidia").exists()
