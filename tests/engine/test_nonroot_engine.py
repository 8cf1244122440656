"""Images that need no root (issue 12), on the real engine: both images run as the non-root user
``plan.image_user`` names, with the artifacts folder theirs; ``user: root`` opts out;
``imagesmith run train`` run by a non-root caller leaves files owned by that caller; signoff runs
the image under test locked down and removes its containers on Ctrl-C and SIGTERM.

The non-root checks read the worker's shared build of `tiny` (``tiny_built``); the images this
module builds get tags of their own (``imagesmith-test/nonroot-…``), and containers are looked for by
the signoff label AND this module's image (made its own by a label of its own), so tests of other developers on the same engine
neither disturb nor are disturbed by these."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from imagesmith.build import BuildOptions, build_project
from imagesmith.layout import LABEL_SIGNOFF
from imagesmith.plan import image_user
from imagesmith.run import run_role
from imagesmith.spec.load import load_spec
from tests.conftest import PROJECTS, copy_project, shared_repo
from tests.helpers import cli

pytestmark = pytest.mark.engine

CALLER = 12345  # a non-root uid and gid that exist nowhere: the files must still be theirs


@pytest.fixture(scope="module")
def tiny(tiny_built):
    """The worker's shared build of `tiny` (the tests read it, and copy its project to change it)."""
    return tiny_built


@pytest.fixture(scope="module")
def native(tmp_path_factory, engine, base_image):
    """tiny-native (a model trained, served and signed off with the standard library): (spec,
    serve image ID, artifacts folder with a model and its golden outputs)."""
    root = copy_project(PROJECTS / "tiny-native", tmp_path_factory.mktemp("nonroot") / "tiny-native")
    spec = load_spec(root)
    # A label of this module's own makes the image (and so the "ancestor" the containers are
    # looked for by) this module's alone: without it the build is byte-identical to other modules'
    # builds of it, whose signoff containers other workers start and remove meanwhile.
    options = BuildOptions(base=base_image, tag="imagesmith-test/nonroot-native", labels={"test.module": "nonroot"})
    result = build_project(spec, engine, options)
    folder = root / "artifacts"
    assert run_role(spec, engine, "train", tag="imagesmith-test/nonroot-native", artifacts=folder) == 0
    proc = cli("golden", "-p", str(root), "--model", str(folder), "--tag", "imagesmith-test/nonroot-native")
    assert proc.returncode == 0, proc.stderr
    return spec, engine.image(result.images["serve"].ref).id, folder


def test_both_images_run_as_the_non_root_user_that_owns_the_artifacts_folder(tiny, engine):
    spec, result = tiny
    assert image_user(spec) == "10001:10001"
    for role in ("train", "serve"):
        ref = result.images[role].ref
        assert engine.image(ref).config.get("User") == image_user(spec), role
        out = engine.run(
            ref,
            [
                "-c",
                "import os, pwd; print(os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name, os.environ['HOME']);"
                "open('/artifacts/model.bin', 'w').write('x'); s = os.stat('/artifacts/model.bin');"
                "print(s.st_uid, s.st_gid, os.access('/app', os.W_OK), os.access('/opt/venv', os.W_OK))",
            ],
            entrypoint=["/opt/venv/bin/python"],
        )
        assert out.split("\n")[:2] == ["10001 10001 imagesmith /home/imagesmith", "10001 10001 False False"], role
    shadow = engine.run(result.images["serve"].ref, ["/etc/shadow"], entrypoint=["tail", "-n1"], user="0")
    assert shadow.strip() == "imagesmith:!:::::::"  # no day of the build in it


def test_user_root_opts_out(tiny, tmp_path, engine, base_image):
    spec, _ = tiny
    root = tmp_path / "tiny"
    shutil.copytree(spec.root, root)
    (root / "imagesmith.yaml").write_text((root / "imagesmith.yaml").read_text() + "user: root\n")
    result = build_project(
        load_spec(root), engine, BuildOptions(base=base_image, tag="imagesmith-test/nonroot-opt-out")
    )
    assert image_user(load_spec(root)) == ""
    assert "USER" not in (root / "Dockerfile").read_text()
    for role in ("train", "serve"):
        assert engine.image(result.images[role].ref).config.get("User", "") == ""
    out = engine.run(result.images["train"].ref, ["-u"], entrypoint=["id"])
    assert out.strip() == "0"


def _docker_socket_gid() -> int:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert host.startswith("unix://"), "this test runs the CLI as another user against a local socket"
    return os.stat(host[len("unix://") :]).st_gid


