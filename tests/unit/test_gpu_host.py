"""The host check: nvidia-smi's real output shapes (a fake nvidia-smi on PATH, run as a real
subprocess), the driver against the contract, no GPU, and `imagesmith verify LOCK --host`."""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from imagesmith import gpu, gpu_host
from imagesmith.errors import VerifyError
from imagesmith.gpu_host import HostGpu, NoGpuError
from imagesmith.lock.update import lock_project
from imagesmith.spec.load import load_spec
from tests.helpers import cli_in_process
from tests.unit.test_gpu import CPU, TORCH_CU12, TORCH_CU13, CudaResolver
from tests.unit.test_lock import RecordingEngine
from tests.unit.test_lock import project as project  # noqa: F401

H100 = "580.82.07, 9.0, 81559 MiB, NVIDIA H100 80GB HBM3\n580.82.07, 9.0, 81559 MiB, NVIDIA H100 80GB HBM3\n"
RTX = "550.54.15, 8.6, 24576 MiB, NVIDIA GeForce RTX 3090\n"
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)


def fake_smi(tmp_path, monkeypatch, script: str) -> None:
    """An executable nvidia-smi (POSIX sh) first on PATH; it logs its arguments to calls.log."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    smi = bindir / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls.log\n{script}\n')
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin")


def printing(out: str, code: int = 0, to: str = "") -> str:
    return f"cat {to}<<'EOF'\n{out}EOF\nexit {code}"


def test_parse_real_shapes():
    assert gpu_host.parse_smi(H100) == (
        HostGpu(0, "580.82.07", "9.0", "NVIDIA H100 80GB HBM3"),
        HostGpu(1, "580.82.07", "9.0", "NVIDIA H100 80GB HBM3"),
    )
    assert gpu_host.parse_smi("470.82.01, 15109 MiB, Tesla T4\n", with_cap=False) == (
        HostGpu(0, "470.82.01", None, "Tesla T4"),
    )
    assert gpu_host.parse_smi("535.104.05, [N/A], 23028 MiB, NVIDIA A10G\n")[0].compute_cap is None


def test_query_runs_nvidia_smi_with_the_query(tmp_path, monkeypatch):
    fake_smi(tmp_path, monkeypatch, printing(RTX))
    assert gpu_host.query() == (HostGpu(0, "550.54.15", "8.6", "NVIDIA GeForce RTX 3090"),)
    assert (tmp_path / "calls.log").read_text() == " ".join(gpu_host.QUERY) + "\n"


def test_query_falls_back_when_the_driver_lacks_compute_cap(tmp_path, monkeypatch):
    script = (
        'case "$*" in *compute_cap*) echo \'Field "compute_cap" is not a valid field to query.\' >&2; exit 2;; esac\n'
        + printing("470.82.01, 15109 MiB, Tesla T4\n")
    )
    fake_smi(tmp_path, monkeypatch, script)
    assert gpu_host.query() == (HostGpu(0, "470.82.01", None, "Tesla T4"),)


@pytest.mark.parametrize("script", [printing(NO_DRIVER, 9), printing("No devices were found\n", 6)])
def test_no_gpu(tmp_path, monkeypatch, script):
    fake_smi(tmp_path, monkeypatch, script)
    with pytest.raises(NoGpuError, match="this machine has no NVIDIA GPU") as err:
        gpu_host.query()
    assert err.value.exit_code == 2


def test_no_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NoGpuError, match=r"no NVIDIA GPU \(no nvidia-smi on PATH\)"):
        gpu_host.query()


def test_old_driver_refused_new_driver_accepted():
    c13 = gpu.check(TORCH_CU13)
    old = gpu_host.check(c13, gpu_host.parse_smi(RTX))
    assert not old.ok
    assert old.problems == [
        "GPU 0 (NVIDIA GeForce RTX 3090, compute capability 8.6): driver 550.54.15 is older than 580.65.06 "
        "that CUDA 13.2 in this image needs"
    ]
    new = gpu_host.check(c13, gpu_host.parse_smi(H100))
    assert new.ok and len(new.checks) == 2
    assert gpu_host.check(gpu.check(TORCH_CU12), gpu_host.parse_smi(RTX)).ok  # 550 runs CUDA 12


def test_driver_versions_compare_numerically():
    c12 = gpu.check(TORCH_CU12)
    assert not gpu_host.check(c12, [HostGpu(0, "525.60.9", "8.0", "A100")]).ok  # 9 < 13, not "9" > "13"
    assert gpu_host.check(c12, [HostGpu(0, "525.60.13", "8.0", "A100")]).ok


def test_accelerator_free_is_a_no_op():
    report = gpu_host.check(gpu.check(CPU), ())
    assert report.ok and report.checks == ["the image ships no CUDA: nothing to check on this machine"]


def _write_lock(root, monkeypatch, answer) -> None:
    (root / "requirements.txt").write_text("-c constraints.txt\ntorch\n")
    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: CudaResolver(answer))
    lock_project(load_spec(root), RecordingEngine())


def test_module_main_on_a_lock(project, tmp_path, monkeypatch, capsys):
    root, _ = project
    _write_lock(root, monkeypatch, TORCH_CU13)
    fake_smi(tmp_path, monkeypatch, printing(RTX))
    assert gpu_host.main(["--lock", str(root / "imagesmith.lock")]) == 1
    out = capsys.readouterr().out
    assert "contract: CUDA 13.2, NVIDIA driver 580.65.06 or newer" in out
    assert "FAIL: GPU 0 (NVIDIA GeForce RTX 3090, compute capability 8.6): driver 550.54.15 is older than" in out
    fake_smi(tmp_path, monkeypatch, printing(H100))
    assert gpu_host.main(["--lock", str(root / "imagesmith.lock"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["host"]["ok"] and doc["host"]["contract"]["min_driver"] == "580.65.06"


def test_module_main_on_image_facts(tmp_path, monkeypatch, capsys):
    facts = tmp_path / "imagesmith_image.json"
    manifest = {"packages": {p.name: {"version": p.version, "hashes": list(p.hashes)} for p in TORCH_CU12}}
    facts.write_text(json.dumps({"manifest": manifest, "parity": "sha256:" + "0" * 64}))
    fake_smi(tmp_path, monkeypatch, printing(NO_DRIVER, 9))
    assert gpu_host.main(["--facts", str(facts)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: this machine has no NVIDIA GPU") and "\nhint: " in err


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[" + "0," * 2_000_001 + "0]", "is not JSON imagesmith reads: more than 2,000,000 values"),
        ('{"packages":', "is not JSON (Expecting value"),
    ],
)
def test_module_main_refuses_bloated_or_broken_json_in_one_line(tmp_path, capsys, text, said):
    """The GPU host check reads a lock or facts file someone handed it the way verify reads
    what it did not write (runtime/untrusted.py): values bounded before the parse, one error line
    naming the file, exit 2 (with --json, one JSON error). Deep JSON: test_hostile_files.py."""
    path = tmp_path / "imagesmith.lock"
    path.write_text(text)
    assert gpu_host.main(["--lock", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} {said}") and err.count("\nerror:") == 0 and "Traceback" not in err
    assert gpu_host.main(["--facts", str(path), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["exit"] == 2


def test_verify_host_cli(project, tmp_path, monkeypatch):
    root, _ = project
    _write_lock(root, monkeypatch, TORCH_CU13)
    fake_smi(tmp_path, monkeypatch, printing(RTX))
    lock = str(root / "imagesmith.lock")
    done = cli_in_process("verify", lock, "--host")
    assert done.returncode == 1, done.stderr
    assert "driver 550.54.15 is older than 580.65.06 that CUDA 13.2 in this image needs" in done.stdout
    assert "this machine can NOT run it" in done.stdout
    fake_smi(tmp_path, monkeypatch, printing(H100))
    done = cli_in_process("verify", lock, "--host", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["host"]["gpus"][1]["name"] == "NVIDIA H100 80GB HBM3"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    done = cli_in_process("verify", lock, "--host")
    assert done.returncode == 2 and "error: this machine has no NVIDIA GPU" in done.stderr
    assert "Traceback" not in done.stderr


# ---- scripts/gpu-check.sh: only the checkout and Python (python3 -S), a fake nvidia-smi on PATH

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu-check.sh"


def run_script(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LC_ALL": "C",
    }  # no PYTHONPATH: the script finds the checkout
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=tmp_path, check=False)


def test_gpu_check_script_on_a_lock(project, tmp_path, monkeypatch):
    root, _ = project
    _write_lock(root, monkeypatch, TORCH_CU13)
    fake_smi(tmp_path, monkeypatch, printing(RTX))
    done = run_script(tmp_path, str(root / "imagesmith.lock"))
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[0].startswith("contract: CUDA 13.2, NVIDIA driver 580.65.06 or newer (CUDA 13: ")
    assert "driver 550.54.15 is older than 580.65.06 that CUDA 13.2 in this image needs" in done.stdout
    fake_smi(tmp_path, monkeypatch, printing(H100))
    done = run_script(tmp_path, str(root / "imagesmith.lock"), "--json")
    assert done.returncode == 0, done.stderr
    assert [g["driver"] for g in json.loads(done.stdout)["host"]["gpus"]] == ["580.82.07", "580.82.07"]


def test_gpu_check_script_on_facts_without_gpu(tmp_path, monkeypatch):
    facts = tmp_path / "imagesmith_image.json"
    manifest = {"packages": {p.name: {"version": p.version} for p in TORCH_CU12}}
    facts.write_text(json.dumps({"manifest": manifest}))
    fake_smi(tmp_path, monkeypatch, printing(NO_DRIVER, 9))
    done = run_script(tmp_path, str(facts))
    assert done.returncode == 2
    assert done.stderr.startswith("error: this machine has no NVIDIA GPU (nvidia-smi: NVIDIA-SMI has failed")
    assert "Traceback" not in done.stderr


def test_gpu_check_script_without_arguments(tmp_path):
    done = run_script(tmp_path)
    assert done.returncode == 2 and "scripts/gpu-check.sh imagesmith.lock" in done.stdout


# What Python 3.9 and 3.10 added that a module can use without its grammar showing it
NEWER_THAN_38 = {"kw_only", "slots", "strict", "removeprefix", "removesuffix", "is_relative_to", "bit_count"}


def test_the_script_s_modules_are_python_3_8(tmp_path):
    """GPU hosts run whatever Python 3 their distribution has (3.8 on Ubuntu 20.04): the modules
    the script imports parse as Python 3.8 and name none of the later keywords and methods. The
    closure is what the script's interpreter really imports, not a list kept by hand."""
    root = SCRIPT.parents[1]
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import imagesmith.gpu_host; "
        "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items() if n.startswith('imagesmith'))))"
    )
    done = subprocess.run(["python3", "-S", "-c", code, str(root)], capture_output=True, text=True, check=True)
    files = [Path(f) for f in done.stdout.split()]
    assert root / "imagesmith" / "gpu_host.py" in files and root / "imagesmith" / "findings.py" in files
    for path in files:
        tree = ast.parse(path.read_text(), str(path), feature_version=(3, 8))
        named = {n.arg for n in ast.walk(tree) if isinstance(n, ast.keyword)}
        named |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not named & NEWER_THAN_38, (path, named & NEWER_THAN_38)
        # `str | None`, `list[str]`: only as annotations, which the __future__ import leaves unevaluated
        annotations = [
            a for n in ast.walk(tree) for a in (getattr(n, "annotation", None), getattr(n, "returns", None)) if a
        ]
        in_annotations = {id(m) for a in annotations for m in ast.walk(a)}
        future = any(
            isinstance(n, ast.ImportFrom) and n.module == "__future__" and "annotations" in {a.name for a in n.names}
            for n in tree.body
        )
        assert future or not annotations, path
        for n in ast.walk(tree):
            if id(n) not in in_annotations:
                generic = isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id in BUILTINS
                assert not generic and not (isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) and _is_type(n)), (
                    path,
                    n.lineno,
                )


