"""Issue 27 on the real engine, on this x86-64 machine: a linux/arm64 image whose Python
environment is installed natively on linux/amd64 (python_env.py) is the image the emulated way
gives, bit for bit. The tiny-native project (a binary wheel, markupsafe, and a pure one, six)
with a system package (libgomp1) for linux/arm64 alone, from the loopback registry's
two-platform base (its lock pins the base's amd64 image too: base.hosts), built twice with no
cache, once each way, each pushed to the registry: the same manifest digest for both roles.
The one pair of builds proves both halves of issue 27's claim (it was two pairs, one here and
one in test_system_packages_cross.py, of the same shape): the Python environment installed
natively, and the system packages resolved and downloaded by apt natively and installed by dpkg
alone on the target. Each test is a group of its own: the two run on two workers at once."""

from __future__ import annotations

import re
import subprocess

import pytest

from imagesmith.lock.lockfile import read_lock
from imagesmith.python_env import ON_TARGET
from imagesmith.spec.load import load_spec
from tests.conftest import PROJECTS, REGISTRY_BASE, copy_project
from tests.helpers import build_pushed, run_python

pytestmark = [pytest.mark.engine, pytest.mark.registry]


PROBE = (
    "import ctypes, platform, subprocess, markupsafe._speedups; "
    "ctypes.CDLL('libgomp.so.1').omp_get_max_threads; print(platform.machine()); "
    "print(subprocess.run(['dpkg-query', '-W', '-f', '${Status} ${Architecture}', 'libgomp1'],"
    " capture_output=True, text=True, check=True).stdout)"
)


def _arm64_line(lines: list[str]) -> str:
    said = [line for line in lines if line.startswith("linux/arm64: ")]
    assert len(said) == 1, lines
    return said[0]


@pytest.mark.xdist_group("python-env-cross")
def test_cross_installed_arm64_image_is_the_emulated_one_bit_for_bit(tmp_path, engine, registry):
    """tiny-native with libgomp1 for linux/arm64: built with builder on this machine (the Python
    environment installed natively, apt run natively, dpkg alone on the target), then with
    IMAGESMITH_PYTHON_ENV=target (both on the target), no cache either time: the same pushed
    manifests; the arm64 wheel's extension and the arm64 library load in the arm64 container, and
    dpkg lists the package as installed for arm64."""
    root = copy_project(PROJECTS / "tiny-native", tmp_path / "tiny-native")
    text = (root / "imagesmith.yaml").read_text()
    text = text.replace("platform: linux/amd64\n", "platform: linux/arm64\n")
    text = text.replace("base: imagesmith-base:bookworm-py311\n", f"base: {REGISTRY_BASE}\n")
    (root / "imagesmith.yaml").write_text(text + "system_packages: [libgomp1]\n")
    subprocess.run(["git", "commit", "-qam", "arm64"], cwd=root, check=True, capture_output=True)
    spec = load_spec(root)

    cross, cross_lines = build_pushed(spec, engine, registry, "native-cross", no_cache=True)
    lock = read_lock(spec.lock_path)
    assert lock.platform == "linux/arm64" and [p for p, _ in lock.base.hosts] == ["linux/amd64"]
    assert [name for name, _ in lock.system_packages] == ["libgomp1"]
    said = _arm64_line(cross_lines)
    assert "installed natively on linux/amd64" in said
    assert "the Python environment (" not in said  # not among the emulated steps
    assert "system packages (dpkg and their maintainer scripts; " in said
    assert "resolving and downloading system packages" not in said  # apt ran natively

    emulated, emulated_lines = build_pushed(spec, engine, registry, "native-cross", no_cache=True, python_env=ON_TARGET)
    said = _arm64_line(emulated_lines)
    assert "the Python environment (IMAGESMITH_PYTHON_ENV=target)" in said
    assert "resolving and downloading system packages (IMAGESMITH_PYTHON_ENV=target)" in said

    for role in ("train", "serve"):
        assert cross.images[role].pushed.split("@")[1] == emulated.images[role].pushed.split("@")[1], role
    probed = run_python(cross.images["serve"].pushed, PROBE, "linux/arm64")
    assert probed.splitlines() == ["aarch64", "install ok installed arm64"]


