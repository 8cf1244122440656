"""The project's own lock as the source of truth (uv.lock, pylock.toml, poetry.lock): markers
evaluated for the image, hashes kept, local and unhashed pins refused; PEP 735 groups."""

from __future__ import annotations

import pytest

from imagesmith.errors import LockError
from imagesmith.lock.existing import (
    existing_pins,
    group_requirements,
    pins_from_requirements,
    pylock_pins,
    target_environment,
)
from imagesmith.lock.pins import Pin

H1, H2, H3 = ("sha256:" + c * 64 for c in "123")
LINUX = target_environment("3.11.2", "linux/amd64")
ARM = target_environment("3.11.2", "linux/arm64")

EXPORTED = f"""\
colorama==0.4.6 ; sys_platform == 'win32' \\
    --hash={H1}
numpy==2.1.0 ; python_full_version >= '3.11' and platform_machine == 'x86_64' \\
    --hash={H2} \\
    --hash={H1}
numpy==2.0.0 ; platform_machine == 'aarch64' \\
    --hash={H3}
six==1.16.0 \\
    --hash={H3}
"""


def test_markers_are_evaluated_for_the_image():
    assert pins_from_requirements(EXPORTED, LINUX, "uv.lock") == [
        Pin("numpy", "2.1.0", (H1, H2)),
        Pin("six", "1.16.0", (H3,)),
    ]
    assert [p.version for p in pins_from_requirements(EXPORTED, ARM, "uv.lock") if p.name == "numpy"] == ["2.0.0"]
    assert target_environment("3.10.12", "linux/amd64")["python_version"] == "3.10"


@pytest.mark.parametrize(
    "line",
    ["-e ./lib", "./lib", "mylib @ file:///src/mylib", "pkg @ https://127.0.0.1/pkg-1.0.tar.gz --hash=" + H1],
)
def test_local_and_url_pins_are_refused(line):
    with pytest.raises(LockError, match="cannot install from hashes"):
        pins_from_requirements(f"{line}\nsix==1.16.0 --hash={H1}\n", LINUX, "uv.lock")


def test_a_pin_without_a_hash_is_refused():
    with pytest.raises(LockError, match="no hash"):
        pins_from_requirements("six==1.16.0\n", LINUX, "poetry.lock")


def test_pylock(tmp_path):
    (tmp_path / "pylock.toml").write_text(
        f"""lock-version = "1.0"
created-by = "test"

[[packages]]
name = "Six"
version = "1.16.0"
wheels = [{{ url = "http://127.0.0.1/six-1.16.0-py2.py3-none-any.whl", hashes = {{ sha256 = "{H1[7:]}" }} }}]
sdist = {{ url = "http://127.0.0.1/six-1.16.0.tar.gz", hashes = {{ sha256 = "{H2[7:]}" }} }}

[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
wheels = [{{ url = "http://127.0.0.1/colorama.whl", hashes = {{ sha256 = "{H3[7:]}" }} }}]
"""
    )
    assert pylock_pins(tmp_path / "pylock.toml", LINUX) == [Pin("six", "1.16.0", (H1, H2))]
    (tmp_path / "pylock.toml").write_text(
        'lock-version = "1.0"\n[[packages]]\nname = "x"\ndirectory = { path = "x" }\n'
    )
    with pytest.raises(LockError, match="comes from a directory"):
        pylock_pins(tmp_path / "pylock.toml", LINUX)
    (tmp_path / "pylock.toml").write_text('lock-version = "2.0"\n')
    with pytest.raises(LockError, match="lock-version 2.0"):
        pylock_pins(tmp_path / "pylock.toml", LINUX)
    (tmp_path / "pylock.toml").write_text("lock-version = [")
    with pytest.raises(LockError, match="not readable TOML"):
        pylock_pins(tmp_path / "pylock.toml", LINUX)


def test_poetry_without_poetry_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no poetry on it
    (tmp_path / "poetry.lock").write_text("")
    with pytest.raises(LockError, match="poetry is not installed") as info:
        existing_pins(tmp_path, "poetry_lock", extras=(), groups=(), python_full="3.11.2", platform="linux/amd64")
    assert "poetry export" in (info.value.hint or "")


def test_dependency_groups(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[dependency-groups]\ntest = ["pytest>=8", {include-group = "Lint"}]\nlint = ["ruff"]\nloop = [{include-group = "loop"}]\n'
    )
    assert group_requirements(tmp_path / "pyproject.toml", ("test",)) == ["pytest>=8", "ruff"]
    with pytest.raises(LockError, match="includes itself"):
        group_requirements(tmp_path / "pyproject.toml", ("loop",))
    with pytest.raises(LockError, match="no dependency group 'docs'"):
        group_requirements(tmp_path / "pyproject.toml", ("docs",))


