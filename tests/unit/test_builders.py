"""Any builder, any engine, without an engine: the bake definition imagesmith generates for each
kind of buildx builder, one cache per target, where services are reached, how build failures are
classified, and the engine installer's refusal to change the host (a fake apt plan).

A ``docker-container`` or ``remote`` builder needs a BuildKit image that cannot be pulled here,
so the builder-agnostic paths are covered by the definition they produce; the engine's own
builder and a second engine are exercised for real in test_engines.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagesmith.build import bake_definition, cache_refs
from imagesmith.engine import service_address
from imagesmith.engine.buildx import bake_failure as _bake_failure
from imagesmith.errors import BuildError, EngineError

REPO = Path(__file__).resolve().parents[2]
ROLES = ("train", "serve")
REFS = {"train": ["app:train"], "serve": ["app:serve"]}
PUSH = {"train": ["127.0.0.1:5000/app:train"], "serve": ["127.0.0.1:5000/app:serve"]}


def _definition(**kw):
    args = dict(
        context=Path("/p"),
        dockerfile=Path("/p/Dockerfile"),
        targets=ROLES,
        names=REFS,
        push={},
        load=False,
        driver="docker",
        build_args={"B": "2", "A": "1"},
        contexts={"wheels": "/w", "base": "oci-layout:///c@sha256:" + "a" * 64},
    )
    args.update(kw)
    return bake_definition(**args)


def test_the_engines_own_builder_puts_images_into_its_store():
    d = _definition()
    assert d["group"]["default"]["targets"] == ["train", "serve"]
    for role in ROLES:
        t = d["target"][role]
        assert t["target"] == role and t["output"] == [f"type=image,name=app:{role}"]
        assert list(t["args"]) == ["A", "B"] and list(t["contexts"]) == ["base", "wheels"]
        assert "cache-to" not in t and "cache-from" not in t and "no-cache" not in t


def test_push_from_the_engines_builder_names_only_the_registry_reference():
    d = _definition(push=PUSH)
    assert d["target"]["serve"]["output"] == ["type=image,name=127.0.0.1:5000/app:serve,push=true"]


def test_push_only_from_the_engines_builder_neither_stores_nor_unpacks_and_leaves_the_push_to_buildkit():
    """The exporter pushes (``push=`` empty is true to BuildKit) while buildx, which pushes once
    more through the engine for ``push=true``, does not; nothing is stored or unpacked."""
    d = _definition(push=PUSH, push_only=True)
    assert d["target"]["serve"]["output"] == ["type=image,name=127.0.0.1:5000/app:serve,push=,store=false,unpack=false"]
    # another builder never stores into the engine unless asked: push-only is its plain push
    d = _definition(driver="docker-container", push=PUSH, push_only=True)
    assert d["target"]["train"]["output"] == ["type=image,name=127.0.0.1:5000/app:train,push=true"]


def test_other_builders_load_or_push_explicitly():
    d = _definition(driver="docker-container", load=True)
    assert d["target"]["train"]["output"] == ["type=docker,name=app:train"]
    d = _definition(driver="remote", push=PUSH)
    assert d["target"]["train"]["output"] == ["type=image,name=127.0.0.1:5000/app:train,push=true"]
    d = _definition(driver="docker-container", push=PUSH, load=True)
    assert d["target"]["serve"]["output"] == [
        "type=image,name=127.0.0.1:5000/app:serve,push=true",
        "type=docker,name=app:serve",
    ]


def test_each_target_writes_its_own_cache_and_reads_both():
    d = _definition(
        cache_to=("type=registry,ref=127.0.0.1:5000/app:cache,mode=max",),
        cache_from=("type=registry,ref=127.0.0.1:5000/app:cache",),
        no_cache=True,
    )
    assert d["target"]["train"]["cache-to"] == ["type=registry,ref=127.0.0.1:5000/app:cache-train,mode=max"]
    assert d["target"]["serve"]["cache-to"] == ["type=registry,ref=127.0.0.1:5000/app:cache-serve,mode=max"]
    for role in ROLES:
        assert d["target"][role]["cache-from"] == [
            "type=registry,ref=127.0.0.1:5000/app:cache-train",
            "type=registry,ref=127.0.0.1:5000/app:cache-serve",
        ]
        assert d["target"][role]["no-cache"] is True


def test_the_staged_source_is_part_of_the_images_solve():
    """source_context.py: each platform's staged source is an OCI layout named as the images'
    ``source`` context; no target of its own to build and export first."""
    amd, arm = (
        "oci-layout:///c/sources/k/layout@sha256:" + "a" * 64,
        "oci-layout:///c/sources/k/layout@sha256:" + "b" * 64,
    )
    d = _definition(contexts={"source-amd64": amd, "source-arm64": arm}, platforms=("linux/amd64", "linux/arm64"))
    assert d["group"]["default"]["targets"] == ["train", "serve"] == list(d["target"])
    assert d["target"]["serve"]["contexts"]["source-arm64"] == arm


@pytest.mark.parametrize(
    "given, role, expected",
    [
        ("127.0.0.1:5000/app:cache", "serve", "type=registry,ref=127.0.0.1:5000/app:cache-serve"),
        ("127.0.0.1:5000/app", "train", "type=registry,ref=127.0.0.1:5000/app:train"),
        ("ref=localhost:5000/a/b:c", "train", "ref=localhost:5000/a/b:c-train"),
        ("type=local,dest=/tmp/cache/,mode=max", "train", "type=local,dest=/tmp/cache/train,mode=max"),
        ("type=local,src=/tmp/cache", "serve", "type=local,src=/tmp/cache/serve"),
        ("type=gha,scope=ml,mode=max", "train", "type=gha,scope=ml-train,mode=max"),
        ("type=gha", "serve", "type=gha,scope=imagesmith-serve"),
        ("type=inline", "serve", "type=inline"),
        ('type=local,"dest=/tmp/a,b"', "train", 'type=local,"dest=/tmp/a,b/train"'),
    ],
)
def test_cache_refs_per_target(given, role, expected):
    assert cache_refs(given, role) == expected


@pytest.mark.parametrize(
    "host, expected",
    [
        ("", ("127.0.0.1", "127.0.0.1")),
        ("unix:///var/run/docker.sock", ("127.0.0.1", "127.0.0.1")),
        ("tcp://127.0.0.1:2375", ("127.0.0.1", "127.0.0.1")),
        ("tcp://localhost:2376", ("127.0.0.1", "127.0.0.1")),
        ("tcp://docker:2375", ("0.0.0.0", "docker")),
        ("ssh://ci@build-host", ("0.0.0.0", "build-host")),
        ("builder.internal:2375", ("0.0.0.0", "builder.internal")),
    ],
)
def test_services_are_reached_where_the_engine_publishes_them(host, expected):
    assert service_address(host) == expected


def test_engine_failures_get_engine_hints_and_spec_failures_spec_hints():
    base = _bake_failure(
        "ERROR: failed to solve: x: failed to resolve source metadata for docker.io/library/foo:1@sha256:ab: not found",
        ["train"],
        None,
        None,
    )
    assert isinstance(base, EngineError) and "base image docker.io/library/foo:1@sha256:ab" in str(base)
    assert "spec" not in (base.hint or "")
    down = _bake_failure("Cannot connect to the Docker daemon at unix:///x", ["train"], None, None)
    assert isinstance(down, EngineError) and "not reachable" in str(down)
    builder = _bake_failure('ERROR: no builder "ci" found', ["train"], "ci", None)
    assert "no buildx builder named 'ci'" in str(builder)
    push = _bake_failure("ERROR: failed to push 127.0.0.1:5000/a:train: connection refused", ["train"], None, None)
    assert isinstance(push, EngineError) and "docker login" in (push.hint or "")
    spec = _bake_failure(
        "#9 [shared 2/4] RUN apt-get\nERROR: x", ["train"], None, lambda log: ("system_packages (nope)", True)
    )
    assert isinstance(spec, BuildError) and "at system_packages (nope)" in str(spec)
    assert "fix the part of the spec" in spec.hint
    other = _bake_failure(
        "ERROR: failed to solve: something odd", ["train"], None, lambda log: ("something odd", False)
    )
    assert isinstance(other, BuildError) and "spec" not in other.hint


# --------------------------------------------------------------------------------------------
# scripts/setup-engine.sh: the engine install never changes the host beyond the engine


ENGINE_ARGS = "docker.io/trixie docker-cli/trixie docker-buildx/trixie containerd/trixie"


def _plan_check(tmp_path: Path, plan: str, args: str = ENGINE_ARGS) -> subprocess.CompletedProcess:
    """Run check_install_plan ARGS with a fake apt-get that prints ``plan`` for `install -s`."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apt-get").write_text(f"#!/bin/sh\ncat <<'EOF'\n{plan}\nEOF\n")
    (fake / "apt-get").chmod(0o755)
    script = f"source {REPO / 'scripts' / 'setup-engine.sh'}; check_install_plan {args} && echo PLAN-OK"
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", IMAGESMITH_STATE=str(tmp_path / "state"))
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)


