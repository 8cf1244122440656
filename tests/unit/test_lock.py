"""Unit tests of the lock: output parsing, failure messages, staging, inputs digests, staleness,
determinism and atomic failure (a recording engine and resolver stand in for Docker and the index)."""

from __future__ import annotations

import pytest

from imagesmith.errors import LockError, ResolutionError, StaleLockError
from imagesmith.lock.failures import explain_failure
from imagesmith.lock.inputs import compute_inputs
from imagesmith.lock.lockfile import read_lock
from imagesmith.lock.pins import Pin, parse_compiled
from imagesmith.lock.request import ResolveRequest
from imagesmith.lock.resolution_files import stage_inputs
from imagesmith.lock.update import check_lock, ensure_fresh, lock_project
from imagesmith.spec.load import load_spec
from tests.fakes import FakeEngine

REQ = ResolveRequest(inputs=(), extras=(), python="3.10", platform="linux/amd64")


def test_parse_compiled_reads_pins_and_hashes():
    text = (
        "# header\nIdna==3.7 \\\n    --hash=sha256:bbb \\\n    --hash=sha256:aaa\n"
        "    # via anyio\nsix==1.17.0 --hash=sha256:ccc\n"
    )
    assert parse_compiled(text) == [
        Pin("idna", "3.7", ("sha256:aaa", "sha256:bbb")),
        Pin("six", "1.17.0", ("sha256:ccc",)),
    ]


@pytest.mark.parametrize("line, message", [("six>=1\n", "unpinned"), ("six==1.0\n", "no hash")])
def test_parse_compiled_refuses_unpinned_or_unhashed(line, message):
    with pytest.raises(ResolutionError, match=message):
        parse_compiled(line)


UV_CONFLICT = """error: No solution found when resolving dependencies
  cause: Because pandas==2.2.0 depends on numpy>=1.23.2,<2 and you require pandas==2.2.0, we can conclude that you require numpy>=1.23.2,<2.
         And because you require numpy<1.22, we can conclude that your requirements are unsatisfiable."""
PIP_CONFLICT = """  ERROR: Cannot install numpy<2 and numpy>=2 because these package versions have conflicting dependencies.
Traceback (most recent call last):
pip._internal.exceptions.DistributionNotFound: ResolutionImpossible: for help visit https://example.invalid"""
UV_NO_WHEEL = """error: No solution found when resolving dependencies
  cause: Because tensorflow-macos==2.16.2 has no wheels with a matching platform tag (e.g., `manylinux_2_28_x86_64`) and you require tensorflow-macos==2.16.2, we can conclude that your requirements are unsatisfiable."""
UV_INDEX = """error: Request failed after 3 retries
  cause: Failed to fetch: `http://user:secret@127.0.0.1:9/simple/idna/`
  cause: Connection refused (os error 111)"""
PIP_INDEX = """WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(': Failed to establish a new connection: [Errno 111] Connection refused')': /simple/idna/
pip._internal.exceptions.DistributionNotFound: No matching distribution found for idna"""


def test_conflict_names_the_packages_and_versions():
    for tool, out in (("uv", UV_CONFLICT), ("pip-compile", PIP_CONFLICT)):
        err = explain_failure(tool, out, REQ)
        assert "conflict" in str(err) and "numpy<2" in str(err).replace("numpy>=1.23.2,<2", "numpy<2")
        assert "Traceback" not in str(err)


def test_no_wheel_names_the_target():
    wrapped = UV_NO_WHEEL.replace(" has no wheels with", "\n         has no wheels\n         with")  # uv wraps
    for out in (UV_NO_WHEEL, wrapped):
        err = explain_failure("uv", out, REQ)
        assert "tensorflow-macos has no wheel for the target, Python 3.10 on linux/amd64" in str(err)


