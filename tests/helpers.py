"""Helpers for tests: run the real CLI in a subprocess, make small derived images."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from imagesmith.build import BuildOptions, BuildResult, build_project
from imagesmith.layout import VENV_PYTHON
from imagesmith.lock import Lock
from imagesmith.lock.base import BasePin
from imagesmith.lock.pins import Pin

# Where `cli` runs the CLI: in this process through its console entry point (``cli_in_process``:
# the same code path, no interpreter start) unless a call asks for a subprocess. The unit tier
# (tests/unit/conftest.py) turns ``on``; the engine tier runs in this process too, except the
# commands in ``REAL_PROCESS`` and calls that say ``in_process=False``. An accounting of a
# clean-clone `make test` (2026-12-07, bench/README.md "Where make test's CPU goes") counted 360
# `python -m imagesmith` subprocesses at a median of 0.51 s of CPU each, most of it the
# interpreter's start and imports: 10 % of the run's CPU.
IN_PROCESS = {"on": False}
# `run` attaches a container to the CLI's own stdout (engine/attached.py): only a real process's
# stdout holds what the container said.
REAL_PROCESS = frozenset({"run"})


def _bytecode_kept(env: dict) -> dict:
    """``env`` for a `python -m imagesmith` subprocess: where the caller forbids writing bytecode
    beside the sources (PYTHONDONTWRITEBYTECODE), it goes under build/pycache (gitignored)
    instead, so the suite's hundreds of CLI runs load imagesmith's bytecode rather than compiling
    it each time. imagesmith's host code compiles nothing itself (its compile steps run in images)."""
    if env.get("PYTHONDONTWRITEBYTECODE") and not env.get("PYTHONPYCACHEPREFIX"):
        env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(__file__).resolve().parent.parent / "build" / "pycache")
    return env


def cli(
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    check_traceback: bool = True,
    timeout: int = 1800,
    in_process: bool | None = None,
):
    """Run `imagesmith ARGS` and return a CompletedProcess (text): ``cli.main`` in this process
    (``IN_PROCESS``), or `python -m imagesmith` in a subprocess (``in_process=False``, or a
    command in ``REAL_PROCESS``). ``check_traceback``: a traceback on its stderr fails the call
    either way (the CLI printing one itself, say from ``traceback.print_exc`` or a logging handler,
    is the defect a user would see)."""
    if in_process is None:
        from imagesmith.cli.base import command_in

        command = command_in(list(args))  # `cli("--json", "run", …)` and `cli("-p", ROOT, "run", …)` too
        in_process = IN_PROCESS["on"] or command not in REAL_PROCESS
    if in_process:
        return cli_in_process(*args, cwd=cwd, env=env, timeout=timeout, check_traceback=check_traceback)
    proc = subprocess.run(
        [sys.executable, "-m", "imagesmith", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_bytecode_kept(dict(os.environ, **(env or {}))),
        timeout=timeout,
        errors="replace",
    )
    if check_traceback:
        assert "Traceback" not in proc.stderr, proc.stderr
    return proc


class CliTimeout(BaseException):
    """An in-process CLI call ran past its ``timeout`` (a BaseException: no ``except Exception`` of
    the CLI's swallows it), as the subprocess's ``TimeoutExpired`` did."""


def cli_in_process(
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: int | None = None,
    check_traceback: bool = True,
) -> subprocess.CompletedProcess:
    """`imagesmith ARGS` in this process, through the console entry point (``cli.main``), with
    ``cwd`` and ``env`` in force for the call: the same code path as the subprocess without
    starting an interpreter. An exception escaping ``main`` fails the test, as a traceback would;
    so does a traceback the CLI printed on its stderr itself (``check_traceback``, as for the
    subprocess), and a call still running after ``timeout`` seconds (SIGALRM, in the main thread,
    where pytest runs a test): a hung engine call fails its test instead of holding a worker for
    ever."""
    import contextlib
    import io
    import signal
    import threading

    from imagesmith.cli import main

    def expired(signum, frame):
        raise CliTimeout(f"imagesmith {' '.join(args)} ran past {timeout} s")

    alarm = timeout is not None and threading.current_thread() is threading.main_thread()
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    previous = signal.signal(signal.SIGALRM, expired) if alarm else None
    try:
        if alarm:
            signal.alarm(timeout)
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        if alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    if check_traceback:
        assert "Traceback" not in err.getvalue(), err.getvalue()
    return subprocess.CompletedProcess(["imagesmith", *args], code, out.getvalue(), err.getvalue())


def image_facts(engine, ref: str) -> dict:
    """The image facts file of the local image ``ref`` (read from outside it)."""
    import json

    from imagesmith.layout import FACTS_PATH

    (entry,) = engine.read_paths(engine.image(ref).id, [FACTS_PATH])[FACTS_PATH]
    return json.loads(entry.data)


def facts_copy(facts: dict) -> str:
    """A Dockerfile line writing ``facts`` as an image's facts file (a heredoc: no build context)."""
    import json

    from imagesmith.layout import FACTS_PATH

    return f"COPY <<'FACTS_EOF' {FACTS_PATH}\n{json.dumps(facts, sort_keys=True)}\nFACTS_EOF\n"


def docker_build(dockerfile_text: str, tag: str, context: Path) -> None:
    """Build a small derived image with plain BuildKit (FROM an image built by a fixture)."""
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile_text)
    subprocess.run(
        ["docker", "buildx", "build", "-q", "--load", "-t", tag, str(context)],
        check=True,
        capture_output=True,
        text=True,
    )


