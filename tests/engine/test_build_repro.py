"""Issue 4 on the real engine: bit-for-bit reproducible images, a hermetic install step that
needs no network and refuses altered wheels, cache-friendly layer order, push and pin."""

import json
import re
import shutil
import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest

from imagesmith.build import BuildOptions, build_project
from imagesmith.cache import default_cache_dir
from imagesmith.errors import BuildError
from imagesmith.lock.lockfile import read_lock
from imagesmith.spec.load import load_spec
from tests.conftest import PROJECTS, copy_project, shared_repo
from tests.helpers import base_context, cli, docker_build, remove_tags, skopeo_inspect

pytestmark = pytest.mark.engine


def _build(root: Path, engine, base, tag, **options):
    return build_project(load_spec(root), engine, BuildOptions(base=base, tag=tag, **options))


def test_a_file_written_in_the_marks_own_clock_tick_is_normalised(base_image, engine, tmp_path):
    """Every RUN in shared marks its start and sets the time of what is newer than the mark to 0.
    The kernel stamps files with a coarse clock, so a write right after the mark (the first RUN
    appends to /etc/passwd) often landed in the mark's own tick, where `find -newer` (strict) did
    not see it and the layer kept the build's time (two clean builds differed, 1 in a few). The
    template's own mark and normalisation, 20 times in a container of the base (the old mark, a
    bare touch, failed 19 of 20 here). What the engine sets up just before the command, like the
    read-only /etc/hosts BuildKit mounts, stays older than the mark (a mark dated a second back
    instead tried to touch it, and the step failed)."""
    from imagesmith import layout

    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    step = f"{layout.RUN_MARK} && echo x >> /etc/passwd && {layout.RUN_NORMALIZE} && stat -c %Y /etc/passwd"
    proc = subprocess.run(
        ["docker", "run", "--rm", "--tmpfs", "/tmp", "-v", f"{hosts}:/etc/hosts:ro", "--entrypoint", "sh"]
        + [base_image, "-c", f"for i in $(seq 20); do {step}; done"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0"] * 20


def test_code_edit_changes_only_the_app_layer(tiny_built, tmp_path, engine, base_image):
    """The app code's layer is the last but the image facts' (which a code edit leaves as they were)."""
    spec, before = tiny_built
    root = tmp_path / "tiny"
    shutil.copytree(spec.root, root)
    main = root / "app" / "main.py"
    main.write_text(main.read_text() + "# a one-line edit\n")
    after = _build(root, engine, base_image, "imagesmith-test/edited")
    assert after.parity == before.parity  # app code is not part of the parity
    for role in ("train", "serve"):
        old = engine.image(before.images[role].ref).layers
        new = engine.image(after.images[role].ref).layers
        assert len(old) == len(new)
        assert old[:-2] == new[:-2] and old[-2] != new[-2] and old[-1] == new[-1], role


def test_preprocessing_edit_changes_only_the_last_three_layers(tiny_built, tmp_path, engine, base_image):
    spec, before = tiny_built
    root = tmp_path / "tiny"
    shutil.copytree(spec.root, root)
    prep = root / "app" / "prep.py"
    prep.write_text(prep.read_text().replace("largest value", "largest value (edited)"))
    after = _build(root, engine, base_image, "imagesmith-test/prep-edited")
    assert after.parity != before.parity  # preprocessing is part of the parity
    for role in ("train", "serve"):
        old = engine.image(before.images[role].ref).layers
        new = engine.image(after.images[role].ref).layers
        assert len(old) == len(new)  # the preprocessing wheel's layer, /app (it has the file), the facts
        assert old[:-3] == new[:-3] and old[-3] != new[-3], role


def test_a_new_artifacts_path_changes_only_the_project_setup_and_facts_layers(tiny_built, tmp_path, engine, base_image):
    """The artifacts folder is made in the project-setup layer: a new `artifacts:` rebuilds neither
    the user's layer nor the Python environment, and leaves /app's layer as it was."""
    spec, before = tiny_built
    root = tmp_path / "tiny"
    shutil.copytree(spec.root, root)
    (root / "imagesmith.yaml").write_text((root / "imagesmith.yaml").read_text() + "artifacts: /app/model\n")
    after = _build(root, engine, base_image, "imagesmith-test/artifacts-moved")
    for role in ("train", "serve"):
        old = engine.image(before.images[role].ref).layers
        new = engine.image(after.images[role].ref).layers
        assert len(old) == len(new)
        assert old[:-3] == new[:-3] and old[-3] != new[-3] and old[-2] == new[-2] and old[-1] != new[-1], role
    out = engine.run(
        after.images["train"].ref,
        ["-c", "import os; print(os.stat('/app/model').st_uid)"],
        entrypoint=["/opt/venv/bin/python"],
    )
    assert out.strip() == "10001"


def _plain_buildx(spec, engine, base_image, unbuilt_base: str, *options: str):
    """`docker buildx build` of the rendered Dockerfile's serve target, as docs/guides/engines.md
    says for a local base (``--build-context base=oci-layout://…``), named ``unbuilt_base``: a
    name this engine never built from, so the build takes a fresh machine's path."""
    argv = ["docker", "buildx", "build", "--target", "serve", "--build-arg", f"IMAGESMITH_BASE={unbuilt_base}"]
    argv += ["--build-context", base_context(engine, base_image, default_cache_dir()), *options, str(spec.root)]
    return subprocess.run(argv, capture_output=True, text=True)


def test_install_step_uses_only_the_mounted_wheels(tiny_built, tmp_path, engine, base_image, unbuilt_base):
    """The install RUN has --network=none: with an empty wheelhouse it cannot fetch anything.
    Built with plain buildx as docs/guides/engines.md says for a local base (``--build-context base=oci-layout://…``),
    from a base name this engine never built from: it passes on a fresh engine, in any order."""
    spec, _ = tiny_built
    text = spec.dockerfile_path.read_text()
    stage = re.search(r"^FROM \S+ AS python-env$", text, re.M)
    assert stage, text
    install = text[text.index("RUN --network=none", stage.end()) :].split("\n\n")[0]
    assert "--no-index" in install and "--require-hashes" in install
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _plain_buildx(
        spec, engine, base_image, unbuilt_base, "--progress=plain", "--build-context", f"wheels={empty}"
    )
    assert proc.returncode != 0
    # the first thing the step needs from the wheelhouse is the installer's own wheel
    assert "no wheel of the installer uv==" in proc.stdout + proc.stderr


def test_plain_buildx_builds_the_rendered_dockerfile(tiny_built, engine, base_image, unbuilt_base):
    """The committed Dockerfile works in a CI pipeline without imagesmith, and stamps the label.
    A local base is passed as docs/guides/engines.md says (``--build-context base=oci-layout://…``); the base's
    name is one this engine never built from, so the build takes a fresh machine's path. tiny's
    lock pins only wheels (wheels_only): BuildKit's plain log shows no step of an sdist-toolchain
    stage (no apt-get of compilers), while sdist-build's own step runs. Given what `build` adds
    around the Dockerfile (no provenance, the commit's time, the git labels:
    docs/concepts/reproducibility.md), the plain build is imagesmith's serve image, digest for
    digest (its online install included)."""
    spec, result = tiny_built
    assert read_lock(spec.lock_path).wheels_only
    built = engine.image(result.images["serve"].ref)
    epoch = subprocess.run(
        ["git", "-C", str(spec.root), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=True
    ).stdout.strip()
    same = ["--provenance=false", "--build-arg", f"SOURCE_DATE_EPOCH={epoch}"]
    same += ["--build-arg", f"IMAGESMITH_CREATED={built.labels['org.opencontainers.image.created']}"]
    assert "org.opencontainers.image.revision" in built.labels  # the copy is a git repository
    for key in ("revision", "source", "version"):
        if f"org.opencontainers.image.{key}" in built.labels:
            same += ["--label", f"org.opencontainers.image.{key}={built.labels[f'org.opencontainers.image.{key}']}"]
    tag = f"imagesmith-test/plain-{uuid.uuid4().hex[:8]}:serve"
    proc = _plain_buildx(spec, engine, base_image, unbuilt_base, "--progress=plain", *same, "--load", "-t", tag)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert re.search(r"\[sdist-build \d+/\d+\] RUN ", log), log[-3000:]
    assert "sdist-toolchain" not in log and "build-essential" not in log
    try:
        plain = engine.image(tag)
        assert plain.labels["io.imagesmith.parity"] == result.parity
        assert plain.labels["io.imagesmith.role"] == "serve"
        assert plain.id == built.id
    finally:
        subprocess.run(["docker", "image", "rm", tag], capture_output=True)


@pytest.mark.registry
def test_push_and_pin_by_digest_with_builder_and_cache_options(tiny_built, tmp_path, engine, base_image, registry):
    """A pushed build's serve image is pinned by the digest the registry has, and a child built
    FROM it has its layers. The build names a builder (a missing one is refused, naming `docker
    buildx ls`) and cache options, which reach buildx (the build passes with the session's parity).
    (One build for both claims: they were a test each, each a build of tiny.)"""
    spec, first = tiny_built
    root = tmp_path / "tiny"
    shutil.copytree(spec.root, root)
    build = ("build", "-p", str(root), "--base", base_image, "--tag", "imagesmith-test/pushed")
    proc = cli(*build, "--builder", "nope")
    assert proc.returncode == 2
    assert "there is no buildx builder named 'nope'" in proc.stderr and "docker buildx ls" in proc.stderr
    repo = f"{registry}/imagesmith-test/tiny"
    cache = ("--cache-to", "type=inline", "--cache-from", f"{shared_repo('tiny')}:serve")
    proc = cli(*build, "--builder", "default", *cache, "--push", repo, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["parity"] == first.parity
    serve = result["images"]["serve"]
    assert serve["pushed"].startswith(f"{repo}@sha256:")
    digest = serve["pushed"].split("@", 1)[1]
    remote = skopeo_inspect(f"{repo}:serve")
    assert remote["Digest"] == digest
    assert remote["Labels"]["io.imagesmith.parity"] == result["parity"]
    docker_build(f"FROM {repo}@{digest}\nLABEL child=1\n", "imagesmith-test/from-digest", tmp_path / "child")
    assert engine.image("imagesmith-test/from-digest").layers == engine.image(serve["ref"]).layers


def test_failed_step_names_the_system_package(tmp_path, engine, base_image):
    """A build step that fails says which part of the spec it came from and shows the log tail:
    here a system package whose locked version apt cannot install."""
    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    spec_file = root / "imagesmith.yaml"
    spec_file.write_text(spec_file.read_text() + "system_packages: [jq]\n")
    assert cli("lock", "-p", str(root), "--base", base_image).returncode == 0
    lock_file = root / "imagesmith.lock"
    data = json.loads(lock_file.read_text())
    assert any(p["name"] == "jq" for p in data["system_packages"])
    for p in data["system_packages"]:
        if p["name"] == "jq":
            p["version"] = "0.0-not-a-version"
    lock_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    proc = cli("build", "-p", str(root), "--base", base_image, "--locked", "--tag", "imagesmith-test/apt-fail")
    assert proc.returncode == 2
    assert "building train and serve failed at system_packages (jq)" in proc.stderr
    assert "last lines of the build log" in proc.stderr and "0.0-not-a-version" in proc.stderr


@pytest.mark.xdist_group("build-repro-own-cache")  # an empty wheel cache: the first-time path
def test_sdist_only_distribution_is_built_outside_the_images_and_an_altered_wheel_fails_the_build(
    tmp_path, engine, base_image
):
    """docopt 0.6.2 publishes only an sdist: it is hash-checked, built into a wheel in the
    sdist-build stage (pure Python: without compilers), and installed; no compiler reaches the images, and the
    online install (pip downloads inside the build) gives the same layers: the wheel six's too
    (a project's backend wheels online: test_srcproj.py).
    Then six's wheel in that wheel cache is altered (a valid wheel, not the locked one): the next
    build fails naming the distribution, with the log tail. (One empty wheel cache, filled by the
    first build, for both claims: they were a test each, each filling its own.)"""
    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    spec_file = root / "imagesmith.yaml"
    spec_file.write_text(spec_file.read_text().replace("  - six==1.17.0\n", "  - six==1.17.0\n  - docopt==0.6.2\n"))
    cache = tmp_path / "cache"
    hermetic = _build(root, engine, base_image, "imagesmith-test/sdist", cache_dir=cache)
    assert list((cache / "wheels").glob("*/docopt-0.6.2.tar.gz"))
    ref = hermetic.images["serve"].ref
    out = engine.run(
        ref,
        ["-c", "import docopt, shutil; print(docopt.__version__, shutil.which('cc'))"],
        entrypoint=["/opt/venv/bin/python"],
    )
    assert out.split() == ["0.6.2", "None"]
    online = _build(root, engine, base_image, "imagesmith-test/sdist-online", install="online")
    assert engine.image(online.images["serve"].ref).layers == engine.image(ref).layers

    six = next(p for p in read_lock(root / "imagesmith.lock").packages if p.name == "six")
    wheel = next((cache / "wheels").glob("*/six-*.whl"))
    assert f"sha256:{wheel.parent.name}" in six.hashes
    with zipfile.ZipFile(wheel, "a") as archive:  # a valid wheel, not the locked one
        archive.writestr("six_extra.py", "TAMPERED = True\n")
    shutil.rmtree(cache / "wheelhouses")
    # BuildKit's cache may serve every step before the install (what they read is unchanged);
    # the install step's wheelhouse is not the good build's, so it runs again (were it cached,
    # the build would pass and this test fail)
    with pytest.raises(BuildError) as info:
        _build(root, engine, base_image, "imagesmith-test/hash-bad", cache_dir=cache)
    message = str(info.value)
    assert "requirements (six==1.17.0: a wheel does not match its locked hash)" in message
    assert "Hash mismatch for `six==1.17.0`" in message, message  # the log tail is shown (uv's words)


@pytest.mark.xdist_group("build-repro-compiled-sdist")
def test_an_sdist_with_a_c_extension_is_compiled_and_no_compiler_reaches_the_images(tmp_path, engine, base_image):
    """crcmod 1.7 publishes only an sdist, whose setup.py builds the C extension
    crcmod._crcfunext when a compiler is there and falls back to pure Python otherwise: the
    sdist-build stage sees its C sources and installs the compilers (the log says so, naming
    one), the serve image imports the compiled extension, and no compiler is in it. No cache,
    so the step runs and says its line (a cached step says nothing). (A pure-Python sdist,
    built without compilers: the docopt tests.)"""
    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")
    spec_file = root / "imagesmith.yaml"
    spec_file.write_text(spec_file.read_text().replace("  - six==1.17.0\n", "  - six==1.17.0\n  - crcmod==1.7\n"))
    log: list[str] = []
    options = BuildOptions(base=base_image, tag="imagesmith-test/sdist-compiled", no_cache=True)
    result = build_project(load_spec(root), engine, options, echo=log.append)
    lock = read_lock(root / "imagesmith.lock")
    assert [(p.name, p.version) for p in lock.packages] == [("crcmod", "1.7"), ("six", "1.17.0")]
    assert not lock.wheels_only  # resolved in the base (an sdist): the Dockerfile keeps the compilers' stage
    assert "FROM builder AS sdist-toolchain\n" in spec_file.with_name("Dockerfile").read_text()
    said = [line for line in log if "imagesmith: sdist crcmod-1.7: " in line]
    assert said, log[-40:]
    assert all(
        re.search(r"imagesmith: sdist crcmod-1\.7: compiled sources \(\S+\.c\): compilers installed$", line)
        for line in said
    ), said
    assert not [line for line in log if "built without compilers" in line]
    # crcmod's package re-exports its module's names, the function crcmod too: the module by name.
    code = (
        "import crcmod._crcfunext, shutil, sys; "
        "print(sys.modules['crcmod.crcmod']._usingExtension, "
        "*(shutil.which(c) for c in ('cc', 'gcc', 'x86_64-linux-gnu-gcc')))"
    )
    out = engine.run(result.images["serve"].ref, ["-c", code], entrypoint=["/opt/venv/bin/python"])
    assert out.split() == ["True", "None", "None", "None"]


def test_two_clean_builds_at_once_both_succeed_with_the_images_an_earlier_build_gave(
    tiny_built, tmp_path, engine, base_image
):
    """Parallel CI jobs on one engine: two `imagesmith build` runs of the same image names at once,
    names this engine never had (new for each run). With --no-cache both run every step and
    BuildKit joins their identical steps, so both exports name the images at the same moment
    (on a fresh engine, BuildKit failed one with `image "…": already exists`).
    And a clean build is reproducible: other clones (files with other mtimes), no cache, give the
    digests for train and serve of the session's build of tiny (a build of its own, on this
    worker or an earlier one: two real runs of every step either way). One pair of clean builds
    for both claims (they were a clean build each)."""
    import sys

    repo = f"imagesmith-test/race-{uuid.uuid4().hex[:12]}"
    roots = [copy_project(PROJECTS / "tiny", tmp_path / f"job{i}" / "tiny") for i in (1, 2)]
    argv = [sys.executable, "-m", "imagesmith", "build", "--base", base_image, "-t", repo, "--no-cache", "--json"]
    jobs = [
        subprocess.Popen(argv + ["-p", str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for root in roots
    ]
    try:
        outcomes = [job.communicate(timeout=900) for job in jobs]
        for job, (_, err) in zip(jobs, outcomes):
            assert job.returncode == 0, err[-3000:]
            assert "Traceback" not in err
        built = [json.loads(out) for out, _ in outcomes]
        digests = [{role: image["digest"] for role, image in b["images"].items()} for b in built]
        assert digests[0] == digests[1]  # the same images, whichever named them last
        _, first = tiny_built
        assert built[0]["parity"] == first.parity
        for role in ("train", "serve"):
            assert engine.image(f"{repo}:{role}").id == digests[0][role]
            assert digests[0][role] == first.images[role].id, role  # the clean build reproduces
        assert engine.image(f"{repo}:train").layers == engine.image(f"{repo}:serve").layers
    finally:
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.communicate()
        remove_tags(repo)
