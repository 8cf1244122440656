"""Signatures and attestations: the one place that runs the ``cosign`` CLI (Debian's package).

What imagesmith signs, always by digest (``REPO@sha256:…``, never a tag, which can move):

- an image's digest (``cosign sign``): the signature is stored beside the image in its registry
  (the tag ``sha256-<hex>.sig``, cosign's layout);
- in-toto attestations on that digest (``cosign attest``): the build record (``record.py``,
  predicate type ``record.PARITY_PREDICATE``) and the signoff record (``SIGNOFF_PREDICATE``),
  stored as ``sha256-<hex>.att``;
- files (``cosign sign-blob``): the model stamp and the golden outputs; the signature is written
  next to the file as ``<file>.sig`` (base64, cosign's own format).

Keys are cosign key pairs (``cosign generate-key-pair``), given as files: the private key's
password comes from ``COSIGN_PASSWORD`` (cosign reads it; set it, empty for a key made with an
empty password), never from a prompt. KMS and URL keys are refused here on purpose: they reach
the network. Keyless signing (Fulcio, OIDC) is the user's own set-up with cosign itself.

Offline by construction: signing never uploads to a transparency log (``--tlog-upload=false``),
verifying never consults one (``--insecure-ignore-tlog=true --offline=true``), so with a key file
cosign needs no trust root and reaches only the registry (checked with
``strace -f -e trace=connect``: each call connects to the registry alone; no DNS, no TUF
mirror, no Rekor). Each call also gets a private, empty ``TUF_ROOT`` so a trust root cached in
the user's ``~/.sigstore`` is neither read nor written. Plain HTTP and unverified TLS
(``--allow-http-registry --allow-insecure-registry``) are allowed for a loopback registry only.

Verification outcomes that are answers (unsigned, another key, no attestation of that type,
a blob changed since signing) come back as a ``Verdict``; failures to ask at all (no cosign, a
key that is not a key file, a wrong password, a registry that does not answer) raise
``SigningError``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .credentials import redact
from .engine import is_loopback_registry
from .errors import SigningError, UsageError
from .fsutil import atomic_write, read_head

COSIGN_HINT = (
    "install cosign (Debian 13's package: `apt-get install cosign/trixie`, which scripts/setup-engine.sh "
    "does with its guard), or put a cosign 2.x on PATH"
)
SIG_SUFFIX = ".sig"  # a signed file's signature: next to it, same name + .sig


@dataclass(frozen=True)
class Verdict:
    """The answer of a verification: ``ok``, or why not (one line, for a report)."""

    ok: bool
    reason: str = ""
    payloads: tuple[dict[str, Any], ...] = field(default=())  # verified payloads (signatures or statements)


def signature_path(path: Path) -> Path:
    return Path(str(path) + SIG_SUFFIX)


def require_digest_ref(ref: str) -> None:
    if "@sha256:" not in ref:
        raise SigningError(f"{ref} names no digest: imagesmith signs and verifies digests only, never tags")


def key_file(path: str | Path, kind: str) -> Path:
    """``path`` as a local cosign key file of ``kind`` ("private" or "public"); UsageError (exit 2)
    when it is missing or is the other kind of key."""
    key = Path(path)
    if "://" in str(path):
        raise UsageError(
            f"{path} is not a key file: imagesmith signs with cosign key files only (KMS and URL keys reach the network)",
            hint="use cosign itself for KMS or keyless signing; see docs/guides/deploy-gate.md",
        )
    try:
        head = read_head(key, 200)  # a 2 GB key file is not read whole, a FIFO not waited on
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        raise UsageError(
            f"key file {path} does not exist" if missing else f"key file {path} cannot be read: {exc.strerror or exc}",
            hint="make a key pair with `cosign generate-key-pair` (cosign.key signs, cosign.pub verifies)",
        ) from None
    if kind == "private" and b"PRIVATE KEY" not in head:
        raise UsageError(f"{path} is not a cosign private key", hint="sign with cosign.key; cosign.pub verifies")
    if kind == "public" and b"PUBLIC KEY" not in head:
        raise UsageError(
            f"{path} is not a public key"
            + (" (it is a private key: verify with the .pub file)" if b"PRIVATE KEY" in head else ""),
            hint="verify with the public key, cosign.pub",
        )
    return key


class Cosign:
    """The cosign CLI, offline (see the module docstring). ``env`` is the environment cosign
    runs with (default: this process's), from which it reads ``COSIGN_PASSWORD``."""

    def __init__(self, binary: str = "cosign", *, timeout: int = 300, env: Mapping[str, str] | None = None) -> None:
        self.binary = binary
        self.timeout = timeout
        self.env = dict(os.environ if env is None else env)

    # ---- images ------------------------------------------------------------------------------

    def sign(self, ref: str, key: Path) -> None:
        """Sign the digest ``ref`` names with the private key file ``key``."""
        require_digest_ref(ref)
        self._signing(key)
        self._run(["sign", "--key", str(key), "--tlog-upload=false", "-y", *_registry_flags(ref), ref], ref)

    def attest(self, ref: str, key: Path, predicate_type: str, predicate: dict[str, Any]) -> None:
        """Attach an in-toto attestation of ``predicate_type`` with ``predicate`` to ``ref``'s digest."""
        require_digest_ref(ref)
        self._signing(key)
        with tempfile.TemporaryDirectory(prefix="imagesmith-attest-") as tmp:
            path = Path(tmp) / "predicate.json"
            path.write_text(json.dumps(predicate, sort_keys=True), encoding="utf-8")
            argv = ["attest", "--key", str(key), "--tlog-upload=false", "-y", "--type", predicate_type]
            self._run([*argv, "--predicate", str(path), *_registry_flags(ref), ref], ref)

    def verify(self, ref: str, pub: Path) -> Verdict:
        """Is there a signature by ``pub``'s key on ``ref``'s digest? Payloads: cosign's
        signed claims (``critical.image.docker-manifest-digest`` names the digest)."""
        require_digest_ref(ref)
        argv = ["verify", "--key", str(pub), "--insecure-ignore-tlog=true", "--offline=true", "--output", "json"]
        proc = self._run([*argv, *_registry_flags(ref), ref], ref, check=False)
        if proc.returncode != 0:
            return Verdict(False, _refusal(proc.stderr, "signature"))
        try:
            payloads = tuple(json.loads(proc.stdout))
        except ValueError:
            return Verdict(False, "cosign printed no signature payloads")
        return Verdict(True, payloads=payloads)

    def verify_attestations(self, ref: str, pub: Path, predicate_type: str) -> Verdict:
        """The in-toto statements of ``predicate_type`` on ``ref``'s digest whose signatures
        ``pub`` verifies (decoded; cosign checked each statement's subject digest)."""
        require_digest_ref(ref)
        argv = ["verify-attestation", "--key", str(pub), "--insecure-ignore-tlog=true", "--offline=true"]
        proc = self._run([*argv, "--type", predicate_type, *_registry_flags(ref), ref], ref, check=False)
        if proc.returncode != 0:
            return Verdict(False, _refusal(proc.stderr, "attestation"))
        statements = []
        for line in proc.stdout.splitlines():
            if not line.strip():
                continue
            try:
                envelope = json.loads(line)
                statement = json.loads(base64.b64decode(envelope["payload"]))
            except (ValueError, KeyError, TypeError):
                return Verdict(False, "cosign printed an attestation that is not a DSSE envelope")
            statements.append(statement)
        return Verdict(True, payloads=tuple(statements))

    # ---- files -------------------------------------------------------------------------------

    def sign_blob(self, path: Path, key: Path) -> Path:
        """Sign the file ``path``; the signature goes next to it (``<path>.sig``), atomically."""
        self._signing(key)
        target = signature_path(path)
        with tempfile.TemporaryDirectory(prefix="imagesmith-sig-") as tmp:
            out = Path(tmp) / "blob.sig"
            argv = ["sign-blob", "--key", str(key), "--tlog-upload=false", "-y", "--output-signature", str(out)]
            self._run([*argv, str(path)], str(path))
            atomic_write(target, out.read_bytes())
        return target

    def verify_blob(self, path: Path, pub: Path) -> Verdict:
        """Does ``<path>.sig`` verify ``path``'s bytes with ``pub``?"""
        sig = signature_path(path)
        if not sig.is_file():
            return Verdict(False, f"{path} is not signed (no {sig.name} next to it)")
        argv = ["verify-blob", "--key", str(pub), "--insecure-ignore-tlog=true", "--offline=true"]
        proc = self._run([*argv, "--signature", str(sig), str(path)], str(path), check=False)
        if proc.returncode != 0:
            return Verdict(False, _refusal(proc.stderr, "blob"))
        return Verdict(True)

    # ---- the one subprocess ------------------------------------------------------------------

    def _signing(self, key: Path) -> None:
        if "COSIGN_PASSWORD" not in self.env:
            raise SigningError(
                "COSIGN_PASSWORD is not set: cosign reads the private key's password from it (imagesmith never prompts)",
                hint=f"export COSIGN_PASSWORD=… (empty for a key made with an empty password) and sign with {key} again",
            )

    def _run(self, args: Sequence[str], what: str, *, check: bool = True) -> subprocess.CompletedProcess:
        binary = shutil.which(self.binary) if os.sep not in self.binary else self.binary
        if binary is None:
            raise SigningError(
                f"{self.binary} is not installed: signing and signature checks need cosign", hint=COSIGN_HINT
            )
        with tempfile.TemporaryDirectory(prefix="imagesmith-tuf-") as tuf:
            env = {**self.env, "TUF_ROOT": tuf}
            try:
                proc = subprocess.run(
                    [binary, *args],
                    capture_output=True,
                    text=True,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    timeout=self.timeout,
                )
            except FileNotFoundError as exc:
                raise SigningError(f"{binary} cannot be run: {exc}", hint=COSIGN_HINT) from exc
            except subprocess.TimeoutExpired as exc:
                raise SigningError(f"cosign {args[0]} {what} did not finish within {self.timeout} s") from exc
        if proc.returncode != 0 and (check or _is_failure_to_ask(proc.stderr)):
            raise _error(args[0], what, proc.stderr)
        return proc


def _registry_flags(ref: str) -> list[str]:
    return ["--allow-http-registry", "--allow-insecure-registry"] if is_loopback_registry(ref) else []


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    text = lines[-1] if lines else "no message"
    for prefix in ("error during command execution: ", "Error: "):
        text = text.removeprefix(prefix)
    return redact(text)


def _is_failure_to_ask(stderr: str) -> bool:
    """cosign could not check at all (a key it cannot load, a registry it cannot reach), as
    opposed to a check that does not hold."""
    low = stderr.lower()
    return any(
        word in low
        for word in (
            "loading public key",
            "reading key",
            "connection refused",
            "no such host",
            "i/o timeout",
            "unauthorized",
            "denied",
            "manifest unknown",
            "name unknown",
        )
    ) and not ("no signatures found" in low or "no matching" in low)


def _refusal(stderr: str, what: str) -> str:
    """cosign's answer for a check that does not hold, in words a deploy log can act on."""
    low = stderr.lower()
    if "no signatures found" in low:
        return "unsigned: there is no signature on it at all"
    if "invalid or missing digest in claim" in low or "no matching subject digest" in low:
        return "a signature made for another digest (copied from another image)"
    if "none of the attestations matched the predicate type" in low:
        found = low.rsplit("found:", 1)[-1].strip() if "found:" in low else ""
        return "no attestation of that type" + (f" (there is: {found})" if found else "")
    if "no matching attestations" in low:
        return "no attestation verifies with this key (none attached, or made with another key)"
    if "no matching signatures" in low or "invalid signature" in low:
        if what == "blob":
            return "the signature does not verify: the file changed since it was signed, or another key signed it"
        return "signed, but not with this key (another key, or an altered signature)"
    return _last_error(stderr)


def _error(command: str, what: str, stderr: str) -> SigningError:
    text = _last_error(stderr)
    low = stderr.lower()
    if "decryption failed" in low:
        return SigningError(
            f"cosign {command} {what}: the private key's password is wrong",
            hint="set COSIGN_PASSWORD to the password the key pair was made with",
        )
    if "pem to public key" in low or "loading public key" in low:
        return SigningError(f"cosign {command} {what}: the key is not a cosign public key ({text})")
    if "connection refused" in low or "no such host" in low or "i/o timeout" in low:
        return SigningError(
            f"cosign {command} {what}: the registry does not answer ({text})",
            hint="check the registry is reachable from this machine",
        )
    if "unauthorized" in low or "denied" in low:
        return SigningError(f"cosign {command} {what}: the registry refused ({text})", hint="log in (docker login)")
    return SigningError(f"cosign {command} {what} failed: {text}")
