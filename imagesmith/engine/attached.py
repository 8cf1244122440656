"""The interactive ``imagesmith run``: ``docker run --rm --init`` in the foreground, as a user
would type it (``run_attached``), with docker's own "port taken" error said in imagesmith's words."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from typing import Sequence

from ..errors import EngineError, PortInUseError
from ._common import ENGINE_HINT, docker_cli

# docker run's own error (exit 125) when a port it would publish is taken: by a process on the
# host (the userland proxy cannot listen) or by another container's binding
PORT_TAKEN = re.compile(r"^docker: Error response from daemon: .*(address already in use|port is already allocated)")
# docker run's own error (exit 125) when --name is another container's
NAME_TAKEN = re.compile(r"^docker: Error response from daemon: Conflict\. The container name \S+ is already in use")
_BOUND = re.compile(r"\b(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]*\])?:(\d{1,5})\b")


def run_attached(
    image: str,
    command: Sequence[str],
    *,
    mounts: dict[str, str] | None = None,
    ports: dict[int, int] | None = None,
    environment: dict[str, str] | None = None,
    name: str | None = None,
    user: str | None = None,
    gpus: bool = False,
) -> int:
    """``docker run --rm --init`` in the foreground, as a user would type it: the container's
    output on this terminal, Ctrl-C and SIGTERM passed on to it, its exit code returned.
    ``--init`` makes a small init process the container's PID 1, which passes signals on and
    reaps children: a server started as PID 1 that installs no SIGTERM handler (Flask's
    ``python app.py``) would otherwise ignore SIGTERM, as the kernel does for PID 1.
    ``mounts``: host folder -> container path (bind); ``ports``: container port -> host port,
    published on 127.0.0.1 only; ``user``: docker run's --user (None: the image's USER);
    ``gpus``: every GPU of the machine (``--gpus all``: the engine's device request)."""
    import signal
    import tempfile

    # Without a terminal on stdin, docker runs in a process group of its own: a Ctrl-C (or a
    # `kill -INT` of imagesmith alone) reaches the container once, passed on here, never twice.
    # With one, docker must stay in the terminal's group to read it (-i); in raw mode (-t) Ctrl-C
    # is a byte the container reads, so a SIGINT here came to imagesmith alone.
    interactive = sys.stdin.isatty()
    terminal_sigint = interactive and not sys.stdout.isatty()  # the terminal signals docker too
    with tempfile.TemporaryDirectory(prefix="imagesmith-run-") as tmp:
        cidfile = os.path.join(tmp, "cid")
        argv = run_argv(
            image, command, mounts=mounts, ports=ports, environment=environment, name=name, user=user, gpus=gpus
        )
        argv[argv.index("--init") + 1 : argv.index("--init") + 1] = ["--cidfile", cidfile]
        try:
            proc = subprocess.Popen(argv, stderr=subprocess.PIPE, start_new_session=not interactive)
        except FileNotFoundError as exc:
            raise EngineError("the docker command is not installed", hint=ENGINE_HINT) from exc
        relay = _StderrRelay(proc.stderr)
        relay.start()
        stop = _Stopper(proc, cidfile, keys=interactive and sys.stdout.isatty())
        previous = {}
        # SIGHUP too: a terminal that closes hangs up on imagesmith alone when docker has a
        # process group of its own, and the container is to hear of it as it did
        for signum in (signal.SIGTERM, signal.SIGHUP):
            try:
                previous[signum] = signal.signal(signum, lambda signum, frame: stop.signal(signum))
            except ValueError:  # not the main thread: leave the signals alone
                break
        try:
            while True:
                try:
                    code = proc.wait()
                    break
                except KeyboardInterrupt:
                    stop.signal(signal.SIGINT, passed_on=terminal_sigint)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            relay.join()
    if code == 125 and relay.port_taken is not None:
        raise port_in_use(relay.port_taken, ports or {})
    if code == 125 and relay.name_taken is not None:
        raise EngineError(
            f"a container named {name} exists already",
            hint=f"choose another --name, or remove that container (`docker rm {name}`)",
        )
    if code == 125 and relay.no_gpu_runtime is not None:
        raise EngineError(
            "the engine cannot give the container this machine's GPUs "
            f"({relay.no_gpu_runtime.removeprefix('docker: ').strip()[:200]})",
            hint="install the NVIDIA Container Toolkit for this engine (and restart it), or run without --gpus",
        )
    return code


def run_argv(
    image: str,
    command: Sequence[str],
    *,
    verb: str = "run",
    mounts: dict[str, str] | None = None,
    ports: dict[int, int] | None = None,
    environment: dict[str, str] | None = None,
    name: str | None = None,
    user: str | None = None,
    gpus: bool = False,
) -> list[str]:
    """The ``docker run`` command line of ``run_attached`` (``verb="create"``: the same container,
    created and not started)."""
    argv = [docker_cli(), verb, "--rm", "--init"]
    if sys.stdin.isatty():
        argv += ["-i", "-t"] if sys.stdout.isatty() else ["-i"]
    if name:
        argv += ["--name", name]
    if user:
        argv += [f"--user={user}"]
    if gpus:
        argv += ["--gpus", "all"]
    for host, target in sorted((mounts or {}).items()):
        # --mount is CSV: a field with a comma or quote is quoted, quotes doubled
        fields = [f"source={host}", f"target={target}"]
        quoted = ['"' + f.replace('"', '""') + '"' if ("," in f or '"' in f) else f for f in fields]
        argv += ["--mount", ",".join(["type=bind", *quoted])]
    for container_port, host_port in sorted((ports or {}).items()):
        argv += ["-p", f"127.0.0.1:{host_port}:{container_port}"]
    for key, value in sorted((environment or {}).items()):
        argv += ["-e", f"{key}={value}"]
    return [*argv, image, *command]


class _Stopper:
    """Ctrl-C and SIGTERM for a running ``docker run``: the first is passed on to the container
    (as docker's sig-proxy does: the container may save its work and stop); a second kills the
    container (``docker kill``: a command that ignores the signal, or takes too long to stop),
    as ``docker compose`` does. Said once each, on stderr. With ``-t`` (stdin and stdout a
    terminal) Ctrl-C is a key the container reads, never a signal here: SIGTERM and SIGHUP are."""

    def __init__(self, proc: subprocess.Popen, cidfile: str, keys: bool = False) -> None:
        self.proc = proc
        self.again = "SIGTERM" if keys else "Ctrl-C or SIGTERM"  # keys: Ctrl-C is the container's (-t)
        self.cidfile = cidfile
        self.count = 0

    def signal(self, signum: int, passed_on: bool = False) -> None:
        """``passed_on``: the terminal sent the signal to docker as well (not sent again here)."""
        self.count += 1
        if self.count == 1:
            if not passed_on:
                try:
                    self.proc.send_signal(signum)
                except OSError:
                    pass
            _tell(f"stopping the container ({self.again} again kills it)")
            return
        if self.count == 2:
            _tell("killing the container")
        try:
            with open(self.cidfile, encoding="ascii") as handle:
                cid = handle.read().strip()
        except OSError:  # not created yet: docker itself is stopped instead
            cid = ""
        if cid:
            try:
                killed = subprocess.run([docker_cli(), "kill", cid], capture_output=True, timeout=60).returncode == 0
            except (OSError, subprocess.SubprocessError):  # no docker command, an engine that does not answer
                killed = False
            except KeyboardInterrupt:  # Ctrl-C again while the engine takes its time: not waited for
                killed = False
            if killed:
                return
            _tell("the engine did not kill the container: docker run is stopped instead (see `docker ps`)")
        self.proc.kill()


def _tell(message: str) -> None:
    try:
        sys.stderr.write(f"imagesmith: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


NO_GPU_DRIVER = "could not select device driver"  # docker run --gpus on an engine without NVIDIA's runtime


class _StderrRelay(threading.Thread):
    """Passes ``docker run``'s stderr (its own messages, and the container's stderr when there
    is no terminal) on to this process's stderr as it comes, chunk by chunk (a progress bar's
    carriage returns are not held back). Docker's own "port taken" error is kept back instead,
    in ``port_taken``, for ``run_attached`` to say it in imagesmith's words."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.port_taken: str | None = None
        self.no_gpu_runtime: str | None = None  # docker's "could not select device driver" (--gpus)
        self.name_taken: str | None = None  # docker's "Conflict. The container name ... is already in use"

    def run(self) -> None:
        import os

        fd = self.pipe.fileno()
        while chunk := os.read(fd, 65536):
            text = chunk.decode("utf-8", "replace")
            if self.port_taken is None and PORT_TAKEN.match(text):
                self.port_taken = text.splitlines()[0]
                continue  # docker's message (with its "Run 'docker run --help'" line)
            if self.no_gpu_runtime is None and NO_GPU_DRIVER in text:
                self.no_gpu_runtime = next(line for line in text.splitlines() if NO_GPU_DRIVER in line)
                continue
            if self.name_taken is None and NAME_TAKEN.match(text):
                self.name_taken = text.splitlines()[0]
                continue
            if (self.port_taken or self.no_gpu_runtime or self.name_taken) and text.strip().startswith(
                "Run 'docker run --help'"
            ):
                continue
            out = getattr(sys.stderr, "buffer", None)
            try:
                if out is not None:
                    sys.stderr.flush()
                    out.write(chunk)
                    out.flush()
                else:
                    sys.stderr.write(text)
                    sys.stderr.flush()
            except (OSError, ValueError):  # stderr closed: keep draining the pipe
                pass
        self.pipe.close()


def port_in_use(message: str, ports: dict[int, int]) -> PortInUseError:
    """The port docker says is taken (the one of ``ports``, container -> host, in its message;
    else the lowest)."""
    by_host = {host: container for container, host in ports.items()}
    named = [int(p) for p in _BOUND.findall(message) if int(p) in by_host]
    host = named[-1] if named else min(by_host, default=0)
    return PortInUseError(host, by_host.get(host))