GOOD = """Inst runc (1.1.5+ds1-1+deb12u1 Debian:12.15/oldstable [amd64])
Inst containerd (1.7.24~ds1-6+deb13u1 Debian:13.8/stable [amd64])
Inst docker.io (26.1.5+dfsg1-9+deb13u1+b1 Debian:13.8/stable [amd64])
Inst docker-cli (26.1.5+dfsg1-9+deb13u1+b1 Debian:13.8/stable [amd64])
Inst docker-buildx (0.13.1+ds1-3 Debian:13.8/stable [amd64])
Inst tini (0.19.0-1+b3 Debian-Security:12/oldstable-security [amd64])"""


def test_the_engine_alone_from_debian_13_is_accepted(tmp_path):
    proc = _plan_check(tmp_path, GOOD)
    assert proc.returncode == 0 and "PLAN-OK" in proc.stdout, proc.stderr


@pytest.mark.parametrize(
    "extra, why",
    [
        ("Inst libc6 [2.36-9+deb12u14] (2.41-12 Debian:13.8/stable [amd64])", "changes libc6"),
        ("Inst python3 [3.11.2-1+b1] (3.13.5-1 Debian:13.8/stable [amd64])", "changes python3"),
        ("Inst base-files [12.4+deb12u11] (13.8 Debian:13.8/stable [amd64])", "changes base-files"),
        ("Inst libsystemd0 (257.8-1 Debian:13.8/stable [amd64])", "takes libsystemd0 from another Debian release"),
        ("Remv python3-yaml [6.0-3+b2]", "removes python3-yaml"),
    ],
)
def test_an_install_that_would_change_the_host_is_refused(tmp_path, extra, why):
    proc = _plan_check(tmp_path, GOOD + "\n" + extra)
    assert proc.returncode == 1 and "PLAN-OK" not in proc.stdout
    assert "refusing to install docker.io docker-cli docker-buildx containerd" in proc.stderr and why in proc.stderr


