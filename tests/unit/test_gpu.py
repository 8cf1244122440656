"""The CUDA a lock ships: detection in every naming scheme, the contract, the driver table, refusals."""

from __future__ import annotations

import pytest

from imagesmith import gpu
from imagesmith.errors import CudaMismatchError, LockError
from imagesmith.lock.pins import Pin


def pins(text: str) -> list[Pin]:
    """``name==version`` lines, as ``Lock.packages`` holds them."""
    out = []
    for line in text.split():
        name, version = line.split("==")
        out.append(Pin(name, version, ("sha256:" + "0" * 64,)))
    return out


# torch 2.15 for linux/x86_64 from PyPI: the CUDA 13 series, unsuffixed nvidia-* beside cuda-toolkit
TORCH_CU13 = pins("""
    cuda-toolkit==13.2.0 filelock==3.20.0 jinja2==3.1.6 networkx==3.5 numpy==2.3.4
    nvidia-cublas==13.4.0.1 nvidia-cuda-cupti==13.2.20 nvidia-cuda-nvrtc==13.2.25 nvidia-cuda-runtime==13.2.21
    nvidia-cudnn-cu13==9.26.0.50 nvidia-cufft==12.1.0.31 nvidia-cufile==1.16.0.49 nvidia-curand==10.4.2.51
    nvidia-cusolver==12.1.0.51 nvidia-cusparse==12.7.1.29 nvidia-cusparselt-cu13==0.8.1
    nvidia-nccl-cu13==2.28.9 nvidia-nvjitlink==13.2.25 nvidia-nvshmem-cu13==3.4.5 nvidia-nvtx==13.2.20
    sympy==1.14.0 torch==2.15.0 triton==3.7.0 typing-extensions==4.15.0
""")
# torch 2.9 from PyPI: the -cu12 names
TORCH_CU12 = pins("""
    filelock==3.20.0 numpy==2.3.4 nvidia-cublas-cu12==12.8.4.1 nvidia-cuda-cupti-cu12==12.8.90
    nvidia-cuda-nvrtc-cu12==12.8.93 nvidia-cuda-runtime-cu12==12.8.90 nvidia-cudnn-cu12==9.10.2.21
    nvidia-cufft-cu12==11.3.3.83 nvidia-cufile-cu12==1.13.1.3 nvidia-curand-cu12==10.3.9.90
    nvidia-cusolver-cu12==11.7.3.90 nvidia-cusparse-cu12==12.5.8.93 nvidia-cusparselt-cu12==0.7.1
    nvidia-nccl-cu12==2.27.5 nvidia-nvjitlink-cu12==12.8.93 nvidia-nvtx-cu12==12.8.90
    torch==2.9.0 triton==3.5.0 nvidia-ml-py==13.580.82
""")
# torch from the PyTorch index: the CUDA runtime is inside the wheel, named by the local version
TORCH_LOCAL = pins("torch==2.7.1+cu126 torchvision==0.22.1+cu126 numpy==2.2.6 pillow==11.3.0")
JAX = pins("""
    jax==0.7.2 jaxlib==0.7.2 jax-cuda12-plugin==0.7.2 jax-cuda12-pjrt==0.7.2 ml-dtypes==0.5.3
    nvidia-cublas-cu12==12.9.1.4 nvidia-cuda-cupti-cu12==12.9.79 nvidia-cuda-nvcc-cu12==12.9.86
    nvidia-cuda-runtime-cu12==12.9.79 nvidia-cudnn-cu12==9.13.0.50 nvidia-cufft-cu12==11.4.1.4
    nvidia-cusolver-cu12==11.7.5.82 nvidia-cusparse-cu12==12.5.10.65 nvidia-nccl-cu12==2.28.3
    nvidia-nvjitlink-cu12==12.9.86 numpy==2.3.4 opt-einsum==3.4.0 scipy==1.16.2
""")
CUPY = pins("cupy-cuda12x==13.6.0 fastrlock==0.8.3 numpy==2.3.4")
CPU = pins("torch==2.7.1+cpu numpy==2.2.6 scikit-learn==1.7.2")


