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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

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


def _docker_cli() -> str:
    return shutil.which("docker") or "docker"


def _redact(text: str) -> str:
    """Credentials in URLs (scheme://user:pass@host) never reach output."""
    return re.sub(r"(\w+://)[^/\s:@]+:[^/\s@]+@", r"\1***:***@", text)


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

    def run_pip_compile(self, image: str, inputs: Sequence[Path], opts: list[str], out: Path):
        """pip-compile inside the target image: the inputs' folders mounted read-only, pip-tools
        installed into a throwaway venv in the container. Returns (CompletedProcess-like, output)."""
        roots = sorted({str(p.resolve().parent) for p in inputs})
        vols = {r: {"bind": f"/in/{i}", "mode": "ro"} for i, r in enumerate(roots)}
        vols[str(out.parent)] = {"bind": "/out", "mode": "rw"}
        args = [f"/in/{roots.index(str(p.resolve().parent))}/{p.name}" for p in inputs]
        if out.exists():
            pass  # previous pins are honoured: pip-compile reads the existing output file
        script = ("set -e; python3 -m venv /tmp/pt >/dev/null; /tmp/pt/bin/pip install -q --disable-pip-version-check "
                  "'pip-tools>=7.4' >&2; cd /in/0; /tmp/pt/bin/pip-compile \"$@\" --output-file /out/" + out.name)
        try:
            self.run(image, ["-c", script, "sh", *opts, *args], entrypoint=["sh"], network=True, volumes=vols,
                     user="root", environment={k: v for k, v in os.environ.items() if k.startswith("PIP_INDEX")})
            return subprocess.CompletedProcess([], 0), ""
        except EngineError as exc:
            return subprocess.CompletedProcess([], 1), str(exc)

    # ---- BuildKit ----------------------------------------------------------------------------

    def buildx_available(self) -> None:
        proc = subprocess.run([_docker_cli(), "buildx", "version"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EngineError("docker buildx is not available", hint=ENGINE_HINT)

    def build(self, *, context: Path, dockerfile: Path, target: str, dest: Path, build_args: dict[str, str],
              build_contexts: dict[str, str], epoch: int, builder: str | None = None,
              cache_from: Sequence[str] = (), cache_to: Sequence[str] = (), no_cache: bool = False,
              network: str | None = None, echo: Callable[[str], None] | None = None,
              describe_failure: Callable[[str], str] | None = None) -> None:
        """``docker buildx build`` one target into an OCI archive at ``dest``, reproducibly:
        SOURCE_DATE_EPOCH, rewritten timestamps, no provenance attestation."""
        argv = [_docker_cli(), "buildx", "build", "--progress=plain", "--provenance=false",
                "-f", str(dockerfile), "--target", target,
                "--output", f"type=oci,dest={dest},rewrite-timestamp=true"]
        if builder:
            argv += ["--builder", builder]
        for k, v in sorted(build_args.items()):
            argv += ["--build-arg", f"{k}={v}"]
        for k, v in sorted(build_contexts.items()):
            argv += ["--build-context", f"{k}={v}"]
        for c in cache_from:
            argv += ["--cache-from", c]
        for c in cache_to:
            argv += ["--cache-to", c]
        if no_cache:
            argv.append("--no-cache")
        if network:
            argv += ["--network", network]
        argv.append(str(context))
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), BUILDX_NO_DEFAULT_ATTESTATIONS="1")
        tail: deque[str] = deque(maxlen=60)
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=env, errors="replace")
        except FileNotFoundError as exc:
            raise EngineError("the docker command is not installed", hint=ENGINE_HINT) from exc
        assert proc.stdout is not None
        for line in proc.stdout:
            line = _redact(line.rstrip("\n"))
            tail.append(line)
            if echo:
                echo(line)
        rc = proc.wait()
        if rc != 0:
            log = "\n".join(tail)
            if "Cannot connect to the Docker daemon" in log or "failed to dial" in log.lower():
                raise EngineError("the Docker engine is not reachable", hint=ENGINE_HINT)
            what = describe_failure(log) if describe_failure else ""
            raise BuildError(f"building the {target} image failed" + (f" at {what}" if what else ""),
                             log_tail="\n".join(list(tail)[-25:]),
                             hint="fix the part of the spec named above, then run `imagesmith build` again")

    def load(self, archive: Path) -> str:
        """``docker load`` an OCI archive; returns the loaded image's ID."""
        proc = subprocess.run([_docker_cli(), "load", "-q", "-i", str(archive)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EngineError(f"docker load failed: {_tail(proc.stderr, 5)}", hint=ENGINE_HINT)
        out = proc.stdout.strip()
        m = re.search(r"Loaded image(?: ID)?: (\S+)", out)
        if not m:
            raise EngineError(f"docker load said nothing about the image it loaded: {out!r}")
        return self.image(m.group(1)).id

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
            raise EngineError(f"docker push {ref} failed: {_tail(_redact(proc.stderr), 5)}",
                              hint="check the registry is reachable and you are logged in")
        m = re.search(r"digest: (sha256:[a-f0-9]{64})", proc.stdout)
        if not m:
            raise EngineError(f"docker push {ref} did not report a digest")
        return m.group(1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return _redact(text.splitlines()[0] if text else type(exc).__name__)


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
    return _redact(proc.stdout.strip()) if proc.returncode == 0 else ""
