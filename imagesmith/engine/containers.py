"""Containers, through the Docker SDK: ONE lifecycle for everything run to its end
(``run_to_end``: create, copy files in, start, wait, collect, remove), the ways imagesmith runs
a command that way (``run``, ``run_isolated``, ``run_helper``), and reading an image's files
from outside it (``reading``). Signoff's detached services are ``services.py``'s; the
interactive ``imagesmith run`` is ``attached.py``'s.

Signoff runs the image under test locked down (``LOCKED_DOWN``): no capabilities, no new
privileges, a read-only root file system with a small /tmp in memory, as the image's own user.
Its files (the model, the samples) are copied into anonymous volumes made for the purpose (the
engine refuses to copy into a read-only root: ``container_files.py``); every container it starts
carries its run's ``LABEL_SIGNOFF`` value, so ``Services.remove_signoff`` can remove them all,
with their volumes, however the run ended."""

from __future__ import annotations

import secrets
import time
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import Callable, Iterator, Sequence

from ..errors import ContainerTimeout, EngineError
from ..layout import LABEL_PROBE, LABEL_SIGNOFF
from ._common import ENGINE_HINT, KeptReaders, first_line, tail
from .container_files import SMALL_FILE, archive_entries, copy_into, file_volumes
from .container_output import Collector, tail_of
from .records import FileEntry, IsolatedRun

OUTPUT_LIMIT = 64 << 20  # stdout of a command run to its end (run_to_end's default)
STDERR_KEPT = 64 << 10  # the tail of its stderr that is kept

# The SDK's create arguments for the image under test (signoff's service and batch helper)
LOCKED_DOWN = {
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "read_only": True,
    "tmpfs": {"/tmp": "rw,nosuid,nodev,size=256m"},
}


class Containers:
    def __init__(
        self,
        client: Callable[[], object],
        kept: KeptReaders | None = None,
        progress: Callable[[str], None] = lambda msg: None,
    ) -> None:
        self._client = client
        self._kept = kept if kept is not None else KeptReaders()  # the Engine's: its keeping_readers block
        self._progress = progress  # the one line said of a container left behind (``_left``)

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
        from docker.errors import APIError, DockerException

        files = create.pop("files", None) or {}
        output_limit = int(create.pop("output_limit", None) or OUTPUT_LIMIT)
        if files:
            create["mounts"] = list(create.get("mounts") or []) + file_volumes(files)
        container = create_container(self.client, image, create.pop("command"), **create)
        try:
            copy_into(container, files)
            try:
                container.start()
            except APIError as exc:
                return IsolatedRun(None, "", "", start_error=first_line(exc))
            reader = Collector(container, output_limit)
            waited = time.monotonic()
            try:
                status = container.wait(timeout=timeout)
            except Exception as exc:  # requests' ReadTimeout, or the engine lost before that
                reader.done(wait=0)
                if time.monotonic() - waited < timeout:
                    raise EngineError(f"waiting for `{what}` in {image} failed: {first_line(exc)}") from exc
                raise ContainerTimeout(f"`{what}` in {image} did not finish within {timeout} s") from exc
            reader.done()
            err = tail_of(container.logs(stdout=False, stderr=True, stream=True), STDERR_KEPT)
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
            except DockerException as exc:
                self._left(container.name, first_line(exc))

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

    def read_paths(
        self, image: str, paths: Sequence[str], small: int | None = None
    ) -> dict[str, tuple[FileEntry, ...] | None]:
        """Files of ``image`` read from outside it (see ``reading``): for each path, its entries
        or None when it does not exist; files up to ``small`` bytes (default ``SMALL_FILE``) come
        with their bytes."""
        with self.reading(image) as read:
            return {path: read(path, small=small or SMALL_FILE) for path in paths}

    @contextmanager
    def reading(self, image: str) -> Iterator[Callable[..., tuple[FileEntry, ...] | None]]:
        """A reader of ``image``'s files from outside it (see ``_reader``); inside a block that
        keeps readers (``Engine.keeping_readers``: ``KeptReaders``), the block's one reader of
        ``image``, made at its first read."""
        kept = self._kept
        if kept.stack is None:
            with self._reader(image) as read:
                yield read
            return
        if image not in kept.readers:
            kept.readers[image] = kept.stack.enter_context(self._reader(image))
        yield kept.readers[image]

    @contextmanager
    def _reader(self, image: str) -> Iterator[Callable[..., tuple[FileEntry, ...] | None]]:
        """A reader of ``image``'s files from outside it: a container is created but never
        started, each path is copied out through the engine's archive API, and the container is
        removed at the end. Nothing in the image runs, so nothing in it can lie about what is
        there. ``read(path)`` gives the path's entries (a folder: itself and everything under
        it; links are not followed), or None when it does not exist; ``read(path, first=N)``
        only its first N entries (the rest is not read). Files up to ``small`` (``SMALL_FILE``) bytes come
        with their bytes, up to ``KEPT_BYTES`` of them per read; a path with more than
        ``MAX_ENTRIES`` entries is an error. The archive is read as it streams: nothing of it is
        held but the bytes kept. On the plain local socket the requests are written without the
        SDK (``local_api``: the same requests, without its import and its round trips)."""
        from .local_api import create_container as create_local
        from .local_api import remove_container

        name = READER_NAME + secrets.token_hex(8)
        container = create_local(image, READER_CREATE, name)
        if container is None:  # not plainly the local engine, or not made: the SDK makes it, or says why not
            with self._sdk_reader(image) as read:
                yield read
            return
        try:
            yield partial(_read_local, container, image)
        finally:
            why = remove_container(container)
            if why is not None:
                self._left(name, why)

    @contextmanager
    def _sdk_reader(self, image: str) -> Iterator[Callable[..., tuple[FileEntry, ...] | None]]:
        """``_reader`` through the Docker SDK."""
        from docker.errors import DockerException, NotFound

        container = create_container(
            self.client,
            image,
            entrypoint=READER_CREATE["Entrypoint"],
            command=[],
            network_disabled=True,
            network_mode="none",
            labels=dict(READER_CREATE["Labels"]),
        )

        def read(path: str, first: int | None = None, small: int = SMALL_FILE) -> tuple[FileEntry, ...] | None:
            try:
                stream, _stat = container.get_archive(path)
            except NotFound:
                return None
            except DockerException as exc:
                raise EngineError(f"reading {path} in {image} failed: {first_line(exc)}", hint=ENGINE_HINT) from exc
            try:
                return archive_entries(path, stream, first, small)
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
            except DockerException as exc:
                self._left(container.name, first_line(exc))

    def _left(self, name: str, why: str) -> None:
        """A container that could not be removed: said once, as a warning with the command that
        removes it (the progress line a -q run shows too); the command goes on."""
        self._progress(f"warning: could not remove the container {name} ({why}): docker rm -f {name}")

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
            device_requests=gpu_request(gpus),
            labels={LABEL_SIGNOFF: run_id},
            **LOCKED_DOWN,
        )


