"""Registry reads, through ``docker buildx imagetools inspect``. It uses Docker's own reference
rules (short names resolve as ``docker pull`` would), the docker CLI's credentials, and plain
HTTP for a loopback registry, and it never pulls. Pushing is the image store's (``Images.push``)
or the build's.

One read goes around it: ``Registry.top_layer``, one small layer blob fetched over the registry's
HTTP API (``registry_http.fetch_blob``: plain HTTP to a loopback registry, HTTPS elsewhere, with
the docker CLI's credentials when the registry asks for them), bounded, checked against its
digest and, unpacked, against the image config's diff ID: what ``verify --labels-only`` reads of
an image (its facts layer) without pulling it."""

from __future__ import annotations

import hashlib
import os
import re
import selectors
import subprocess
import tempfile
import time
import zlib

from ..errors import EngineError
from ..platforms import INDEX_MEDIA_TYPES, index_candidates, normalize, platform_string
from ..runtime.untrusted import MapOf, Opt, UntrustedInput, loads, printable, shape_problem
from ._common import redact, tail
from .records import HistoryEntry, ImageInfo
from .refs import repository

DEFAULT_PLATFORM = "linux/amd64"
MAX_ANSWER = 16 << 20  # bytes of a manifest, an index or an image config read from a registry
# The parts of an image config read here (a registry serves whatever was pushed)
CONFIG_SHAPE = {
    "os": Opt(str),
    "architecture": Opt(str),
    "created": Opt(str),
    "config": Opt(({"Labels": Opt((MapOf(str), None))}, None)),
    "rootfs": Opt({"diff_ids": Opt([str])}),
    "history": Opt(([{"created_by": Opt(str), "empty_layer": Opt(bool)}], None)),
}
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# what buildx says of content that does not parse as, or does not match, the manifest's description
_MALFORMED = (
    "cannot unmarshal",
    "invalid character",
    "unexpected end of json",
    "unexpected commit size",
    "failed to read expected number of bytes",
    "unexpected digest",
    "digest mismatch",
)
_INDEX_HINT = "push one index with one entry per platform (imagesmith build --platforms … --push does)"


def _shown(text: object, limit: int = 40) -> str:
    """A string a registry sent (a platform name, a digest), for a message: its first ``limit``
    characters, each one that is not printable escaped (``untrusted.printable``), and "…" when
    there were more. Whoever pushes writes it."""
    text = str(text)
    return printable(text[:limit]) + ("…" if len(text) > limit else "")


def _platform_shown(plat: dict) -> str:
    """``os/arch[/variant]`` of an index entry's platform, as written, for a message (``_shown``)."""
    return platform_string(*(_shown(plat[k]) if plat.get(k) else "" for k in ("os", "architecture", "variant")))


def _some(names: list[str], most: int = 8) -> str:
    """The first ``most`` of ``names``, and how many more: an index may list thousands."""
    more = len(names) - most
    return ", ".join(names[:most]) + (f" and {more} more" if more > 0 else "")


def _entry_line(entry: dict) -> str:
    plat = entry.get("platform")
    where = _platform_shown(plat) if isinstance(plat, dict) else "no platform"
    return f"{where} {_shown(entry.get('digest'), 19)}"


def _not_one_image(manifest: object) -> str:
    """Why ``manifest`` is not one image's manifest (OCI, or Docker's v2 schema 2), for a message;
    "" when it is one."""
    if not isinstance(manifest, dict):
        return "no manifest (not a JSON object)"
    if manifest.get("schemaVersion") == 1:
        return "a Docker v2 schema 1 manifest, which imagesmith does not read (nor does a current Docker pull it)"
    if manifest.get("mediaType") in INDEX_MEDIA_TYPES or "manifests" in manifest:
        return "an image index, not one image"
    if not isinstance(manifest.get("config"), dict) or not isinstance(manifest.get("layers"), list):
        return "no image manifest (no config and list of layers)"
    return ""


def _login_hint(ref: str) -> str:
    """``docker login HOST`` for the registry ``ref`` names (``docker login`` for a short name:
    Docker's default registry)."""
    first, slash, _ = repository(ref).partition("/")
    named = slash and ("." in first or ":" in first or first == "localhost")
    return f"docker login {first}" if named else "docker login"