# cosign, as `apt-get -s install --no-install-recommends cosign/trixie` plans it on this machine
COSIGN = "Inst cosign (2.5.0-2+b5 Debian:13.8/stable [amd64])\nConf cosign (2.5.0-2+b5 Debian:13.8/stable [amd64])"


def test_cosign_alone_from_debian_13_is_accepted(tmp_path):
    proc = _plan_check(tmp_path, COSIGN, "cosign/trixie")
    assert proc.returncode == 0 and "PLAN-OK" in proc.stdout, proc.stderr


@pytest.mark.parametrize(
    "extra, why",
    [
        ("Inst libc6 [2.36-9+deb12u14] (2.41-12 Debian:13.8/stable [amd64])", "changes libc6"),
        ("Inst dpkg [1.21.22] (1.22.21 Debian:13.8/stable [amd64])", "changes dpkg"),
        ("Inst apt [2.6.1] (3.0.3 Debian:13.8/stable [amd64])", "changes apt"),
        # an engine package is allowed from Debian 13 only when it is what is being installed
        ("Inst containerd (1.7.24~ds1-6+deb13u1 Debian:13.8/stable [amd64])", "takes containerd from another"),
        ("Remv libc-bin [2.36-9+deb12u14]", "removes libc-bin"),
    ],
)
def test_a_cosign_install_that_would_change_the_host_is_refused(tmp_path, extra, why):
    proc = _plan_check(tmp_path, COSIGN + "\n" + extra, "cosign/trixie")
    assert proc.returncode == 1 and "PLAN-OK" not in proc.stdout
    assert "refusing to install cosign" in proc.stderr and why in proc.stderr


