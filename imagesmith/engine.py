"""The only code that talks to Docker: the Engine SDK for inspecting and running, and
``docker buildx`` / ``docker load`` / ``docker push`` subprocesses for BuildKit work.

Every failure is translated here into an ``EngineError`` (or ``BuildError``) that says what
failed and what to do; callers never see SDK exceptions or raw subprocess errors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .credentials import redact, strip_userinfo
from .errors import BuildError, EngineError, LockError
from .lock import BasePin

ENGINE_HINT = ("start a Docker engine with buildx (on Debian: `make engine`, "
               "see README), or set DOCKER_HOST")


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    id: str  # sha256:... (with the containerd store: the manifest digest)
    labels: dict[str, str]
    layers: tuple[str, ...]  # RootFS diff IDs, bottom first
    repo_digests: tuple[str, ...]
    config: dict  # the image config (Entrypoint, Cmd, Env, ExposedPorts, WorkingDir, ...)
    size: int
    created: str
    history: tuple["HistoryEntry", ...] | None = None  # oldest first; None: not read (see Engine.history)
    source: str = "local"  # "local" (the engine's image store) or "registry" (read without pulling)


@dataclass(frozen=True)
class HistoryEntry:
    created_by: str
    empty_layer: bool  # True: a config-only step (LABEL, ENV, CMD, ...) that added no filesystem layer


@dataclass(frozen=True)
class IsolatedRun:
    exit_code: int | None  # None: the command could not be started (start_error says why)
    stdout: str
    stderr: str
    start_error: str = ""


def _docker_cli() -> str:
    return shutil.which("docker") or "docker"


class Engine:
    """One Docker engine. The SDK client is made on first use, so commands that need no engine
    (render, lock when nothing changed) never touch Docker."""

    def __init__(self) -> None:
        self._client = None

    # ---- SDK -------------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            import docker
            from docker.errors import DockerException

            try:
                self._client = docker.from_env(timeout=120)
                self._client.ping()
            except DockerException as exc:
                self._client = None
                raise EngineError(f"the Docker engine is not reachable ({_first_line(exc)})", hint=ENGINE_HINT) from exc
        return self._client

    def image(self, ref: str) -> ImageInfo:
        from docker.errors import DockerException, ImageNotFound

        try:
            img = self.client.images.get(ref)
        except ImageNotFound as exc:
            raise EngineError(f"image {ref} is not in the local engine",
                              hint="build it with `imagesmith build`, or pull it first") from exc
        except DockerException as exc:
            raise EngineError(f"cannot inspect {ref}: {_first_line(exc)}", hint=ENGINE_HINT) from exc
        a = img.attrs
        cfg = a.get("Config") or {}
        return ImageInfo(
            ref=ref, id=a["Id"], labels=dict(cfg.get("Labels") or {}),
            layers=tuple((a.get("RootFS") or {}).get("Layers") or ()),
            repo_digests=tuple(a.get("RepoDigests") or ()), config=cfg,
            size=int(a.get("Size") or 0), created=a.get("Created", ""),
        )

    def has_image(self, ref: str) -> bool:
        from docker.errors import ImageNotFound

        try:
            self.client.images.get(ref)
            return True
        except ImageNotFound:
            return False

    def registry_digest(self, ref: str) -> str:
        """The manifest digest of ``ref`` in its registry, without pulling it."""
        from docker.errors import DockerException

        try:
            return self.client.images.get_registry_data(ref).id
        except DockerException as exc:
            raise EngineError(f"registry lookup of {ref} failed: {_first_line(exc)}") from exc

    def run(self, image: str, command: Sequence[str], *, entrypoint: Sequence[str] | None = None,
            network: bool = False, read_only: bool = False, environment: dict | None = None,
            volumes: dict | None = None, user: str | None = None, timeout: int = 600) -> str:
        """Run a command to completion in a fresh container and return its stdout.
        Raises EngineError with the container's stderr when it exits non-zero."""
        from docker.errors import ContainerError, DockerException, ImageNotFound

        try:
            out = self.client.containers.run(
                image, list(command), entrypoint=list(entrypoint) if entrypoint is not None else None,
                network_disabled=not network, network_mode=None if network else "none",
                read_only=read_only, environment=environment or {}, volumes=volumes or {},
                user=user, remove=True, stdout=True, stderr=False,
                tmpfs={"/tmp": "rw,size=64m"} if read_only else None,
            )
        except ContainerError as exc:
            err = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else str(exc.stderr)
            raise EngineError(f"`{' '.join(command)}` failed in {image} (exit {exc.exit_status}):\n{_tail(err, 20)}") from exc
        except ImageNotFound as exc:
            raise EngineError(f"image {image} is not in the local engine") from exc
        except DockerException as exc:
            raise EngineError(f"cannot run a container of {image}: {_first_line(exc)}", hint=ENGINE_HINT) from exc
        return out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)

    def run_attached(self, image: str, command: Sequence[str], *, mounts: dict[str, str] | None = None,
                     ports: dict[int, int] | None = None, environment: dict[str, str] | None = None,
                     name: str | None = None) -> int:
        """``docker run --rm`` in the foreground, as a user would type it: the container's output on
        this terminal, Ctrl-C and SIGTERM passed on to it, its exit code returned.
        ``mounts``: host folder -> container path (bind); ``ports``: container port -> host port,
        published on 127.0.0.1 only."""
        import signal

        argv = [_docker_cli(), "run", "--rm"]
        if sys.stdin.isatty():
            argv += ["-i", "-t"] if sys.stdout.isatty() else ["-i"]
        if name:
            argv += ["--name", name]
        for host, target in sorted((mounts or {}).items()):
            # --mount is CSV: a field with a comma or quote is quoted, quotes doubled
            fields = [f"source={host}", f"target={target}"]
            quoted = ['"' + f.replace('"', '""') + '"' if ("," in f or '"' in f) else f for f in fields]
            argv += ["--mount", ",".join(["type=bind", *quoted])]
        for container_port, host_port in sorted((ports or {}).items()):
            argv += ["-p", f"127.0.0.1:{host_port}:{container_port}"]
        for key, value in sorted((environment or {}).items()):
            argv += ["-e", f"{key}={value}"]
        argv += [image, *command]
        try:
            proc = subprocess.Popen(argv)
        except FileNotFoundError as exc:
            raise EngineError("the docker command is not installed", hint=ENGINE_HINT) from exc

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
                    return proc.wait()
                except KeyboardInterrupt:  # the terminal sent SIGINT to docker too; wait for it
                    continue
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    # ---- lock support ------------------------------------------------------------------------

    def pin_base(self, ref: str) -> BasePin:
        """Pin a base image reference to a digest: a registry's manifest digest when the registry
        answers, else the local engine's image ID (the lock says which)."""
        if "@sha256:" in ref:
            name, digest = ref.split("@", 1)
            source = "registry"
            if not self.has_image(ref):
                try:
                    self.registry_digest(ref)
                except EngineError as exc:
                    raise LockError(f"base image {ref} is neither local nor in its registry", hint="check the digest") from exc
            else:
                source = "local" if not any(d.endswith(digest) for d in self.image(ref).repo_digests) else "registry"
            return BasePin(name, digest, source, self.python_version(ref))
        registry_error = None
        try:
            digest = self.registry_digest(ref)
            source = "registry"
        except EngineError as exc:
            registry_error = exc
            if not self.has_image(ref):
                raise LockError(
                    f"base image {ref} was found neither in its registry ({_first_line(exc)}) nor in the local engine",
                    hint="check the name, make the image locally (`make base`), or pass --base with one that exists",
                ) from exc
            digest = self.image(ref).id
            source = "local"
        pinned = f"{ref}@{digest}"
        if source == "registry" and not self.has_image(pinned):
            self._pull(pinned)
        del registry_error
        return BasePin(ref, digest, source, self.python_version(pinned if source == "registry" else ref))

    def _pull(self, ref: str) -> None:
        from docker.errors import DockerException

        try:
            self.client.images.pull(ref)
        except DockerException as exc:
            raise EngineError(f"cannot pull {ref}: {_first_line(exc)}") from exc

    def python_version(self, image: str) -> str:
        out = self.run(image, ["-c", "import platform; print(platform.python_version())"],
                       entrypoint=["python3"])
        return out.strip()

    def pin_system_packages(self, image: str, names: Iterable[str]) -> dict[str, str]:
        """Resolve Debian packages (and what they pull in) to exact versions inside ``image``,
        with apt's own simulation. Needs the network to reach the image's apt sources."""
        names = list(names)
        script = ("set -e; apt-get update -qq >/dev/null 2>&1 || { echo 'apt-get update failed' >&2; exit 3; }; "
                  "apt-get install -s -qq --no-install-recommends \"$@\"")
        try:
            out = self.run(image, ["-c", script, "sh", *names], entrypoint=["sh"], network=True, user="root")
        except EngineError as exc:
            text = str(exc)
            if "Unable to locate package" in text or "has no installation candidate" in text:
                missing = re.findall(r"(?:Unable to locate package|Package) (\S+)", text)
                raise LockError(f"system package(s) {', '.join(sorted(set(missing)) or names)} not found in the base image's apt sources",
                                hint="check the Debian package names in system_packages") from exc
            raise LockError(f"could not pin system packages in {image}: {text}") from exc
        pins = dict(re.findall(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+)", out, re.M))
        for n in names:
            n = n.split("=", 1)[0]
            if n not in pins and not self._deb_installed(image, n):
                raise LockError(f"apt did not resolve system package {n} in {image}")
        return dict(sorted(pins.items()))

    def _deb_installed(self, image: str, name: str) -> bool:
        out = self.run(image, ["-c", f"dpkg-query -W -f='${{Version}}' {name} 2>/dev/null || true"], entrypoint=["sh"])
        return bool(out.strip())

    def run_pip_compile(self, image: str, *, work: Path, args: Sequence[str], out: Path, pip_tools: str,
                        environment: dict[str, str] | None = None, cache: Path | None = None,
                        netrc: Path | None = None, timeout: int = 1800) -> tuple[int, str]:
        """pip-compile inside ``image``, so it resolves for that image's Python and platform.

        ``work`` (the staged inputs; ``args`` are relative to it) is mounted at /in, ``out``'s
        folder at /out (pip-compile reads earlier pins from ``out`` and writes the result there),
        ``cache`` (optional) at /cache as pip's cache. pip-tools ``pip_tools`` is installed into a
        throwaway venv in the container. Runs as the calling user, so every file it writes is
        theirs. ``netrc`` (optional): a file with index credentials, mounted read-only and named by
        NETRC, so no credential is ever in the container's environment or command line.
        Returns (exit code, combined output); exit 3: pip-tools could not be installed."""
        from docker.errors import DockerException, ImageNotFound

        script = (
            "python3 -m venv /tmp/pt >/dev/null || exit 4; "
            f"/tmp/pt/bin/pip install -q --disable-pip-version-check 'pip-tools=={pip_tools}' "
            f"|| {{ echo 'imagesmith: could not install pip-tools {pip_tools} in the base image' >&2; exit 3; }}; "
            f"cd /in && exec /tmp/pt/bin/pip-compile \"$@\" --output-file /out/{out.name}"
        )
        volumes = {str(work.resolve()): {"bind": "/in", "mode": "rw"},
                   str(out.parent.resolve()): {"bind": "/out", "mode": "rw"}}
        env = {"HOME": "/tmp", "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(environment or {})}
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            volumes[str(cache.resolve())] = {"bind": "/cache", "mode": "rw"}
            env["PIP_CACHE_DIR"] = "/cache"
        if netrc is not None:
            volumes[str(Path(netrc).resolve())] = {"bind": "/run/imagesmith/netrc", "mode": "ro"}
            env["NETRC"] = "/run/imagesmith/netrc"
        user = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else None
        container = None
        try:
            container = self.client.containers.run(
                image, ["-c", script, "sh", *args], entrypoint=["sh"], detach=True, user=user,
                environment=env, volumes=volumes, tmpfs={"/tmp": "rw,exec,size=512m"},
            )
            try:
                code = int(container.wait(timeout=timeout).get("StatusCode", 1))
            except Exception as exc:  # requests' timeout: the resolution hangs
                raise EngineError(f"pip-compile in {image} did not finish in {timeout} s",
                                  hint="check the network and the package index") from exc
            output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            if code == 4:
                raise EngineError(f"cannot make a virtual environment in {image} to run pip-compile:\n{_tail(output, 10)}",
                                  hint="use a base image with Python's venv module (e.g. python3-venv), or resolver: uv")
            return code, output
        except ImageNotFound as exc:
            raise EngineError(f"image {image} is not in the local engine") from exc
        except DockerException as exc:
            raise EngineError(f"cannot run pip-compile in a container of {image}: {_first_line(exc)}",
                              hint=ENGINE_HINT) from exc
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except DockerException:
                    pass

    # ---- BuildKit ----------------------------------------------------------------------------

    def buildx_available(self) -> None:
        proc = subprocess.run([_docker_cli(), "buildx", "version"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EngineError("docker buildx is not available", hint=ENGINE_HINT)

    def build(self, *, context: Path, dockerfile: Path, targets: dict[str, str], build_args: dict[str, str],
              build_contexts: dict[str, str], epoch: int, builder: str | None = None,
              cache_from: Sequence[str] = (), cache_to: Sequence[str] = (), no_cache: bool = False,
              echo: Callable[[str], None] | None = None,
              describe_failure: Callable[[str], str] | None = None,
              secrets: dict[str, Path] | None = None) -> dict[str, str]:
        """Build the Dockerfile's ``targets`` ({target: image ref}) in ONE BuildKit solve
        (``docker buildx bake``, so shared stages are built once) straight into the engine's
        image store; returns {target: image ID}.

        Reproducible: the Dockerfile sets file times itself (see the template),
        SOURCE_DATE_EPOCH sets the config's times, and there is no provenance attestation.
        (BuildKit's rewrite-timestamp exporter option would do the file times too, but only
        through an OCI archive, and it re-processes every layer on each build: about 12 s per
        target for the iris example even after a one-line edit.)"""
        common = {"context": str(context), "dockerfile": str(dockerfile), "args": dict(sorted(build_args.items())),
                  "contexts": dict(sorted(build_contexts.items()))}
        if secrets:  # BuildKit secrets ({id: file}): mounted by RUN --mount=type=secret, never stored
            common["secret"] = [f"id={key},src={path}" for key, path in sorted(secrets.items())]
        if no_cache:
            common["no-cache"] = True
        if cache_from:
            common["cache-from"] = list(cache_from)
        bake = {"group": {"default": {"targets": list(targets)}}, "target": {}}
        for target, ref in targets.items():
            bake["target"][target] = dict(common, target=target, output=[f"type=image,name={ref}"])
            if cache_to:
                bake["target"][target]["cache-to"] = list(cache_to)
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), BUILDX_NO_DEFAULT_ATTESTATIONS="1")
        tail: deque[str] = deque(maxlen=80)
        with tempfile.NamedTemporaryFile("w", prefix="imagesmith-bake-", suffix=".json") as fh:
            json.dump(bake, fh)
            fh.flush()
            argv = [_docker_cli(), "buildx", "bake", "--progress=plain", "--provenance=false", "-f", fh.name]
            if builder:
                argv += ["--builder", builder]
            try:
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env, errors="replace", cwd=str(context))
            except FileNotFoundError as exc:
                raise EngineError("the docker command is not installed", hint=ENGINE_HINT) from exc
            assert proc.stdout is not None
            for line in proc.stdout:
                line = redact(line.rstrip("\n"))
                tail.append(line)
                if echo:
                    echo(line)
            rc = proc.wait()
        if rc != 0:
            log = "\n".join(tail)
            if "Cannot connect to the Docker daemon" in log or "failed to dial" in log.lower():
                raise EngineError("the Docker engine is not reachable", hint=ENGINE_HINT)
            if builder and f'no builder "{builder}" found' in log:
                raise EngineError(f"there is no buildx builder named {builder!r}",
                                  hint="`docker buildx ls` lists the builders; omit --builder for the default one")
            what = describe_failure(log) if describe_failure else ""
            raise BuildError(f"building {' and '.join(targets)} failed" + (f" at {what}" if what else ""),
                             log_tail=_failure_excerpt(list(tail)),
                             hint="fix the part of the spec named above, then run `imagesmith build` again")
        return {target: self.image(ref).id for target, ref in targets.items()}

    def tag(self, image_id: str, ref: str) -> None:
        from docker.errors import DockerException

        repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
        try:
            self.client.images.get(image_id).tag(repo, tag)
        except DockerException as exc:
            raise EngineError(f"cannot tag {image_id} as {ref}: {_first_line(exc)}") from exc

    def push(self, ref: str) -> str:
        """Push ``ref``; returns its registry digest (sha256:...)."""
        proc = subprocess.run([_docker_cli(), "push", ref], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EngineError(f"docker push {ref} failed: {_tail(redact(proc.stderr), 5)}",
                              hint="check the registry is reachable and you are logged in")
        m = re.search(r"digest: (sha256:[a-f0-9]{64})", proc.stdout)
        if not m:
            raise EngineError(f"docker push {ref} did not report a digest")
        return m.group(1)

    # ---- verification support ------------------------------------------------------------------

    def history(self, image: str, layers: int) -> tuple[HistoryEntry, ...] | None:
        """The build history of a local image, oldest first, or None when it cannot be matched
        to the image's ``layers`` filesystem layers.

        The engine's history API does not say which steps were config-only; it reports each
        step's size, and a step that added a layer has a non-zero size with the containerd image
        store. The answer is trusted only when the non-zero steps are exactly as many as the
        layers; otherwise None (the caller says it could not tell)."""
        from docker.errors import DockerException, ImageNotFound

        try:
            raw = self.client.api.history(image)
        except ImageNotFound as exc:
            raise EngineError(f"image {image} is not in the local engine") from exc
        except DockerException as exc:
            raise EngineError(f"cannot read the history of {image}: {_first_line(exc)}", hint=ENGINE_HINT) from exc
        entries = tuple(HistoryEntry(created_by=e.get("CreatedBy") or "", empty_layer=not e.get("Size"))
                        for e in reversed(raw or []))
        if sum(not e.empty_layer for e in entries) != layers:
            return None
        return entries

    def registry_image(self, ref: str) -> ImageInfo:
        """Labels, config, layers and history of ``ref`` read from its registry with skopeo,
        without pulling the image. A multi-platform index resolves to linux/amd64."""
        insecure = _loopback_registry(ref)
        raw = self._skopeo(["inspect", "--raw", f"docker://{ref}"], ref, insecure)
        try:
            manifest = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EngineError(f"the registry returned no manifest for {ref}") from exc
        name = _repository(ref)
        digest = "sha256:" + _sha256_hex(raw.encode("utf-8"))
        if manifest.get("manifests"):  # an index: pick the platform imagesmith builds for
            chosen = [m for m in manifest["manifests"]
                      if (m.get("platform") or {}).get("os") == "linux"
                      and (m.get("platform") or {}).get("architecture") == "amd64"]
            if not chosen:
                raise EngineError(f"{ref} has no linux/amd64 image in its index")
            digest = chosen[0]["digest"]
        pinned = f"{name}@{digest}"
        config_text = self._skopeo(["inspect", "--config", f"docker://{pinned}"], ref, insecure)
        try:
            config = json.loads(config_text)
        except json.JSONDecodeError as exc:
            raise EngineError(f"the registry returned no image config for {ref}") from exc
        cfg = config.get("config") or {}
        history = tuple(HistoryEntry(created_by=h.get("created_by") or "", empty_layer=bool(h.get("empty_layer")))
                        for h in config.get("history") or ())
        return ImageInfo(ref=ref, id=digest, labels=dict(cfg.get("Labels") or {}),
                         layers=tuple((config.get("rootfs") or {}).get("diff_ids") or ()),
                         repo_digests=(pinned,), config=cfg, size=0, created=config.get("created", ""),
                         history=history, source="registry")

    def _skopeo(self, args: list[str], ref: str, insecure: bool) -> str:
        exe = shutil.which("skopeo")
        if exe is None:
            raise EngineError(f"reading {ref} from its registry needs skopeo, which is not installed",
                              hint="install it (Debian: apt-get install skopeo; `make engine` does), or pull the image first")
        argv = [exe, args[0], *(["--tls-verify=false"] if insecure else []), *args[1:]]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"the registry did not answer for {ref} within 120 s") from exc
        if proc.returncode != 0:
            text = redact(proc.stderr.strip())
            if "manifest unknown" in text or "not found" in text.lower():
                raise EngineError(f"{ref} is not in its registry ({_tail(text, 1)})",
                                  hint="check the name and tag, or push the image first")
            raise EngineError(f"cannot read {ref} from its registry: {_tail(text, 2)}",
                              hint="check the registry is reachable and you are logged in")
        return proc.stdout

    def pull(self, ref: str) -> ImageInfo:
        """Pull ``ref`` into the local engine (only the layers it lacks) and inspect it."""
        self._pull(ref)
        return self.image(ref)

    def run_isolated(self, image: str, argv: Sequence[str], *, timeout: int = 300) -> IsolatedRun:
        """Run ``argv`` (``argv[0]`` replaces the image's entrypoint) in a throwaway container:
        no network, read-only root file system (a small /tmp in memory), root without
        capabilities except reading any file, no new privileges. Never raises for the command's
        own failure: the exit code and both streams are returned."""
        run = self._run_to_end(
            image, argv[0], timeout, command=list(argv[1:]), entrypoint=[argv[0]], network_disabled=True,
            network_mode="none", read_only=True, tmpfs={"/tmp": "rw,size=16m,noexec,nosuid"}, user="0",
            working_dir="/", cap_drop=["ALL"], cap_add=["DAC_READ_SEARCH"],
            security_opt=["no-new-privileges"], labels={"io.imagesmith.probe": "1"})
        if run.start_error and "no such file or directory" in run.start_error:
            return replace(run, start_error=f"{argv[0]} does not exist in the image")
        return run

    def _run_to_end(self, image: str, what: str, timeout: int, **create) -> IsolatedRun:
        """Create a container of ``image`` with the SDK's ``create`` arguments, start it, wait for
        it, collect both streams, remove it. The command's own failure is returned, not raised."""
        from docker.errors import APIError, DockerException, ImageNotFound

        try:
            container = self.client.containers.create(image, create.pop("command"), **create)
        except ImageNotFound as exc:
            raise EngineError(f"image {image} is not in the local engine") from exc
        except DockerException as exc:
            raise EngineError(f"cannot create a container of {image}: {_first_line(exc)}", hint=ENGINE_HINT) from exc
        try:
            try:
                container.start()
            except APIError as exc:
                return IsolatedRun(None, "", "", start_error=_first_line(exc))
            try:
                status = container.wait(timeout=timeout)
            except Exception as exc:  # requests' ReadTimeout and friends
                raise EngineError(f"`{what}` in {image} did not finish within {timeout} s") from exc
            out = container.logs(stdout=True, stderr=False)
            err = container.logs(stdout=False, stderr=True)
            return IsolatedRun(int(status.get("StatusCode", -1)), out.decode("utf-8", "replace"),
                               err.decode("utf-8", "replace"))
        except DockerException as exc:
            raise EngineError(f"running a container of {image} failed: {_first_line(exc)}", hint=ENGINE_HINT) from exc
        finally:
            try:
                container.remove(force=True)
            except DockerException:
                pass

    # ---- signoff support ---------------------------------------------------------------------

    def run_helper(self, image: str, argv: Sequence[str], *, entrypoint: Sequence[str],
                   mounts: dict[str, str] | None = None, environment: dict[str, str] | None = None,
                   gpus: bool = False, timeout: int = 600) -> IsolatedRun:
        """Run ``argv`` after ``entrypoint`` in a throwaway container of ``image``: its own working
        directory and user, no network, ``mounts`` (host path -> container path) read-only, all
        GPUs when ``gpus``. Never raises for the command's own failure (see ``IsolatedRun``)."""
        return self._run_to_end(
            image, " ".join(entrypoint), timeout, command=list(argv), entrypoint=list(entrypoint),
            network_disabled=True, network_mode="none",
            volumes={h: {"bind": t, "mode": "ro"} for h, t in sorted((mounts or {}).items())},
            environment=dict(environment or {}), device_requests=_gpu_request(gpus),
            labels={"io.imagesmith.signoff": "1"})

    def start_service(self, image: str, *, port: int, mounts: dict[str, str] | None = None,
                      environment: dict[str, str] | None = None, gpus: bool = False) -> tuple[str, int]:
        """Start ``image`` detached with its own entrypoint and command, as production would:
        ``port`` published on 127.0.0.1 (a free host port the engine picks), ``mounts`` read-only,
        all GPUs when ``gpus``. Returns (container ID, host port). Stop it with ``stop_service``."""
        from docker.errors import DockerException, ImageNotFound

        try:
            container = self.client.containers.run(
                image, detach=True, ports={f"{port}/tcp": ("127.0.0.1", None)},
                volumes={h: {"bind": t, "mode": "ro"} for h, t in sorted((mounts or {}).items())},
                environment=dict(environment or {}), device_requests=_gpu_request(gpus),
                labels={"io.imagesmith.signoff": "1"})
        except ImageNotFound as exc:
            raise EngineError(f"image {image} is not in the local engine") from exc
        except DockerException as exc:
            text = _first_line(exc)
            if gpus and ("gpu" in text.lower() or "nvidia" in text.lower()):
                raise EngineError(f"cannot start {image} with GPUs: {text}",
                                  hint="install the NVIDIA container toolkit so Docker can pass GPUs in") from exc
            raise EngineError(f"cannot start {image}: {text}", hint=ENGINE_HINT) from exc
        try:
            container.reload()
            bound = (container.ports or {}).get(f"{port}/tcp") or []
            host_port = next(int(b["HostPort"]) for b in bound if b.get("HostIp") in ("127.0.0.1", ""))
        except (DockerException, StopIteration, KeyError, ValueError) as exc:
            self.stop_service(container.id)
            raise EngineError(f"{image} started, but port {port} was not published") from exc
        return container.id, host_port

    def service_exit_code(self, container_id: str) -> int | None:
        """None while the container runs; its exit code once it has stopped."""
        from docker.errors import DockerException

        try:
            container = self.client.containers.get(container_id)
            container.reload()
        except DockerException as exc:
            raise EngineError(f"cannot read container {container_id[:12]}: {_first_line(exc)}") from exc
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
            raise EngineError(f"cannot read container {container_id[:12]}: {_first_line(exc)}") from exc
        logs = ""
        try:
            container.stop(timeout=10)
            logs = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        except DockerException:
            pass
        try:
            container.remove(force=True)
        except DockerException:
            pass
        return logs


def _gpu_request(gpus: bool) -> list | None:
    if not gpus:
        return None
    from docker.types import DeviceRequest

    return [DeviceRequest(count=-1, capabilities=[["gpu"]])]


def registry_host(ref: str) -> str | None:
    """The registry host a reference names, by Docker's rule (the first path component has a dot
    or a colon, or is localhost); None for names the local engine resolves (e.g. ``app:serve``)."""
    if "/" not in ref:
        return None
    first = ref.split("/", 1)[0]
    return first if ("." in first or ":" in first or first == "localhost") else None


def _loopback_registry(ref: str) -> bool:
    host = (registry_host(ref) or "").rsplit(":", 1)[0]
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


def _repository(ref: str) -> str:
    """``ref`` without its tag or digest."""
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def _sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _failure_excerpt(lines: list[str], limit: int = 25) -> str:
    """What a person needs from a failed BuildKit log: the failing step's own output (BuildKit
    repeats it after a ` > [stage n/m] ...` header), then the final ERROR line."""
    header = max((i for i, ln in enumerate(lines) if ln.startswith(" > [")), default=None)
    if header is None:
        return "\n".join(lines[-limit:])
    body = []
    for ln in lines[header + 1:]:
        if ln.startswith("------"):
            break
        body.append(ln)
    final = [ln for ln in lines if ln.startswith("ERROR:")][-1:]
    return "\n".join([lines[header][:200]] + body[-limit:] + final)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def _tail(text: str, n: int) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def git_epoch(root: Path) -> int | None:
    """The commit time of HEAD of the git repository holding ``root``, if any."""
    try:
        proc = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return int(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip().isdigit() else None


def git_revision(root: Path) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    except FileNotFoundError:
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def git_source(root: Path) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True, text=True)
    except FileNotFoundError:
        return ""
    return strip_userinfo(proc.stdout.strip()) if proc.returncode == 0 else ""
