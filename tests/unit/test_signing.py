"""signing.py and gate.py without an engine: a fake ``cosign`` (a shell script that records its
arguments and answers as cosign 2.5 does) for the argument lists, the offline flags and the
error translation; fake registry reads for the gate's own logic. The real cosign, engine and
registry run in tests/engine/test_signing.py; these never stand in for it."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from imagesmith import parity
from imagesmith.engine import ImageInfo
from imagesmith.errors import SigningError, UsageError
from imagesmith.gate import gate_image
from imagesmith.record import (
    GPU_PREDICATE,
    PARITY_PREDICATE,
    gpu_contract,
    gpu_record_problems,
    make_gpu_record,
    make_record,
)
from imagesmith.signing import Cosign, Verdict, key_file
from tests.helpers import cli, fake_lock

DIGEST = "sha256:" + "ab" * 32
MANIFEST = parity.manifest_from_lock(fake_lock())
REF = f"127.0.0.1:5000/team/app@{DIGEST}"
PRIVATE = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nx\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
PUBLIC = "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n"


@pytest.fixture
def keys(tmp_path):
    (tmp_path / "cosign.key").write_text(PRIVATE)
    (tmp_path / "cosign.pub").write_text(PUBLIC)
    return tmp_path / "cosign.key", tmp_path / "cosign.pub"


def fake_cosign(tmp_path: Path, *, stderr: str = "", code: int = 0, stdout: str = "") -> tuple[Cosign, Path]:
    """A cosign that appends its argv and TUF_ROOT to a log and answers with ``stderr``/``code``."""
    log = tmp_path / "argv.log"
    script = tmp_path / "cosign"
    (tmp_path / "stdout").write_text(stdout)
    (tmp_path / "stderr").write_text(stderr)
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$* TUF_ROOT=$TUF_ROOT" >> {log}\n'
        'for a in "$@"; do case "$prev" in --output-signature) echo SIG > "$a";; esac; prev=$a; done\n'
        f"cat {tmp_path / 'stdout'}; cat {tmp_path / 'stderr'} >&2; exit {code}\n"
    )
    script.chmod(0o755)
    return Cosign(str(script), env={"COSIGN_PASSWORD": "", "PATH": os.environ["PATH"]}), log


def test_signing_uploads_nothing_and_verifying_looks_nothing_up(tmp_path, keys):
    key, pub = keys
    cosign, log = fake_cosign(tmp_path)
    cosign.sign(REF, key)
    cosign.attest(REF, key, PARITY_PREDICATE, {"a": 1})
    blob = tmp_path / "stamp.json"
    blob.write_text("{}")
    assert cosign.sign_blob(blob, key) == tmp_path / "stamp.json.sig"
    assert (tmp_path / "stamp.json.sig").read_text() == "SIG\n"
    lines = log.read_text().splitlines()
    assert all("--tlog-upload=false" in line for line in lines)
    assert lines[0].startswith(f"sign --key {key} --tlog-upload=false -y --allow-http-registry")
    assert f"--type {PARITY_PREDICATE} --predicate" in lines[1]
    # a private, empty trust root for every call: never the user's ~/.sigstore
    assert all("TUF_ROOT=/" in line and "imagesmith-tuf-" in line for line in lines)

    (tmp_path / "v").mkdir()
    cosign, log = fake_cosign(tmp_path / "v", stdout="[]")
    assert cosign.verify(REF, pub).ok
    assert cosign.verify_blob(blob, pub).ok
    for line in log.read_text().splitlines():
        assert "--insecure-ignore-tlog=true --offline=true" in line


def test_plain_http_only_for_a_loopback_registry(tmp_path, keys):
    cosign, log = fake_cosign(tmp_path)
    cosign.sign(f"192.0.2.1:5000/team/app@{DIGEST}", keys[0])  # TEST-NET-1: never reached, cosign is fake
    assert "--allow-http-registry" not in log.read_text() and "--allow-insecure-registry" not in log.read_text()


def test_tags_are_never_signed(tmp_path, keys):
    cosign, log = fake_cosign(tmp_path)
    with pytest.raises(SigningError, match="names no digest"):
        cosign.sign("127.0.0.1:5000/team/app:serve", keys[0])
    assert not log.exists()


@pytest.mark.parametrize(
    "stderr, message",
    [
        ("Error: signing b: reading key: decrypt: encrypted: decryption failed", "password is wrong"),
        ("Error: GET http://127.0.0.1:5000/v2/: dial tcp 127.0.0.1:5000: connect: connection refused", "registry does not answer"),
    ],
)  # fmt: skip
def test_failures_to_sign_are_errors_with_a_hint(tmp_path, keys, stderr, message):
    cosign, _ = fake_cosign(tmp_path, stderr=stderr, code=1)
    with pytest.raises(SigningError, match=message):
        cosign.sign(REF, keys[0])


def test_no_password_no_prompt(tmp_path, keys):
    cosign, log = fake_cosign(tmp_path)
    cosign.env.pop("COSIGN_PASSWORD")
    with pytest.raises(SigningError, match="COSIGN_PASSWORD is not set") as err:
        cosign.sign(REF, keys[0])
    assert err.value.hint and "export COSIGN_PASSWORD" in err.value.hint and not log.exists()


def test_cosign_missing_says_how_to_install_it(tmp_path, keys):
    cosign = Cosign("imagesmith-no-such-cosign", env={"COSIGN_PASSWORD": "", "PATH": str(tmp_path)})
    with pytest.raises(SigningError, match="is not installed") as err:
        cosign.verify(REF, keys[1])
    assert err.value.hint and "cosign/trixie" in err.value.hint


@pytest.mark.parametrize(
    "stderr, code, reason",
    [
        ("Error: no signatures found", 10, "unsigned: there is no signature on it at all"),
        ("Error: no matching signatures: invalid signature when validating ASN.1 encoded signature", 12,
         "signed, but not with this key"),
        ("Error: no matching signatures: invalid or missing digest in claim: sha256:00", 12,
         "a signature made for another digest"),
    ],
)  # fmt: skip
def test_verification_answers_are_verdicts_not_errors(tmp_path, keys, stderr, code, reason):
    cosign, _ = fake_cosign(tmp_path, stderr=stderr, code=code)
    verdict = cosign.verify(REF, keys[1])
    assert not verdict.ok and verdict.reason.startswith(reason)


def test_attestation_answers(tmp_path, keys):
    cosign, _ = fake_cosign(
        tmp_path,
        stderr=f"Error: none of the attestations matched the predicate type: x, found: {PARITY_PREDICATE}",
        code=1,
    )
    verdict = cosign.verify_attestations(REF, keys[1], "x")
    assert not verdict.ok and verdict.reason == f"no attestation of that type (there is: {PARITY_PREDICATE})"
    statement = {"predicateType": PARITY_PREDICATE, "subject": [], "predicate": {"a": 1}}
    envelope = json.dumps({"payload": base64.b64encode(json.dumps(statement).encode()).decode()})
    (tmp_path / "ok").mkdir()
    cosign, _ = fake_cosign(tmp_path / "ok", stdout=envelope + "\n")
    assert cosign.verify_attestations(REF, keys[1], PARITY_PREDICATE).payloads == (statement,)


def test_key_files_only(tmp_path, keys):
    key, pub = keys
    with pytest.raises(UsageError, match="does not exist"):
        key_file(tmp_path / "missing.key", "private")
    with pytest.raises(UsageError, match="not a key file"):
        key_file("awskms:///alias/x", "private")
    with pytest.raises(UsageError, match="it is a private key: verify with the .pub file"):
        key_file(key, "public")
    with pytest.raises(UsageError, match="not a cosign private key"):
        key_file(pub, "private")


def test_cli_usage_errors_exit_2(tmp_path, keys):
    proc = cli("sign", "--key", str(keys[0]))
    assert proc.returncode == 2 and "nothing to sign" in proc.stderr
    proc = cli("sign", "127.0.0.1:5000/team/app:serve", "--key", str(tmp_path / "nope.key"))
    assert proc.returncode == 2 and "key file" in proc.stderr and "cosign generate-key-pair" in proc.stderr
    proc = cli("build", "-p", str(tmp_path), "--sign", str(keys[0]))
    assert proc.returncode == 2 and "--sign needs --push" in proc.stderr
    proc = cli("sign", "--model", str(tmp_path), "--key", str(keys[0]))
    assert proc.returncode == 2 and "no imagesmith-stamp.json" in proc.stderr


# ------------------------------------------------------------------------------------------------
# the gate's own logic, on fake registry reads and a fake cosign object


def _info(**config) -> ImageInfo:
    cfg = {
        "Env": ["PATH=/usr/bin"],
        "Cmd": ["python"],
        "Labels": {"io.imagesmith.parity": parity.digest(MANIFEST), "io.imagesmith.role": "serve"},
    }
    cfg.update(config)
    return ImageInfo(
        ref=REF, id=DIGEST, labels=cfg["Labels"], layers=("sha256:l1",), repo_digests=(REF,), config=cfg,
        size=0, created="",
    )  # fmt: skip


class FakeEngine:
    def __init__(self, info: ImageInfo) -> None:
        self.info = info

    def registry_image(self, ref, platform=None):
        return self.info


class FakeCosign:
    def __init__(self, statements, signed=True):
        self.statements, self.signed = statements, signed

    def verify(self, ref, pub):
        claim = {"critical": {"image": {"docker-manifest-digest": DIGEST}}}
        return (
            Verdict(True, payloads=(claim,))
            if self.signed
            else Verdict(False, "unsigned: there is no signature on it at all")
        )

    def verify_attestations(self, ref, pub, kind):
        return Verdict(True, payloads=tuple(self.statements))


def _statement(record, digest=DIGEST):
    return {
        "predicateType": PARITY_PREDICATE,
        "subject": [{"digest": {"sha256": digest.split(":")[1]}}],
        "predicate": record,
    }


def test_the_gate_compares_the_signed_record_with_the_image(keys):
    record = make_record(_info(), MANIFEST, app=None, lock_digest=None)
    report = gate_image(FakeEngine(_info()), FakeCosign([_statement(record)]), REF, keys[1])  # type: ignore[arg-type]
    assert report.ok, report.problems
    changed = _info(Env=["PATH=/usr/bin", "LD_PRELOAD=/tmp/x.so"])
    report = gate_image(FakeEngine(changed), FakeCosign([_statement(record)]), REF, keys[1])  # type: ignore[arg-type]
    assert report.problems == [
        f"the parity attestation by {keys[1]} says otherwise: ENV LD_PRELOAD=/tmp/x.so is not set by the signed build record"
    ]


def test_the_signed_record_carries_the_manifest_that_hashes_to_its_parity(keys):
    record = make_record(_info(), MANIFEST, app=None, lock_digest=None)
    assert record["manifest"] == MANIFEST and record["parity"] == parity.digest(MANIFEST)
    edited = dict(record, manifest=dict(MANIFEST, seed=8))
    report = gate_image(FakeEngine(_info()), FakeCosign([_statement(edited)]), REF, keys[1])  # type: ignore[arg-type]
    assert report.problems == [
        f"the parity attestation by {keys[1]} says otherwise: the signed build record's manifest does not "
        f"hash to its parity {parity.digest(MANIFEST)}"
    ]


def test_a_statement_about_another_digest_or_an_unusable_record_is_refused(keys):
    record = make_record(_info(), MANIFEST, app=None, lock_digest=None)
    other = _statement(record, digest="sha256:" + "cd" * 32)
    report = gate_image(FakeEngine(_info()), FakeCosign([other]), REF, keys[1])  # type: ignore[arg-type]
    assert report.problems == [f"a parity attestation by {keys[1]} is not about {DIGEST} (type or subject differs)"]
    report = gate_image(FakeEngine(_info()), FakeCosign([_statement({"passed": True})]), REF, keys[1])  # type: ignore[arg-type]
    assert report.problems == [
        f"the parity attestation by {keys[1]} says otherwise: the signed build record is unusable: "
        "not an imagesmith build record (version 1)"
    ]


def test_unsigned_is_named_and_a_local_image_is_refused(keys):
    record = make_record(_info(), MANIFEST, app=None, lock_digest=None)
    report = gate_image(FakeEngine(_info()), FakeCosign([_statement(record)], signed=False), REF, keys[1])  # type: ignore[arg-type]
    assert report.problems == [
        f"no valid signature by {keys[1]} on {DIGEST}: unsigned: there is no signature on it at all"
    ]
    report = gate_image(FakeEngine(_info()), FakeCosign([]), "app:serve", keys[1])  # type: ignore[arg-type]
    assert report.problems and "app:serve is not a registry reference" in report.problems[0]


def test_build_sign_refuses_when_the_pushed_digest_is_not_the_built_one(keys):
    from imagesmith.build import BuildResult, BuiltImage
    from imagesmith.gate import sign_built

    class PushingEngine(FakeEngine):
        def push(self, ref):
            return "sha256:" + "ef" * 32  # the registry holds something else under that tag

    result = BuildResult(parity="sha256:p")
    result.images["serve"] = BuiltImage(role="serve", ref="127.0.0.1:5000/team/app:serve", id=DIGEST,
                                        tags=["127.0.0.1:5000/team/app:serve"])  # fmt: skip
    with pytest.raises(SigningError, match="the build made sha256:abab"):
        sign_built(PushingEngine(_info()), FakeCosign([]), result, keys[0], lock=None)  # type: ignore[arg-type]
    result.images["serve"] = BuiltImage(role="serve", ref="app:serve", id=DIGEST, tags=["app:serve"])
    with pytest.raises(UsageError, match="neither pushed nor tagged for a registry"):
        sign_built(PushingEngine(_info()), FakeCosign([]), result, keys[0], lock=None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# the GPU contract's attestation

CONTRACT = {"archs": None, "cuda": "12.9", "glibc": "2.36", "major": 12, "min_driver": "525.60.13"}
SECTION = {"cuda": "12.9", "major": 12, "min_driver": "525.60.13", "majors": {"12": ["nvidia-cuda-runtime-cu12"]}}


def _gpu_info(contract=CONTRACT) -> ImageInfo:
    labels = {**_info().labels, "io.imagesmith.gpu": json.dumps(contract, sort_keys=True)}
    return _info(Labels=labels)


class KindCosign(FakeCosign):
    """Statements per predicate type; a type without any: cosign's refusal."""

    def __init__(self, by_kind):
        super().__init__([])
        self.by_kind = by_kind

    def verify_attestations(self, ref, pub, kind):
        if kind not in self.by_kind:
            return Verdict(False, "no matching attestations")
        return Verdict(True, payloads=tuple(self.by_kind[kind]))


