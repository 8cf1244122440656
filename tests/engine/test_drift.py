"""Issue 5 on the real engine: images derived from the built `tiny` project, each breaking parity
in one way, must fail `verify` with the cause named in one line, and `diff` against the built
image must name exactly that change; the untouched train and serve images pass (iris's:
test_e2e.py).

The derived images are small Dockerfiles FROM the session's built image (one RUN/ENV/LABEL each),
except the "other base" image, which rebuilds the same files on a copy of the base (new layers).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from imagesmith.render import dquote
from tests.helpers import cli, facts_copy, image_facts

pytestmark = pytest.mark.engine

BUILT = "imagesmith-test/drift-built"
SITE = "/opt/venv/lib/python3.11/site-packages"
PIP = "/usr/bin/python3 -m pip --disable-pip-version-check --python /opt/venv/bin/python"


@pytest.fixture(scope="module")
def tiny(tiny_built, engine):
    """The built tiny images under this module's own tags (by ID: immune to re-tagging by others)."""
    spec, result = tiny_built
    for role in ("train", "serve"):
        engine.tag(result.images[role].id, f"{BUILT}:{role}")
    return spec, result


def _image_dockerfile(engine, ref: str, base_stage: str) -> str:
    """A Dockerfile that rebuilds ``ref``'s venv and app on ``base_stage`` with ``ref``'s config and labels."""
    info = engine.image(ref)
    cfg = info.config
    lines = [base_stage, f"COPY --from={ref} /opt/venv /opt/venv", f"COPY --from={ref} /app /app"]
    lines += [f"ENV {k}={dquote(v)}" for k, v in (e.split("=", 1) for e in cfg["Env"])]
    lines += [f"LABEL {k}={dquote(v)}" for k, v in sorted(info.labels.items())]
    lines += [
        f"WORKDIR {cfg['WorkingDir']}",
        f"ENTRYPOINT {json.dumps(cfg['Entrypoint'])}",
        f"CMD {json.dumps(cfg['Cmd'])}",
    ]
    if cfg.get("User"):
        lines.append(f"USER {cfg['User']}")
    return "\n".join(lines) + "\n"


def _relabelled_dockerfile(engine, ref: str) -> str:
    """FROM ref, with new, self-consistent facts and parity label claiming other wheel hashes for six."""
    from imagesmith import parity

    facts = image_facts(engine, ref)
    facts["manifest"]["packages"]["six"]["hashes"] = ["sha256:" + "0" * 64]
    facts["parity"] = parity.digest(facts["manifest"])
    return f"FROM {ref}\n{facts_copy(facts)}LABEL io.imagesmith.parity={dquote(facts['parity'])}\n"


def _forged_dockerfile(engine, ref: str, base: str) -> str:
    labels = engine.image(ref).labels
    keep = ("io.imagesmith.parity", "io.imagesmith.role")
    return f"FROM {base}\n{facts_copy(image_facts(engine, ref))}" + "".join(
        f"LABEL {k}={dquote(labels[k])}\n" for k in keep
    )


# case -> (Dockerfile body after FROM BUILT:serve, or a callable making the whole Dockerfile)
DRIFTS = {
    "upgraded": f"COPY six-1.16.0-py2.py3-none-any.whl /wheels/\nRUN {PIP} install -q --no-deps --no-index /wheels/six-1.16.0-py2.py3-none-any.whl\n",
    "edited": f"RUN echo '# edited' >> {SITE}/six.py\n",
    "removed": f"RUN {PIP} uninstall -q -y six\n",
    "preprocessing": (
        "RUN for f in /app/app/prep.py " + SITE + "/app/prep.py; do "
        "if [ -f $f ]; then echo '# edited' >> $f; fi; done\n"
    ),
    "hashseed": "ENV PYTHONHASHSEED=1\n",
    "seed": "ENV IMAGESMITH_SEED=1\n",
    "child": "RUN echo extra > /etc/imagesmith-extra\n",
    "forged": "forged",
    "otherbase": "otherbase",
    "relabelled": "relabelled",
    # issue 12: children that passed every check before
    "configonly": 'ENV IMAGESMITH_ALLOW_MISMATCH=1\nCMD ["python", "-c", "print(1)"]\n',
    "relayered": "relayered",
    "interpreter": "RUN printf '\\0' >> /usr/bin/python3.11\n",
    "venvpython": "RUN rm /opt/venv/bin/python && cp /usr/bin/python3.11 /opt/venv/bin/python\n",
    "ldenv": "ENV LD_LIBRARY_PATH=/tmp LD_AUDIT=/nonexistent-audit.so\n",
    "preload": "RUN echo /nonexistent-preload.so > /etc/ld.so.preload\n",
}


