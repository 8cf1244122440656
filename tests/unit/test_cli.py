"""The command line as CI and deploy scripts see it (issue 15), without an engine: --version,
plain `error:`/`hint:` lines for command-line mistakes, one JSON shape with errors as JSON,
`-p` on every command that reads a project, `run`'s own exit code, `render --check -o -`, the
`python: 3.10` hint, `-rFILE` includes in `lock --check`, tags, labels, the version label and the
plain BuildKit log. Builds with tags and labels are in test_ci_kit.py / test_cli_engine tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from imagesmith import __version__
from imagesmith.build import image_tags, parse_labels, project_version
from imagesmith.errors import UsageError
from imagesmith.lock.pins import Pin
from imagesmith.lock.update import lock_project
from imagesmith.progress import PlainLog, build_log
from imagesmith.spec.load import load_spec
from tests.fakes import FakeEngine
from tests.helpers import cli

BOX = set("╭╮╰╯│─")
TINY = Path(__file__).resolve().parents[1] / "projects" / "tiny"


def test_version_through_the_real_console_entry_point():
    proc = cli("--version", in_process=False)  # `python -m imagesmith` in a subprocess
    assert proc.returncode == 0 and proc.stdout.strip() == f"imagesmith {__version__}"
    bad = cli("verify", "--bogus", in_process=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


# What each entry point runs: `python -m imagesmith`, and the console script pip writes for
# pyproject.toml's [project.scripts] (``from imagesmith.cli import main; sys.exit(main())``)
ENTRY_POINTS = {
    "python -m imagesmith": ["-m", "imagesmith"],
    "console script": ["-c", "import sys; from imagesmith.cli import main; sys.exit(main())"],
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_ctrl_c_while_the_cli_itself_imports_is_one_line(entry):
    """Ctrl-C in the first ~0.3 s of a command, while imagesmith.cli itself imported (typer), was a
    KeyboardInterrupt traceback: it is `error: interrupted` and exit 130, as later. SIGINT goes
    out as soon as (and a little after) the interpreter says (-X importtime) that the first module
    the CLI's own code imports is in: sooner is Python's own start-up, before a line of imagesmith
    runs. `--help` loads every command, so the run is still going when the signal comes."""
    import os
    import signal
    import sys
    import time

    from tests.helpers import _bytecode_kept

    repo = Path(__file__).resolve().parents[2]
    env = _bytecode_kept({**os.environ, "PYTHONPATH": str(repo)})
    for delay in (0, 0.02, 0.06):
        argv = [sys.executable, "-X", "importtime", *ENTRY_POINTS[entry], "--help"]
        proc = subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        said, package = [], False
        for line in proc.stderr:  # each import as it ends: the package, then what the CLI's code imports
            said.append(line)
            module = line.rsplit("|", 1)[-1].strip()
            if package and module != "imagesmith.cli":
                break
            package = package or module == "imagesmith"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        said = [line for line in "".join(said).splitlines() + err.splitlines() if not line.startswith("import time:")]
        # 130; or SIGINT's own death (a shell's $? is 130 for both): CPython ends a process so
        # after its main returned when the Ctrl-C was raised inside a string exec (a dataclass's
        # generated methods, as typer's import makes them), caught or not (bpo-1054041, gh-128130)
        assert proc.returncode in (130, -signal.SIGINT), (delay, proc.returncode, err)
        assert "Traceback" not in err and said == ["error: interrupted"], (delay, err)


def test_a_ctrl_c_python_cannot_raise_is_sent_again(monkeypatch, capsys):
    """A Ctrl-C that lands in code that cannot raise (the import system's weakref callbacks, a
    ``__del__``) was printed as "Exception ignored in ...", a KeyboardInterrupt traceback, and the
    command went on to exit 0: it is sent again, and reported as any Ctrl-C is."""
    from imagesmith import cli as console
    from imagesmith.cli import entry

    class Dropped:
        def __del__(self):
            raise KeyboardInterrupt

    def command(args, *rest):
        Dropped()  # as a SIGINT in a weakref callback: "Exception ignored in", and on
        return sum(range(1000))  # and ends: the Ctrl-C sent again lands in main

    monkeypatch.setattr(entry, "_main", command)
    assert console.main(["--version"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


@pytest.mark.parametrize(
    "args, words",
    [
        (["verify"], "Missing argument"),
        (["verify", "x", "--bogus"], "No such option: --bogus"),
        (["build", "--progress", "loud", "-p", str(TINY)], "--progress must be auto, plain, tty or quiet"),
        (["build", "--push-only", "-p", str(TINY)], "--push-only needs --push REGISTRY/REPO"),
        (["build", "--push", "127.0.0.1:5000/x", "--push-only", "--load", "-p", str(TINY)], "--push-only keeps"),
        (["build", "--push", "127.0.0.1:5000/x", "--push-only", "-t", "app", "-p", str(TINY)], "where -t would"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_command_line_mistakes_are_plain_error_lines_with_exit_2(args, words):
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and proc.stderr.startswith("error: ") and "\nhint: " in proc.stderr
    assert not BOX & set(proc.stderr + proc.stdout)


def test_errors_are_json_on_stdout_under_json():
    proc = cli("verify", "x", "--bogus", "--json")
    data = json.loads(proc.stdout)
    assert proc.returncode == 2 and data["imagesmith_json"] == 1 and data["exit"] == 2
    assert "No such option" in data["error"] and data["hint"]
    proc = cli("lock", "-p", str(TINY), "--resolver", "nope", "--json")
    data = json.loads(proc.stdout)
    assert (proc.returncode, data["exit"]) == (2, 2) and "--resolver must be" in data["error"]


@pytest.fixture
def locked(tmp_path, monkeypatch) -> Path:
    """The tiny project with a lock written by the real lock code over the fake engine."""
    root = tmp_path / "tiny"
    shutil.copytree(TINY, root)
    (root / "reqs").mkdir()
    (root / "reqs" / "base.txt").write_text("six==1.17.0\n")
    (root / "requirements.txt").write_text("-rreqs/base.txt\n")  # pip's glued form
    spec_text = (
        (root / "imagesmith.yaml")
        .read_text()
        .replace("requirements:\n  - six==1.17.0\n", "requirements: requirements.txt\n")
    )
    (root / "imagesmith.yaml").write_text(spec_text)

    class Resolver:
        name = "uv"
        wheels_only = False

        def resolve(self, request):
            return [Pin("six", "1.17.0", ("sha256:" + "2" * 64,))]

    monkeypatch.setattr("imagesmith.lock.update.get_resolver", lambda name, engine=None: Resolver())
    engine = FakeEngine(
        registry={"imagesmith-base:bookworm-py311": "sha256:" + "1" * 64}, runs=lambda image, command: "3.11.2\n"
    )
    lock_project(load_spec(root), engine)
    return root


def test_lock_and_render_checks_speak_json_and_follow_glued_includes(locked):
    proc = cli("lock", "--check", "-p", str(locked), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "imagesmith_json": 1,
        "lock": str(locked / "imagesmith.lock"),
        "up_to_date": True,
        "changed": [],
    }
    (locked / "reqs" / "base.txt").write_text("six==1.16.0\n")  # only reachable through -rreqs/base.txt
    proc = cli("lock", "--check", "-p", str(locked), "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["changed"] == ["requirements"]
    (locked / "reqs" / "base.txt").write_text("six==1.17.0\n")

    missing = cli("render", "--check", "-p", str(locked), "--json")
    assert missing.returncode == 1 and json.loads(missing.stdout)["up_to_date"] is False
    assert cli("render", "-p", str(locked), "-q").returncode == 0
    fresh = cli("render", "--check", "-p", str(locked), "-o", "-")
    assert fresh.returncode == 0 and fresh.stdout == ""  # --check writes nothing, also with -o -
    (locked / "Dockerfile").write_text((locked / "Dockerfile").read_text() + "# edited\n")
    stale = cli("render", "--check", "-p", str(locked), "-o", "-")
    assert stale.returncode == 1 and "Dockerfile is stale" in stale.stderr
    both = cli("render", "-p", str(locked), "-o", "-", "--json")
    assert both.returncode == 2 and json.loads(both.stdout)["exit"] == 2


def test_p_reads_relative_file_arguments_from_the_project(locked, tmp_path):
    here = tmp_path / "elsewhere"
    here.mkdir()
    proc = cli("parity-of", "-p", str(locked), "--json", cwd=here)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["imagesmith_json"] == 1 and data["parity"].startswith("sha256:")
    inspected = cli("inspect", "imagesmith.lock", "-p", str(locked), "--json", cwd=here)
    assert inspected.returncode == 0 and json.loads(inspected.stdout)["parity"] == data["parity"]


def test_a_lock_has_no_id_or_digest_in_json(locked):
    """`id` and `digest` name an image; a lock's are null, not an empty string that a script
    would take for a value (`digest` is documented as always a content digest)."""
    inspected = json.loads(cli("inspect", "imagesmith.lock", "-p", str(locked), "--json").stdout)
    assert inspected["id"] is None and inspected["digest"] is None
    diffed = cli("diff", "imagesmith.lock", "imagesmith.lock", "-p", str(locked), "--json")
    assert diffed.returncode == 0, diffed.stderr
    sides = json.loads(diffed.stdout)
    assert all(sides[s]["id"] is None and sides[s]["digest"] is None for s in ("a", "b"))


def test_run_exits_125_for_its_own_failures(locked):
    proc = cli("run", "deploy", "-p", str(locked))
    assert proc.returncode == 125 and proc.stderr.startswith("error: ")


def test_unquoted_python_gets_the_version_the_user_meant(tmp_path):
    (tmp_path / "imagesmith.yaml").write_text(
        "name: a\npython: 3.10\nbase: x:1\nrequirements: [six]\ntrain: {command: [a]}\nserve: {command: [a]}\n"
    )
    proc = cli("render", "-p", str(tmp_path))
    assert proc.returncode == 2 and 'python: "3.10" (YAML read the number 3.1)' in proc.stderr
    assert "examples/" not in proc.stderr  # hints name what a pip user has


def test_tags_labels_and_the_version_label(tmp_path):
    parity = "sha256:" + "ab" * 32
    assert image_tags(("app",), "serve", parity) == ["app:serve", "app:serve-" + "ab" * 6]
    assert image_tags(("reg:5000/team/app:v1.2", "app"), "train", parity) == [
        "reg:5000/team/app:v1.2-train",
        "app:train",
        "reg:5000/team/app:train-" + "ab" * 6,
    ]
    for bad in ("Bad Name", "app:"):  # an empty tag was taken as the bare repository
        with pytest.raises(UsageError, match="is not an image repository or REPO:TAG reference"):
            image_tags((bad,), "train", parity)
    assert parse_labels(["team=vision", "a.b/c=x=y"]) == {"a.b/c": "x=y", "team": "vision"}
    for bad in ("io.imagesmith.parity=x", "org.opencontainers.image.base.digest=x", "novalue", "k=a\nb"):
        with pytest.raises(UsageError):
            parse_labels([bad])
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "2.3.4"\n')
    assert project_version(tmp_path) == "2.3.4"
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit", "-q", "--allow-empty", "-m", "x"],
        cwd=tmp_path,
        check=True,
    )
    subprocess.run(["git", "tag", "v2.3.4-rc1"], cwd=tmp_path, check=True)
    assert project_version(tmp_path) == "v2.3.4-rc1"  # the release tag wins
    assert project_version(tmp_path / "nowhere") is None  # no label rather than "unknown" (issue 23)


def test_the_plain_log_labels_each_step_and_times_it():
    lines: list[str] = []
    log = PlainLog(lines.append)
    for line in [
        '#0 building with "default" instance using docker driver',
        "",
        "#5 [shared 2/4] RUN --network=none pip install",
        "#6 [source 1/2] COPY [app, /app/app]",
        "#5 Collecting six",
        "#6 CACHED",
        "#5 DONE 12.3s",
        "#7 [serve] exporting to image",
        "#7 ERROR: failed to push",
        "ERROR: failed to solve: x",
    ]:
        log.echo(line)
    assert lines == [
        '#0 building with "default" instance using docker driver',
        "==> [shared 2/4] RUN --network=none pip install",
        "==> [source 1/2] COPY [app, /app/app]",
        "    [shared 2/4] | Collecting six",
        "    [source 1/2] cached",
        "    [shared 2/4] done in 12.3s",
        "==> [serve] exporting to image",
        "    [serve] ERROR: failed to push",
        "ERROR: failed to solve: x",
    ]
    assert build_log("quiet", lines.append).echo is None and build_log("tty", lines.append).echo is None


def test_global_options_before_the_command_work_as_after_it(tmp_path):
    """-p, -q, -v and --json before the command, as in git and docker; the command's own forms
    keep working, and a command without the option refuses it (exit 2, one error line)."""
    project = tmp_path / "tiny"
    shutil.copytree(TINY, project)
    (project / "imagesmith.yaml").unlink()  # init proposes a spec from what is there
    (project / "requirements.txt").write_text("six==1.17.0\n")
    after = cli("init", "-p", str(project), "--print", "--json")
    before = cli("-p", str(project), "--json", "init", "--print")
    assert before.returncode == after.returncode == 0, before.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout) and json.loads(before.stdout)["written"] is False
    assert "check:" in cli("-p", str(project), "init", "--print").stderr
    assert cli("-q", "-p", str(project), "init", "--print").stderr == ""  # -q before the command silences it
    assert cli("-q", "init", "-p", str(project), "--print").stderr == ""
    assert not (project / "imagesmith.yaml").exists()

    refused = cli("--json", "run", "train", "-p", str(project))
    assert refused.returncode == 2 and refused.stderr.startswith("error: ") and "--json" in refused.stderr
    assert "`imagesmith run` has no such option" in refused.stderr
    verbose = cli("-v", "parity-of", "-p", str(project))  # accepted; the command's own error
    assert verbose.returncode == 2 and "No such option" not in verbose.stderr


def test_render_never_overwrites_a_dockerfile_it_did_not_write(locked):
    """Only a file with imagesmith's header is replaced: a project's own Dockerfile (or its
    Dockerfile.dockerignore) stops render with one error and a hint, byte for byte as it was;
    the spec's `dockerfile` names where imagesmith writes its own."""
    own = "FROM python:3.11-slim\nCOPY . /app\n"
    (locked / "Dockerfile").write_text(own)
    refused = cli("render", "-p", str(locked))
    assert refused.returncode == 2 and (locked / "Dockerfile").read_text() == own
    assert refused.stderr.startswith("error: ") and "was not written by imagesmith" in refused.stderr
    assert "hint: set `dockerfile: imagesmith.Dockerfile`" in refused.stderr and "-o FILE" in refused.stderr
    assert not (locked / "Dockerfile.dockerignore").exists()  # nothing else written either

    spec = locked / "imagesmith.yaml"
    spec.write_text(spec.read_text() + "dockerfile: imagesmith.Dockerfile\n")
    assert cli("render", "-p", str(locked), "-q").returncode == 0
    assert (locked / "imagesmith.Dockerfile").read_text().startswith("# Generated by imagesmith ")
    assert (locked / "imagesmith.Dockerfile.dockerignore").is_file() and (locked / "Dockerfile").read_text() == own
    assert cli("render", "--check", "-p", str(locked)).returncode == 0  # checks the spec's dockerfile
    assert cli("render", "-p", str(locked), "-q").returncode == 0  # its own file is replaced

    ignore = locked / "mine.Dockerfile.dockerignore"
    ignore.write_text("data/\n")
    other = cli("render", "-p", str(locked), "-o", str(locked / "mine.Dockerfile"))
    assert other.returncode == 2 and str(ignore) in other.stderr and ignore.read_text() == "data/\n"
    assert not (locked / "mine.Dockerfile").exists()


