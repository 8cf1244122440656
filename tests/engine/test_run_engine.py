"""`imagesmith run` on the real engine: how a container stops, what a busy port says, which
folder the messages name.

The tests only run the `tiny` project's images: the worker's shared build of it (``tiny_built``,
one build per worker, taken in turns with any other worker that builds the same names), from a
copy of its project.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from imagesmith.spec.load import load_spec
from tests.conftest import PROJECTS, copy_project, shared_repo

pytestmark = pytest.mark.engine

TAG = shared_repo("tiny")
# A server that installs no SIGTERM handler, as Flask's `python app.py` does: as a container's
# PID 1 the kernel ignores SIGTERM for it
DEAF_SERVER = "import time; print('serving', flush=True); time.sleep(600)"


@pytest.fixture(scope="module")
def tiny(tiny_built, tmp_path_factory):
    """A copy of the shared build's project (its spec and lock name the shared images): these
    tests add an artifacts folder, which the other modules' copies of that project must not get."""
    spec, _ = tiny_built
    return Path(shutil.copytree(spec.root, tmp_path_factory.mktemp("run") / "tiny"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _imagesmith(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "imagesmith", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        **kw,
    )


def _running(name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["docker", "inspect", "-f", "{{json .State.Running}}", name], capture_output=True, text=True
        )
        if proc.returncode == 0 and json.loads(proc.stdout) is True:
            return
        time.sleep(0.2)
    raise AssertionError(f"container {name} did not start within {timeout} s")


def _serve_deaf(tiny: Path, name: str) -> subprocess.Popen:
    (tiny / "artifacts").mkdir(exist_ok=True)
    proc = _imagesmith(
        "run", "serve", "-p", str(tiny), "-t", TAG, "--port", str(_free_port()), "--name", name,
        "--", "python", "-c", DEAF_SERVER,
    )  # fmt: skip
    _running(name)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "serving"
    return proc


@pytest.mark.parametrize("how", ["sigterm-to-imagesmith", "docker-stop"])
def test_a_server_that_ignores_sigterm_as_pid_1_stops_at_once(tiny, how):
    """`imagesmith run serve` of a server with no SIGTERM handler stops within seconds, exiting
    143 (terminated), whether imagesmith is sent SIGTERM or the container is `docker stop`ped:
    the container's PID 1 is an init process that passes the signal on. Without it the first
    hangs until the container is killed and the second takes docker's 10 s and exits 137."""
    name = f"imagesmith-test-run-{uuid.uuid4().hex[:8]}"
    proc = _serve_deaf(tiny, name)
    try:
        started = time.monotonic()
        if how == "docker-stop":
            subprocess.run(["docker", "stop", name], check=True, capture_output=True, timeout=60)
        else:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        elapsed = time.monotonic() - started
        assert code == 143 and elapsed < 5, (code, elapsed, proc.stderr.read() if code is not None else "")
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("holder", ["a-process", "a-container"])
def test_a_port_in_use_is_named_with_how_to_choose_another(tiny, holder):
    """A host port that is taken, by a process on the host or by another container, is named in
    one error line with a hint to choose another with --port; exit 125 (`imagesmith run`'s own
    failure), and docker's raw message is not shown."""
    (tiny / "artifacts").mkdir(exist_ok=True)
    other = f"imagesmith-test-run-{uuid.uuid4().hex[:8]}"
    sock = socket.socket()
    holder_proc = None
    try:
        if holder == "a-process":
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            port = sock.getsockname()[1]
        else:
            holder_proc = _serve_deaf(tiny, other)
            published = subprocess.run(["docker", "port", other], capture_output=True, text=True, check=True)
            port = int(published.stdout.split(":")[-1])
        proc = _imagesmith("run", "serve", "-p", str(tiny), "-t", TAG, "--port", str(port))
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 125, err
        assert f"error: port {port} on 127.0.0.1 is already in use" in err
        assert "hint: choose another host port with --port" in err and "--port " + str(port + 1) in err
        assert "docker: Error response" not in err and "Traceback" not in err
    finally:
        sock.close()
        subprocess.run(["docker", "rm", "-f", other], capture_output=True)
        if holder_proc is not None:
            holder_proc.kill()
            holder_proc.wait()


def test_run_train_names_the_host_folder_it_stamped(tiny, tmp_path):
    """The stamp line names the host folder the model landed in, not the artifacts path inside
    the container; serving from a folder that does not exist says so."""
    folder = tmp_path / "my models"
    write = "open('/artifacts/model.bin', 'w').write('weights')"
    proc = _imagesmith(
        "run", "train", "-p", str(tiny), "-t", TAG, "--artifacts", str(folder), "--", "python", "-c", write
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"stamped 1 model file(s): {folder}/imagesmith-stamp.json (" in err
    assert "/artifacts/imagesmith-stamp.json" not in err and (folder / "imagesmith-stamp.json").is_file()

    proc = _imagesmith("run", "serve", "-p", str(tiny), "-t", TAG, "--artifacts", str(tmp_path / "nothing"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 125 and f"error: the artifacts folder {tmp_path / 'nothing'} does not exist" in err


def _labelled_image(empty_tar: Path, ref: str, parity_digest: str | None) -> str:
    """A small image of its own: one empty layer imported with a parity label and the role its
    tag names (no build, no container; a fraction of a second where committing a container of
    the base takes seconds), or with no label at all (``parity_digest`` None: a user's own image):
    its ID."""
    role = ref.rsplit(":", 1)[-1].split("-", 1)[0]
    labels = ["-c", f"LABEL io.imagesmith.parity={parity_digest} io.imagesmith.role={role}"] if parity_digest else []
    subprocess.run(["docker", "import", *labels, str(empty_tar), ref], capture_output=True, check=True)
    return _image_id(ref)


def _image_id(ref: str) -> str | None:
    proc = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def test_prune_removes_old_parity_tags_and_keeps_what_is_named_or_used(engine, tmp_path):
    """Parity-tagged images of a repository of the test's own: the current lock's, the one the
    model stamp names, the one a stopped container uses and a tag of that form on an image
    imagesmith did not make stay; the old one goes, image and all, and only with --yes."""
    from imagesmith import parity
    from imagesmith.lock.lockfile import write_lock
    from imagesmith.runtime import stamp
    from tests.helpers import fake_lock

    project = copy_project(PROJECTS / "tiny", tmp_path / "tiny", git=False)
    lock = fake_lock()
    write_lock(load_spec(project), lock)
    now = parity.digest(parity.manifest_from_lock(lock))
    repo = f"imagesmith-test/prune-{uuid.uuid4().hex[:8]}"
    old, trained, used = ("sha256:" + c * 64 for c in "abc")
    refs = {
        "now": f"{repo}:serve-{now[7:19]}",
        "old": f"{repo}:serve-{old[7:19]}",
        "trained": f"{repo}:serve-{trained[7:19]}",
        "used": f"{repo}:train-{used[7:19]}",
        "yours": f"{repo}:train-0123456789ab",  # the user's own image, tagged so: not imagesmith's
    }
    container = f"imagesmith-test-prune-{uuid.uuid4().hex[:8]}"
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    try:
        ids = {
            key: _labelled_image(
                empty, ref, {"now": now, "old": old, "trained": trained, "used": used, "yours": None}[key]
            )
            for key, ref in refs.items()
        }
        subprocess.run(["docker", "create", "--name", container, refs["used"], "true"], capture_output=True, check=True)
        art = project / "artifacts"
        art.mkdir()
        (art / "model.bin").write_text("w")
        stamp.write_stamp(str(art), stamp.make_stamp({"parity": trained, "manifest": {}, "seed": 7}, str(art)))

        dry = _imagesmith("prune", "-p", str(project), "-t", repo)
        out, err = dry.communicate(timeout=120)
        assert dry.returncode == 0, err
        assert out.splitlines()[-1] == f"would remove {refs['old']} ({ids['old'][7:19]})"
        assert f"used by container {container}" in out and "the current lock's parity" in out
        assert f"keep    {refs['yours']} ({ids['yours'][7:19]}): not a tag imagesmith made" in out
        assert all(_image_id(ref) for ref in refs.values())  # a dry run removes nothing

        done = _imagesmith("prune", "-p", str(project), "-t", repo, "--yes", "--json")
        out, err = done.communicate(timeout=120)
        assert done.returncode == 0, err
        doc = json.loads(out)
        assert doc["removed"] == [refs["old"]] and doc["dry_run"] is False
        assert _image_id(refs["old"]) is None and _image_id(ids["old"]) is None  # the image went with its last tag
        assert all(_image_id(refs[key]) == ids[key] for key in ("now", "trained", "used", "yours"))
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        for ref in refs.values():
            subprocess.run(["docker", "rmi", ref], capture_output=True)


@pytest.mark.parametrize(
    "sig,deaf,code",
    [(signal.SIGINT, False, 130), (signal.SIGINT, True, 137), (signal.SIGHUP, False, 129)],
    ids=["listens", "ignores-signals", "hangup"],
)
def test_ctrl_c_sent_to_imagesmith_alone_stops_the_container_and_a_second_kills_it(tiny, sig, deaf, code):
    """SIGINT to imagesmith's process alone (`kill -INT`, a supervisor, an IDE's stop button; no
    terminal) reaches the container once: a command that listens stops (130). One that ignores
    it is killed by a second (137, as `docker compose` does). Before, the first was swallowed and
    imagesmith waited on a container that never heard of it. A hangup (the terminal closed) is
    passed on too (129)."""
    name = f"imagesmith-test-run-{uuid.uuid4().hex[:8]}"
    ignore = "import signal; [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)]; "
    body = (ignore if deaf else "") + "import time; print('up', flush=True); time.sleep(600)"
    proc = _imagesmith("run", "train", "-p", str(tiny), "-t", TAG, "--name", name, "--", "python", "-c", body)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        proc.send_signal(sig)
        if deaf:
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=3)
            proc.send_signal(sig)
        got = proc.wait(timeout=30)
        err = proc.stderr.read() if proc.stderr else ""
        assert got == code, err
        assert "stopping the container (Ctrl-C or SIGTERM again kills it)" in err
        assert ("killing the container" in err) == deaf and 'Traceback (most recent call last):\n  File "/' not in err
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