@pytest.fixture(scope="module")
def drifted(tiny, engine, base_image, tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    wheels = root / "upgraded"
    wheels.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(wheels),
            "six==1.16.0",
        ],
        check=True,
    )
    texts = {}
    for case, body in DRIFTS.items():
        if body == "forged":
            text = _forged_dockerfile(engine, f"{BUILT}:serve", base_image)
        elif body == "relabelled":
            text = _relabelled_dockerfile(engine, f"{BUILT}:serve")
        elif body == "relayered":  # edits /app, then restates the label it inherited
            built = engine.image(f"{BUILT}:serve")
            label, user = built.labels["io.imagesmith.parity"], built.config.get("User") or "root"
            text = (
                f"FROM {BUILT}:serve\nUSER root\nRUN echo '# edited' >> /app/app/prep.py\nUSER {user}\n"
                f"LABEL io.imagesmith.parity={label}\n"
            )
        elif body == "otherbase":
            stage = f"FROM {base_image} AS other\nRUN rm -rf /usr/share/doc/*\nFROM scratch\nCOPY --from=other / /"
            text = _image_dockerfile(engine, f"{BUILT}:serve", stage)
        else:  # as root (the image's user cannot change its files), then back to the image's user
            user = engine.image(f"{BUILT}:serve").config.get("User") or "root"
            text = f"FROM {BUILT}:serve\nUSER root\n{body}USER {user}\n"
        texts[case] = text
    tags = {case: f"imagesmith-test/drift-{case}:serve" for case in DRIFTS}
    _bake(texts, tags, root)
    return tags


