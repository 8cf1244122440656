"""Signoff's services, through the Docker SDK: the image under test started detached as
production would start it, but ``LOCKED_DOWN`` (``start_service``), watched
(``service_exit_code``), stopped (``stop_service``), and every container of a signoff run removed
with its volumes however the run ended (``remove_signoff``)."""

from __future__ import annotations

from typing import Callable

from ..errors import EngineError
from ..layout import LABEL_SIGNOFF
from ._common import ENGINE_HINT, first_line
from .container_files import copy_into, file_volumes
from .containers import LOCKED_DOWN, create_container, gpu_request

# How long signoff waits for the engine to finish removing its containers (remove_signoff).
REMOVAL_WAIT = 120.0


class Services:
    def __init__(self, client: Callable[[], object], service_address: Callable[[], tuple[str, str]]) -> None:
        self._client = client
        self.service_address = service_address

    @property
    def client(self):
        return self._client()

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
        from docker.errors import DockerException

        bind, connect = self.service_address()
        files = dict(mounts or {})
        container = create_container(
            self.client,
            image,
            detach=True,
            ports={f"{port}/tcp": (bind, None)},
            init=True,
            environment=dict(environment or {}),
            device_requests=gpu_request(gpus),
            labels={LABEL_SIGNOFF: run_id},
            mounts=file_volumes(files),
            **LOCKED_DOWN,
        )
        try:
            copy_into(container, files)
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
                # ignore_removed: the SDK inspects each listed container, and one removed meanwhile
                # (this removal finishing on a busy engine) is gone, not an error
                return self.client.containers.list(
                    all=True, filters={"label": f"{LABEL_SIGNOFF}={run_id}"}, ignore_removed=True
                )
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