def test_only_the_listed_packages_may_be_named_from_debian_13(tmp_path):
    proc = _plan_check(tmp_path, "Inst python3 (3.13.5-1 Debian:13.8/stable [amd64])", "python3/trixie")
    assert proc.returncode == 1 and "PLAN-OK" not in proc.stdout
    assert "refusing to take python3 from Debian 13" in proc.stderr


# QEMU, as `apt-get -s install --no-install-recommends qemu-user-static binfmt-support` plans it here
QEMU = """Inst binfmt-support (2.2.2-2 Debian:12.15/oldstable [amd64])
Inst qemu-user-static (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])"""


def test_qemu_from_the_hosts_release_is_accepted(tmp_path):
    proc = _plan_check(tmp_path, QEMU, "qemu-user-static binfmt-support")
    assert proc.returncode == 0 and "PLAN-OK" in proc.stdout, proc.stderr


def test_a_package_named_without_trixie_must_not_come_from_debian_13(tmp_path):
    plan = QEMU.replace("1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable", "1:10.0.3+ds-2 Debian:13.8/stable")
    proc = _plan_check(tmp_path, plan, "qemu-user-static binfmt-support")
    assert proc.returncode == 1 and "PLAN-OK" not in proc.stdout
    assert "takes qemu-user-static from another Debian release" in proc.stderr


def _platforms(tmp_path: Path, value: str) -> subprocess.CompletedProcess:
    script = f"source {REPO / 'scripts' / 'setup-engine.sh'}; PLATFORMS='{value}'; foreign_platforms"
    env = dict(os.environ, IMAGESMITH_STATE=str(tmp_path / "state"))
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("value", ["linux/arm64", "linux/amd64,linux/arm64", " linux/arm64  linux/arm64 ", ""])
def test_the_platforms_asked_for_are_read_space_or_comma_separated(tmp_path, value):
    if subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip() != "amd64":
        pytest.skip("the expectations below are an amd64 host's")
    proc = _platforms(tmp_path, value)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("linux/arm64\n" if value.strip() else "")


def test_an_unknown_platform_stops_the_set_up(tmp_path):
    proc = _platforms(tmp_path, "linux/arm64,linux/mips")
    assert proc.returncode != 0 and "unknown platform 'linux/mips'" in proc.stderr


