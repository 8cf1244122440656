"""Issue 12, parts 2 and 3, on the real engine, the loopback registry and Debian's cosign.

The tiny-native project (a binary wheel, a pure one, a model trained, served and signed off with
the standard library) is built once for this module with ``imagesmith build -t REGISTRY/REPO --sign KEY``,
trained, given golden outputs, its model signed (``imagesmith sign --model``) and its serve image
signed off with ``signoff --sign``. Then:

- the untouched signed train and serve images pass ``imagesmith verify --key`` (with the model and
  the signoff for serve), and the standard tool alone accepts them: ``cosign verify --key`` and
  ``cosign verify-attestation --key --type …``;
- each tampering is refused by ``verify --key`` with its cause named: an unsigned image, an image
  signed with another key, and children of the serve image (FROM it, pushed) that a careless
  signer signed with the real key and attested with the parent's build record (the strongest
  forgery short of re-running ``imagesmith sign``): a config-only child, a relabelled child with a
  changed layer, a replaced interpreter, ``LD_`` variables; a forged stamp and a forged signoff.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from imagesmith.layout import IMAGE_GID, IMAGE_UID
from imagesmith.record import PARITY_PREDICATE, SIGNOFF_PREDICATE
from imagesmith.run import run_role
from imagesmith.runtime.stamp import GOLDEN_FILE, STAMP_FILE
from imagesmith.signing import Cosign
from imagesmith.spec.load import load_spec
from tests.conftest import BASE_IMAGE, PROJECTS, copy_project
from tests.helpers import cli, cli_in_process
from tests.registry_api import docker_runs, entry, move_after_first_read, move_tag, put_index

pytestmark = pytest.mark.engine
IMAGE_USER = f"{IMAGE_UID}:{IMAGE_GID}"  # the USER line of both images (children switch back to it)

PASSWORD = "imagesmith-test-password"
TAG = "imagesmith-test/sign-native"


def _keys(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True)
    env = {"COSIGN_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin", "HOME": str(folder)}
    subprocess.run(["cosign", "generate-key-pair"], cwd=folder, env=env, check=True, capture_output=True)
    return folder / "cosign.key", folder / "cosign.pub"


def _cosign(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    """The standard tool alone, as a deploy script or admission controller would run it."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_home), "TUF_ROOT": str(env_home / "tuf")}
    return subprocess.run(["cosign", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def signed(engine, registry, tmp_path_factory):
    work = tmp_path_factory.mktemp("signing")
    spec = load_spec(copy_project(PROJECTS / "tiny-native", work / "tiny-native"))
    key, pub = _keys(work / "keys")
    other_key, other_pub = _keys(work / "other-keys")
    repo = f"{registry}/imagesmith-test/sign-{uuid.uuid4().hex[:10]}"
    env = {"COSIGN_PASSWORD": PASSWORD}
    # no --push: a registry tag is enough (the --push form, build --push … --sign: test_gpu_engine.py's
    # gpu_build_signed); the engine's images are pushed, their digests checked, then signed
    proc = cli(
        "build", "-p", str(spec.root), "--base", BASE_IMAGE, "-t", repo, "--sign", str(key), "--json", env=env
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    built = json.loads(proc.stdout)
    refs = {role: f"{repo}@{built['images'][role]['digest']}" for role in ("train", "serve")}
    for role in refs:
        assert built["images"][role]["signed"] == {"ref": refs[role], "key": str(key)}
    ids = {role: built["images"][role]["id"] for role in refs}

    folder = work / "artifacts"
    assert run_role(spec, engine, "train", tag=repo, artifacts=folder) == 0
    proc = cli("golden", "-p", str(spec.root), "--model", str(folder), "--image", refs["train"])
    assert proc.returncode == 0, proc.stderr
    proc = cli("sign", "--model", str(folder), "--key", str(key), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(Path(p).name for p in json.loads(proc.stdout)["signatures"]) == [
        GOLDEN_FILE + ".sig",
        STAMP_FILE + ".sig",
    ]
    signoff = work / "signoff.json"
    proc = cli(
        "signoff", refs["serve"], "--model", str(folder), "-p", str(spec.root), "-o", str(signoff),
        "--requests", "40", "--sign", str(key),
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "signoff.json.sig").is_file()
    return {
        "spec": spec,
        "repo": repo,
        "refs": refs,
        "ids": ids,
        "key": key,
        "pub": pub,
        "other_key": other_key,
        "other_pub": other_pub,
        "model": folder,
        "signoff": signoff,
        "work": work,
    }


def _verify(ref: str, pub: Path, *extra: str) -> subprocess.CompletedProcess:
    """`imagesmith verify REF --labels-only --key PUB`, in this process (the console entry point;
    cosign and the registry as ever): no interpreter start for each of this module's few dozen.
    The whole gate as a process of its own: test_every_cosign_call_reaches_the_loopback_registry_only."""
    return cli("verify", ref, "--labels-only", "--key", str(pub), *extra, in_process=True)


def _push_child(dockerfile: str, ref: str, context: Path) -> str:
    """Build ``dockerfile`` with plain BuildKit, push it as ``ref``, and return REPO@sha256:…."""
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile)
    meta = context / "meta.json"
    subprocess.run(
        ["docker", "buildx", "build", "-q", "--provenance=false", "--push", "-t", ref, "--metadata-file", str(meta),
         str(context)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return f"{ref.rsplit(':', 1)[0]}@{json.loads(meta.read_text())['containerimage.digest']}"


def _parent_record(s) -> dict:
    """The signed serve image's build record, as cosign verifies it: read once per module (kept in
    ``signed``), for the six tests that attest or compare with it."""
    if "record" not in s:
        verdict = Cosign().verify_attestations(s["refs"]["serve"], s["pub"], PARITY_PREDICATE)
        assert verdict.ok, verdict.reason
        s["record"] = verdict.payloads[0]["predicate"]
    return s["record"]


def _sign_with_parent_record(s, child: str) -> None:
    """A careless signer: the real key on the child's digest, with the parent's build record."""
    cosign = Cosign(env={"COSIGN_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"})
    cosign.sign(child, s["key"])
    cosign.attest(child, s["key"], PARITY_PREDICATE, _parent_record(s))


# ------------------------------------------------------------------------------------------------
# the signed images pass, with imagesmith and with cosign alone


def test_the_signed_images_pass_verify_key(signed):
    s = signed
    proc = _verify(s["refs"]["train"], s["pub"], "--json")
    assert proc.returncode == 0, proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["ok"] and doc["signature"]["ok"] and doc["signature"]["digest"] == s["refs"]["train"].split("@")[1]
    assert any(line.startswith("signature: the parity attestation by") for line in doc["checks"])
    assert not any("GPU" in line for line in doc["checks"] + doc["problems"])  # a CPU image: no GPU contract asked for
    # the deploy gate of docs/guides/deploy-gate.md, in full (the content checks too), with the lock the images came from
    proc = cli(
        "verify", s["refs"]["serve"], "--key", str(s["pub"]), "--model", str(s["model"]),
        "--signoff", str(s["signoff"]), "--lock", str(s["spec"].lock_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    assert "ok: signature: the signed record names imagesmith.lock" in proc.stdout
    for what in ("signed by", "the parity attestation by", "signoff.json is signed by", "the signoff attestation"):
        assert f"ok: signature: {what}" in proc.stdout, proc.stdout
    assert f"ok: signature: {STAMP_FILE} is signed by" in proc.stdout
    assert f"ok: signature: {GOLDEN_FILE} is signed by" in proc.stdout
    assert "ok: signature: the model's stamp has the signed parity" in proc.stdout


def test_a_tag_is_resolved_to_its_digest_first(signed):
    s = signed
    proc = _verify(f"{s['repo']}:serve", s["pub"])
    assert proc.returncode == 0, proc.stdout
    assert f"resolves to {s['refs']['serve']} in its registry" in proc.stdout
    assert proc.stdout.rstrip().endswith(f": verified (parity {_parent_record(s)['parity']}) as {s['refs']['serve']}")


def test_cosign_alone_accepts_the_signed_images(signed):
    s = signed
    home = s["work"] / "cosign-home"
    home.mkdir(exist_ok=True)
    plain = ("--key", str(s["pub"]), "--insecure-ignore-tlog=true", "--allow-http-registry")
    for role, ref in s["refs"].items():
        proc = _cosign("verify", *plain, ref, env_home=home)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)[0]["critical"]["image"]["docker-manifest-digest"] == ref.split("@")[1]
        proc = _cosign("verify-attestation", *plain, "--type", PARITY_PREDICATE, ref, env_home=home)
        assert proc.returncode == 0, proc.stderr
        assert '"predicateType":"https://imagesmith.dev/parity/v1"' in _payload(proc.stdout)
        assert f'"role":"{role}"' in _payload(proc.stdout)
    proc = _cosign("verify-attestation", *plain, "--type", SIGNOFF_PREDICATE, s["refs"]["serve"], env_home=home)
    assert proc.returncode == 0, proc.stderr
    proc = _cosign("verify-blob", *plain[:3], "--signature", f"{s['signoff']}.sig", str(s["signoff"]), env_home=home)
    assert proc.returncode == 0, proc.stderr
    # and cosign alone refuses what imagesmith refuses: another key
    proc = _cosign("verify", "--key", str(s["other_pub"]), *plain[2:], s["refs"]["serve"], env_home=home)
    assert proc.returncode != 0 and "no matching signatures" in proc.stderr


def _payload(stdout: str) -> str:
    import base64

    return "".join(base64.b64decode(json.loads(line)["payload"]).decode() for line in stdout.splitlines() if line)


# ------------------------------------------------------------------------------------------------
# refused, the cause named


@pytest.fixture(scope="module")
def config_child(signed):
    """A child of the signed serve image that changes its config only: another CMD, an ENV that
    allows a mismatch and ``LD_`` variables (a library audit hook and search path)."""
    s = signed
    return _push_child(
        f'FROM {s["refs"]["serve"]}\nCMD ["python", "-c", "print(1)"]\nENV IMAGESMITH_ALLOW_MISMATCH=1\n'
        "ENV LD_AUDIT=/tmp/audit.so LD_LIBRARY_PATH=/tmp/lib\n",
        f"{s['repo']}:child-config",
        s["work"] / "child-config",
    )


def test_an_unsigned_image_is_refused(signed, config_child):
    proc = _verify(config_child, signed["pub"])
    assert proc.returncode == 1
    digest = config_child.split("@")[1]
    assert f"FAIL: signature: no valid signature by {signed['pub']} on {digest}: unsigned" in proc.stdout
    assert f"FAIL: signature: no parity attestation by {signed['pub']} on {digest}" in proc.stdout


def test_an_image_signed_with_another_key_is_refused(signed, tmp_path):
    s = signed
    child = _push_child(
        f"FROM {s['refs']['train']}\nLABEL io.example.resigned=1\n", f"{s['repo']}:child-other", tmp_path
    )
    proc = cli("sign", child, "--key", str(s["other_key"]), env={"COSIGN_PASSWORD": PASSWORD})
    assert proc.returncode == 0, proc.stderr
    proc = _verify(child, s["pub"])
    assert proc.returncode == 1
    assert "signed, but not with this key" in proc.stdout
    assert "FAIL: signature: no parity attestation by" in proc.stdout
    # the signature gate holds with the other key's public half: the key decides (the label the
    # child adds is verify's own business: it is not set by imagesmith's Dockerfile)
    doc = json.loads(_verify(child, s["other_pub"], "--json").stdout)
    assert doc["signature"]["ok"] and doc["signature"]["problems"] == [], doc["signature"]


def test_a_config_only_child_with_the_parents_record_is_refused(signed, config_child):
    _sign_with_parent_record(signed, config_child)
    proc = _verify(config_child, signed["pub"])
    assert proc.returncode == 1
    assert f"ok: signature: signed by {signed['pub']}" in proc.stdout  # the signature itself holds
    says = f"FAIL: signature: the parity attestation by {signed['pub']} says otherwise: "
    assert says + "ENV IMAGESMITH_ALLOW_MISMATCH=1 is not set by the signed build record" in proc.stdout
    assert says + "Cmd is " in proc.stdout
    # LD_ variables are refused, each named (they were a child, a push, a signing and a verify of their own)
    assert says + "ENV LD_AUDIT=/tmp/audit.so is not set by the signed build record" in proc.stdout
    assert says + "ENV LD_LIBRARY_PATH=/tmp/lib is not set by the signed build record" in proc.stdout


def _refused_child(s, body: str, name: str, context: Path) -> str:
    """A child of the signed serve image (``body`` after its FROM) pushed as ``REPO:NAME`` and
    signed by a careless signer (``_sign_with_parent_record``): what verify says, refusing it."""
    child = _push_child(f"FROM {s['refs']['serve']}\n{body}", f"{s['repo']}:{name}", context)
    _sign_with_parent_record(s, child)
    proc = _verify(child, s["pub"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stdout


def test_a_relabelled_child_with_a_changed_layer_is_refused(signed, tmp_path):
    s = signed
    parity_label = _parent_record(s)["parity"]
    body = f"USER root\nRUN echo '# changed' >> /app/app/server.py\nUSER {IMAGE_USER}\n"
    said = _refused_child(s, body + f'LABEL io.imagesmith.parity="{parity_label}"\n', "child-relabelled", tmp_path)
    says = f"FAIL: signature: the parity attestation by {s['pub']} says otherwise: "
    assert says + "1 filesystem layer was added on top of the signed build record" in said
    assert says + "/app: app/server.py changed since the signed build record" in said


def test_a_replaced_interpreter_is_refused(signed, tmp_path):
    body = (
        "USER root\nRUN rm /opt/venv/bin/python && printf '#!/bin/sh\\nexec /usr/bin/python3 \"$@\"\\n' "
        f"> /opt/venv/bin/python && chmod +x /opt/venv/bin/python\nUSER {IMAGE_USER}\n"
    )
    said = _refused_child(signed, body, "child-python", tmp_path)
    assert "says otherwise: 1 filesystem layer was added on top of the signed build record" in said


def _model_copy(s, dest: Path) -> Path:
    shutil.copytree(s["model"], dest)
    return dest


def test_a_forged_stamp_is_refused(signed, tmp_path):
    s = signed
    edited = _model_copy(s, tmp_path / "edited")
    stamp = json.loads((edited / STAMP_FILE).read_text())
    stamp["command"] = ["python", "other.py"]
    (edited / STAMP_FILE).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    proc = _verify(s["refs"]["serve"], s["pub"], "--model", str(edited))
    assert proc.returncode == 1
    assert (
        f"FAIL: signature: {edited / STAMP_FILE} has no valid signature by {s['pub']}: the signature does not verify"
        in proc.stdout
    )

    resigned = _model_copy(s, tmp_path / "resigned")
    proc = cli("sign", "--model", str(resigned), "--key", str(s["other_key"]), env={"COSIGN_PASSWORD": PASSWORD})
    assert proc.returncode == 0, proc.stderr
    proc = _verify(s["refs"]["serve"], s["pub"], "--model", str(resigned))
    assert proc.returncode == 1
    assert f"{resigned / STAMP_FILE} has no valid signature by {s['pub']}: the signature does not verify" in proc.stdout
    assert f"{resigned / GOLDEN_FILE} has no valid signature by" in proc.stdout

    unsigned = _model_copy(s, tmp_path / "unsigned")
    (unsigned / (STAMP_FILE + ".sig")).unlink()
    proc = _verify(s["refs"]["serve"], s["pub"], "--model", str(unsigned))
    assert proc.returncode == 1 and f"{STAMP_FILE} is not signed (no {STAMP_FILE}.sig next to it)" in proc.stdout


def test_a_forged_signoff_is_refused(signed, tmp_path):
    s = signed
    record = json.loads(s["signoff"].read_text())
    edited = tmp_path / "edited.json"
    record["latency"]["p99_ms"] = 1.0
    edited.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    shutil.copy(f"{s['signoff']}.sig", f"{edited}.sig")
    proc = _verify(s["refs"]["serve"], s["pub"], "--model", str(s["model"]), "--signoff", str(edited))
    assert proc.returncode == 1
    assert (
        f"FAIL: signature: {edited} has no valid signature by {s['pub']}: the signature does not verify" in proc.stdout
    )
    assert f"FAIL: signature: {edited} is not the signoff record attested by {s['pub']}" in proc.stdout

    forged = tmp_path / "forged.json"  # a hand-made record that says it passed, with no signature
    forged.write_text(json.dumps({**record, "passed": True, "checks": []}))
    proc = _verify(s["refs"]["serve"], s["pub"], "--model", str(s["model"]), "--signoff", str(forged))
    assert proc.returncode == 1
    assert f"FAIL: signature: {forged} has no valid signature by {s['pub']}: {forged} is not signed" in proc.stdout

    # the train image carries no signoff attestation at all
    proc = _verify(s["refs"]["train"], s["pub"], "--model", str(s["model"]), "--signoff", str(s["signoff"]))
    assert proc.returncode == 1
    assert f"FAIL: signature: no signoff attestation by {s['pub']} on {s['refs']['train'].split('@')[1]}" in proc.stdout


def test_a_local_only_image_is_refused_with_a_hint(signed, engine):
    engine.tag(signed["ids"]["serve"], f"{TAG}:serve")  # the signed serve image under a local-only name
    proc = _verify(f"{TAG}:serve", signed["pub"])
    assert proc.returncode == 1
    assert "is not a registry reference: signatures and attestations live in a registry" in proc.stdout
    proc = cli("sign", f"{TAG}:serve", "--key", str(signed["key"]), env={"COSIGN_PASSWORD": PASSWORD})
    assert proc.returncode == 2 and "build with --push" in proc.stderr


def test_build_sign_with_registry_tags_pushes_then_signs(signed):
    """No --push, a registry tag (the module's build, ``signed``): the engine's images are pushed
    under REPO:ROLE, their digests checked, signed; each tag verifies with the key."""
    s = signed
    for role in ("train", "serve"):
        proc = _verify(f"{s['repo']}:{role}", s["pub"])
        assert proc.returncode == 0, proc.stdout
        assert f"resolves to {s['refs'][role]} in its registry" in proc.stdout


@pytest.fixture(scope="module")
def label_child(signed):
    """A child of the signed serve image with a parity label that does not hold: `imagesmith sign`
    refuses it, so it stays unsigned (the tag-moving test's unsigned child too)."""
    s = signed
    return _push_child(
        f"FROM {s['refs']['serve']}\nLABEL io.imagesmith.parity=sha256:{'0' * 64}\n",
        f"{s['repo']}:child-label",
        s["work"] / "child-label",
    )


def test_sign_refuses_an_image_whose_labels_do_not_hold(signed, label_child):
    s, child = signed, label_child
    proc = cli("sign", child, "--key", str(s["key"]), env={"COSIGN_PASSWORD": PASSWORD})
    assert proc.returncode == 2
    assert f"label io.imagesmith.parity is sha256:{'0' * 64}, but the manifest in imagesmith_image.json" in proc.stderr
    assert "not signing it" in proc.stderr
    assert _verify(child, s["pub"]).returncode == 1  # and nothing was attached


def test_every_cosign_call_reaches_the_loopback_registry_only(signed, tmp_path):
    """strace the whole gate (imagesmith, docker CLI, every cosign run): IP connections go to 127.0.0.1 only."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (apt-get install strace): the offline check needs it")
    s = signed
    trace = tmp_path / "connect.trace"
    proc = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=connect", "-o", str(trace), sys.executable, "-m", "imagesmith", "verify",
         s["refs"]["serve"], "--labels-only", "--key", str(s["pub"]), "--model", str(s["model"]),
         "--signoff", str(s["signoff"])],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    inet = [line for line in trace.read_text().splitlines() if "AF_INET" in line]
    assert inet, "no IP connection at all: the registry was not reached, the trace is wrong"
    elsewhere = [line for line in inet if 'inet_addr("127.0.0.1")' not in line]
    assert elsewhere == [], elsewhere


# ------------------------------------------------------------------------------------------------
# registry surgery by someone with push rights and no key: one resolution, every platform spelling


@pytest.mark.parametrize("spelling", [("linux", "x86_64"), ("Linux", "amd64")], ids=["x86_64", "Linux"])
def test_an_index_with_a_second_spelling_of_the_platform_is_refused(signed, config_child, spelling):
    s = signed
    tag = f"index-{spelling[0]}-{spelling[1]}".lower()
    index = put_index(s["repo"], tag, [entry(config_child, *spelling), entry(s["refs"]["serve"], "linux", "amd64")])
    # Docker runs the first entry that matches once normalised: the unsigned child (its ENV tells)
    assert "IMAGESMITH_ALLOW_MISMATCH=1" in docker_runs(index, "env")
    for ref in (f"{s['repo']}:{tag}", index):
        proc = _verify(ref, s["pub"], "--role", "serve")
        assert proc.returncode == 2, proc.stdout
        assert "2 entries Docker could run for linux/amd64 once platform names are normalised" in proc.stderr
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
        doc = json.loads(_verify(ref, s["pub"], "--json").stdout)
        assert doc["exit"] == 2 and "Docker runs the first" in doc["error"]


def test_an_index_naming_one_entry_is_checked_as_the_thing_a_deploy_pulls(signed):
    """An index an attacker wrote around the signed image: the entry is signed, the index is not,
    and `cosign verify` of the index's digest refuses it, so imagesmith does too."""
    s = signed
    index = put_index(s["repo"], "index-unsigned", [entry(s["refs"]["serve"], "linux", "amd64")])
    proc = _verify(index, s["pub"], "--role", "serve")
    assert proc.returncode == 1, proc.stdout
    assert (
        f"ok: signature: signed by {s['pub']}: a valid signature on {s['refs']['serve'].split('@')[1]}" in proc.stdout
    )
    assert f"FAIL: signature: no valid signature by {s['pub']} on the image index {index.split('@')[1]}" in proc.stdout
    assert proc.stdout.rstrip().endswith(f"NOT verified (parity {_parent_record(s)['parity']}) as {s['refs']['serve']}")


def test_a_tag_moved_during_the_run_changes_nothing(signed, label_child, monkeypatch):
    """The tag names an unsigned child (``label_child``) when verify starts; the attacker moves it
    to the signed image right after the first read. Every check stays on what was resolved first,
    the tag is read once, and the answer names that digest."""
    s, child = signed, label_child
    tagged = f"{s['repo']}:moving"
    move_tag(s["repo"], "moving", child)
    reads = move_after_first_read(monkeypatch, tagged, s["repo"], "moving", s["refs"]["serve"])
    proc = cli_in_process("verify", tagged, "--labels-only", "--key", str(s["pub"]), "--role", "serve", "--json")
    doc = json.loads(proc.stdout)
    unsigned = child.split("@")[1]
    assert proc.returncode == 1 and not doc["ok"]
    assert doc["digest"] == unsigned and doc["ref"] == child and doc["signature"]["digest"] == unsigned
    assert reads.count(tagged) == 1, reads
    assert all(ref == tagged or "@sha256:" in ref for ref in reads), reads
    assert any(f"no valid signature by {s['pub']} on {unsigned}" in line for line in doc["problems"])


def test_the_train_image_is_refused_where_serve_is_deployed(signed):
    s = signed
    proc = _verify(s["refs"]["train"], s["pub"], "--role", "serve")
    assert proc.returncode == 1, proc.stdout
    assert "FAIL: role: " in proc.stdout and "is a train image; this deploy expects serve" in proc.stdout
    assert "FAIL: signature: the signed record is of a train image, not serve" in proc.stdout
    proc = _verify(s["refs"]["serve"], s["pub"], "--role", "serve", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["ok"], doc["problems"]
    assert doc["ref"] == s["refs"]["serve"] and doc["digest"] == s["refs"]["serve"].split("@")[1]
    assert "signature: the signed record is of a serve image" in doc["checks"]
    proc = _verify(s["refs"]["serve"], s["pub"], "--role", "deploy")
    assert proc.returncode == 2 and "--role must be one of train, serve" in proc.stderr