def test_torch_cuda13_stack():
    c = gpu.check(TORCH_CU13)
    assert c.major == 13
    assert c.runtime == ("13.2",)
    assert c.cuda == "13.2"
    assert c.min_driver == "580.65.06"
    names = {p.name for p in c.packages}
    # the unsuffixed libraries whose own version is 12.x/10.x are still CUDA 13's
    assert {"nvidia-cufft", "nvidia-curand", "nvidia-cusolver", "cuda-toolkit", "nvidia-cudnn-cu13"} <= names
    assert "nvidia-cufft" in c.majors[13]
    assert "torch" not in names  # the PyPI torch names no CUDA; its nvidia-* dependencies do
    triton = next(p for p in c.packages if p.name == "triton")
    assert triton.major is None


def test_cu12_stack():
    c = gpu.check(TORCH_CU12)
    assert (c.major, c.runtime, c.min_driver) == (12, ("12.8",), "525.60.13")
    assert "nvidia-ml-py" not in {p.name for p in c.packages}  # NVML bindings ship no CUDA


def test_torch_local_version():
    c = gpu.check(TORCH_LOCAL)
    assert c.major == 12 and c.runtime == ("12.6",)
    assert c.majors[12] == ("torch", "torchvision")


def test_jax():
    c = gpu.check(JAX)
    assert c.major == 12 and c.runtime == ("12.9",)
    assert {"jax-cuda12-plugin", "jax-cuda12-pjrt"} <= set(c.majors[12])


def test_cupy():
    c = gpu.check(CUPY)
    assert c.major == 12 and c.runtime == () and c.cuda == "12"
    assert c.min_driver == "525.60.13"


def test_cpu_lock_has_no_contract():
    c = gpu.check(CPU)
    assert c.major is None and c.packages == () and c.min_driver is None and c.cuda is None


def test_mixed_majors_refused_naming_packages_and_fix():
    mixed = TORCH_CU12 + pins("cupy-cuda11x==13.6.0 onnxruntime-gpu==1.23.2")
    with pytest.raises(CudaMismatchError) as err:
        gpu.check(mixed)
    msg = str(err.value)
    assert "mixes CUDA majors" in msg and "CUDA 11: cupy-cuda11x" in msg and "CUDA 12: nvidia-cublas-cu12" in msg
    assert "-cu12" in err.value.hint and "imagesmith lock" in err.value.hint
    assert isinstance(err.value, LockError) and err.value.exit_code == 2


def test_cu13_torch_with_cu12_library_refused():
    with pytest.raises(CudaMismatchError, match="CUDA 12: cupy-cuda12x"):
        gpu.check(TORCH_CU13 + CUPY)


def test_spec_major_differs():
    with pytest.raises(CudaMismatchError) as err:
        gpu.check(TORCH_CU13, want="12")
    assert "ships CUDA 13.2" in str(err.value) and "cuda: '12'" in str(err.value)
    assert "cuda: '13'" in err.value.hint
    assert gpu.check(TORCH_CU13, want="13").major == 13
    assert gpu.check(CPU, want="12").major is None  # no CUDA pinned: nothing to compare


def test_driver_table_covers_every_major_and_is_ordered():
    assert sorted(gpu.MIN_DRIVER) == [11, 12, 13]
    keys = [gpu.version_key(gpu.MIN_DRIVER[m]) for m in sorted(gpu.MIN_DRIVER)]
    assert keys == sorted(keys)


def test_as_dict_is_deterministic():
    d = gpu.contract(reversed(TORCH_CU12)).as_dict()
    assert d == gpu.contract(TORCH_CU12).as_dict()
    assert d["major"] == 12 and d["min_driver"] == "525.60.13" and d["cuda"] == "12.8"