def test_build_refuses_before_anything_runs_when_a_user_dockerfile_is_in_the_way(locked):
    own = "FROM python:3.11-slim\n"
    (locked / "Dockerfile").write_text(own)
    refused = cli("build", "-p", str(locked), "--locked")
    assert refused.returncode == 2 and "was not written by imagesmith" in refused.stderr
    assert "Traceback" not in refused.stderr and (locked / "Dockerfile").read_text() == own


def test_the_spec_dockerfile_key_is_a_file_path_inside_the_project(tmp_path):
    root = tmp_path / "tiny"
    shutil.copytree(TINY, root)
    (root / "docker").mkdir()
    text = (root / "imagesmith.yaml").read_text()
    for value, words in [
        ("/etc/Dockerfile", "expected a relative file path"),
        ("../Dockerfile", "inside the project"),
        ("docker", "is a folder"),
        ("nowhere/Dockerfile", "does not exist"),
    ]:
        (root / "imagesmith.yaml").write_text(text + f"dockerfile: {value}\n")
        proc = cli("render", "-p", str(root), "-o", "-")
        assert proc.returncode == 2 and words in proc.stderr, (value, proc.stderr)
    (root / "imagesmith.yaml").write_text(text + "dockerfile: docker/imagesmith.Dockerfile\n")
    assert load_spec(root).dockerfile_path == root / "docker" / "imagesmith.Dockerfile"