# docopt 0.6.2 (published only as source) and six, pinned by a pylock.toml (PEP 751) written here
# with each file's name and sha256: imagesmith takes its pins as they are. Resolving docopt instead
# runs its setup.py in a container of the arm64 base, under QEMU (pip-tools installed and run
# there: minutes); that resolution in the base is the amd64 sdist test's (test_build_repro.py),
# on the same code path.
SDIST_PYLOCK = """\
lock-version = "1.0"
created-by = "tests/engine/test_python_env_cross.py"
requires-python = ">=3.8"

[[packages]]
name = "docopt"
version = "0.6.2"
sdist = { name = "docopt-0.6.2.tar.gz", hashes = { sha256 = "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491" } }

[[packages]]
name = "six"
version = "1.17.0"
wheels = [{ name = "six-1.17.0-py2.py3-none-any.whl", hashes = { sha256 = "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274" } }]
"""


@pytest.mark.xdist_group("python-env-cross-sdist")
def test_a_two_platform_build_with_an_sdist_emulates_only_the_sdist_and_says_so(tmp_path, engine, registry):
    """tiny with docopt 0.6.2 (published only as source; SDIST_PYLOCK) for linux/amd64 and
    linux/arm64 in one build (issue 27: "a two-platform build of a project with one sdist still
    works, emulated only where needed, and said so"): for arm64 the sdist is built under QEMU (its
    compilers are the target's) and the Python environment is still installed natively, and the
    build says both; amd64 builds it natively. Each platform's image imports docopt on its own
    machine, with no compiler in it. (A wheel-only two-platform build saying nothing of its build
    platform: test_platforms_engine.py.)"""
    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    (root / "pylock.toml").write_text(SDIST_PYLOCK)
    text = (root / "imagesmith.yaml").read_text().replace("  - six==1.17.0\n", "  pylock: true\n")
    text = text.replace("base: imagesmith-base:bookworm-py311\n", f"base: {REGISTRY_BASE}\n")
    (root / "imagesmith.yaml").write_text(text + "platforms: [linux/amd64, linux/arm64]\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", "sdist"], cwd=root, check=True, capture_output=True)
    spec = load_spec(root)
    log: list[str] = []
    # no_cache: the sdist-build step runs on each platform every time (a warm cache would show it
    # CACHED, or not at all, and the lines below could not be checked).
    result, lines = build_pushed(spec, engine, registry, "sdist-cross", echo=log.append, no_cache=True)
    # Each platform's sdist-build step says docopt needs no compilers, and neither platform
    # installs them. By step number: a bake run once more (build.py's retries) numbers its steps anew.
    pure = "imagesmith: sdist docopt-0.6.2: pure Python, built without compilers"
    steps: dict[str, set[str]] = {}
    for line in log:
        if m := re.match(r"#(\d+) \[(?:\S+ )?(linux/\w+) sdist-build\S* \d+/\d+\] RUN ", line):
            steps.setdefault(m.group(2), set()).add(m.group(1))
    assert sorted(steps) == ["linux/amd64", "linux/arm64"], log
    for numbers in steps.values():
        told = {n: [line for line in log if line.startswith(f"#{n} ")] for n in sorted(numbers)}
        assert any(line.endswith(pure) for t in told.values() for line in t), told
    assert not [line for line in log if "compilers installed" in line or "Unpacking gcc" in line]
    for platform in ("linux/amd64", "linux/arm64"):
        packages = read_lock(spec.lock_path, platform).packages
        assert [(p.name, p.version) for p in packages] == [("docopt", "0.6.2"), ("six", "1.17.0")]
    said = [line for line in lines if line.startswith("linux/arm64: ")]
    assert len(said) == 1, lines
    assert "installed natively on linux/amd64" in said[0]
    assert "building docopt-0.6.2.tar.gz from source (pure Python: the target's pip, no compilers)" in said[0]
    assert "the target's compilers" not in said[0]
    for platform, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        code = "import docopt, platform, shutil; print(docopt.__version__, platform.machine(), shutil.which('cc'))"
        assert run_python(result.images["serve"].pushed, code, platform).split() == ["0.6.2", machine, "None"]