def _rootfs(tmp_path: Path, debootstrap: str) -> subprocess.CompletedProcess:
    """rootfs_tarball arm64 with a fake debootstrap (``debootstrap`` is its shell body; $5 is the
    root it fills) and $STATE in tmp_path/state."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "debootstrap").write_text(f"#!/bin/sh\necho CALLED >> {tmp_path}/calls\n{debootstrap}\n")
    (fake / "debootstrap").chmod(0o755)
    (fake / "cp").write_text("#!/bin/sh\nexit 0\n")  # the host's CA bundle: not this test's business
    (fake / "cp").chmod(0o755)
    script = f"source {REPO / 'scripts' / 'setup-engine.sh'}; debian_uris() {{ echo MIRROR; }}; rootfs_tarball arm64"
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", IMAGESMITH_STATE=str(tmp_path / "state"))
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)


FILLS_ROOT = 'mkdir -p "$5/etc/ssl/certs" && echo hi > "$5/etc/hostname"'


def test_a_rootfs_is_made_once_then_taken_from_the_cache(tmp_path):
    first = _rootfs(tmp_path, FILLS_ROOT)
    tarball = tmp_path / "state" / "rootfs-bookworm-arm64.tar"
    assert first.returncode == 0 and first.stdout.strip() == str(tarball), first.stderr
    assert "./etc/hostname" in subprocess.run(["tar", "-tf", tarball], capture_output=True, text=True).stdout
    again = _rootfs(tmp_path, "exit 1")
    assert again.returncode == 0 and again.stdout.strip() == str(tarball), again.stderr
    assert (tmp_path / "calls").read_text().count("CALLED") == 1
    assert not (tmp_path / "state" / "rootfs-bookworm-arm64").exists()


def test_a_broken_cached_rootfs_is_made_again(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "rootfs-bookworm-arm64.tar").write_bytes(b"not a tar archive" * 100)
    proc = _rootfs(tmp_path, FILLS_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "calls").read_text().count("CALLED") == 1
    tarball = tmp_path / "state" / "rootfs-bookworm-arm64.tar"
    assert subprocess.run(["tar", "-tf", tarball], capture_output=True).returncode == 0


def test_a_failed_debootstrap_leaves_no_tarball(tmp_path):
    proc = _rootfs(tmp_path, 'mkdir -p "$5"; echo "E: Couldn\'t download packages" >&2; exit 1')
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Couldn't download packages" in proc.stderr  # the log's tail is shown
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["debootstrap-arm64.log"]


def test_an_installed_cosign_is_kept_as_it_is(tmp_path):
    """install_cosign with cosign on PATH calls no apt at all (idempotent re-runs)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool, body in (("cosign", "exit 0"), ("apt-get", "echo APT-CALLED; exit 1")):
        (fake / tool).write_text(f"#!/bin/sh\n{body}\n")
        (fake / tool).chmod(0o755)
    script = f"source {REPO / 'scripts' / 'setup-engine.sh'}; install_cosign && echo KEPT"
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", IMAGESMITH_STATE=str(tmp_path / "state"))
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "KEPT" in proc.stdout and "APT-CALLED" not in proc.stdout, proc.stderr


def test_a_push_race_is_recognised_in_each_form_buildkit_reports_it():
    from imagesmith.engine.buildx import _PUSH_RACE

    seen = (
        "ERROR: failed to push: manifest blob unknown: blob unknown to registry",
        'failed commit on ref "manifest-sha256:ab": unexpected status from PUT request to http://127.0.0.1:5000/v2/x/manifests/t: 400 Bad Request',
        'ERROR: error writing manifest blob: failed commit on ref "sha256:2343745f": unexpected status from PUT '
        "request to http://127.0.0.1:5000/v2/x-cache/manifests/build-train: 400 Bad Request",
    )
    assert all(_PUSH_RACE.search(line) for line in seen)
    assert not _PUSH_RACE.search(
        "unexpected status from PUT request to http://127.0.0.1:5000/v2/x/blobs/uploads: 401 Unauthorized"
    )


# `docker` as a Python script of the standard library alone: -S skips site (a third of each start)
FAKE_BAKE = """#!{python} -S
import json, pathlib, sys
args = sys.argv[1:]
count = pathlib.Path({count!r})
n = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(n))
if n <= {fails}:
    print({failure!r})
    sys.exit(1)
meta = args[args.index("--metadata-file") + 1]
pathlib.Path(meta).write_text(json.dumps({{"serve": {{"containerimage.digest": "sha256:" + "a" * 64}}}}))
"""