def base_context(engine, base: str, cache_dir: Path) -> str:
    """``base=oci-layout://DIR@DIGEST`` for ``--build-context``: the local image ``base`` as the
    named context that replaces the rendered Dockerfile's ``base`` stage, exported where
    imagesmith's build keeps it (``CACHE_DIR/bases/<id>``, reused when that build made it). A
    plain `docker buildx build` of a rendered Dockerfile needs it on an engine that never built
    ``FROM`` the base: BuildKit asks the home registry for ``NAME:TAG@sha256:…`` there."""
    digest = engine.image(base).id
    layout = engine.save_oci_layout(digest, cache_dir / "bases" / digest.split(":", 1)[-1])
    return f"base=oci-layout://{layout}@{digest}"


def fake_lock(**changes) -> Lock:
    lock = Lock(
        inputs={},
        resolver="uv",
        python="3.11",
        platform="linux/amd64",
        base=BasePin("python:3.11-slim", "sha256:" + "a" * 64, "registry", "3.11.9"),
        packages=(Pin("six", "1.17.0", ("sha256:" + "b" * 64,)),),
        system_packages=(("libgomp1", "12.2.0-14"),),
        preprocessing=(("app/prep.py", "sha256:" + "c" * 64),),
        seed=7,
        determinism=False,
        env=(("A", 'quote " dollar $HOME back\\slash'),),
        runtime=Pin("imagesmith-runtime", "0+sha256." + "d" * 12, ("sha256:" + "d" * 64,)),
        installer=(Pin("uv", "0.13.9", ("sha256:" + "e" * 64,)),),
    )
    return replace(lock, **changes)


def serve_one(
    engine, ref: str, artifacts: Path, body: bytes, path: str = "/predict", at: str = "/artifacts", tries: int = 100
) -> dict:
    """Start the serve image ``ref`` as signoff does (the model folder copied in at ``at``, the
    spec's artifacts), POST ``body`` to ``path`` once it answers (``tries`` times 0.2 s), and return
    the JSON answer; the container and its volumes are removed however it ends."""
    import json
    import time
    import urllib.request
    import uuid

    run_id = f"test-{uuid.uuid4().hex}"
    cid, host, port = engine.start_service(ref, port=8000, mounts={str(artifacts): at}, run_id=run_id)
    try:
        for _ in range(tries):
            try:
                req = urllib.request.Request(
                    f"http://{host}:{port}{path}",
                    data=body,
                    method="POST",
                    headers={"Content-Type": "application/json"},
                )
                return json.loads(urllib.request.urlopen(req, timeout=2).read())
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{ref} did not answer on {host}:{port}{path}")
    finally:
        engine.stop_service(cid)
        engine.remove_signoff(run_id)


def remove_tags(reference: str) -> None:
    """Untag every local image whose name matches ``reference`` (`docker image ls`'s reference
    filter: ``repo`` or ``prefix-*``), for a test that built under tags of its own; an image stays
    while another tag or a container holds it. Failures are ignored (cleanup after a failed test)."""
    listed = subprocess.run(
        ["docker", "image", "ls", "--filter", f"reference={reference}", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
    )
    tags = [t for t in listed.stdout.split() if not t.endswith(":<none>")]
    if listed.returncode == 0 and tags:
        subprocess.run(["docker", "image", "rm", *tags], capture_output=True)


def run_python(image: str, code: str, platform: str | None = None, python: str = VENV_PYTHON) -> str:
    """The output of ``python -c code`` in a new container of ``image`` (``platform``: pulled and
    run as that platform, emulated where it is not this machine's); the run must succeed."""
    proc = subprocess.run(
        ["docker", "run", "--rm", *(["--platform", platform] if platform else []), "--entrypoint", python]
        + [image, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def skopeo_inspect(ref: str, raw: bool = False) -> dict:
    """What the loopback registry holds as ``ref`` (`skopeo inspect`: the digest, the labels; with
    ``raw``, the manifest or index itself); the registry must have it."""
    import json

    argv = ["skopeo", "inspect", *(["--raw"] if raw else []), "--tls-verify=false", f"docker://{ref}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def machine_of(image: str, platform: str | None = None) -> str:
    """The machine an image's Python runs as (``platform``: pulled for that platform), after
    checking that tiny-native's markupsafe speedups are that platform's own binary wheel."""
    code = "import platform, markupsafe._speedups as s; print(platform.machine(), s.__file__)"
    machine, speedups = run_python(image, code, platform).split()
    assert speedups.endswith(f"-{machine}-linux-gnu.so"), speedups  # the platform's own binary wheel
    return machine


def build_pushed(spec, engine, registry: str, name: str, echo=None, **options) -> tuple[BuildResult, list[str]]:
    """``spec`` built as ``imagesmith-test/NAME`` and pushed to a new repository of ``registry``
    (``imagesmith-test/NAME-<8 hex>``): the result and the lines the build said (``echo``, if
    given, gets BuildKit's plain log)."""
    import uuid

    lines: list[str] = []
    push = f"{registry}/imagesmith-test/{name}-{uuid.uuid4().hex[:8]}"
    result = build_project(
        spec,
        engine,
        BuildOptions(tag=f"imagesmith-test/{name}", push=push, **options),
        progress=lines.append,
        echo=echo,
    )
    return result, lines


@contextmanager
def serving(handler, poll: float = 0.02) -> Iterator[str]:
    """An HTTP server on a free loopback port answering with ``handler`` (a request handler
    class) in a thread of its own: yields ``127.0.0.1:PORT``; shut down and closed at the end."""
    import threading
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(poll,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