def _as_caller(argv: list[str], home: Path, log: Path) -> int:
    """``imagesmith ARGV`` through the CLI's entry point in a child process that has become
    uid/gid ``CALLER`` (with the docker socket's group): a real non-root caller. A fork, not a
    new interpreter: this one's packages may live where that user cannot read (/root/...), so
    the same command line is parsed here first, as root, up to a refusal that touches nothing
    (a bad --user), which imports what the command needs."""
    import imagesmith.cli

    assert imagesmith.cli.main([*argv[:2], "--user", "not a user", *argv[2:]]) == 125
    gid = _docker_socket_gid()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.setgroups([gid])
            os.setgid(CALLER)
            os.setuid(CALLER)
            os.environ["HOME"] = str(home)
            code = imagesmith.cli.main(argv)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_run_train_by_a_non_root_caller_leaves_files_owned_by_the_caller(tiny):
    """The CLI, run by uid/gid 12345, trains in the image: the artifacts folder it makes and
    every file the container writes there are 12345's (the container ran as 12345:12345)."""
    spec, result = tiny
    place = Path(tempfile.mkdtemp(prefix="imagesmith-nonroot-"))
    try:
        os.chmod(place, 0o755)
        project = place / "tiny"
        shutil.copytree(spec.root, project, ignore=shutil.ignore_patterns(".git", "artifacts"))
        home = place / "home"
        home.mkdir()
        for path in (project, home):
            os.chown(path, CALLER, CALLER)
        write = (
            "import os; open('/artifacts/model.bin', 'w').write('m'); os.mkdir('/artifacts/sub');"
            "open('/artifacts/sub/part.txt', 'w').write('p'); print('uid', os.getuid(), os.getgid())"
        )
        argv = ["run", "train", "-p", str(project), "--tag", shared_repo("tiny"), "--"]
        code = _as_caller(argv + ["python", "-c", write], home, place / "log")
        output = (place / "log").read_text()
        assert code == 0, output
        assert f"uid {CALLER} {CALLER}" in output
        folder = project / "artifacts"
        written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
        assert written == ["imagesmith-stamp.json", "model.bin", "sub", "sub/part.txt"]
        for path in [folder, *folder.rglob("*")]:
            st = path.stat()
            assert (st.st_uid, st.st_gid) == (CALLER, CALLER), path
    finally:
        shutil.rmtree(place)


def _signoff(spec, image_id: str, model: Path, out: Path, requests: int) -> subprocess.Popen:
    """The CLI as a terminal starts it: SIGINT at its default. A run started in the background by
    a shell without job control (a CI script's `make test &`) inherits SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler: Ctrl-C could not reach the command at all."""
    return subprocess.Popen(
        [sys.executable, "-m", "imagesmith", "signoff", image_id, "--model", str(model)]
        + ["-p", str(spec.root), "-o", str(out), "--requests", str(requests)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _signoff_containers(engine, image_id: str) -> list:
    """Signoff containers of exactly this image. Not the engine's "ancestor" filter: the containerd
    store counts an image with the same layers (another module's build: only the config differs) as
    an ancestor, and other workers start and remove signoff containers of that one meanwhile."""
    # ignore_removed: other workers remove their signoff containers between the list and the SDK's
    # inspection of each (a 404 that failed a clean-clone run, 2026-12-07)
    found = engine.client.containers.list(all=True, filters={"label": LABEL_SIGNOFF}, ignore_removed=True)
    return [c for c in found if c.attrs.get("Image") == image_id]


def test_signoff_passes_with_the_image_locked_down_and_leaves_nothing(native, engine, tmp_path):
    spec, serve_id, folder = native
    proc = _signoff(spec, serve_id, folder, tmp_path / "signoff.json", 60)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    record = json.loads((tmp_path / "signoff.json").read_text())
    assert [c["check"] for c in record["checks"]] == ["model", "golden", "http", "latency", "outputs", "classes"]
    assert record["passed"] is True
    assert _signoff_containers(engine, serve_id) == []


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signoff_interrupted_removes_its_locked_down_container(native, engine, tmp_path, signum, code):
    """While the served container runs: its HostConfig says no capabilities, no new privileges,
    read-only root, /tmp in memory; it runs as the image's user. Then Ctrl-C (or SIGTERM) to the
    CLI: it exits 130 (143), and neither the container nor its volumes are left."""
    spec, serve_id, folder = native
    proc = _signoff(spec, serve_id, folder, tmp_path / "signoff.json", 10_000_000)
    try:
        deadline = time.monotonic() + 300
        running = []
        while not running:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no signoff container started"
            running = [c for c in _signoff_containers(engine, serve_id) if c.status == "running"]
            time.sleep(0.1)
        container = running[0]
        host = container.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["ReadonlyRootfs"] is True and "/tmp" in host["Tmpfs"]
        assert container.attrs["Config"]["User"] == "10001:10001"  # the image's USER, not overridden
        assert container.exec_run(["id", "-u"]).output.decode().strip() == "10001"
        assert container.exec_run(["touch", "/app/x"]).exit_code != 0  # read-only root
        model = container.exec_run(["ls", "-ln", "/artifacts"]).output.decode()
        assert "imagesmith-stamp.json" in model and " 0 0 " in model  # copied in, root's, read-only
        volumes = [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]
        assert [m["Destination"] for m in container.attrs["Mounts"]] == ["/artifacts"]
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the test failed before the signal: leave nothing behind
            proc.kill()
            proc.communicate()
            for leftover in _signoff_containers(engine, serve_id):
                leftover.remove(force=True, v=True)
    assert proc.returncode == code, out + err
    assert "Traceback" not in err, err
    if signum == signal.SIGTERM:  # (typer turns Ctrl-C into exit 130 itself, without a word)
        assert "error: terminated" in err, out + err
    left = _signoff_containers(engine, serve_id)
    assert left == [], ([(c.id[:12], c.attrs["State"], c.attrs["Created"]) for c in left], time.time(), err)
    assert not [v for v in engine.client.volumes.list() if v.name in volumes]
    assert not (tmp_path / "signoff.json").exists()