NAME_RACE_LOG = """#12 [serve] exporting to image
#12 naming to docker.io/t/race:serve done
ERROR: failed to solve: image "docker.io/t/race:serve": already exists"""
# BuildKit's bare NotFound, as defect reports quote it: every step DONE, then the export fails.
LOST_LOG = """#11 [serve shared 5/5] RUN python3 -m compileall
#11 DONE 2.1s

#12 [serve] exporting to image
#12 exporting layers 0.2s done
#12 ERROR: not found
------
 > exporting to image:
------
ERROR: failed to solve: not found"""


def _fake_docker(tmp_path, monkeypatch, fails: int, failure: str = NAME_RACE_LOG) -> Path:
    count = tmp_path / "bakes"
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(FAKE_BAKE.format(python=sys.executable, count=str(count), fails=fails, failure=failure))
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{docker.parent}:{os.environ['PATH']}")
    _no_plugin(tmp_path, monkeypatch)
    return count


def _no_plugin(tmp_path, monkeypatch) -> None:
    """No buildx plugin where imagesmith looks: the fake docker command runs buildx."""
    from imagesmith.engine import buildx

    monkeypatch.setattr(buildx, "SYSTEM_PLUGIN_DIRS", ())
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))


def test_a_name_another_build_made_at_the_same_moment_is_named_again(tmp_path, monkeypatch):
    """Two builds of the same names at once: BuildKit's exporter of the second finds the name
    made by the first (`image "…": already exists`); bake runs again, and names it then."""
    from imagesmith.engine.buildx import Buildx

    count = _fake_docker(tmp_path, monkeypatch, fails=1)
    seen: list[str] = []
    definition = {"group": {"default": {"targets": ["serve"]}}, "target": {"serve": {}}}
    out = Buildx().bake(definition, cwd=tmp_path, epoch=0, echo=seen.append)
    assert out["serve"]["containerimage.digest"] == "sha256:" + "a" * 64
    assert count.read_text() == "2"
    assert "imagesmith: another build named the same image at the same moment; naming it again" in seen


def test_a_name_race_lost_every_time_says_so(tmp_path, monkeypatch):
    from imagesmith.engine.buildx import NAME_RACE_ATTEMPTS, Buildx

    count = _fake_docker(tmp_path, monkeypatch, fails=99)
    definition = {"group": {"default": {"targets": ["serve"]}}, "target": {"serve": {}}}
    with pytest.raises(EngineError) as info:
        Buildx().bake(definition, cwd=tmp_path, epoch=0)
    assert count.read_text() == str(NAME_RACE_ATTEMPTS)
    assert str(info.value).startswith(
        "another build kept naming the image docker.io/t/race:serve at the same moment (3 attempts)"
    )
    assert "the other build of the same names is done" in info.value.hint


def test_something_buildkit_lost_during_the_build_is_tried_once_more(tmp_path, monkeypatch):
    """Defect: `failed to solve: not found` once, after every step said DONE; a second run gave the
    same digests. bake runs once more itself."""
    from imagesmith.engine.buildx import Buildx

    count = _fake_docker(tmp_path, monkeypatch, fails=1, failure=LOST_LOG)
    seen: list[str] = []
    definition = {"group": {"default": {"targets": ["serve"]}}, "target": {"serve": {}}}
    out = Buildx().bake(definition, cwd=tmp_path, epoch=0, echo=seen.append)
    assert out["serve"]["containerimage.digest"] == "sha256:" + "a" * 64 and count.read_text() == "2"
    assert "imagesmith: BuildKit could not find something it had found earlier in the build; once more" in seen


EXPORT_DEADLINE_LOG = """#12 [serve] exporting to image
#12 exporting layers 0.3s done
#12 ERROR: DeadlineExceeded: context deadline exceeded
------
 > exporting to image:
------
ERROR: failed to solve: DeadlineExceeded: context deadline exceeded"""