def _gpu_statement(predicate):
    return dict(_statement(predicate), predicateType=GPU_PREDICATE)


def test_the_gpu_record_is_the_labels_contract_and_the_facts_section():
    assert make_gpu_record(_info(), {"gpu": None}) is None  # a CPU image: nothing to attest
    gpu_record = make_gpu_record(_gpu_info(), {"gpu": SECTION})
    assert gpu_record == {
        "imagesmith_gpu": 1,
        "parity": parity.digest(MANIFEST),
        "role": "serve",
        "contract": CONTRACT,
        "section": SECTION,
    }
    assert gpu_record_problems(gpu_record, _gpu_info(), {"gpu": SECTION}) == []
    assert gpu_record_problems(gpu_record, _gpu_info(), None) == []  # facts unreadable: the label decides


def test_a_different_gpu_contract_is_named_field_by_field():
    gpu_record = make_gpu_record(_gpu_info(), {"gpu": SECTION})
    newer = _gpu_info({**CONTRACT, "cuda": "12.4", "min_driver": "550.54.14"})
    assert gpu_record_problems(gpu_record, newer, {"gpu": SECTION}) == [
        "the image's GPU contract differs from the signed GPU contract: "
        'cuda "12.4" (signed: "12.9"), min_driver "550.54.14" (signed: "525.60.13")'
    ]
    assert gpu_record_problems(gpu_record, _gpu_info(), {"gpu": {**SECTION, "major": 13}}) == [
        "the gpu section of the image's facts is not the signed GPU contract's"
    ]
    assert gpu_record_problems(gpu_record, _info(), None) == [
        "the image has no io.imagesmith.gpu label, but the signed GPU contract says it needs CUDA"
    ]
    assert gpu_record_problems({"passed": True}, _gpu_info(), None) == [
        "the signed GPU contract is unusable: not an imagesmith GPU record (version 1)"
    ]
    broken = _info(Labels={**_info().labels, "io.imagesmith.gpu": "{not json"})
    assert gpu_contract(broken)[0] is None and "io.imagesmith.gpu" in gpu_contract(broken)[1]


