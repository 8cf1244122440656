"""Small real package indexes on 127.0.0.1 for the per-package index tests.

``serve_indexes(folder, {"general": [...], "pinned": [...]})`` writes a PEP 503 tree per index
(``simple/<project>/index.html`` with ``#sha256=`` links into ``files/``) and serves each with
``http.server`` on a free loopback port. Every wheel says which index it came from
(``<name>.FROM``), so a test can check inside an image which file was installed.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import io
import threading
import zipfile
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Sequence


def wheel(
    name: str, version: str, origin: str, requires: Sequence[str] = (), extra: dict[str, bytes] | None = None
) -> tuple[str, bytes]:
    """A pure-Python wheel of ``name`` ``version`` whose module records ``origin`` (and holds the
    ``extra`` files, each listed in its RECORD like the rest)."""
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\nFROM = {origin!r}\n".encode()}
    files.update(extra or {})
    dist = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files[f"{dist}/METADATA"] = (metadata + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
        for p, d in files.items()
    )
    files[f"{dist}/RECORD"] = (record + f"{dist}/RECORD,,\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), data)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


@dataclass
class Index:
    url: str  # http://127.0.0.1:PORT/simple
    hashes: dict[tuple[str, str], str]  # (name, version) -> "sha256:<hex>" of the file it serves
    requests: list[str]  # every path asked for, in order

    def asked_for(self, name: str) -> bool:
        """Whether anything asked this index about project ``name`` (its page or its files)."""
        return any(p.startswith((f"/simple/{name}/", f"/simple/{name}?", f"/files/{name}-")) for p in self.requests)


def write_index(root: Path, origin: str, dists: Sequence[tuple]) -> dict[tuple[str, str], str]:
    """A PEP 503 tree under ``root`` for ``dists`` = [(name, version, requires...), ...]; a
    ``dict`` among the requires is extra files for the wheel ({path: bytes})."""
    pages: dict[str, list[str]] = {}
    hashes = {}
    (root / "files").mkdir(parents=True, exist_ok=True)
    for name, version, *rest in dists:
        requires = [r for r in rest if isinstance(r, str)]
        extra = next((r for r in rest if isinstance(r, dict)), None)
        filename, data = wheel(name, version, origin, requires, extra)
        (root / "files" / filename).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        hashes[(name, version)] = f"sha256:{digest}"
        pages.setdefault(name, []).append(f'<a href="../../files/{filename}#sha256={digest}">{filename}</a><br>')
    for name, links in pages.items():
        page = root / "simple" / name
        page.mkdir(parents=True, exist_ok=True)
        (page / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    return hashes


class _Recording(SimpleHTTPRequestHandler):
    def __init__(self, *args, requests: list[str], **kwargs):
        self.requests = requests
        super().__init__(*args, **kwargs)

    def log_message(self, *args):
        pass

    def send_head(self):
        self.requests.append(self.path)
        return super().send_head()


@contextlib.contextmanager
def serve_indexes(folder: Path, contents: dict[str, Sequence[tuple]]) -> Iterator[dict[str, Index]]:
    """One loopback index per entry of ``contents`` (its key is also the wheels' ``FROM``)."""
    servers, out = [], {}
    try:
        for origin, dists in contents.items():
            root = folder / origin
            hashes = write_index(root, origin, dists)
            requests: list[str] = []
            handler = functools.partial(_Recording, directory=str(root), requests=requests)
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            servers.append(server)
            out[origin] = Index(f"http://127.0.0.1:{server.server_address[1]}/simple", hashes, requests)
        yield out
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def timestamp_pyc(source: bytes, filename: str, mtime: int = 1_700_000_000) -> bytes:
    """Bytecode of ``source`` for this Python with a timestamp header, as a wheel built on another
    machine ships it (numpy's cp311 wheel lists such files in its RECORD)."""
    import importlib.util
    import marshal

    code = compile(source, filename, "exec")
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
    return header + mtime.to_bytes(4, "little") + len(source).to_bytes(4, "little") + marshal.dumps(code)


# The scenario the tests share: `pinme` on both indexes with different files and versions (the
# general index has a higher, look-alike 3.0), `other` (which needs pinme) on both, 9.0 only on
# the pinned index. Pinned: pinme -> pinned. Right answer: pinme==2.0 from the pinned index,
# other==1.0 from the general one.
SCENARIO = {
    "general": [("pinme", "1.0"), ("pinme", "3.0"), ("other", "1.0", "pinme")],
    "pinned": [("pinme", "1.0"), ("pinme", "2.0"), ("other", "9.0")],
}