# ---- the spec's `cuda` and the refusal at lock time (lock_project with the recording engine of test_lock)

from imagesmith.errors import SpecError  # noqa: E402
from imagesmith.lock.update import ensure_fresh, lock_project  # noqa: E402
from imagesmith.spec.load import load_spec  # noqa: E402
from tests.unit.test_lock import RecordingEngine, RecordingResolver  # noqa: E402
from tests.unit.test_lock import project as project  # noqa: E402,F401


class CudaResolver(RecordingResolver):
    def __init__(self, answer):
        super().__init__()
        self.answer = answer

    def resolve(self, request):
        if [p.name for p in request.inputs] == ["installer.in"]:
            return super().resolve(request)
        self.requests.append(request)
        return list(self.answer)


def _spec_with(root, extra: str) -> None:
    path = root / "imagesmith.yaml"
    path.write_text(path.read_text() + extra)


@pytest.mark.parametrize("value, want", [('"12"', "12"), ("13", "13"), ("'11'", "11")])
def test_spec_cuda_key(project, value, want):
    root, _ = project
    _spec_with(root, f"cuda: {value}\n")
    assert load_spec(root).cuda == want


@pytest.mark.parametrize("value", ['"12.6"', '"cu12"', "true", '"10"', "[12]"])
def test_spec_cuda_key_refuses_what_is_not_a_known_major(project, value):
    root, _ = project
    _spec_with(root, f"cuda: {value}\n")
    with pytest.raises(SpecError, match=r"cuda: expected a CUDA major, one of 11, 12, 13"):
        load_spec(root)


def test_spec_cuda_typo_has_did_you_mean(project):
    root, _ = project
    _spec_with(root, 'cudaa: "12"\n')
    with pytest.raises(SpecError, match="did you mean 'cuda'"):
        load_spec(root)


def test_lock_refuses_cuda_other_than_the_spec_and_writes_nothing(project, monkeypatch):
    root, _ = project
    lock_project(load_spec(root), RecordingEngine())  # a CPU lock first: it must survive the refusal
    before = (root / "imagesmith.lock").read_bytes(), (root / "requirements.lock").read_bytes()
    _spec_with(root, 'cuda: "12"\n')
    (root / "requirements.txt").write_text("-c constraints.txt\ntorch\n")
    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: CudaResolver(TORCH_CU13))
    with pytest.raises(CudaMismatchError, match=r"ships CUDA 13.2 .* but the spec declares cuda: '12'"):
        lock_project(load_spec(root), RecordingEngine())
    assert ((root / "imagesmith.lock").read_bytes(), (root / "requirements.lock").read_bytes()) == before


def test_lock_refuses_mixed_majors_and_accepts_one(project, monkeypatch):
    root, _ = project
    (root / "requirements.txt").write_text("-c constraints.txt\ntorch\ncupy-cuda11x\n")
    monkeypatch.setattr(
        "imagesmith.lock.update.get_resolver",
        lambda name, engine=None: CudaResolver(TORCH_CU12 + pins("cupy-cuda11x==13.6.0")),
    )
    with pytest.raises(CudaMismatchError, match="mixes CUDA majors"):
        lock_project(load_spec(root), RecordingEngine())
    assert not (root / "imagesmith.lock").exists()
    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: CudaResolver(TORCH_CU12))
    _spec_with(root, "cuda: 12\n")
    assert lock_project(load_spec(root), RecordingEngine()).written
    assert ensure_fresh(load_spec(root)).packages  # the build's read of the lock passes the same check
    (root / "imagesmith.yaml").write_text((root / "imagesmith.yaml").read_text().replace("cuda: 12", "cuda: 13"))
    with pytest.raises(CudaMismatchError, match="declares cuda: '13'"):
        ensure_fresh(load_spec(root))  # the spec moved after locking: the build refuses too