def test_unreachable_index_is_named_without_credentials():
    err = explain_failure("uv", UV_INDEX, REQ)
    assert "http://127.0.0.1:9/simple" in str(err) and "secret" not in str(err) and "user" not in str(err)
    err = explain_failure("pip-compile", PIP_INDEX, REQ, env={"PIP_INDEX_URL": "http://127.0.0.1:9/simple"})
    assert "could not reach the package index http://127.0.0.1:9/simple" in str(err)
    err = explain_failure("uv", "error: Failed to fetch\n  Caused by: dns error\n", REQ, env={})
    assert str(err).startswith(
        "uv could not reach the default package index (PyPI) while"
    )  # not "the package index the …"


UV_UNREADABLE = """error: Couldn't parse requirement in `requirements.txt` at position 0
  cause: Expected one of `@`, `(`, `<`, `=`, `>`, `~`, `!`, `;`, found `{found}`
         six {found}
             >=1.16
                      ^
"""


def test_a_line_uv_cannot_read_names_the_file_and_a_continued_requirement_says_what_to_do():
    """uv 0.13's own words (a requirement continued with a backslash, which pip reads)."""
    err = explain_failure("uv", UV_UNREADABLE.format(found="\\"), REQ)
    assert str(err).startswith("uv could not read a requirement in requirements.txt:\nerror: Couldn't parse")
    assert err.hint.startswith("write that requirement on one line in requirements.txt: uv does not read a backslash")
    err = explain_failure("uv", UV_UNREADABLE.format(found="%"), REQ)
    assert err.hint.startswith("correct that line of requirements.txt: a requirement is a name")


def test_stage_inputs_keeps_includes_resolvable(tmp_path):
    src = tmp_path / "p"
    (src / "reqs").mkdir(parents=True)
    (src / "constraints.txt").write_text("idna<3.8\n")
    (src / "reqs" / "requirements.in").write_text("-c ../constraints.txt\n-r more.in\nanyio\n")
    (src / "reqs" / "more.in").write_text("six\n")
    (src / "unrelated.txt").write_text("not copied\n")
    dest = tmp_path / "staged"
    args = stage_inputs([src / "reqs" / "requirements.in"], dest)
    assert args == ["reqs/requirements.in"]
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "constraints.txt",
        "reqs/more.in",
        "reqs/requirements.in",
    ]


# ---- lock_project with a recording engine and resolver (the real ones are in test_lock_engine.py)


def RecordingEngine() -> FakeEngine:
    """The shared fake, answering what the base and system-package pinning ask: the registry has
    the base, its Python is 3.11.2, and apt would install each package at 1.0."""

    def runs(image, command):
        if "platform.python_version()" in " ".join(command):
            return "3.11.2\n"
        if command and command[0] == "-c" and "apt-get install -s" in command[1]:
            return "".join(f"Inst {n} (1.0 Debian:12 [amd64])\n" for n in command[3:])
        return ""

    return FakeEngine(registry={"python:3.11-slim": "sha256:" + "1" * 64}, runs=runs)


class RecordingResolver:
    name = "uv"
    wheels_only = False

    def __init__(self, fail=False):
        self.requests, self.installer_requests, self.fail = [], [], fail

    def resolve(self, request):
        if [p.name for p in request.inputs] == ["installer.in"]:  # the installer's pin (INSTALLER)
            self.installer_requests.append(request)
            return [Pin("uv", request.inputs[0].read_text().strip().split("==")[1], ("sha256:" + "3" * 64,))]
        self.requests.append(request)
        if self.fail:
            raise ResolutionError("the requirements conflict for Python 3.11 on linux/amd64")
        return [Pin("six", "1.17.0", ("sha256:" + "2" * 64,))]


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    (root / "prep").mkdir(parents=True)
    (root / "prep" / "clean.py").write_text("X = 1\n")
    (root / "requirements.txt").write_text("-c constraints.txt\nsix\n")
    (root / "constraints.txt").write_text("six<2\n")
    (root / "imagesmith.yaml").write_text(
        'name: p\npython: "3.11"\nbase: python:3.11-slim\nrequirements: requirements.txt\n'
        "preprocessing: [prep/]\nsystem_packages: [jq]\n"
        'train: {command: ["python", "-V"]}\nserve: {command: ["python", "-V"]}\n'
    )
    resolver = RecordingResolver()
    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: resolver)
    return root, resolver


