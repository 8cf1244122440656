"""Containers, through the Docker SDK: ONE lifecycle for everything run to its end
(``run_to_end``: create, copy files in, start, wait, collect, remove), detached services for
signoff, and ``run_attached`` for the interactive ``imagesmith run`` (``docker run`` in the
foreground, signals passed on).

Signoff runs the image under test locked down (``LOCKED_DOWN``): no capabilities, no new
privileges, a read-only root file system with a small /tmp in memory, as the image's own user.
Its files (the model, the samples) are copied into anonymous volumes made for the purpose (the
engine refuses to copy into a read-only root); every container it starts carries its run's
``LABEL_SIGNOFF`` value, so ``remove_signoff`` can remove them all, with their volumes, however
the run ended."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence

from ..errors import EngineError, PortInUseError
from ..layout import LABEL_PROBE, LABEL_SIGNOFF
from ._common import ENGINE_HINT, docker_cli, first_line, tail
from .records import FileEntry, IsolatedRun

SMALL_FILE = 1 << 20  # read_paths keeps the bytes of files up to this size
KEPT_BYTES = 8 << 20  # ... and of at most this many bytes of such files per path read
MAX_ENTRIES = 200_000  # entries of one path read (a folder and everything under it)
OUTPUT_LIMIT = 64 << 20  # stdout of a command run to its end (run_to_end's default)
STDERR_KEPT = 64 << 10  # the tail of its stderr that is kept

# The SDK's create arguments for the image under test (signoff's service and batch helper)
LOCKED_DOWN = {
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "read_only": True,
    "tmpfs": {"/tmp": "rw,nosuid,nodev,size=256m"},
}


# docker run's own error (exit 125) when a port it would publish is taken: by a process on the
# host (the userland proxy cannot listen) or by another container's binding
PORT_TAKEN = re.compile(r"^docker: Error response from daemon: .*(address already in use|port is already allocated)")
_BOUND = re.compile(r"\b(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]*\])?:(\d{1,5})\b")

# How long signoff waits for the engine to finish removing its containers (remove_signoff).
REMOVAL_WAIT = 120.0


class Containers:
    def __init__(self, client: Callable[[], object], service_address: Callable[[], tuple[str, str]]) -> None:
        self._client = client
        self.service_address = service_address

    @property
    def client(self):
        return self._client()

    def run_to_end(self, image: str, what: str, timeout: int, **create) -> IsolatedRun:
        """THE container lifecycle for anything run to its end: create a container of ``image``
        with the SDK's ``create`` arguments (``command`` among them; ``files``: host path ->
        container path, copied in read-only before it starts), start it, wait for it (at most
        ``timeout`` s), collect both streams, and remove it (and its volumes) whatever happened.
        Output is bounded: stdout is read while the command runs, and at more than
        ``output_limit`` bytes (default ``OUTPUT_LIMIT``) the container is killed and the run is
        ``truncated`` (and its stdout is not kept); of stderr, the last ``STDERR_KEPT`` bytes are kept.
        The files go into anonymous volumes at their folders, so a read-only root is no obstacle.
        The command's own failure is returned, not raised; ``what`` names the command in errors."""
        from docker.errors import APIError, DockerException, ImageNotFound

        files = create.pop("files", None) or {}
        output_limit = int(create.pop("output_limit", None) or OUTPUT_LIMIT)
        if files:
            create["mounts"] = list(create.get("mounts") or []) + _file_volumes(files)
        try:
            container = self.client.containers.create(image, create.pop("command"), **create)
        except ImageNotFound as exc:
            raise EngineError(f"image {image} is not in the engine") from exc
        except DockerException as exc:
            raise EngineError(f"cannot create a container of {image}: {first_line(exc)}", hint=ENGINE_HINT) from exc
        try:
            _copy_into(container, files)
            try:
                container.start()
            except APIError as exc:
                return IsolatedRun(None, "", "", start_error=first_line(exc))
            reader = _Collector(container, output_limit)
            try:
                status = container.wait(timeout=timeout)
            except Exception as exc:  # requests' ReadTimeout and friends
                reader.done(wait=0)
                raise EngineError(f"`{what}` in {image} did not finish within {timeout} s") from exc
            reader.done()
            err = _tail_of(container.logs(stdout=False, stderr=True, stream=True), STDERR_KEPT)
            return IsolatedRun(
                int(status.get("StatusCode", -1)),
                reader.text(),
                err.decode("utf-8", "replace"),
                truncated=reader.over,
            )
        except DockerException as exc:
            raise EngineError(f"running a container of {image} failed: {first_line(exc)}", hint=ENGINE_HINT) from exc
        finally:
            try:
                container.remove(force=True, v=True)
            except DockerException:
                pass

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        entrypoint: Sequence[str] | None = None,
        network: bool = False,
        read_only: bool = False,
        environment: dict | None = None,
        volumes: dict | None = None,
        user: str | None = None,
        timeout: int = 600,
    ) -> str:
        """Run a command to completion in a fresh container and return its stdout (``volumes``:
        the SDK's bind mounts, host path -> {"bind", "mode"}, for a local engine).
        Raises EngineError with the container's stderr when it exits non-zero."""
        what = " ".join(command)
        run = self.run_to_end(
            image,
            what,
            timeout,
            command=list(command),
            entrypoint=list(entrypoint) if entrypoint is not None else None,
            network_disabled=not network,
            network_mode=None if network else "none",
            read_only=read_only,
            environment=dict(environment or {}),
            volumes=dict(volumes or {}),
            user=user,
            tmpfs={"/tmp": "rw,size=64m"} if read_only else None,
        )
        if run.exit_code is None:
            raise EngineError(f"cannot start `{what}` in {image}: {run.start_error}")
        if run.exit_code != 0:
            raise EngineError(f"`{what}` failed in {image} (exit {run.exit_code}):\n{tail(run.stderr, 20)}")
        return run.stdout

    def run_isolated(
        self,
        image: str,
        argv: Sequence[str],
        *,
        timeout: int = 300,
        environment: dict[str, str] | None = None,
        output_limit: int | None = None,
    ) -> IsolatedRun:
        """Run ``argv`` (``argv[0]`` replaces the image's entrypoint) in a throwaway container:
        no network, read-only root file system (a small /tmp in memory), root without
        capabilities except reading any file, no new privileges. Never raises for the command's
        own failure: the exit code and both streams are returned (stdout at most ``output_limit``
        bytes: see ``run_to_end``)."""
        run = self.run_to_end(
            image,
            argv[0],
            timeout,
            command=list(argv[1:]),
            entrypoint=[argv[0]],
            network_disabled=True,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": "rw,size=16m,noexec,nosuid"},
            user="0",
            working_dir="/",
            cap_drop=["ALL"],
            cap_add=["DAC_READ_SEARCH"],
            security_opt=["no-new-privileges"],
            labels={LABEL_PROBE: "1"},
            environment=dict(environment or {}),
            output_limit=output_limit,
        )
        if run.start_error and "no such file or directory" in run.start_error:
            return replace(run, start_error=f"{argv[0]} does not exist in the image")
        return run

    def read_paths(self, image: str, paths: Sequence[str]) -> dict[str, tuple[FileEntry, ...] | None]:
        """Files of ``image`` read from outside it (see ``reading``): for each path, its entries
        or None when it does not exist."""
        with self.reading(image) as read:
            return {path: read(path) for path in paths}

    @contextmanager
    def reading(self, image: str) -> Iterator[Callable[..., tuple[FileEntry, ...] | None]]:
        """A reader of ``image``'s files from outside it: a container is created but never
        started, each path is copied out through the engine's archive API, and the container is
        removed at the end. Nothing in the image runs, so nothing in it can lie about what is
        there. ``read(path)`` gives the path's entries (a folder: itself and everything under
        it; links are not followed), or None when it does not exist; ``read(path, first=N)``
        only its first N entries (the rest is not read). Files up to ``SMALL_FILE`` bytes come
        with their bytes, up to ``KEPT_BYTES`` of them per read; a path with more than
        ``MAX_ENTRIES`` entries is an error. The archive is read as it streams: nothing of it is
        held but the bytes kept."""
        from docker.errors import DockerException, ImageNotFound, NotFound

        try:
            container = self.client.containers.create(
                image,
                entrypoint=["/imagesmith-never-started"],
                command=[],
                network_disabled=True,
                network_mode="none",
                labels={LABEL_PROBE: "1"},
            )
        except ImageNotFound as exc:
            raise EngineError(f"image {image} is not in the engine") from exc
        except DockerException as exc:
            raise EngineError(f"cannot create a container of {image}: {first_line(exc)}", hint=ENGINE_HINT) from exc

        def read(path: str, first: int | None = None) -> tuple[FileEntry, ...] | None:
            try:
                stream, _stat = container.get_archive(path)
            except NotFound:
                return None
            except DockerException as exc:
                raise EngineError(f"reading {path} in {image} failed: {first_line(exc)}", hint=ENGINE_HINT) from exc
            try:
                return _entries(path, stream, first)
            except DockerException as exc:
                raise EngineError(f"reading {path} in {image} failed: {first_line(exc)}", hint=ENGINE_HINT) from exc
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()

        try:
            yield read
        finally:
            try:
                container.remove(force=True)
            except DockerException:
                pass

    def run_helper(
        self,
        image: str,
        argv: Sequence[str],
        *,
        entrypoint: Sequence[str],
        mounts: dict[str, str] | None = None,
        environment: dict[str, str] | None = None,
        gpus: bool = False,
        run_id: str,
        timeout: int = 600,
    ) -> IsolatedRun:
        """Run ``argv`` after ``entrypoint`` in a throwaway container of ``image``: its own working
        directory and user, no network, ``LOCKED_DOWN``, ``mounts`` (host path -> container path)
        copied in read-only before it starts (so a remote engine works too), all GPUs when
        ``gpus``, labelled with ``run_id`` (see ``remove_signoff``). Never raises for the
        command's own failure (see ``IsolatedRun``)."""
        return self.run_to_end(
            image,
            " ".join(entrypoint),
            timeout,
            command=list(argv),
            entrypoint=list(entrypoint),
            network_disabled=True,
            network_mode="none",
            files=dict(mounts or {}),
            environment=dict(environment or {}),
            device_requests=_gpu_request(gpus),
            labels={LABEL_SIGNOFF: run_id},
            **LOCKED_DOWN,
        )

    def start_service(
        self,
        image: str,
        *,
        port: int,
        mounts: dict[str, str] | None = None,
        environment: dict[str, str] | None = None,
        gpus: bool = False,
        run_id: str,
    ) -> tuple[str, str, int]:
        """Start ``image`` detached with its own entrypoint, command and user, as production would
        but ``LOCKED_DOWN``: ``port`` published on a free host port the engine picks (on 127.0.0.1
        for a local engine; see ``service_address``), ``mounts`` (host path -> container path)
        copied in read-only before it starts, all GPUs when ``gpus``, labelled with ``run_id``.
        Returns (container ID, host to connect to, host port). Stop it with ``stop_service``;
        ``remove_signoff(run_id)`` removes it however the run ends. An init process is its PID 1
        (``init``: see ``run_attached``), so a server that ignores SIGTERM as PID 1 still stops
        when asked, not after ``stop_service``'s grace period."""
        from docker.errors import DockerException, ImageNotFound

        bind, connect = self.service_address()
        files = dict(mounts or {})
        try:
            container = self.client.containers.create(
                image,
                detach=True,
                ports={f"{port}/tcp": (bind, None)},
                init=True,
                environment=dict(environment or {}),
                device_requests=_gpu_request(gpus),
                labels={LABEL_SIGNOFF: run_id},
                mounts=_file_volumes(files),
                **LOCKED_DOWN,
            )
        except ImageNotFound as exc:
            raise EngineError(f"image {image} is not in the engine") from exc
        except DockerException as exc:
            raise EngineError(f"cannot create a container of {image}: {first_line(exc)}", hint=ENGINE_HINT) from exc
        try:
            _copy_into(container, files)
            container.start()
        except DockerException as exc:
            self.stop_service(container.id)
            text = first_line(exc)
            if gpus and ("gpu" in text.lower() or "nvidia" in text.lower()):
                raise EngineError(
                    f"cannot start {image} with GPUs: {text}",
                    hint="install the NVIDIA container toolkit so Docker can pass GPUs in",
                ) from exc
            raise EngineError(f"cannot start {image}: {text}", hint=ENGINE_HINT) from exc
        try:
            container.reload()
            bound = (container.ports or {}).get(f"{port}/tcp") or []
            host_port = next(int(b["HostPort"]) for b in bound if b.get("HostIp") in (bind, "", "0.0.0.0"))
        except (DockerException, StopIteration, KeyError, ValueError) as exc:
            self.stop_service(container.id)
            raise EngineError(f"{image} started, but port {port} was not published") from exc
        return container.id, connect, host_port

    def service_exit_code(self, container_id: str) -> int | None:
        """None while the container runs; its exit code once it has stopped."""
        from docker.errors import DockerException

        try:
            container = self.client.containers.get(container_id)
            container.reload()
        except DockerException as exc:
            raise EngineError(f"cannot read container {container_id[:12]}: {first_line(exc)}") from exc
        state = container.attrs.get("State") or {}
        return None if state.get("Running") else int(state.get("ExitCode", -1))

    def stop_service(self, container_id: str) -> str:
        """Stop and remove a container ``start_service`` started; returns its output (both streams)."""
        from docker.errors import DockerException, NotFound

        try:
            container = self.client.containers.get(container_id)
        except NotFound:
            return ""
        except DockerException as exc:
            raise EngineError(f"cannot read container {container_id[:12]}: {first_line(exc)}") from exc
        logs = ""
        try:
            container.stop(timeout=10)
            logs = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        except DockerException:
            pass
        try:
            container.remove(force=True, v=True)
        except DockerException:
            pass
        return logs

    def remove_signoff(self, run_id: str, *, wait: float = REMOVAL_WAIT, poll: float = 0.2) -> int:
        """Remove every container (running or not) labelled with signoff run ``run_id``, and its
        volumes, at once; returns how many. What signoff and golden do however they end (an
        error, Ctrl-C, SIGTERM), also for a container whose creation was interrupted. Returns when
        the engine lists none of them any more: a busy engine can still be removing one after the
        call that asked for it returned or timed out ("removal ... already in progress"), and a
        signoff must not exit leaving a container behind. Up to ``wait`` seconds, then an error."""
        import time

        from docker.errors import APIError, DockerException, NotFound

        def listed() -> list:
            try:
                return self.client.containers.list(all=True, filters={"label": f"{LABEL_SIGNOFF}={run_id}"})
            except DockerException as exc:
                raise EngineError(f"cannot list the signoff's containers: {first_line(exc)}", hint=ENGINE_HINT) from exc

        found = listed()
        count = len(found)
        for container in found:
            try:
                container.remove(force=True, v=True)
            except NotFound:
                pass
            except APIError as exc:
                if exc.status_code != 409 or "in progress" not in f"{exc.explanation} {exc}":
                    raise EngineError(
                        f"cannot remove container {container.id[:12]}: {first_line(exc)}", hint=ENGINE_HINT
                    ) from exc
            except DockerException as exc:  # e.g. the call timed out: the engine may still be at it
                if "timed out" not in str(exc).lower():
                    raise EngineError(
                        f"cannot remove container {container.id[:12]}: {first_line(exc)}", hint=ENGINE_HINT
                    ) from exc
        deadline = time.monotonic() + wait
        while found:
            found = listed()
            if found and time.monotonic() > deadline:
                names = ", ".join(c.id[:12] for c in found)
                raise EngineError(
                    f"the engine was still removing container {names} {wait:.0f} s after signoff asked for it",
                    hint="check `docker ps -a --filter label="
                    + LABEL_SIGNOFF
                    + "`, then remove it with `docker rm -f -v`",
                )
            if found:
                time.sleep(poll)
        return count

    def run_attached(
        self,
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

        argv = run_argv(
            image, command, mounts=mounts, ports=ports, environment=environment, name=name, user=user, gpus=gpus
        )
        try:
            proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
        except FileNotFoundError as exc:
            raise EngineError("the docker command is not installed", hint=ENGINE_HINT) from exc
        relay = _StderrRelay(proc.stderr)
        relay.start()

        def forward(signum, frame):  # docker run passes signals on to the container (sig-proxy)
            try:
                proc.send_signal(signum)
            except OSError:
                pass

        try:
            previous = signal.signal(signal.SIGTERM, forward)
        except ValueError:  # not the main thread: leave SIGTERM alone
            previous = None
        try:
            while True:
                try:
                    code = proc.wait()
                    break
                except KeyboardInterrupt:  # the terminal sent SIGINT to docker too; wait for it
                    continue
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            relay.join()
        if code == 125 and relay.port_taken is not None:
            raise _port_in_use(relay.port_taken, ports or {})
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
            if (self.port_taken or self.no_gpu_runtime) and text.strip().startswith("Run 'docker run --help'"):
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


def _port_in_use(message: str, ports: dict[int, int]) -> PortInUseError:
    """The port docker says is taken (the one of ``ports``, container -> host, in its message;
    else the lowest)."""
    by_host = {host: container for container, host in ports.items()}
    named = [int(p) for p in _BOUND.findall(message) if int(p) in by_host]
    host = named[-1] if named else min(by_host, default=0)
    return PortInUseError(host, by_host.get(host))


def _volume_roots(files: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """Where copied files go: one folder per volume (a host folder's target itself, a host
    file's target folder; a folder inside another is the other's), each with its
    (host path, path inside that folder) pairs. Sorted, so the same files give the same volumes."""
    import os
    import posixpath

    wanted = {}
    for host, target in files.items():
        target = posixpath.normpath("/" + target.strip("/"))
        wanted[host] = (target if os.path.isdir(host) else posixpath.dirname(target), target)
    if any(root == "/" for root, _ in wanted.values()):
        raise EngineError(f"cannot copy files to the container's root folder ({', '.join(sorted(files.values()))})")
    roots: list[str] = []
    for root in sorted({root for root, _ in wanted.values()}):
        if not any(root == r or root.startswith(r.rstrip("/") + "/") for r in roots):
            roots.append(root)
    plan: dict[str, list[tuple[str, str]]] = {root: [] for root in roots}
    for host, (own, target) in sorted(wanted.items(), key=lambda item: item[1][1]):
        root = next(r for r in roots if own == r or own.startswith(r.rstrip("/") + "/"))
        plan[root].append((host, posixpath.relpath(target, root)))
    return plan


def _file_volumes(files: dict[str, str]) -> list:
    """Anonymous volumes (removed with their container: ``remove(v=True)``) at the folders
    ``_copy_into`` fills; empty, owned by root (``no_copy``: not the image's folder's owner), so
    the container's user can read the files but change nothing."""
    if not files:
        return []
    from docker.types import Mount

    return [Mount(target=root, source=None, type="volume", no_copy=True) for root in _volume_roots(files)]


def _copy_into(container, files: dict[str, str]) -> None:
    """Copy host files or folders (host path -> absolute container path) into a created
    container's volumes (``_file_volumes``), read-only (modes a+r, no write bits), owned by root.
    Copying instead of bind mounting works with any engine, also one on another machine."""
    if not files:
        return
    import tarfile

    def readonly(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode = (info.mode | 0o444) & ~0o222
        if info.isdir():
            info.mode |= 0o111
        return info

    for root, entries in _volume_roots(files).items():
        with tempfile.TemporaryFile() as buf:
            with tarfile.open(fileobj=buf, mode="w") as tar:
                made: set[str] = set()
                for host, rel in entries:
                    parts = [] if rel == "." else rel.split("/")
                    for i in range(1, len(parts)):
                        parent = "/".join(parts[:i])
                        if parent not in made:
                            made.add(parent)
                            info = tarfile.TarInfo(parent)
                            info.type, info.mode = tarfile.DIRTYPE, 0o755
                            tar.addfile(info)
                    tar.add(host, arcname="/".join(parts) or ".", filter=readonly)
            buf.seek(0)
            if not container.put_archive(root, buf):
                raise EngineError(f"could not copy {', '.join(h for h, _ in entries)} into the container")


def _entries(path: str, stream, first: int | None = None) -> tuple[FileEntry, ...]:
    """The entries of an archive the engine sent for ``path`` (its top entry is named after the
    path's last part), with absolute paths; at most ``first`` of them (see ``reading``)."""
    import hashlib
    import tarfile

    parent = path.rstrip("/").rsplit("/", 1)[0]
    kinds = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink"}
    kinds[tarfile.LNKTYPE] = "hardlink"
    entries: list[FileEntry] = []
    kept = 0
    with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            if first is not None and len(entries) >= first:
                break
            if len(entries) >= MAX_ENTRIES:
                raise EngineError(
                    f"{path} holds more than {MAX_ENTRIES:,} entries: not read",
                    hint="an image built by imagesmith has no such folder where imagesmith looks",
                )
            name = f"{parent}/{member.name}".replace("//", "/") if not member.name.startswith("/") else member.name
            kind = kinds.get(member.type, "other")
            digest, data = "", None
            if kind == "file":
                handle = tar.extractfile(member)
                h = hashlib.sha256()
                keep = bytearray() if member.size <= SMALL_FILE and kept + member.size <= KEPT_BYTES else None
                while handle is not None and (block := handle.read(1 << 16)):
                    h.update(block)
                    if keep is not None:
                        keep += block
                digest = f"sha256:{h.hexdigest()}"
                if keep is not None:
                    data, kept = bytes(keep), kept + len(keep)
            entries.append(
                FileEntry(
                    name.rstrip("/") or "/",
                    kind,
                    member.mode & 0o7777,
                    member.uid,
                    member.linkname[:4096],
                    digest,
                    data,
                )
            )
    return tuple(entries)


class _ChunkReader:
    """A file-like ``read(n)`` over an iterator of byte chunks (the engine's archive stream), so
    that ``tarfile`` reads it as it arrives."""

    def __init__(self, chunks) -> None:
        self._chunks = iter(chunks)
        self._buf = b""
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            if self._pos >= len(self._buf):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._buf, self._pos = chunk, 0
                continue
            left = len(self._buf) - self._pos
            take = left if n < 0 else min(n - len(out), left)
            out += self._buf[self._pos : self._pos + take]
            self._pos += take
        return bytes(out)


def _gpu_request(gpus: bool) -> list | None:
    if not gpus:
        return None
    from docker.types import DeviceRequest

    return [DeviceRequest(count=-1, capabilities=[["gpu"]])]


class _Collector:
    """A command's stdout, read in a thread while it runs (``logs(follow=True)``), at most
    ``limit`` bytes: past that the container is killed (``over``), so a command that prints
    without end costs neither memory nor the time it would take to finish."""

    def __init__(self, container, limit: int) -> None:
        import threading

        self.container, self.limit = container, limit
        self.over = False
        self._buf = bytearray()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        from docker.errors import DockerException

        try:
            stream = self.container.logs(stdout=True, stderr=False, stream=True, follow=True)
            self._stream = stream
            for chunk in stream:
                if len(self._buf) + len(chunk) > self.limit:
                    self.over = True
                    break
                self._buf += chunk
        except (DockerException, OSError, ValueError):
            pass
        if self.over:
            try:
                self.container.kill()
            except DockerException:
                pass
        self._close()

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a half-read HTTP response
                pass

    def done(self, wait: float = 30.0) -> None:
        """The container has stopped: the rest of its output arrives, then the stream ends
        (``wait`` 0: it has not stopped; stop reading)."""
        if wait > 0:
            self._thread.join(wait)
        if self._thread.is_alive():
            self._close()
            self._thread.join(5 if wait > 0 else 0.1)

    def text(self) -> str:
        """What was read, decoded (nothing when it was cut off: ``over``); the buffer is freed."""
        buf, self._buf = self._buf, bytearray()
        return "" if self.over else buf.decode("utf-8", "replace")


def _tail_of(stream, keep: int, most: int = 16 << 20) -> bytes:
    """The last ``keep`` bytes of a log stream, read to its end (or its first ``most`` bytes) in
    bounded memory."""
    buf = bytearray()
    seen = 0
    try:
        for chunk in stream:
            buf += chunk
            seen += len(chunk)
            if len(buf) > 2 * keep:
                del buf[:-keep]
            if seen > most:
                break
    finally:
        try:
            stream.close()
        except Exception:  # noqa: BLE001
            pass
    return bytes(buf[-keep:])