BUILTINS = {"list", "dict", "tuple", "set", "frozenset", "type"}


def _is_type(union: ast.BinOp) -> bool:
    """`X | None`, `int | str` outside an annotation: a union of types evaluated at run time (3.10)."""
    return any(
        isinstance(s, ast.Constant)
        and s.value is None
        or isinstance(s, ast.Name)
        and s.id in {"None", "int", "str", "float", "bool", *BUILTINS}
        for s in (union.left, union.right)
    )


def test_run_wants_gpus_only_for_a_gpu_project_on_a_gpu_machine():
    from imagesmith.run import wants_gpus

    spec = load_spec(Path(__file__).resolve().parents[1] / "projects" / "gpu-tiny")
    cpu = replace(spec, accelerator=None, cuda=None)
    yes, no = (lambda: True), (lambda: False)
    assert wants_gpus(spec, None, yes) and not wants_gpus(spec, None, no)
    assert wants_gpus(replace(spec, accelerator=None), None, yes)  # cuda: "12" declares a GPU too
    assert not wants_gpus(cpu, None, yes)
    assert wants_gpus(cpu, True, no) and not wants_gpus(spec, False, yes)


def test_has_gpu_reads_nvidia_smi(tmp_path, monkeypatch):
    fake_smi(tmp_path, monkeypatch, printing(RTX))
    assert gpu_host.has_gpu()
    fake_smi(tmp_path, monkeypatch, printing(NO_DRIVER, 9))
    assert not gpu_host.has_gpu()