@pytest.mark.parametrize(
    "name, version, major",
    [
        ("nvidia-dali-cuda120", "1.51.2", 12),  # the major at the end, not the unsuffixed CUDA 13 series
        ("cupy-cuda115", "10.6.0", 11),  # CuPy's older per-minor names
        ("cupy-cuda13x", "14.0.0", 13),
        ("jax-cuda13-plugin", "0.8.1", 13),
        ("nvidia-cuda-runtime-cu11", "11.8.89", 11),
        ("torch", "2.9.1+cu130", 13),
        ("torch", "2.4.1+cu118", 11),
    ],
)
def test_classify_reads_the_major(name, version, major):
    found = gpu.classify(name, version)
    assert found is not None and found.major == major


@pytest.mark.parametrize(
    "name, version",
    [("nvidia-modelopt", "0.37.0"), ("nvidia-ml-py", "13.580.82"), ("torch", "2.7.1+cpu"), ("torch", "2.9.0")],
)
def test_classify_ignores_what_brings_no_cuda(name, version):
    assert gpu.classify(name, version) is None


@pytest.mark.parametrize(
    "stack, cuda, major, min_driver, brings",
    [
        (
            TORCH_CU13,
            "13.2",
            13,
            "580.65.06",
            {"cuda-toolkit", "nvidia-cublas", "nvidia-cudnn-cu13", "nvidia-nccl-cu13"},
        ),
        (TORCH_CU12, "12.8", 12, "525.60.13", {"nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12", "nvidia-nccl-cu12"}),
        (JAX, "12.9", 12, "525.60.13", {"jax-cuda12-plugin", "jax-cuda12-pjrt", "nvidia-cudnn-cu12"}),
        (CUPY, "12", 12, "525.60.13", {"cupy-cuda12x"}),
    ],
    ids=["torch-2.15-cu13", "torch-2.9-cu12", "jax-cuda12", "cupy-cuda12x"],
)
def test_the_written_lock_carries_the_contract_and_the_standalone_check_reads_the_same(
    project, monkeypatch, stack, cuda, major, min_driver, brings
):
    """Each stack locked into a real imagesmith.lock: its gpu section, and the stdlib-only reading of
    that file (gpu_host.pins_from_json, as scripts/gpu-check.sh does) give the same contract."""
    import json

    from imagesmith import gpu_host

    root, _ = project
    (root / "requirements.txt").write_text("-c constraints.txt\nthe-stack\n")
    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: CudaResolver(stack))
    _spec_with(root, f'cuda: "{major}"\n')
    lock_project(load_spec(root), RecordingEngine())
    data = json.loads((root / "imagesmith.lock").read_text())
    section = data["gpu"] if "gpu" in data else next(iter(data["platforms"].values()))["gpu"]
    assert (section["cuda"], section["major"], section["min_driver"]) == (cuda, major, min_driver)
    assert brings <= set(section["majors"][str(major)])
    again = gpu.check(gpu_host.pins_from_json(data))
    assert (again.cuda, again.major, again.min_driver) == (cuda, major, min_driver)


def test_a_mixed_major_lock_is_refused_naming_the_packages_of_each_major(project, monkeypatch):
    root, _ = project
    (root / "requirements.txt").write_text("-c constraints.txt\ntorch\njax[cuda12]\n")
    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: CudaResolver(TORCH_CU13 + JAX))
    with pytest.raises(CudaMismatchError) as err:
        lock_project(load_spec(root), RecordingEngine())
    message = str(err.value)
    assert (
        "CUDA 12: jax-cuda12-pjrt, jax-cuda12-plugin, nvidia-cublas-cu12, nvidia-cuda-cupti-cu12 and 8 more" in message
    )
    assert "CUDA 13: cuda-toolkit, nvidia-cublas, nvidia-cuda-cupti, nvidia-cuda-nvrtc and 12 more" in message
    assert "-cu13" in err.value.hint
    assert not (root / "imagesmith.lock").exists()