GRAPH_STATE_LOG = """#35 [train shared 2/6] COPY --from=python-env /python-env/ /
#35 CANCELED
ERROR: failed to solve: failed to get edge: inconsistent graph state"""


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (EXPORT_DEADLINE_LOG, "imagesmith: the engine timed out at the export; once more"),
        (GRAPH_STATE_LOG, "imagesmith: BuildKit lost track of a step another build shared; once more"),
    ],
)
def test_a_failure_of_the_engine_under_load_is_tried_once_more_and_only_once(tmp_path, monkeypatch, failure, said):
    """Seen in the engine tier (4 workers, 2 cores, concurrent builds on one engine): an export
    that ends in DeadlineExceeded; BuildKit's "inconsistent graph state" (moby/buildkit#2303: a
    step merged with another client's solve that ended). Every finished step is cached: bake runs
    once more; a second failure is the error it is."""
    from imagesmith.engine.buildx import Buildx

    definition = {"group": {"default": {"targets": ["serve"]}}, "target": {"serve": {}}}
    count = _fake_docker(tmp_path, monkeypatch, fails=1, failure=failure)
    seen: list[str] = []
    out = Buildx().bake(definition, cwd=tmp_path, epoch=0, echo=seen.append)
    assert out["serve"]["containerimage.digest"] == "sha256:" + "a" * 64 and count.read_text() == "2"
    assert said in seen
    count.unlink()
    (tmp_path / "bin" / "docker").write_text(
        FAKE_BAKE.format(python=sys.executable, count=str(count), fails=2, failure=failure)
    )
    with pytest.raises(EngineError):
        Buildx().bake(definition, cwd=tmp_path, epoch=0)
    assert count.read_text() == "2"


def test_something_lost_twice_is_named_with_the_step_and_why(tmp_path, monkeypatch):
    from imagesmith.engine.buildx import Buildx

    count = _fake_docker(tmp_path, monkeypatch, fails=99, failure=LOST_LOG)
    definition = {"group": {"default": {"targets": ["serve"]}}, "target": {"serve": {"context": str(tmp_path)}}}
    with pytest.raises(EngineError) as info:
        Buildx().bake(definition, cwd=tmp_path, epoch=0)
    assert count.read_text() == "2"
    message = str(info.value)
    assert message.startswith(
        "BuildKit could not find something it had found earlier in the build, at [serve] exporting to image: "
    )
    assert "a build-cache record or image was removed meanwhile" in message and "Traceback" not in message
    assert "docker buildx du" in info.value.hint


def test_a_build_context_removed_during_the_build_is_named():
    layout = "/nonexistent/imagesmith-cache/bases/ab"
    definition = {
        "target": {
            "serve": {"context": "/", "contexts": {"base": f"oci-layout://{layout}@sha256:ab", "source": "target:s"}},
            "train": {"context": "/", "contexts": {"base": f"oci-layout://{layout}@sha256:ab"}},
        }
    }
    error = _bake_failure(LOST_LOG, ["train", "serve"], None, None, definition)
    assert isinstance(error, EngineError) and not isinstance(error, BuildError)
    assert str(error) == (
        f"BuildKit could not find its build context base ({layout}) at [serve] exporting to image: "
        "the folder was removed while the build ran"
    )
    # a failing step's own "not found" (a file, an image, a digest) is not this
    for other in ('ERROR: failed to solve: failed to compute cache key: "/x": not found',
                  "ERROR: failed to solve: content digest sha256:ab: not found"):  # fmt: skip
        assert "BuildKit could not find" not in str(_bake_failure(other, ["serve"], None, None, definition))