def test_lock_twice_is_byte_identical_and_the_second_does_nothing(project):
    root, resolver = project
    engine = RecordingEngine()
    first = lock_project(load_spec(root), engine)
    assert first.written and "requirements" in first.changed
    data = (root / "imagesmith.lock").read_bytes(), (root / "requirements.lock").read_bytes()
    second = lock_project(load_spec(root), engine)
    assert second.changed == [] and not second.written
    assert len(resolver.requests) == 1 and resolver.requests[0].root == root  # the resolver runs there
    assert [c[0] for c in engine.calls] == ["registry_digest", "pull", "image", "run", "run"]  # digest, Python, apt
    assert ((root / "imagesmith.lock").read_bytes(), (root / "requirements.lock").read_bytes()) == data
    lock = read_lock(root / "imagesmith.lock")
    assert lock.system_packages == (("jq", "1.0"),) and lock.base.source == "registry"
    assert lock.base.digest == "sha256:" + "1" * 64 and lock.base.python_version == "3.11.2"
    assert [p for p, _ in lock.preprocessing] == ["prep/clean.py"]


@pytest.mark.parametrize(
    "edit, changed",
    [
        (lambda r: (r / "constraints.txt").write_text("six<1.18\n"), "requirements"),  # an included -c file
        (lambda r: (r / "prep" / "clean.py").write_text("X = 2\n"), "preprocessing"),
        (
            lambda r: (r / "imagesmith.yaml").write_text(
                (r / "imagesmith.yaml").read_text().replace("[jq]", "[jq, curl]")
            ),
            "system_packages",
        ),
    ],
)
def test_check_names_the_changed_input(project, edit, changed):
    root, _ = project
    lock_project(load_spec(root), RecordingEngine())
    assert check_lock(load_spec(root)) == []
    edit(root)
    assert check_lock(load_spec(root)) == [changed]
    with pytest.raises(StaleLockError, match=f"{changed} changed"):
        ensure_fresh(load_spec(root))


def test_mtime_alone_changes_nothing(project):
    import os

    root, _ = project
    lock_project(load_spec(root), RecordingEngine())
    os.utime(root / "prep" / "clean.py", (1, 1))
    assert check_lock(load_spec(root)) == []


def test_preprocessing_edit_does_not_resolve_again(project):
    root, resolver = project
    lock_project(load_spec(root), RecordingEngine())
    (root / "prep" / "clean.py").write_text("X = 3\n")
    result = lock_project(load_spec(root), RecordingEngine())
    assert result.changed == ["preprocessing"] and len(resolver.requests) == 1


def test_upgrade_resolves_again_and_passes_previous_pins(project):
    root, resolver = project
    lock_project(load_spec(root), RecordingEngine())
    lock_project(load_spec(root), RecordingEngine(), upgrade_packages=("six",))
    last = resolver.requests[-1]
    assert last.upgrade_packages == ("six",) and "six==1.17.0" in last.previous


def test_failed_lock_leaves_the_previous_lock_byte_identical(project, monkeypatch):
    root, _ = project
    lock_project(load_spec(root), RecordingEngine())
    before = (root / "imagesmith.lock").read_bytes(), (root / "requirements.lock").read_bytes()
    (root / "requirements.txt").write_text("-c constraints.txt\nsix\nnumpy\n")
    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: RecordingResolver(fail=True))
    with pytest.raises(ResolutionError):
        lock_project(load_spec(root), RecordingEngine())
    assert ((root / "imagesmith.lock").read_bytes(), (root / "requirements.lock").read_bytes()) == before
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["constraints.txt", "imagesmith.lock", "imagesmith.yaml", "prep", "requirements.lock", "requirements.txt"]
    )


