"""BuildKit through ``docker buildx`` (the SDK has no BuildKit): the builder's driver, and
``bake`` with digests read from its ``--metadata-file``. Failures are classified here: engine,
builder, base image, registry and cache problems get hints about those; only a failing step
that the caller maps to the spec gets a spec hint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import weakref
from collections import deque
from pathlib import Path
from typing import Callable, Mapping

from ..errors import BuildError, EngineError
from ._common import ENGINE_HINT, docker_cli, redact, tail

# Where the docker command looks for its plugins on Linux after the config's extra folders and
# DOCKER_CONFIG/cli-plugins (docker/cli cli-plugins/manager: defaultSystemPluginDirs), and what it
# sets when it runs one (manager.ReexecEnvvar: the plugin then runs as a plugin, not standalone).
SYSTEM_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)
PLUGIN_MODE_ENV = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND"


def plugin_path(environ: Mapping[str, str] | None = None) -> str | None:
    """The buildx plugin the docker command would run (the first ``docker-buildx`` in its plugin
    folders, in its order), or None: then ``docker buildx`` runs it (a folder only the docker
    command knows, such as one from DOCKER_CLI_PLUGIN_EXTRA_DIRS, or another platform's)."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_CLI_PLUGIN_EXTRA_DIRS"):
        return None
    config = Path(env.get("DOCKER_CONFIG") or Path(env.get("HOME") or Path.home()) / ".docker")
    try:
        extra = json.loads((config / "config.json").read_text(encoding="utf-8")).get("cliPluginsExtraDirs") or []
    except (OSError, ValueError, AttributeError):
        extra = []
    if not isinstance(extra, list):
        return None
    for folder in (*[str(d) for d in extra], str(config / "cli-plugins"), *SYSTEM_PLUGIN_DIRS):
        candidate = os.path.join(folder, "docker-buildx")
        if os.path.lexists(candidate):  # the first one is the docker command's, whatever it is
            return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
    return None


def buildx_command(environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """How to run ``docker buildx ARGS``: (the command before ARGS, variables to add to the
    environment). The plugin itself when it is found, as the docker command runs it: the docker
    command's own start-up (its configuration, a check of the plugin's metadata by running it
    once more) is what an edit's rebuild waits for before buildx starts."""
    docker = shutil.which("docker")
    plugin = plugin_path(environ) if docker else None  # no docker command: it says so (EngineError)
    if plugin is None:
        return [docker_cli(), "buildx"], {}
    return [plugin, "buildx"], {PLUGIN_MODE_ENV: str(docker)}


# What buildx reads from the environment that would put the checkout's git facts into a build:
# BUILDX_GIT_LABELS adds labels of its own to the images (the revision, the origin, the
# Dockerfile's path), so the same inputs would give another digest in another shell; BUILDX_GIT_INFO
# (on unless set) runs git about 7 times per target before the solve starts, for provenance only.
_BUILDX_GIT_ENV = ("BUILDX_GIT_LABELS", "BUILDX_GIT_CHECK_DIRTY")


def bake_environment(epoch: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of ``docker buildx bake``: ``environ`` (default: this process's) with
    SOURCE_DATE_EPOCH set to ``epoch`` (the config's times), no default attestation (no
    provenance in the images), and no git facts from buildx: imagesmith stamps the revision and
    origin labels itself (build.oci_labels), and buildx's own git runs are only for the
    provenance it does not make here (0.1 s of an edit's rebuild on this machine's buildx 0.13,
    14 git runs for the two targets before the first step)."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k not in _BUILDX_GIT_ENV}
    env.update(SOURCE_DATE_EPOCH=str(epoch), BUILDX_NO_DEFAULT_ATTESTATIONS="1", BUILDX_GIT_INFO="0")
    return env


def _driver_of(inspect_output: str) -> str:
    m = re.search(r"^Driver:\s*(\S+)", inspect_output, re.M)
    return m.group(1) if m else "docker"


def _reap(pending: dict[str | None, subprocess.Popen]) -> None:
    """End prefetched runs nobody asked for (a build that failed before it needed the builder):
    no orphaned buildx, no zombie, no unclosed pipe."""
    for proc in pending.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    pending.clear()


class Buildx:
    def __init__(self) -> None:
        self._drivers: dict[str | None, str] = {}
        self._pending: dict[str | None, subprocess.Popen] = {}
        # when this object goes, or at the interpreter's exit, whichever comes first
        weakref.finalize(self, _reap, self._pending)

    def prefetch(self, builder: str | None = None) -> None:
        """Start ``docker buildx inspect`` (of the default builder, and of ``builder`` when one is
        named) without waiting for it: ``available()`` and ``driver()`` read the answers. A Go
        program's start-up, about 0.15 s, that then runs beside the caller's own work
        (`imagesmith build` after an edit)."""
        for name in dict.fromkeys((None, builder)):
            if name in self._drivers or name in self._pending:
                continue
            command, extra = buildx_command()
            try:
                self._pending[name] = subprocess.Popen(
                    [*command, "inspect", *([name] if name else [])],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    env={**os.environ, **extra} if extra else None,
                )
            except OSError:
                pass  # asked again, and worded, by available()/driver()

    def _inspect(self, builder: str | None) -> subprocess.CompletedProcess:
        """``docker buildx inspect [builder]``: the prefetched run's answer, or a run now."""
        command, extra = buildx_command()
        argv = [*command, "inspect", *([builder] if builder else [])]
        proc = self._pending.pop(builder, None)
        if proc is None:
            env = {**os.environ, **extra} if extra else None
            return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def available(self) -> None:
        """buildx is installed. Asked as ``docker buildx inspect``, whose answer (the default
        builder's driver) ``driver()`` then reuses: one buildx run instead of two at start-up;
        ``docker buildx version`` decides only when that fails (``driver()`` words the rest)."""
        if None in self._drivers:
            return
        try:
            proc = self._inspect(None)
        except (OSError, subprocess.TimeoutExpired):
            proc = None
        if proc is not None and proc.returncode == 0:
            self._drivers[None] = _driver_of(proc.stdout)
            return
        try:
            proc = subprocess.run([docker_cli(), "buildx", "version"], capture_output=True, text=True, timeout=60)
        except FileNotFoundError as exc:  # an engine reached by DOCKER_HOST, no docker command here
            raise EngineError("the docker command is not installed", hint=ENGINE_HINT) from exc
        except subprocess.TimeoutExpired as exc:
            raise EngineError("docker buildx version did not answer in 60 s", hint=ENGINE_HINT) from exc
        if proc.returncode != 0:
            raise EngineError("docker buildx is not available", hint=ENGINE_HINT)

    def driver(self, builder: str | None = None) -> str:
        """The buildx driver of ``builder`` (default: the current builder): ``docker`` for the
        engine's own BuildKit, ``docker-container``, ``remote``, ``kubernetes``..."""
        if builder not in self._drivers:
            try:
                proc = self._inspect(builder)
            except FileNotFoundError as exc:
                raise EngineError("the docker command is not installed", hint=ENGINE_HINT) from exc
            except subprocess.TimeoutExpired as exc:
                raise EngineError("docker buildx inspect did not answer in 60 s", hint=ENGINE_HINT) from exc
            if proc.returncode != 0:
                if builder:
                    raise EngineError(
                        f"there is no buildx builder named {builder!r}",
                        hint="`docker buildx ls` lists the builders; omit --builder for the default one",
                    )
                raise EngineError(
                    f"docker buildx cannot reach a builder: {tail(redact(proc.stderr), 2)}", hint=ENGINE_HINT
                )
            self._drivers[builder] = _driver_of(proc.stdout)
        return self._drivers[builder]

    def bake(
        self,
        definition: dict,
        *,
        cwd: Path,
        epoch: int,
        builder: str | None = None,
        echo: Callable[[str], None] | None = None,
        describe_failure: Callable[[str], tuple[str, bool]] | None = None,
        passthrough: bool = False,
        confirm: Callable[[], dict | None] | None = None,
    ) -> dict[str, dict]:
        """Run ``docker buildx bake`` on ``definition`` (a bake file as a dict: every target in ONE
        BuildKit solve, so shared stages are built once) and return BuildKit's metadata per
        target (``containerimage.digest`` and friends), read from ``--metadata-file``: digests
        never come from a lookup in the local image store, which other builders do not fill.
        ``echo`` receives the plain log line by line; with ``passthrough`` BuildKit draws its own
        display on this terminal instead (then a failure cannot quote the failing step).
        ``confirm`` is called once buildx has started (its start-up runs meanwhile): None goes on;
        a definition replaces the running bake's (which is stopped first); an exception stops the
        bake and is raised as it is.

        Reproducible: the Dockerfile sets file times itself (see the template),
        SOURCE_DATE_EPOCH sets the config's times, and there is no provenance attestation.
        (BuildKit's rewrite-timestamp exporter option would do the file times too, but only
        through an OCI archive, and it re-processes every layer on each build: about 12 s per
        target for the iris example even after a one-line edit.)"""
        env = bake_environment(epoch)
        # the images' targets (the group's)
        targets = list(
            (definition.get("group") or {}).get("default", {}).get("targets") or definition.get("target") or {}
        )
        for attempt in range(1, NAME_RACE_ATTEMPTS + 1):
            rc, log, metadata = self._bake_once(
                definition, cwd=cwd, env=env, builder=builder, echo=echo, passthrough=passthrough, confirm=confirm
            )
            confirm = None  # a second attempt builds what the first one did
            if rc == 0 or attempt == NAME_RACE_ATTEMPTS:
                break
            said = _once_more(log, attempt)
            if said is None:
                break
            if echo:
                echo(said)
        if rc != 0:
            raise bake_failure(log, targets, builder, describe_failure, definition)
        out: dict[str, dict] = {}
        for target in targets:
            entry = metadata.get(target) or {}
            if not str(entry.get("containerimage.digest", "")).startswith("sha256:"):
                raise EngineError(
                    f"buildx reported no image digest for {target}",
                    hint="the builder must export an image (see `imagesmith build --load/--push`)",
                )
            out[target] = entry
        return out

    def _bake_once(
        self,
        definition: dict,
        *,
        cwd: Path,
        env: dict,
        builder: str | None,
        echo: Callable[[str], None] | None,
        passthrough: bool = False,
        confirm: Callable[[], dict | None] | None = None,
    ) -> tuple[int, str, dict]:
        """One ``docker buildx bake``: (exit code, the log's last lines, BuildKit's metadata); when
        ``confirm`` gives another definition (see ``bake``), that one's."""
        tail_lines: deque[str] = deque(maxlen=80)
        metadata: dict = {}
        with tempfile.TemporaryDirectory(prefix="imagesmith-bake-") as tmp:
            bake_file = Path(tmp) / "bake.json"
            metadata_file = Path(tmp) / "metadata.json"
            bake_file.write_text(json.dumps(definition, indent=1, sort_keys=True))
            command, extra = buildx_command()
            env = {**env, **extra}
            argv = [
                *command,
                "bake",
                f"--progress={'tty' if passthrough else 'plain'}",
                "--provenance=false",
                "-f",
                str(bake_file),
                "--metadata-file",
                str(metadata_file),
            ]
            if builder:
                argv += ["--builder", builder]
            try:
                proc = subprocess.Popen(
                    argv,
                    stdout=None if passthrough else subprocess.PIPE,
                    stderr=None if passthrough else subprocess.STDOUT,
                    text=True,
                    env=env,
                    errors="replace",
                    cwd=str(cwd),
                )
            except FileNotFoundError as exc:
                raise EngineError("the docker command is not installed", hint=ENGINE_HINT) from exc
            if confirm is not None:
                try:
                    replacement = confirm()
                except BaseException:
                    _stop(proc)
                    raise
                if replacement is not None:
                    _stop(proc)
                    return self._bake_once(
                        replacement, cwd=cwd, env=env, builder=builder, echo=echo, passthrough=passthrough
                    )
            for line in proc.stdout if proc.stdout is not None else ():
                line = redact(line.rstrip("\n"))
                tail_lines.append(line)
                if echo:
                    echo(line)
            rc = proc.wait()
            if rc == 0:
                try:
                    metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise EngineError(
                        "buildx finished but wrote no build metadata", hint="use docker buildx 0.10 or newer"
                    ) from exc
        return rc, "\n".join(tail_lines), metadata


def _stop(proc: subprocess.Popen) -> None:
    """Stop a bake: SIGTERM makes the docker command end its buildx plugin, which cancels the
    build (SIGKILL would leave the plugin running); its output is drained, not shown."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def _once_more(log: str, attempt: int) -> str | None:
    """What a failed bake says before it runs once more, or None when it does not (``log``: its
    plain log; ``attempt``: 1 for the first run)."""
    # Another build (a parallel CI job on this engine) named the same image at the same moment:
    # BuildKit's image exporter updates a name that exists and creates one that does not, so of
    # two exports that both found the name missing the second fails (`image "NAME": already
    # exists`). The name exists now: once more updates it (the last build to finish names the
    # image, as when the two run one after the other). Every step is cached by then, except with
    # --no-cache, which builds again.
    if _NAME_RACE.search(log):
        return "imagesmith: another build named the same image at the same moment; naming it again"
    if attempt > 1:
        return None
    # The engine gave up after the export: BuildKit 0.13 (Docker 26) gives the build-history record
    # it makes before answering (provenance of every cache record, bench/README.md "Why the edit
    # still misses") 20 s, and fails the whole solve when a loaded engine takes longer (seen with
    # 4 test workers on 2 cores; moby/buildkit commit bf1da9647 raised it to 300 s in May 2024).
    # The images were exported, but buildx reports no digests: once more finds every step cached
    # (with --no-cache it builds again).
    if _EXPORT_DEADLINE.search(log):
        return "imagesmith: the engine timed out at the export; once more"
    # BuildKit's scheduler merged a step with another client's solve that ended meanwhile
    # (moby/buildkit#2303, "inconsistent graph state": concurrent builds on one engine, seen in
    # the engine tier). Every finished step is cached: once more resumes where it failed.
    if _GRAPH_STATE.search(log):
        return "imagesmith: BuildKit lost track of a step another build shared; once more"
    # BuildKit lost something it had found earlier in this build (see lost_in_build): once more
    # finds every finished step cached and gives the same digests.
    if _LOST.search(log):
        return "imagesmith: BuildKit could not find something it had found earlier in the build; once more"
    # Both targets push the layers they share at the same time; the registry can answer one
    # manifest before the other's upload of a shared blob is done ("manifest blob unknown",
    # containerd/containerd#2706). Everything is cached by then: once more only pushes, and finds
    # the blobs there.
    if _PUSH_RACE.search(log):
        return "imagesmith: a push raced with the other target's upload of a shared layer; pushing again"
    return None


class NoOciLayout(EngineError):
    """The builder reads no ``oci-layout://`` named context: the classic image store's BuildKit."""


# BuildKit's image exporter creating a name that another export created since it looked.
_NAME_RACE = re.compile(r'image "([^"\n]+)": already exists')
# Each attempt after the first finds the name made, so a second loses only to a deleted image.
NAME_RACE_ATTEMPTS = 3
# BuildKit's scheduler losing a step merged with another client's solve (moby/buildkit#2303).
_GRAPH_STATE = re.compile(r"^ERROR: failed to solve: failed to get edge: inconsistent graph state\s*$", re.M)
# The engine giving up on the build-history record after the export (BuildKit 0.13's 20 s).
_EXPORT_DEADLINE = re.compile(r"^ERROR: failed to solve: DeadlineExceeded: context deadline exceeded\s*$", re.M)
# BuildKit's bare NotFound: the whole error is "not found", naming no file, image or digest.
_LOST = re.compile(r"^ERROR: failed to solve: (?:[A-Za-z ]+: )?not found\s*$", re.M)

# Both targets push the same layers (and, for a registry cache, the same cache manifest) at once;
# the registry may see a manifest before the blobs the other upload is still committing (400).
_PUSH_RACE = re.compile(
    r"manifest blob unknown"
    r"|failed commit on ref \"manifest-[^\"]*\": unexpected status[^\n]*: 400"
    r"|error writing manifest blob: failed commit on ref \"sha256:[0-9a-f]+\": unexpected status[^\n]*/manifests/[^\n]*: 400"
)


def failure_excerpt(lines: list[str], limit: int = 25) -> str:
    """What a person needs from a failed BuildKit log: the failing step's own output (BuildKit
    repeats it after a ` > [stage n/m] ...` header), then the final ERROR line. A bake of two
    targets that share the failing step may repeat it for each, the second with only the lines
    its own session saw: the block that holds the most of the step's output is shown (the
    last of equals)."""
    blocks: list[tuple[int, list[str]]] = []
    for i, ln in enumerate(lines):
        if ln.startswith(" > ["):
            body = []
            for later in lines[i + 1 :]:
                if later.startswith("------"):
                    break
                body.append(later)
            blocks.append((i, body))
    if not blocks:
        return "\n".join(lines[-limit:])
    header, body = max(blocks, key=lambda block: (sum(1 for ln in block[1] if ln.strip()), block[0]))
    final = [ln for ln in lines if ln.startswith("ERROR:")][-1:]
    return "\n".join([lines[header][:200]] + body[-limit:] + final)


def failing_step(lines: list[str]) -> str | None:
    """The name of the step BuildKit's plain log reports an error for (``#N ERROR: …`` and that
    step's first line ``#N NAME``), or None when the error came from no step."""
    failed = next((m.group(1) for ln in reversed(lines) if (m := re.match(r"#(\d+) ERROR: ", ln))), None)
    if failed is None:
        return None
    return next((ln.split(" ", 1)[1].strip() for ln in lines if ln.startswith(f"#{failed} ") and " " in ln), None)


def lost_in_build(log: str, definition: dict | None) -> EngineError:
    """BuildKit's bare ``failed to solve: not found``: something it had found earlier in the build
    is gone when a later step (often the export, after every step said DONE) needs it. Named: the
    step, and any build context on this machine that no longer exists (removed while the build
    ran: a cleared cache folder, another process). Otherwise it is in the engine: a build-cache
    record or an image removed meanwhile (a prune, BuildKit's garbage collection of the cache,
    `docker image rm`), which a second run rebuilds from what is left, to the same digests."""
    step = failing_step(log.splitlines())
    where = f"at {step}" if step else "after every step had finished"
    gone: list[str] = []
    for target, entry in sorted((definition or {}).get("target", {}).items()):
        folders = {f"the context of {target}": str(entry.get("context") or "")}
        folders.update(entry.get("contexts") or {})
        for name, value in folders.items():
            path = value.removeprefix("oci-layout://").split("@", 1)[0]
            if path.startswith("/") and not Path(path).exists() and f"{name} ({path})" not in gone:
                gone.append(f"{name} ({path})")
    if gone:
        return EngineError(
            f"BuildKit could not find its build context {', '.join(gone)} {where}: "
            "the folder was removed while the build ran",
            hint="do not clear imagesmith's cache folder during a build; run the build again",
        )
    return EngineError(
        f"BuildKit could not find something it had found earlier in the build, {where}: "
        "a build-cache record or image was removed meanwhile (a prune, the builder's garbage "
        "collection, or another build's clean-up)",
        hint="run the build again when no prune runs; `docker buildx du` shows the builder's cache",
    )


def bake_failure(
    log: str,
    targets: list[str],
    builder: str | None,
    describe_failure: Callable[[str], tuple[str, bool]] | None,
    definition: dict | None = None,
) -> Exception:
    """One error for a failed bake: engine, builder, base image, registry and cache failures get
    hints about those; only a failing step that comes from the spec gets a spec hint."""
    lowered = log.lower()
    excerpt = failure_excerpt(log.splitlines())
    if "cannot connect to the docker daemon" in lowered or "failed to dial" in lowered:
        return EngineError("the Docker engine is not reachable", hint=ENGINE_HINT)
    if builder and f'no builder "{builder}" found' in log:
        return EngineError(
            f"there is no buildx builder named {builder!r}",
            hint="`docker buildx ls` lists the builders; omit --builder for the default one",
        )
    if "unknown scheme oci-layout" in log:
        return NoOciLayout(
            "this engine's BuildKit cannot read an OCI layout as a build context (the classic image store)",
            hint="enable the containerd image store (see docs/getting-started/installation.md)",
        )
    m = re.search(r"failed to resolve source metadata for (\S+):\s", log)
    if m:
        return EngineError(
            f"BuildKit cannot get the base image {m.group(1)}",
            hint="check that its registry is reachable from the builder and you are logged in; "
            "a local base is passed to the builder by `imagesmith build` itself",
        )
    m = _NAME_RACE.search(log)
    if m:
        return EngineError(
            f"another build kept naming the image {m.group(1)} at the same moment ({NAME_RACE_ATTEMPTS} attempts)",
            hint="run the build again when the other build of the same names is done",
        )
    if _LOST.search(log):
        return lost_in_build(log, definition)
    if re.search(r"failed to push|push access denied|failed to authorize|unexpected status from PUT request", log):
        return EngineError(
            "the build could not push its images",
            hint="check the registry is reachable and you are logged in (docker login)",
        )
    if re.search(r"failed to (export|import) cache|error writing layer blob.*cache", lowered):
        return EngineError(
            "the build cache could not be read or written",
            hint="check the --cache-to/--cache-from references and the registry's credentials",
        )
    what, from_spec = describe_failure(log) if describe_failure else ("", False)
    return BuildError(
        f"building {' and '.join(targets)} failed" + (f" at {what}" if what else ""),
        log_tail=excerpt,
        hint="fix the part of the spec named above, then run `imagesmith build` again"
        if from_spec
        else "the build log above shows the failing step",
    )