def gpu_request(gpus: bool) -> list | None:
    if not gpus:
        return None
    from docker.types import DeviceRequest

    return [DeviceRequest(count=-1, capabilities=[["gpu"]])]


READER_NAME = "imagesmith-read-"  # + random hex: the name of ``reading``'s container on the local socket
# The engine API's create body of ``reading``'s container (never started), as the SDK writes
# ``_sdk_reader``'s: no network, imagesmith's log driver (``LOG_CONFIG``), the probe label.
READER_CREATE: dict = {
    "Entrypoint": ["/imagesmith-never-started"],
    "Cmd": [],
    "NetworkDisabled": True,
    "Labels": {LABEL_PROBE: "1"},
    "HostConfig": {"NetworkMode": "none", "LogConfig": {"Type": "local", "Config": {}}},
}


def _read_local(
    container: str, image: str, path: str, first: int | None = None, small: int = SMALL_FILE
) -> tuple[FileEntry, ...] | None:
    """``_reader``'s ``read`` on the local socket (``local_api.archive``)."""
    from .local_api import archive, message

    answer = archive(container, path)
    if answer is None:
        raise EngineError(f"reading {path} in {image} failed: the engine's answer could not be read", hint=ENGINE_HINT)
    status, body = answer
    try:
        if status == 404:
            return None
        if status != 200:
            said = message(next(body, b""))
            raise EngineError(f"reading {path} in {image} failed: {status} {said}".rstrip(), hint=ENGINE_HINT)
        return archive_entries(path, body, first, small)
    except OSError as exc:
        raise EngineError(f"reading {path} in {image} failed: {exc}", hint=ENGINE_HINT) from exc
    finally:
        body.close()  # closes the connection


# Every container imagesmith runs logs with the engine's `local` driver (compact, compressed,
# rotated at 5 x 20 MB), not the daemon's default: with `json-file` (every byte of a line of zeros
# written as a 6-byte JSON escape) a probe printing 1 GiB of zeros took 42 s to refuse, of which
# 29 s after the container was killed (its stderr read back through that log, and its removal);
# with `local` the whole run takes 4-5 s. A daemon whose default driver cannot be read back
# (`none`, `syslog`) would leave nothing to read. An engine without the driver gets its default.
LOG_CONFIG = {"type": "local", "config": {}}


def create_container(client, image: str, *args, **create):
    """``client.containers.create(image, *args, **create)`` with imagesmith's log driver
    (``LOG_CONFIG``, unless ``log_config`` is given) and its failures translated: an image the
    engine lacks, or any other refusal (with the engine hint)."""
    from docker.errors import APIError, DockerException, ImageNotFound

    own_logs = "log_config" not in create
    if own_logs:
        create["log_config"] = LOG_CONFIG
    try:
        try:
            return client.containers.create(image, *args, **create)
        except APIError as exc:
            if not (own_logs and "log" in str(exc).lower() and "driver" in str(exc).lower()):
                raise
            create.pop("log_config")
            return client.containers.create(image, *args, **create)
    except ImageNotFound as exc:
        raise EngineError(f"image {image} is not in the engine") from exc
    except DockerException as exc:
        raise EngineError(f"cannot create a container of {image}: {first_line(exc)}", hint=ENGINE_HINT) from exc