def test_inputs_digest_is_independent_of_the_folder(tmp_path, project):
    import shutil

    root, _ = project
    other = tmp_path / "elsewhere"
    shutil.copytree(root, other)
    assert compute_inputs(load_spec(root), "b") == compute_inputs(load_spec(other), "b")


def test_the_lock_pins_the_runtime_wheel_and_a_new_runtime_only_re_pins_it(project, monkeypatch):
    """imagesmith's in-image code is part of the parity: the lock pins this imagesmith's runtime
    wheel; another runtime (an imagesmith upgrade) makes the lock stale, and re-locking redoes
    nothing else."""
    from dataclasses import replace

    from imagesmith import runtime_wheel

    root, resolver = project
    engine = RecordingEngine()
    lock_project(load_spec(root), engine)
    built = runtime_wheel.build()
    lock = read_lock(root / "imagesmith.lock")
    assert lock.runtime == Pin("imagesmith-runtime", built.version, (built.sha256,))
    assert lock.inputs["runtime"] == built.sha256
    other = replace(built, sha256="sha256:" + "e" * 64, version="0+sha256." + "e" * 12)
    monkeypatch.setattr(runtime_wheel, "build", lambda: other)
    assert check_lock(load_spec(root)) == ["runtime"]
    calls = len(engine.calls)
    result = lock_project(load_spec(root), engine)
    assert result.changed == ["runtime"] and len(resolver.requests) == 1 and len(engine.calls) == calls
    assert read_lock(root / "imagesmith.lock").runtime == Pin("imagesmith-runtime", other.version, (other.sha256,))


def test_the_lock_pins_the_installer_and_a_new_installer_only_re_pins_it(project, monkeypatch):
    """The installer (uv) is resolved like the requirements, for the lock's target, and pinned with
    hashes in its own section; another INSTALLER (an imagesmith upgrade) makes the lock stale, and
    re-locking resolves only the installer."""
    import imagesmith.lock.inputs as lockmod

    root, resolver = project
    lock_project(load_spec(root), RecordingEngine())
    lock = read_lock(root / "imagesmith.lock")
    assert lock.installer == (Pin("uv", lockmod.INSTALLER.split("==")[1], ("sha256:" + "3" * 64,)),)
    (request,) = resolver.installer_requests
    assert (request.python, request.platform) == ("3.11", "linux/amd64")
    assert "installer" in lock.to_json() and lock.installer_text().count("--hash=sha256:") == 1
    monkeypatch.setattr(lockmod, "INSTALLER", "uv==9.9.9")
    assert check_lock(load_spec(root)) == ["installer"]
    result = lock_project(load_spec(root), RecordingEngine())
    assert result.changed == ["installer"] and len(resolver.requests) == 1 and len(resolver.installer_requests) == 2
    assert read_lock(root / "imagesmith.lock").installer[0].version == "9.9.9"


def test_the_installer_is_resolved_by_uv_whichever_resolver_the_spec_names(project, monkeypatch):
    """resolver: pip-tools resolves the requirements; the installer's one wheel is uv's to pin."""
    root, resolver = project
    spec_file = root / "imagesmith.yaml"
    spec_file.write_text(spec_file.read_text() + "resolver: pip-tools\n")
    names = []

    def get(name, engine=None):
        names.append(name)
        return resolver

    monkeypatch.setattr("imagesmith.lock.update.get_resolver", get)
    lock_project(load_spec(root), RecordingEngine())
    assert sorted(names) == ["pip-tools", "uv"] and len(resolver.installer_requests) == 1
    assert read_lock(root / "imagesmith.lock").resolver == "pip-tools"


