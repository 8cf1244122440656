"""`imagesmith run`'s artifacts folder in the shapes a user gives it: a link, a FIFO, a file, a
path that cannot be created, a folder that cannot be written. Each is one usage error naming the
path (exit 125 on the command line, `run`'s own failure), never a traceback."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from imagesmith.errors import UsageError
from imagesmith.run import artifacts_folder, run_role
from imagesmith.spec.load import load_spec
from tests.fakes import FakeEngine

TINY = Path(__file__).resolve().parents[1] / "projects" / "tiny"


def _engine() -> FakeEngine:
    return FakeEngine.with_labels({"tiny:train": {"io.imagesmith.role": "train"}})


def test_a_train_artifacts_path_that_is_no_folder_is_a_usage_error(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "file").write_text("")
    for path, says in (
        (fifo, "fifo is not a folder: train writes the model into a folder"),
        (tmp_path / "file", "file is not a folder"),
        (tmp_path / "file" / "sub", "cannot create the artifacts folder .*file/sub: Not a directory"),
    ):
        with pytest.raises(UsageError, match=says):
            artifacts_folder(path, "train")
    with pytest.raises(UsageError, match="there is no model to serve from it"):
        artifacts_folder(fifo, "serve")


def test_a_link_is_followed_and_the_real_folder_mounted(tmp_path):
    """Held before the artifacts check came (run_role resolved the path): kept so that the check,
    which now resolves it, goes on mounting the real folder, not the link."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    spec = replace(load_spec(TINY), root=tmp_path)
    engine = _engine()
    run_role(spec, engine, "train", artifacts=tmp_path / "link")
    assert engine.called("run_attached")[-1][2]["mounts"] == {str(real): "/artifacts"}


def test_a_folder_the_caller_cannot_write_is_refused_before_train_runs(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == folder else real_access(p, mode))
    with pytest.raises(UsageError, match="ro is not writable: train could not save the model there"):
        artifacts_folder(folder, "train")
    spec = replace(load_spec(TINY), root=tmp_path)
    engine = _engine()
    with pytest.raises(UsageError, match="not writable"):
        run_role(spec, engine, "train", artifacts=folder)
    assert not engine.called("run_attached")
    # another user's access is the engine's to judge: the container says so itself
    run_role(spec, engine, "train", artifacts=folder, user="10001:10001")
    assert engine.called("run_attached")


def test_a_container_name_or_port_docker_would_refuse_is_a_usage_error(tmp_path):
    spec = replace(load_spec(TINY), root=tmp_path)
    engine = FakeEngine.with_labels({"tiny:serve": {"io.imagesmith.role": "serve"}})
    (tmp_path / "artifacts").mkdir()
    for bad in ("bad name!", "-rm", "", "x" * 129, "é", "a"):  # docker: "Invalid container name (a)"
        with pytest.raises(UsageError, match="is not a container name"):
            run_role(spec, engine, "serve", name=bad)
    for port in (0, 65536, 70000, -1):
        with pytest.raises(UsageError, match=f"--port {port} is not a port number"):
            run_role(spec, engine, "serve", host_port=port)
    assert not engine.called("run_attached")
    run_role(spec, engine, "serve", name="my-model_1.2", host_port=65535)
    assert engine.called("run_attached")[-1][2]["name"] == "my-model_1.2"


def test_docker_s_name_conflict_is_one_error_naming_the_container(tmp_path):
    """`--name` of a container that exists: docker's raw "Conflict" paragraph is kept back and
    said as one error with how to go on."""
    from imagesmith.engine.attached import NAME_TAKEN, _StderrRelay

    said = (
        'docker: Error response from daemon: Conflict. The container name "/mine" is already in use by '
        'container "c76e4b6e". You have to remove (or rename) that container to be able to reuse that name.\n'
    )
    assert NAME_TAKEN.match(said) and not NAME_TAKEN.match("Conflict. The container name x is already in use")
    read, write = os.pipe()
    os.write(write, said.encode())
    os.close(write)
    relay = _StderrRelay(os.fdopen(read, "rb"))
    relay.run()
    assert relay.name_taken == said.splitlines()[0]


@pytest.mark.parametrize("docker", ["missing", "failing"])
def test_a_second_ctrl_c_stops_docker_run_when_the_engine_cannot_kill_the_container(tmp_path, monkeypatch, docker):
    """The second Ctrl-C (or SIGTERM) kills the container with `docker kill`; when that cannot be
    done (no docker command, an engine that refuses), docker run itself is killed, so the user
    gets their terminal back, and nothing is raised out of the signal handler (a traceback)."""
    import subprocess

    from imagesmith.engine import attached

    fake = tmp_path / "docker"
    if docker == "failing":
        fake.write_text("#!/bin/sh\necho 'Error response from daemon: engine busy' >&2\nexit 1\n")
        fake.chmod(0o755)
    monkeypatch.setattr(attached, "docker_cli", lambda: str(fake))
    cidfile = tmp_path / "cid"
    cidfile.write_text("c76e4b6e")
    # a command that ignores SIGINT (kept across exec), ready when it says so
    proc = subprocess.Popen(["sh", "-c", 'trap "" INT; echo ready; exec sleep 30'], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    try:
        stop = attached._Stopper(proc, str(cidfile))
        stop.signal(2)  # passed on: the process ignores it
        assert proc.poll() is None
        stop.signal(2)
        assert proc.wait(timeout=10) == -9
    finally:
        proc.kill()
        proc.wait()


def test_the_stop_message_names_ctrl_c_only_where_it_reaches_imagesmith(tmp_path, capsys):
    """With -t (a terminal on stdin and stdout) Ctrl-C is a key the container reads: the message
    after a SIGTERM does not promise that a second Ctrl-C kills the container."""
    import subprocess

    from imagesmith.engine import attached

    for keys, said in ((False, "Ctrl-C or SIGTERM again kills it"), (True, "(SIGTERM again kills it)")):
        proc = subprocess.Popen(["sleep", "30"])
        try:
            attached._Stopper(proc, str(tmp_path / "cid"), keys=keys).signal(15)
            assert proc.wait(timeout=10) == -15
        finally:
            proc.kill()
            proc.wait()
        assert said in capsys.readouterr().err


def test_a_third_ctrl_c_while_docker_kill_hangs_stops_docker_run(tmp_path, monkeypatch):
    """An engine that does not answer holds `docker kill` (up to 60 s): a Ctrl-C then stops
    docker run itself at once, where the KeyboardInterrupt escaped the signal handling (a
    traceback, and imagesmith waiting on a docker run that still ran)."""
    import signal
    import subprocess
    import threading
    import time

    from imagesmith.engine import attached

    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")  # docker kill on an engine that does not answer
    fake.chmod(0o755)
    monkeypatch.setattr(attached, "docker_cli", lambda: str(fake))
    (tmp_path / "cid").write_text("c76e4b6e")
    proc = subprocess.Popen(["sh", "-c", 'trap "" INT; echo ready; exec sleep 30'], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    try:
        stop = attached._Stopper(proc, str(tmp_path / "cid"))
        stop.signal(signal.SIGINT)
        started = time.monotonic()
        timer.start()
        try:
            stop.signal(signal.SIGINT)  # docker kill hangs; the timer's Ctrl-C comes meanwhile
        except KeyboardInterrupt:
            pytest.fail("the Ctrl-C during docker kill escaped")
        assert proc.wait(timeout=10) == -9 and time.monotonic() - started < 10
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