def _bake(texts: dict[str, str], tags: dict[str, str], root) -> None:
    """The independent small builds as one `docker buildx bake`: one client, one session, and
    BuildKit solves them side by side (16 `docker buildx build` runs were 16 of each)."""
    targets = {}
    for case, text in texts.items():
        (root / case).mkdir(parents=True, exist_ok=True)
        (root / case / "Dockerfile").write_text(text)
        targets[case] = {"context": str(root / case), "dockerfile": "Dockerfile", "tags": [tags[case]]}
    bake = root / "docker-bake.json"
    bake.write_text(json.dumps({"group": {"default": {"targets": sorted(targets)}}, "target": targets}))
    proc = subprocess.run(
        ["docker", "buildx", "bake", "--load", "--progress", "quiet", "-f", str(bake)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


# verify and diff --json run in this process (``cli(in_process=True)``: the console entry point,
# the real engine), a few dozen times: no interpreter start and imports each. The text output,
# the error exits and a caller's environment go through `python -m imagesmith` below.


def _verify(*args: str) -> tuple[int, dict]:
    proc = cli("verify", *args, "--json", in_process=True)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _diff(a: str, b: str, *args: str) -> tuple[int, dict]:
    proc = cli("diff", a, b, "--json", *args, in_process=True)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _changes(result: dict) -> set[tuple[str, str, str]]:
    return {(group, c["kind"], c["name"]) for group, cs in result["groups"].items() for c in cs}


# --- no false alarm ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["train", "serve"])
def test_untouched_tiny_images_pass_every_way(tiny, role):
    from imagesmith.verify_probe import PROBE_NOTE

    spec, _ = tiny
    other = "serve" if role == "train" else "train"
    reports = {}
    for extra in ([], ["--lock", str(spec.lock_path)], ["--pair", f"{BUILT}:{other}"], ["--labels-only"]):
        code, report = _verify(f"{BUILT}:{role}", *extra)
        assert code == 0 and report["ok"] and report["problems"] == [], (extra, report)
        if "--labels-only" not in extra:
            assert report["notes"] == [PROBE_NOTE], report
        checks = " ".join(report["checks"])
        assert "the whole image config" in checks and "none on top" in checks, report
        reports[" ".join(extra)] = report
    report = reports[""]  # the plain verify's: a content check, each of its parts said
    assert report["mode"] == "content"
    assert any("installed as the manifest pins" in c and "match their RECORD" in c for c in report["checks"])
    assert any(c.startswith("base: ") for c in report["checks"])
    assert any("preprocessing files match" in c for c in report["checks"])


def test_diff_of_untouched_sources_is_empty(tiny):
    spec, _ = tiny
    for a, b in (
        (f"{BUILT}:serve", f"{BUILT}:train"),
        (f"{BUILT}:serve", str(spec.lock_path)),
        (str(spec.lock_path), str(spec.lock_path)),
    ):
        code, result = _diff(a, b)
        assert code == 0 and result["equal"] and result["groups"] == {}, (a, b, result)


# --- each drift is flagged with its cause, and diff names exactly it ----------------------------

EXPECTED = {
    # case: (a line verify must print, the diff's changes)
    "upgraded": (
        "distributions: six: 1.17.0 in the manifest, 1.16.0 in the image",
        {("distributions", "version_changed", "six")},
    ),
    "edited": ("distributions: six 1.17.0 differs: ", {("distributions", "hash_changed", "six")}),
    "removed": (
        "distributions: six 1.17.0 is in the manifest but not in the image",
        {("distributions", "removed", "six")},
    ),
    "preprocessing": ("preprocessing files: app/prep.py: sha256:", {("preprocessing", "changed", "app/prep.py")}),
    "hashseed": (
        "seed and environment: PYTHONHASHSEED: 7 in the manifest, 1 in the image",
        {("seed_env", "changed", "PYTHONHASHSEED")},
    ),
    "seed": ("seed and environment: seed: 7 in the manifest, 1 in the image", {("seed_env", "changed", "seed")}),
    "otherbase": ("base image: base: sha256:", {("base", "changed", "base")}),
    "relabelled": (
        "1 filesystem layer was added on top of the image imagesmith built",
        {("distributions", "hash_changed", "six")},
    ),
}


# children the diff has no words for (config, layers, files outside the venv): verify names them
TAMPERED = {
    "configonly": 'Cmd is ["python", "-c", "print(1)"], imagesmith\'s Dockerfile',
    "relayered": "1 filesystem layer was added on top of the image imagesmith built",
    "interpreter": "the interpreter /usr/bin/python3.11 differs from the base image's",
    "venvpython": "/opt/venv/bin/python is a file, not the link",
    "ldenv": "ENV LD_AUDIT=/nonexistent-audit.so is not set by imagesmith's Dockerfile",
    "preload": "/etc/ld.so.preload loads /nonexistent-preload.so into every process",
}


@pytest.mark.parametrize("case", sorted(EXPECTED) + sorted(TAMPERED))
def test_drift_fails_verify_with_its_cause(drifted, case):
    line = EXPECTED[case][0] if case in EXPECTED else TAMPERED[case]
    code, report = _verify(drifted[case])
    assert code == 1 and not report["ok"]
    assert [p for p in report["problems"] if p.startswith(line)], report["problems"]
    assert all("\n" not in p for p in report["problems"])


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_diff_names_exactly_the_change(drifted, case):
    _, expected = EXPECTED[case]
    code, result = _diff(f"{BUILT}:serve", drifted[case])
    assert code == 1 and not result["equal"]
    assert _changes(result) == expected, result["groups"]


def test_diff_details(drifted):
    _, result = _diff(f"{BUILT}:serve", drifted["upgraded"])
    assert result["groups"]["distributions"][0] | {"detail": ""} == {
        "kind": "version_changed",
        "name": "six",
        "a": "1.17.0",
        "b": "1.16.0",
        "detail": "",
    }
    _, result = _diff(f"{BUILT}:serve", drifted["edited"])
    assert "six.py" in result["groups"]["distributions"][0]["detail"]
    _, result = _diff(f"{BUILT}:serve", drifted["seed"])
    assert result["groups"]["seed_env"][0]["a"] == 7 and result["groups"]["seed_env"][0]["b"] == 1
    proc = cli("diff", f"{BUILT}:serve", drifted["upgraded"])
    assert proc.returncode == 1
    assert "distributions (version changed):\n  six: 1.17.0 -> 1.16.0\n" in proc.stdout
    assert proc.stdout.rstrip().endswith("1 difference")


def test_edited_installed_file_names_the_file_and_its_bytecode(drifted):
    _, report = _verify(drifted["edited"])
    line = next(p for p in report["problems"] if p.startswith("distributions: six"))
    assert "six.py" in line and "stale bytecode" in line


def test_forged_label_on_an_unrelated_image(drifted, tiny):
    spec, result = tiny
    code, report = _verify(drifted["forged"], "--expect", result.parity)
    assert code == 1
    assert "parity is the expected" in " ".join(report["checks"])  # the label itself is consistent...
    assert any(p.startswith("the image has no Python environment where imagesmith puts it") for p in report["problems"])
    code, diff = _diff(f"{BUILT}:serve", drifted["forged"])
    assert code == 1 and ("distributions", "removed", "six") in _changes(diff)


def test_outside_reads_on_a_machine_that_never_verified(drifted, tmp_path):
    """verify keeps what it read from outside an image in the host cache by image ID, so on this
    machine most runs hit the cache: here the cache is empty, as on a fresh machine, so the files
    are really copied out of a container never started (of the image and of its base)."""
    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    for ref, ok in ((f"{BUILT}:serve", True), (drifted["venvpython"], False), (drifted["preload"], False)):
        proc = cli("verify", ref, "--labels-only", "--json", env=env)
        report = json.loads(proc.stdout)
        assert (proc.returncode == 0) == ok, report
        checks, problems = " ".join(report["checks"]), " ".join(report["problems"])
        if ok:
            assert "is the base image's (read from outside)" in checks and "the whole image config" in checks
        else:
            assert "/opt/venv/bin/python is a file" in problems or "/etc/ld.so.preload loads" in problems
    assert len(list((cache / "imagesmith" / "outside").glob("*.json"))) == 3  # each image read once, then kept
    assert len(list((cache / "imagesmith" / "base-files").glob("*.json"))) == 1  # the base, read once


def test_child_layers_fail_every_way(drifted, tiny):
    spec, _ = tiny
    line = "1 filesystem layer was added on top of the image imagesmith built"
    for extra in ([], ["--labels-only"], ["--lock", str(spec.lock_path)]):
        code, report = _verify(drifted["child"], *extra)
        assert code == 1 and [p for p in report["problems"] if p.startswith(line)], (extra, report)
    # with --lock, /app is compared with the project's files, read from outside the image
    code, report = _verify(drifted["relayered"], "--labels-only", "--lock", str(spec.lock_path))
    assert code == 1 and f"/app: app/prep.py differs from the project's ({spec.root})" in report["problems"]
    code, report = _verify(f"{BUILT}:serve", "--labels-only", "--lock", str(spec.lock_path))
    assert code == 0 and any(c.startswith("/app: ") and "each the project's" in c for c in report["checks"])
    code, report = _verify(drifted["child"], "--pair", f"{BUILT}:train")
    assert code == 1 and any(p.startswith("filesystem layers differ") for p in report["problems"])
    # a config-only child adds no layer, and still differs in config, also with --lock
    code, report = _verify(drifted["hashseed"], "--lock", str(spec.lock_path))
    assert code == 1 and not any(line in p for p in report["problems"])
    assert (
        "ENV PYTHONHASHSEED is 1, imagesmith's Dockerfile (imagesmith_image.json in the image) sets 7"
        in (report["problems"])
    )


def test_labels_only_sees_config_drift_but_not_content(drifted):
    code, report = _verify(drifted["hashseed"], "--labels-only")
    assert code == 1 and report["mode"] == "labels"
    assert "seed and environment: PYTHONHASHSEED: 7 in the manifest, 1 in the image" in report["problems"]
    code, report = _verify(drifted["upgraded"], "--labels-only")
    # the added layer is seen from outside the image; what it changed only the full check says
    assert code == 1 and not any(p.startswith("distributions:") for p in report["problems"])
    code, report = _verify(drifted["otherbase"], "--labels-only")
    assert code == 1 and any(p.startswith("base image: base: ") for p in report["problems"])
    code, result = _diff(f"{BUILT}:serve", drifted["upgraded"], "--labels-only")
    assert code == 0 and result["equal"]  # same labels, and the content is not looked at
    code, result = _diff(f"{BUILT}:serve", drifted["hashseed"], "--labels-only")
    assert code == 1 and _changes(result) == {("seed_env", "changed", "PYTHONHASHSEED")}


def test_text_output_one_line_per_problem(drifted):
    proc = cli("verify", drifted["removed"])
    assert proc.returncode == 1
    assert "FAIL: distributions: six 1.17.0 is in the manifest but not in the image\n" in proc.stdout
    result = json.loads(cli("verify", drifted["removed"], "--json").stdout)
    # the last line names the parity and the exact image it judged (what a deploy would pin)
    assert proc.stdout.rstrip().endswith(f"(parity {result['parity']}) as {result['digest']}")


def test_inspect_shows_the_manifest(tiny):
    spec, result = tiny
    proc = cli("inspect", f"{BUILT}:serve")
    assert proc.returncode == 0, proc.stderr
    assert f"parity:   {result.parity}" in proc.stdout
    assert "  six  1.17.0  (2 hashes)" in proc.stdout or "  six  1.17.0  (1 hash)" in proc.stdout
    assert "python:   3.11.2 on linux/amd64" in proc.stdout and "seed:     7, determinism off" in proc.stdout
    data = json.loads(cli("inspect", f"{BUILT}:serve", "--json").stdout)
    lock_data = json.loads(cli("inspect", str(spec.lock_path), "--json").stdout)
    assert data["manifest"] == lock_data["manifest"] and data["label_ok"] and data["parity"] == result.parity


def test_usage_and_engine_errors_exit_2(tiny):
    proc = cli("diff", f"{BUILT}:serve", "no-such-image:nope")
    assert proc.returncode == 2 and "not in the engine" in proc.stderr
    proc = cli("inspect", "imagesmith-base:bookworm-py311")
    assert proc.returncode == 2 and "has no parity manifest" in proc.stderr
    proc = cli("diff", f"{BUILT}:serve", "./missing/imagesmith.lock")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = cli("verify", f"{BUILT}:serve", env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert proc.returncode == 2 and "Docker engine is not reachable" in proc.stderr


# --- registry references -------------------------------------------------------------------------


@pytest.mark.registry
def test_registry_reference_labels_without_pull_then_content(tiny, drifted, engine, registry):
    spec, result = tiny
    remote = f"{registry}/imagesmith-test/verify-tiny:serve"
    engine.tag(result.images["serve"].id, remote)
    digest = engine.push(remote)
    subprocess.run(["docker", "image", "rm", remote], check=True, capture_output=True)  # our tag only
    pinned = f"{registry}/imagesmith-test/verify-tiny@{digest}"
    assert not engine.has_image(remote)

    code, report = _verify(remote, "--labels-only", "--expect", result.parity)
    assert code == 0 and report["mode"] == "labels" and report["id"] == digest, report
    assert not engine.has_image(pinned) or engine.image(pinned).id == result.images["serve"].id
    data = json.loads(cli("inspect", remote, "--json").stdout)
    assert data["parity"] == result.parity and data["label_ok"]

    code, report = _verify(remote, "--lock", str(spec.lock_path))
    assert code == 0, report
    code, diff = _diff(remote, str(spec.lock_path))
    assert code == 0 and diff["equal"], diff

    drift = f"{registry}/imagesmith-test/verify-tiny:upgraded"
    engine.tag(engine.image(drifted["upgraded"]).id, drift)
    engine.push(drift)
    code, diff = _diff(str(spec.lock_path), drift)
    assert code == 1 and _changes(diff) == {("distributions", "version_changed", "six")}
    # its facts are read from its registry below the two layers the child added: a child, without pulling
    code, report = _verify(drift, "--labels-only")
    added = "2 filesystem layers were added on top of the image imagesmith built (its imagesmith_image.json is 3 layers"
    assert code == 1 and any(p.startswith(added) for p in report["problems"]), report