def test_a_host_without_the_docker_command_is_told_so(tmp_path, monkeypatch):
    """An engine reached over DOCKER_HOST, and no docker command on this host: the build's buildx
    check started early (prefetch) and then asked says so in one error, no traceback."""
    from imagesmith.engine.buildx import Buildx
    from imagesmith.errors import EngineError

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no docker here
    buildx = Buildx()
    buildx.prefetch("other")
    with pytest.raises(EngineError, match="the docker command is not installed"):
        buildx.available()
    with pytest.raises(EngineError, match="the docker command is not installed"):
        buildx.driver("other")


def test_a_prefetched_inspect_nobody_asked_for_is_ended(tmp_path, monkeypatch):
    """A build that fails before it needs the builder (a stale lock, say) leaves no buildx
    behind: the prefetched run is killed and waited for when the Buildx object goes."""
    import gc

    from imagesmith.engine.buildx import Buildx

    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\nexec sleep 60\n")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    _no_plugin(tmp_path, monkeypatch)
    buildx = Buildx()
    buildx.prefetch("other")
    procs = list(buildx._pending.values())
    assert len(procs) == 2 and all(p.poll() is None for p in procs)  # the default builder's and other's
    del buildx
    gc.collect()
    assert all(p.returncode is not None for p in procs)  # killed and reaped: no zombie
    assert all(p.stdout.closed and p.stderr.closed for p in procs)


def _plugin(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "docker-buildx"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_buildx_runs_as_the_plugin_the_docker_command_would_run(tmp_path, monkeypatch):
    """The docker command's order: the config's extra folders, DOCKER_CONFIG/cli-plugins, then
    the system's; run in plugin mode (the variable the docker command sets for its plugins)."""
    from imagesmith.engine import buildx

    monkeypatch.setattr(buildx, "SYSTEM_PLUGIN_DIRS", (str(tmp_path / "system"),))
    monkeypatch.setattr(buildx.shutil, "which", lambda name: "/bin/docker")
    config = tmp_path / "config"
    config.mkdir()
    env = {"DOCKER_CONFIG": str(config)}
    assert buildx.plugin_path(env) is None
    assert buildx.buildx_command(env)[1] == {}  # the docker command runs buildx
    system = _plugin(tmp_path / "system")
    assert buildx.plugin_path(env) == system
    own = _plugin(config / "cli-plugins")
    assert buildx.plugin_path(env) == own
    extra = _plugin(tmp_path / "extra")
    (config / "config.json").write_text(json.dumps({"cliPluginsExtraDirs": [str(tmp_path / "extra")]}))
    assert buildx.buildx_command(env) == ([extra, "buildx"], {buildx.PLUGIN_MODE_ENV: "/bin/docker"})
    # a folder only the docker command reads: it runs the plugin
    assert buildx.plugin_path({**env, "DOCKER_CLI_PLUGIN_EXTRA_DIRS": str(tmp_path)}) is None
    (config / "config.json").write_text("{not json")
    assert buildx.plugin_path(env) == own
    os.chmod(own, 0o644)  # not executable: the docker command's to word the problem
    assert buildx.plugin_path(env) is None


def test_the_bake_environment_keeps_git_out_of_the_build():
    """buildx's own git facts stay out: BUILDX_GIT_LABELS in the user's shell would add labels
    of buildx's to the images (another digest for the same inputs, a second revision label
    beside imagesmith's), and the git runs for provenance are skipped; the rest is kept."""
    from imagesmith.engine.buildx import bake_environment

    shell = {"PATH": "/bin", "BUILDX_GIT_LABELS": "full", "BUILDX_GIT_CHECK_DIRTY": "1", "BUILDX_GIT_INFO": "1"}
    env = bake_environment(1700000000, shell)
    assert env == {
        "PATH": "/bin",
        "SOURCE_DATE_EPOCH": "1700000000",
        "BUILDX_NO_DEFAULT_ATTESTATIONS": "1",
        "BUILDX_GIT_INFO": "0",
    }
    assert shell["BUILDX_GIT_LABELS"] == "full"  # the caller's mapping is left as it was