def test_gpu_check_script_checks_the_compute_capability_against_the_facts_archs(tmp_path, monkeypatch):
    facts = tmp_path / "imagesmith_image.json"
    manifest = {"packages": {p.name: {"version": p.version} for p in TORCH_CU12}}
    archs = {"framework": "torch", "version": "2.9.0", "sha256": "0" * 64, "sm": ["7.5", "8.0", "9.0"], "ptx": []}
    facts.write_text(json.dumps({"manifest": manifest, "gpu": {"archs": archs}}))
    fake_smi(
        tmp_path,
        monkeypatch,
        printing("580.82.07, 7.0, 16384 MiB, Tesla V100-SXM2-16GB\n580.82.07, 8.9, 23034 MiB, NVIDIA L4\n"),
    )
    done = run_script(tmp_path, str(facts))
    assert done.returncode == 1, done.stderr
    assert (
        "FAIL: GPU 0 (Tesla V100-SXM2-16GB): compute capability 7.0 is not among the architectures torch 2.9.0 "
        "in this image was compiled for (sm_75, sm_80, sm_90; no PTX)"
    ) in done.stdout
    assert "ok: GPU 1 (NVIDIA L4): compute capability 8.9 runs torch 2.9.0's sm_80 cubin" in done.stdout


def test_the_signoff_record_reads_the_gpus_the_way_the_host_check_does(tmp_path, monkeypatch):
    """signoff_probe (in the serve container and on the host) asks nvidia-smi through the same
    runtime module as the host check: driver, compute capability and memory per GPU."""
    from imagesmith.runtime import signoff_probe
    from tests.fake_nvidia_smi import FakeGpu, install, path_with

    install(
        tmp_path / "bin",
        [FakeGpu("NVIDIA L4", "580.82.07", "8.9", 23034), FakeGpu("NVIDIA A10G", "580.82.07", "8.6", 23028)],
    )
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    found, cuda = signoff_probe.gpus()
    assert found == [
        {"name": "NVIDIA A10G", "driver": "580.82.07", "memory": "23028 MiB", "compute_cap": "8.6"},
        {"name": "NVIDIA L4", "driver": "580.82.07", "memory": "23034 MiB", "compute_cap": "8.9"},
    ]
    assert cuda == "13.0"
    assert (tmp_path / "bin" / "nvidia-smi.log").read_text().splitlines()[0] == " ".join(gpu_host.QUERY)
    assert [(g.driver, g.compute_cap, g.name) for g in gpu_host.query()] == [
        ("580.82.07", "8.9", "NVIDIA L4"),
        ("580.82.07", "8.6", "NVIDIA A10G"),
    ]