def test_indexes_without_the_installer_lock_with_pip_and_render_the_pip_install(project, monkeypatch):
    """A private index that replaces the general one rarely has uv: the lock pins no installer
    (and says so) and the Dockerfile installs the same hash-checked wheels with the base's pip."""
    from imagesmith.render import render

    root, resolver = project

    def no_uv(spec, engine, base_pin, previous):
        raise ResolutionError("no distribution of uv for Python 3.11 on linux/amd64 was found on the package index")

    monkeypatch.setattr("imagesmith.lock.update._resolve_installer", no_uv)
    said = []
    lock_project(load_spec(root), RecordingEngine(), progress=said.append)
    lock = read_lock(root / "imagesmith.lock")
    assert lock.installer == () and any("the build installs with pip" in line for line in said)
    text = render(load_spec(root), lock)
    assert "installer-lock" not in text and "/tmp/uv pip install" not in text
    assert "python3 -m pip --python /opt/venv/bin/python install" in text and "--require-hashes" in text


def test_a_lock_written_before_the_runtime_wheel_reads_and_is_stale(project):
    import json

    root, _ = project
    lock_project(load_spec(root), RecordingEngine())
    data = json.loads((root / "imagesmith.lock").read_text())
    del data["runtime"], data["inputs"]["runtime"]
    (root / "imagesmith.lock").write_text(json.dumps(data))
    assert read_lock(root / "imagesmith.lock").runtime is None
    assert check_lock(load_spec(root)) == ["runtime"]


def test_both_resolvers_spell_the_extras_and_upgrades_alike():
    """``ResolveRequest.compile_options``: the one spelling uv and pip-compile share, in the
    request's order; pip-compile's options end with it."""
    from imagesmith.lock.piptools_resolver import PipToolsResolver

    request = ResolveRequest(
        inputs=(),
        extras=("cpu", "gpu"),
        python="3.11",
        platform="linux/amd64",
        upgrade=True,
        upgrade_packages=("six",),
    )
    assert request.compile_options() == ["--extra", "cpu", "--extra", "gpu", "--upgrade", "--upgrade-package", "six"]
    assert PipToolsResolver.options(request)[-7:] == request.compile_options()
    assert ResolveRequest(inputs=(), extras=(), python="3.11", platform="linux/amd64").compile_options() == []


def test_the_lock_says_wheels_only_when_its_resolver_found_a_wheel_of_every_pin(project):
    """uv resolving on the host with --no-build found a wheel of every pin for the target: the
    lock says so (the Dockerfile then fetches no sdist compilers); a resolution that may have
    read an sdist leaves it out, and a lock that keeps its pins keeps what it said."""
    import json

    root, resolver = project
    resolver.wheels_only = True
    lock_project(load_spec(root), RecordingEngine())
    assert json.loads((root / "imagesmith.lock").read_text())["wheels_only"] is True
    assert read_lock(root / "imagesmith.lock").wheels_only
    (root / "prep" / "clean.py").write_text("X = 2\n")  # redoes preprocessing, not the pins
    resolver.wheels_only = False
    lock_project(load_spec(root), RecordingEngine())
    assert read_lock(root / "imagesmith.lock").wheels_only
    (root / "constraints.txt").write_text("six<1.18\n")  # the pins are resolved again
    lock_project(load_spec(root), RecordingEngine())
    assert "wheels_only" not in json.loads((root / "imagesmith.lock").read_text())
    assert not read_lock(root / "imagesmith.lock").wheels_only


def test_a_lock_whose_wheels_only_is_not_a_boolean_is_refused(project):
    import json

    from imagesmith.errors import LockError

    root, _ = project
    lock_project(load_spec(root), RecordingEngine())
    data = json.loads((root / "imagesmith.lock").read_text())
    (root / "imagesmith.lock").write_text(json.dumps({**data, "wheels_only": "yes"}))
    with pytest.raises(LockError, match="wheels_only: expected true or false"):
        read_lock(root / "imagesmith.lock")