def test_the_gate_requires_the_gpu_attestation_of_a_gpu_image_only(keys, monkeypatch):
    import imagesmith.gate as gate

    monkeypatch.setattr(gate, "read_facts", lambda engine, info: ({"gpu": SECTION}, ""))
    info = _gpu_info()
    gpu_statement = _gpu_statement(make_gpu_record(info, {"gpu": SECTION}))
    both = {PARITY_PREDICATE: [_statement(make_record(info, MANIFEST, app=None, lock_digest=None))]}
    both[GPU_PREDICATE] = [gpu_statement]
    parity_only = {PARITY_PREDICATE: [_statement(make_record(_info(), MANIFEST, app=None, lock_digest=None))]}
    report = gate_image(FakeEngine(info), KindCosign(both), REF, keys[1])  # type: ignore[arg-type]
    assert report.ok, report.problems
    assert report.checks[-1] == (
        f"the GPU attestation by {keys[1]} matches the image's contract: CUDA 12.9, NVIDIA driver 525.60.13 or newer"
    )
    missing = {PARITY_PREDICATE: both[PARITY_PREDICATE]}
    report = gate_image(FakeEngine(info), KindCosign(missing), REF, keys[1])  # type: ignore[arg-type]
    assert report.problems == [
        f"no GPU attestation by {keys[1]} on {DIGEST} ({GPU_PREDICATE}): no matching attestations"
    ]
    # a CPU image: no GPU attestation is asked for
    report = gate_image(FakeEngine(_info()), KindCosign(parity_only), REF, keys[1])  # type: ignore[arg-type]
    assert report.ok, report.problems
    assert not any("GPU" in line for line in report.checks)