def test_dynamic_dependencies_stage_the_project_and_watch_their_sources(tmp_path):
    from imagesmith.lock.resolution_files import dependency_sources, dynamic_dependencies, stage_inputs

    root = tmp_path / "p"
    (root / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "1"\ndynamic = ["dependencies"]\n'
        '[tool.setuptools.dynamic]\ndependencies = { file = ["deps/base.txt"] }\n'
    )
    (root / "deps").mkdir()
    (root / "deps" / "base.txt").write_text("six\n")
    (root / "requirements-dev.txt").write_text("pytest\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / ".env").write_text("TOKEN=secret\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("")
    assert dynamic_dependencies(root / "pyproject.toml")
    assert [p.relative_to(root).as_posix() for p in dependency_sources(root)] == [
        "deps/base.txt",
        "requirements-dev.txt",
    ]  # code files are not watched: an edit does not re-resolve
    dest = tmp_path / "staged"
    assert stage_inputs([root / "pyproject.toml"], dest) == ["pyproject.toml"]
    staged = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert staged == ["deps/base.txt", "pkg/__init__.py", "pyproject.toml", "requirements-dev.txt"]  # no .env, no .git
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\ndependencies = ["six"]\n')
    assert not dynamic_dependencies(root / "pyproject.toml")
    dest2 = tmp_path / "staged2"
    stage_inputs([root / "pyproject.toml"], dest2)
    assert [p.name for p in dest2.rglob("*") if p.is_file()] == ["pyproject.toml"]  # static: copied alone


def test_no_pylock_is_written_for_a_lock_with_package_indexes(tmp_path):
    from imagesmith.lock.existing import write_pylock
    from tests.helpers import fake_lock

    lock = fake_lock(package_indexes=(("torch", "http://127.0.0.1:9/cpu"),))
    with pytest.raises(LockError, match="package_indexes"):
        write_pylock(lock, tmp_path / "pylock.toml")
    assert not (tmp_path / "pylock.toml").exists()


def _uv_project(root, requires_python=">=3.11"):
    """A uv project with a hand-written uv.lock pinning six (hashes only; nothing is fetched)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "p"\nversion = "0.1"\nrequires-python = "{requires_python}"\ndependencies = ["six==1.16.0"]\n'
    )
    (root / "uv.lock").write_text(
        f"""version = 1
revision = 3
requires-python = "{requires_python}"

[[package]]
name = "p"
version = "0.1"
source = {{ virtual = "." }}
dependencies = [{{ name = "six" }}]

[package.metadata]
requires-dist = [{{ name = "six", specifier = "==1.16.0" }}]

[[package]]
name = "six"
version = "1.16.0"
source = {{ registry = "http://127.0.0.1:9/simple" }}
wheels = [{{ url = "http://127.0.0.1:9/six-1.16.0-py2.py3-none-any.whl", hash = "{H1}", size = 10 }}]
"""
    )
    return root


def test_uv_lock_is_exported_by_the_uv_imagesmith_installs_not_the_one_on_path(tmp_path, monkeypatch):
    import os

    shim = tmp_path / "bin" / "uv"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'error: this is not the uv imagesmith installs' >&2\nexit 2\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    root = _uv_project(tmp_path / "p")
    pins = existing_pins(root, "uv_lock", extras=(), groups=(), python_full="3.11.2", platform="linux/amd64")
    assert pins == [Pin("six", "1.16.0", (H1,))]


@pytest.mark.parametrize("source", ["uv_lock", "pylock"])
def test_a_lock_whose_requires_python_excludes_the_images_python_is_refused(tmp_path, source):
    root = _uv_project(tmp_path / "p", requires_python=">=3.12")
    (root / "pylock.toml").write_text(
        f'lock-version = "1.0"\ncreated-by = "test"\nrequires-python = ">=3.12"\n'
        f'[[packages]]\nname = "six"\nversion = "1.16.0"\n'
        f'wheels = [{{ url = "http://127.0.0.1:9/six.whl", hashes = {{ sha256 = "{H1[7:]}" }} }}]\n'
    )
    with pytest.raises(LockError) as info:
        existing_pins(root, source, extras=(), groups=(), python_full="3.11.2", platform="linux/amd64")
    message = str(info.value)
    assert (
        ">=3.12" in message
        and "3.11.2" in message
        and ("project p 0.1" if source == "uv_lock" else "pylock.toml") in message
    )
    assert "python" in (info.value.hint or "").lower()


def test_a_pylock_package_whose_requires_python_excludes_the_images_python_is_named(tmp_path):
    (tmp_path / "pylock.toml").write_text(
        f'lock-version = "1.0"\ncreated-by = "test"\n'
        f'[[packages]]\nname = "numpy"\nversion = "2.3.4"\nrequires-python = ">=3.12"\n'
        f'wheels = [{{ url = "http://127.0.0.1:9/numpy.whl", hashes = {{ sha256 = "{H1[7:]}" }} }}]\n'
    )
    with pytest.raises(LockError, match=r"numpy 2\.3\.4 requires Python >=3\.12.*3\.11\.2"):
        pylock_pins(tmp_path / "pylock.toml", LINUX)