def test_uv_says_wheels_only_after_a_host_resolution_and_not_after_one_in_the_base(monkeypatch):
    from imagesmith.lock.request import NeedsBuild
    from imagesmith.lock.uv_resolver import UvResolver

    pins = [Pin("six", "1.17.0", ("sha256:" + "2" * 64,))]
    resolver = UvResolver()
    monkeypatch.setattr(resolver, "_resolve_on_host", lambda request: pins)
    assert resolver.resolve(REQ) == pins and resolver.wheels_only

    def needs_build(request):
        raise NeedsBuild()

    monkeypatch.setattr(resolver, "_resolve_on_host", needs_build)
    monkeypatch.setattr("imagesmith.lock.uv_resolver.resolve_in_base", lambda engine, request: pins)
    assert resolver.resolve(REQ) == pins and not resolver.wheels_only


def test_uv_reads_the_project_itself_from_the_project_s_folder_wherever_lock_runs(tmp_path, monkeypatch):
    """`-e .` is read from the resolver's working directory (pip and uv alike): `imagesmith lock -p
    PROJ` run from another folder resolved that folder (an error here; elsewhere, another
    project's dependencies). The real uv, offline: the project has no dependencies to fetch."""
    from imagesmith.lock.uv_resolver import UvResolver

    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "proj"\nversion = "0.1.0"\ndependencies = []\n'
    )
    (root / "requirements.txt").write_text("-e .\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    request = ResolveRequest(
        inputs=(root / "requirements.txt",),
        extras=(),
        python="3.11",
        platform="linux/amd64",
        index_url="http://127.0.0.1:9/simple",  # nothing listens: nothing may be fetched
        root=root,
    )
    assert UvResolver()._resolve_on_host(request) == []


@pytest.mark.parametrize(
    "line",
    [
        "-e ./libs/mylib",  # uv and pip-compile pass it through: the lock would silently lack it
        "--editable=libs/mylib",
        "./wheels/six-1.17.0-py2.py3-none-any.whl",
        "libs/mylib-0.1.tar.gz",
        "mylib @ git+https://example.com/mylib.git@v1.0",
        "mylib@https://example.com/mylib-1.0-py3-none-any.whl",
        "git+https://example.com/mylib.git#egg=mylib",
    ],
)
def test_an_editable_local_or_url_requirement_is_refused_by_name(tmp_path, project, line):
    from imagesmith.errors import LockError

    root, _ = project
    (root / "reqs").mkdir()
    (root / "reqs" / "extra.txt").write_text(f"six  # a comment\n{line}\n")
    (root / "requirements.txt").write_text("-r reqs/extra.txt\n")
    with pytest.raises(LockError) as err:
        compute_inputs(load_spec(root), "b")
    assert "reqs/extra.txt asks for" in str(err.value) and line in str(err.value)
    assert "publish it to a package index" in (err.value.hint or "")


@pytest.mark.parametrize(
    "line",
    [
        "mylib @ git+https://deploy:s3cret@example.com/mylib.git@v1.0",
        "-e git+https://s3cret@example.com/mylib.git#egg=mylib",
        "https://user:s3cret@example.com/mylib-1.0-py3-none-any.whl",
    ],
)
def test_a_refused_requirement_is_named_without_its_credentials(project, line):
    from imagesmith.errors import LockError

    root, _ = project
    (root / "requirements.txt").write_text(f"{line}\n")
    with pytest.raises(LockError) as err:
        compute_inputs(load_spec(root), "b")
    assert "requirements.txt asks for" in str(err.value) and "example.com/mylib" in str(err.value)
    assert "s3cret" not in str(err.value) + (err.value.hint or "")


def test_the_project_itself_and_plain_requirements_pass(tmp_path, project):
    root, _ = project
    (root / "requirements.txt").write_text(
        '-e .\n.\n--extra-index-url https://example.com/simple/\nsix ; python_version < "3.12"\n'
        "numpy>=1.0 \\\n    --hash=sha256:abc\nrequests[socks]==2.0\n"
    )
    spec = (root / "imagesmith.yaml").read_text()
    (root / "imagesmith.yaml").write_text(spec + "extra_index_urls: [https://example.com/simple]\n")
    assert compute_inputs(load_spec(root), "b")["requirements"]