def test_a_ctrl_c_sent_again_after_the_command_reported_one_is_not_a_second_error_line(monkeypatch, capsys):
    """cli.main sends an interrupt Python could not raise once more and waits for it; when the
    command had already stopped on the first (exit 130, its `error: interrupted` printed), the
    second lands in that wait and is not reported again."""
    import imagesmith.cli as cli_package
    from imagesmith.cli import entry, output

    def command(argv):
        cli_package._SENT_AGAIN.append(True)  # as _interrupt_again does
        output.stopped("interrupted")
        return 130

    def interrupted(seconds):  # the interrupt sent again lands in cli.main's wait for it (no timing)
        raise KeyboardInterrupt

    monkeypatch.setattr(entry, "main", command)
    monkeypatch.setattr(cli_package.time, "sleep", interrupted)
    assert cli_package.main(["lock"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


@pytest.mark.parametrize("command", ["lock", "render", "build"])
def test_a_ctrl_c_inside_a_command_is_one_error_line_and_130(command, tmp_path, monkeypatch, capsys):
    """Ctrl-C while a command ran (a lock's resolution, a build) ended with exit 130 and not a
    word: typer (0.28) turns a KeyboardInterrupt inside a command into a silent exit 130, so the
    CLI's own `error: interrupted` never came. Every command now says it, once."""
    import importlib

    import imagesmith.cli as cli_package

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    module = importlib.import_module(f"imagesmith.cli.{command}")
    monkeypatch.setattr(module, "load_spec", interrupted)  # each command's first step
    shutil.copytree(TINY, tmp_path / "p")
    assert cli_package.main([command, "-p", str(tmp_path / "p")]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_sigterm_while_the_cli_itself_imports_is_one_line_and_143():
    """SIGTERM (CI cancelling a job) in the first ~0.3 s of a command, while the CLI imported typer,
    killed the process on the spot: no word, and -15 for a caller that reads the code, not 143.
    It is `error: terminated` and exit 143, as later (sent once typer's first module is in)."""
    import os
    import signal
    import sys

    from tests.helpers import _bytecode_kept

    repo = Path(__file__).resolve().parents[2]
    env = _bytecode_kept({**os.environ, "PYTHONPATH": str(repo)})
    argv = [sys.executable, "-X", "importtime", "-m", "imagesmith", "--help"]
    proc = subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # the CLI imports typer: its first module is in
        if line.rsplit("|", 1)[-1].strip().startswith(("typer", "click")):
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    said = [line for line in err.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 143 and said == ["error: terminated"], (proc.returncode, err)