class Registry:
    def __init__(self, timeout: int = 120) -> None:
        self.timeout = timeout
        # REPO@DIGEST -> the manifest bytes that hash to DIGEST, as read (by digest or by a tag)
        self._by_digest: dict[str, bytes] = {}

    def _imagetools(self, ref: str, *args: str) -> bytes:
        """``docker buildx imagetools inspect ARGS ref``'s output, run as bake is: the buildx plugin
        itself when it is found (``buildx_command``), without the docker command's own start-up
        and its check of the plugin's metadata (two programs' starts, 0.2-0.3 s of each read here)."""
        from .buildx import buildx_command

        command, extra = buildx_command()
        argv = [*command, "imagetools", "inspect", *args, ref]
        try:
            returncode, stdout, stderr = _bounded_run(argv, self.timeout, MAX_ANSWER, {**os.environ, **extra})
        except FileNotFoundError as exc:
            raise EngineError(
                "reading a registry needs docker buildx, which is not installed",
                hint="install the docker CLI with the buildx plugin (see docs/getting-started/installation.md)",
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"the registry did not answer for {ref} within {self.timeout} s") from exc
        if stdout is None:
            raise EngineError(
                f"the registry's answer for {ref} is more than {MAX_ANSWER >> 20} MiB: not read",
                hint="no image imagesmith builds has a manifest or config that large",
            )
        if returncode != 0:
            text = redact(stderr.decode("utf-8", "replace").strip())
            low = text.lower()
            if "rejecting" in low and "byte manifest" in low:  # buildx's own bound (its error ends "not found")
                raise EngineError(
                    f"the registry's manifest for {ref} is too large to read ({tail(text, 1)})",
                    hint="no image imagesmith builds has a manifest or config that large",
                )
            if "not found" in low or "manifest unknown" in low:
                raise EngineError(
                    f"{ref} is not in its registry ({tail(text, 1)})",
                    hint="check the name and tag, or push the image first",
                )
            if "unauthorized" in low or "denied" in low or "authentication required" in low:
                raise EngineError(
                    f"the registry refused to show {ref} ({tail(text, 1)})",
                    hint=_login_hint(ref),
                )
            if any(sign in low for sign in _MALFORMED):
                raise EngineError(
                    f"{ref} is not a valid image: what its registry holds for it does not parse, or is not "
                    f"what its manifest describes ({tail(text, 1)})",
                    hint="whoever pushed it did not push an image buildx or docker wrote; rebuild and push it",
                )
            raise EngineError(
                f"cannot read {ref} from its registry: {tail(text, 2)}",
                hint="check the registry is reachable from this machine",
            )
        return stdout

    def raw(self, ref: str) -> tuple[bytes, str]:
        """The manifest (or index) ``ref`` names, byte for byte, and its digest. What a read found
        is kept by ``REPO@DIGEST`` (content-addressed: those bytes are what that reference names),
        so a reference by that digest is not read again: a signature's tag, then its digest, is
        one registry read. A tag is read every time (it may have moved). Bytes read by a digest
        that do not hash to it are refused (buildx does not check them; docker pull does)."""
        asked = ref.rpartition("@")[2] if "@sha256:" in ref else ""
        data = self._by_digest.get(ref) if asked else None
        if data is None:
            data = self._imagetools(ref, "--raw")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if asked and digest != asked:
            raise EngineError(
                f"the registry sent, for {_shown(ref, 200)}, a manifest that hashes to {digest}: not the one asked for",
                hint="whatever answers at that address serves other bytes for a digest: do not deploy from it",
            )
        self._by_digest[f"{repository(ref)}@{digest}"] = data
        return data, digest

    def manifest(self, ref: str) -> tuple[object, str]:
        """The manifest (or index) ``ref`` names, parsed as bounded JSON (its shape is the
        caller's to check), and its digest."""
        raw, digest = self.raw(ref)
        try:
            return loads(raw, what=f"the manifest of {ref}", max_bytes=MAX_ANSWER), digest
        except UntrustedInput as exc:
            raise EngineError(f"the registry returned no manifest for {ref}: {str(exc)[:200]}") from exc

    def digest(self, ref: str) -> str:
        """The digest ``ref`` resolves to in its registry (an index's own digest for a
        multi-platform image), without pulling."""
        return self.raw(ref)[1]

    def platform_digest(self, ref: str, platform: str = DEFAULT_PLATFORM) -> tuple[str, str]:
        """(the digest of ``ref``'s manifest for ``platform``, the index digest or "") without
        pulling. A single manifest is its own digest, with no index. An image index resolves to
        the entry Docker on ``platform`` would run (``platforms.index_candidates``: normalised
        OS and architecture, first match); an index with more than one entry Docker could take
        for ``platform`` is refused, because which one runs is not the one a check looked at."""
        manifest, digest = self.manifest(ref)
        if not isinstance(manifest, dict):
            raise EngineError(f"the registry returned no manifest for {ref}")
        entries = manifest.get("manifests")
        if manifest.get("mediaType") not in INDEX_MEDIA_TYPES and entries is None:
            why = _not_one_image(manifest)
            if why:
                raise EngineError(
                    f"{ref} names {why}",
                    hint="push an image built by imagesmith build --push (or docker buildx) under that name",
                )
            return digest, ""
        if not isinstance(entries, list):
            raise EngineError(f"{ref} is an image index with no list of manifests", hint=_INDEX_HINT)
        media = manifest.get("mediaType")
        if "config" in manifest or "layers" in manifest or (media is not None and media not in INDEX_MEDIA_TYPES):
            raise EngineError(
                f"{ref} is both an image index (a list of manifests) and one image's manifest "
                f"(media type {_shown(media or 'none', 80)}, a config or layers): Docker refuses to pull it, "
                "and no check can say which of the two a deploy would take",
                hint=_INDEX_HINT,
            )
        chosen = index_candidates(entries, platform)
        if not chosen:
            have = sorted(
                {
                    _platform_shown(p)
                    for m in entries
                    if isinstance(m, dict) and isinstance(p := m.get("platform"), dict)
                    if p.get("architecture") != "unknown"
                }
            )
            raise EngineError(
                f"{ref} has no {platform} image in its index (it has {_some(have) or 'none'})",
                hint="build or push the image for that platform, or name another --platform",
            )
        if len(chosen) > 1:
            listed = "; ".join(_entry_line(m) for m in chosen[:4]) + (" …" if len(chosen) > 4 else "")
            raise EngineError(
                f"{ref} is an image index with {len(chosen)} entries Docker could run for {platform} "
                f"once platform names are normalised ({listed}): Docker runs the first, so no check "
                "can stand for what a deploy of it runs",
                hint=_INDEX_HINT,
            )
        entry = chosen[0]
        child = entry.get("digest")
        if not isinstance(child, str) or not _DIGEST.fullmatch(child):
            raise EngineError(f"{ref}'s index entry for {platform} has no valid digest", hint=_INDEX_HINT)
        if entry.get("mediaType") in INDEX_MEDIA_TYPES:
            raise EngineError(f"{ref}'s entry for {platform} is another index ({child})", hint=_INDEX_HINT)
        # what the entry names, read (by digest: kept for the config and layer reads that follow),
        # whatever media type the entry claims: an index behind a manifest's media type is refused
        why = _not_one_image(self.manifest(f"{repository(ref)}@{child}")[0])
        if why:
            raise EngineError(f"{ref}'s index entry for {platform} ({child[:19]}…) names {why}", hint=_INDEX_HINT)
        return child, digest

    def image(self, ref: str, platform: str = DEFAULT_PLATFORM) -> ImageInfo:
        """Labels, config, layers and history of ``ref`` read from its registry, without pulling.
        A multi-platform index resolves to ``platform`` (os/architecture)."""
        digest, index = self.platform_digest(ref, platform)
        pinned = f"{repository(ref)}@{digest}"
        # buildx holds the config in memory as its manifest sizes it (a gibibyte, if told so)
        described = self.manifest(pinned)[0]  # read already, by platform_digest: kept
        size = described["config"].get("size") if isinstance(described, dict) else None
        if type(size) is not int or size <= 0:
            raise EngineError(f"the manifest of {ref} gives no valid size of its image config ({_shown(size)})")
        if size > MAX_ANSWER:
            raise EngineError(
                f"the image config of {ref} is more than {MAX_ANSWER >> 20} MiB: not read (its manifest gives "
                f"{size} bytes)",
                hint="no image imagesmith builds has a manifest or config that large",
            )
        try:
            config = loads(
                self._imagetools(pinned, "--format", "{{json .Image}}"),
                what=f"the image config of {ref}",
                max_bytes=MAX_ANSWER,
            )
        except UntrustedInput as exc:
            raise EngineError(f"the registry returned no image config for {ref}: {str(exc)[:200]}") from exc
        problem = shape_problem(config, CONFIG_SHAPE)
        if problem or not isinstance(config, dict):
            raise EngineError(f"the registry returned no image config for {ref} ({problem or 'not an object'})")
        if (
            index
            and normalize(config.get("os"), config.get("architecture"))[:2] != normalize(*platform.split("/", 1))[:2]
        ):
            raise EngineError(
                f"{ref}'s index entry for {platform} ({digest}) is an image for "
                f"{platform_string(_shown(config.get('os')), _shown(config.get('architecture')))}: "
                "the index misstates it",
                hint=_INDEX_HINT,
            )
        cfg = config.get("config") or {}
        history = tuple(
            HistoryEntry(created_by=h.get("created_by") or "", empty_layer=bool(h.get("empty_layer")))
            for h in config.get("history") or ()
        )
        return ImageInfo(
            ref=ref,
            id=digest,
            labels=dict(cfg.get("Labels") or {}),
            layers=tuple((config.get("rootfs") or {}).get("diff_ids") or ()),
            repo_digests=(pinned,),
            config=cfg,
            size=0,
            created=config.get("created", ""),
            history=history,
            source="registry",
            platform=f"{config['os']}/{config['architecture']}"
            if config.get("os") and config.get("architecture")
            else "",
            index_digest=index,
        )

    def layer_sizes(self, pinned: str) -> tuple[int, ...]:
        """The bytes of each layer blob of the image ``pinned`` (``REPO@sha256:…``, one image's
        manifest), bottom first, as its manifest states them: compressed, as a push or pull sends."""
        manifest, _ = self.manifest(pinned)
        problem = shape_problem(manifest, {"layers": [{"size": int}]})
        if problem or not isinstance(manifest, dict):
            raise EngineError(f"the manifest of {pinned} lists no layers ({problem or 'not an object'})")
        return tuple(max(0, layer["size"]) for layer in manifest["layers"])

    def top_layer(self, pinned: str, diff_id: str, max_bytes: int, depth: int = 1) -> bytes:
        """The uncompressed tar of a layer of the image ``pinned`` (``REPO@sha256:…``, one image's
        manifest), ``depth`` from the top (1: the top layer), read over the registry's HTTP API
        without pulling; at most ``max_bytes`` (compressed and unpacked). The blob must hash to
        the manifest's digest and its tar to ``diff_id`` (the image config's diff ID of that
        layer): what came is that layer."""
        manifest, _ = self.manifest(pinned)
        problem = shape_problem(manifest, {"layers": [{"digest": str, "mediaType": str, "size": int}]})
        if problem or not isinstance(manifest, dict) or len(manifest["layers"]) < depth:
            raise EngineError(f"the manifest of {pinned} lists no layer {depth} from the top ({problem or 'none'})")
        layer = manifest["layers"][-depth]
        if not _DIGEST.fullmatch(layer["digest"]) or layer["size"] > max_bytes:
            raise EngineError(f"layer {depth} from the top of {pinned} is not a small layer ({layer['size']} bytes)")
        # here: `imagesmith --help` and a lock import no HTTP client
        from .registry_http import api_repository, fetch_blob

        host, name = api_repository(repository(pinned))
        blob = fetch_blob(host, name, layer["digest"], max_bytes, self.timeout)
        if "sha256:" + hashlib.sha256(blob).hexdigest() != layer["digest"]:
            raise EngineError(f"the registry sent a blob for {layer['digest'][:19]}… that does not hash to it")
        media = layer["mediaType"]
        if media.endswith("gzip"):
            unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                data = unpack.decompress(blob, max_bytes + 1)
            except zlib.error as exc:
                raise EngineError(f"the top layer of {pinned} is not gzip data ({exc})") from exc
            if len(data) > max_bytes or unpack.unconsumed_tail:
                raise EngineError(f"the top layer of {pinned} unpacks to more than {max_bytes} bytes")
        elif media.endswith(".tar") or media.endswith("diff.tar"):
            data = blob
        else:
            raise EngineError(f"the top layer of {pinned} is {media}, which imagesmith does not unpack")
        if "sha256:" + hashlib.sha256(data).hexdigest() != diff_id:
            raise EngineError(f"the top layer of {pinned} is not the image config's last layer ({diff_id[:19]}…)")
        return data


def _bounded_run(
    argv: list[str], timeout: float, limit: int, env: dict[str, str] | None = None
) -> tuple[int, bytes | None, bytes]:
    """Run ``argv`` (in ``env``, default this process's): (exit code, stdout or None when it passed
    ``limit`` bytes (the command is killed), the last 64 KiB of stderr). TimeoutExpired after
    ``timeout`` seconds."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)
        assert proc.stdout is not None
        out = bytearray()
        try:
            deadline = time.monotonic() + timeout
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise subprocess.TimeoutExpired(argv, timeout)
                    if not sel.select(left):
                        continue
                    chunk = os.read(proc.stdout.fileno(), 1 << 16)
                    if not chunk:
                        break
                    out += chunk
                    if len(out) > limit:
                        proc.kill()
                        proc.wait()
                        return proc.returncode, None, b""
            proc.wait(max(deadline - time.monotonic(), 1))
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        err.seek(0, 2)
        err.seek(max(err.tell() - (64 << 10), 0))
        return proc.returncode, bytes(out), err.read()