def test_the_signoff_record_on_a_driver_without_compute_cap_and_without_a_gpu(tmp_path, monkeypatch):
    from imagesmith.runtime import signoff_probe
    from tests.fake_nvidia_smi import FakeGpu, install, path_with

    install(tmp_path / "old", [FakeGpu("Tesla T4", "470.82.01", "7.5", 15109)])  # R470: no compute_cap field
    monkeypatch.setenv("PATH", path_with(tmp_path / "old"))
    assert signoff_probe.gpus()[0] == [
        {"name": "Tesla T4", "driver": "470.82.01", "memory": "15109 MiB", "compute_cap": None}
    ]
    install(tmp_path / "none", [])  # "couldn't communicate with the NVIDIA driver"
    monkeypatch.setenv("PATH", path_with(tmp_path / "none"))
    assert signoff_probe.gpus() == ([], None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi at all
    assert signoff_probe.gpus() == ([], None)


def test_an_answer_nvidia_smi_gives_in_another_format_is_refused_by_the_check_and_empty_in_the_record(
    tmp_path, monkeypatch
):
    from imagesmith.runtime import signoff_probe

    fake_smi(tmp_path, monkeypatch, printing("NVIDIA L4, 580.82.07\n"))  # name first: not what was asked
    with pytest.raises(VerifyError, match="nvidia-smi printed a line this imagesmith cannot read"):
        gpu_host.query()
    assert signoff_probe.gpus() == ([], None)


def test_a_gpu_name_with_a_comma_stays_whole():
    assert gpu_host.parse_smi("580.82.07, 8.9, 23034 MiB, NVIDIA L4, rev. B\n")[0].name == "NVIDIA L4, rev. B"