@pytest.mark.parametrize("line", ["-e .[train]", ".[train,serve]", "--editable=.[train]"])
@pytest.mark.parametrize("where", ["requirements.txt", "requirements/prod.txt"])
def test_the_project_itself_with_extras_or_from_a_subfolder_passes(project, line, where):
    """pip and uv read ``-e .`` from the working directory, so in requirements/prod.txt (which
    init now chooses) it is the project too; ``.[extras]`` is the project with its extras."""
    root, _ = project
    (root / "requirements").mkdir()
    (root / where).write_text(f"{line}\nsix\n")
    if where != "requirements.txt":
        (root / "requirements.txt").write_text(f"-r {where}\n")
    assert compute_inputs(load_spec(root), "b")["requirements"]


def test_the_parent_named_from_a_subfolder_file_is_not_the_project(project):
    """``-e ..`` in requirements/prod.txt: the resolver runs in the project's root, where ``..`` is
    the project's parent, a local requirement the lock cannot pin."""
    root, _ = project
    (root / "requirements").mkdir()
    (root / "requirements" / "prod.txt").write_text("-e ..\nsix\n")
    (root / "requirements.txt").write_text("-r requirements/prod.txt\n")
    with pytest.raises(LockError, match="an editable, local-path or URL requirement"):
        compute_inputs(load_spec(root), "b")


@pytest.mark.parametrize("line", ["-i https://pypi.org/simple", "--index-url=https://pypi.org/simple/"])
def test_pypi_named_in_the_file_passes_when_the_spec_names_no_index(project, line):
    """The spec without index_url reads PyPI: the file naming it asks for nothing else."""
    root, _ = project
    (root / "requirements.txt").write_text(f"{line}\nsix\n")
    assert compute_inputs(load_spec(root), "b")["requirements"]


def test_the_spec_s_index_named_in_the_file_with_another_case_or_credentials_passes(project):
    root, _ = project
    (root / "requirements.txt").write_text("--extra-index-url https://ci:tok@Mirror.Example/Simple/\nsix\n")
    spec = (root / "imagesmith.yaml").read_text()
    (root / "imagesmith.yaml").write_text(spec + "extra_index_urls: [https://mirror.example/Simple]\n")
    assert compute_inputs(load_spec(root), "b")["requirements"]  # the host's case is no other index; the path's is


def test_pypi_named_in_the_file_is_refused_when_the_spec_names_another_index(project):
    from imagesmith.errors import LockError

    root, _ = project
    (root / "requirements.txt").write_text("-i https://pypi.org/simple\nsix\n")
    spec = (root / "imagesmith.yaml").read_text()
    (root / "imagesmith.yaml").write_text(spec + "index_url: https://mirror.example/simple\n")
    with pytest.raises(LockError, match="names the package index 'https://pypi.org/simple'"):
        compute_inputs(load_spec(root), "b")


@pytest.mark.parametrize(
    "line, key",
    [
        ("--extra-index-url https://download.example/whl/cpu", "extra_index_urls:"),
        ("-i https://mirror.example/simple", "index_url:"),
        ("--find-links=./wheels", "publish those files"),
        ("--extra-index-url ${ARTIFACTORY_URL}/simple", "the index itself in the spec"),  # pip expands it
        ("-f https://download.pytorch.org/whl/torch_stable.html", "a --find-links page is not a package index"),
    ],
)
def test_an_index_only_the_requirements_file_names_is_refused(project, line, key):
    """The resolver read it, the wheel download did not: a pin found only there failed at build
    time as 'no wheel for Python 3.11 on linux/amd64' (a py3-none-any wheel)."""
    from imagesmith.errors import LockError

    root, _ = project
    (root / "requirements.txt").write_text(f"{line}\ntorch==2.5.0\n")
    with pytest.raises(LockError) as err:
        compute_inputs(load_spec(root), "b")
    assert "requirements.txt names the package index" in str(err.value) and key in (err.value.hint or "")
