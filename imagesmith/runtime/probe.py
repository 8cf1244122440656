"""What is really inside an image: the probe ``imagesmith verify`` and ``imagesmith diff`` run there.

It is part of the ``imagesmith-runtime`` wheel like all in-image code, but ``verify`` does not
run the image's copy: an image under test could carry an edited one. ``verify.py`` reads the
host's copy (this file) as text and runs it inside a container of the image under test (no
network, read-only root, the image's entrypoint bypassed), which also works for images built
before the wheel existed, as::

    <venv>/bin/python -I -S -c <this file> '<json options>'

``-I -S``: no environment variables, no user site, no ``site`` module, so no ``.pth`` file or
``sitecustomize`` in the image runs before the probe does, and nothing in the working directory
shadows the standard library. The probe trusts only the image's interpreter and standard library.

It prints one JSON object of facts and judges nothing; the host compares them with the parity
manifest. Standard library only, Python 3.8+ syntax: it must run in any image.

Facts reported:

- ``python``, ``platform`` (``linux/amd64`` style), ``path_python`` (``python`` found on the
  image's ``PATH``), the venv's ``pyvenv.cfg``;
- ``distributions``: for every ``*.dist-info`` in the venv's site-packages, its version and each
  file of its RECORD hashed with sha256 and compared with the RECORD's hash (``mismatched``,
  ``missing``), unchecked hash-based bytecode whose source hash no longer matches its source
  (``stale_bytecode``: Python would run code that is not in the ``.py``), and ``content``, a
  sha256 over the sorted (path, actual hash) pairs, so two images can be compared file by file;
- ``unrecorded``: files in site-packages that no RECORD lists (``__pycache__`` aside), hashed;
- ``preprocessing``: sha256 of each requested file under the app directory and in
  site-packages (null where absent) and the distribution that installed the latter, and stale
  bytecode next to them;
- ``dpkg``: installed Debian packages and versions (empty when the image has no dpkg database).
"""

import base64
import hashlib
import json
import os
import platform
import re
import shutil
import sys

PROBE_VERSION = 1
MACHINES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm/v7",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def canonical_name(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h


def record_hash(h):
    """A RECORD-style hash value: urlsafe base64 of the digest, without padding."""
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode("ascii")


def stale_bytecode(source_path):
    """The cached bytecode of ``source_path`` that Python would run without checking it against
    the source (unchecked hash-based .pyc) although it was compiled from other source."""
    import importlib.util

    out = []
    try:
        with open(source_path, "rb") as fh:
            source = fh.read()
    except OSError:
        return out
    digest = None
    for opt in ("", 1, 2):
        try:
            cached = importlib.util.cache_from_source(source_path, optimization=opt)
            with open(cached, "rb") as fh:
                header = fh.read(16)
        except (OSError, ValueError, NotImplementedError):
            continue
        if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
            continue  # another Python's bytecode: this interpreter ignores it
        flags = int.from_bytes(header[4:8], "little")
        if flags & 0b01 and not flags & 0b10:  # hash-based, check_source off
            if digest is None:
                digest = importlib.util.source_hash(source)
            if header[8:16] != digest:
                out.append(os.path.basename(cached))
    return out


def probe_distributions(site, want_files):
    import importlib.metadata as metadata

    dists = {}
    duplicates = []
    recorded = {}  # absolute path -> canonical name of the distribution whose RECORD lists it
    for dist in metadata.distributions(path=[site]):
        entry = {
            "version": None,
            "files": 0,
            "mismatched": [],
            "missing": [],
            "stale_bytecode": [],
            "unhashed": [],
            "error": None,
        }
        try:
            name = dist.metadata["Name"]
            entry["version"] = dist.version
        except Exception as exc:  # a broken METADATA is a finding, not a crash
            name = getattr(dist, "_path", "?")
            name = os.path.basename(str(name)).split("-")[0]
            entry["error"] = "unreadable metadata: %s" % exc
        key = canonical_name(name or "?")
        pairs = []
        hashes = {}
        try:
            files = dist.files
        except Exception as exc:
            files = None
            entry["error"] = "unreadable RECORD: %s" % exc
        if files is None:
            entry["error"] = entry["error"] or "no RECORD file"
            files = []
        for f in files:
            rel = str(f)
            path = os.path.normpath(str(dist.locate_file(f)))
            recorded.setdefault(path, key)
            if f.hash is None:
                if not rel.endswith(".dist-info/RECORD") and not rel.endswith(".pyc"):
                    entry["unhashed"].append(rel)
                continue
            entry["files"] += 1
            try:
                h = sha256_file(path)
            except OSError:
                entry["missing"].append(rel)
                pairs.append((rel, "missing"))
                continue
            actual = h.hexdigest()
            pairs.append((rel, actual))
            if want_files:
                hashes[rel] = actual
            if f.hash.mode != "sha256" or record_hash(h) != f.hash.value:
                entry["mismatched"].append(rel)
            if rel.endswith(".py"):
                entry["stale_bytecode"] += [
                    os.path.join(os.path.dirname(rel), "__pycache__", c) for c in stale_bytecode(path)
                ]
        fingerprint = hashlib.sha256()
        for rel, actual in sorted(pairs):
            fingerprint.update(("%s %s\n" % (rel, actual)).encode("utf-8", "surrogateescape"))
        entry["content"] = fingerprint.hexdigest()
        if want_files:
            entry["file_hashes"] = hashes
        for k in ("mismatched", "missing", "stale_bytecode", "unhashed"):
            entry[k].sort()
        if key in dists:
            duplicates.append(key)
            continue
        dists[key] = entry
    return dists, sorted(set(duplicates)), recorded


def probe_unrecorded(site, recorded):
    out = {}
    for root, dirs, files in os.walk(site):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in files:
            path = os.path.normpath(os.path.join(root, name))
            if path in recorded:
                continue
            rel = os.path.relpath(path, site)
            try:
                out[rel] = sha256_file(path).hexdigest()
            except OSError:
                out[rel] = "unreadable"
    return out


def probe_dpkg():
    texts = []
    try:
        with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as fh:
            texts.append(fh.read())
    except OSError:
        pass
    try:  # distroless images keep one file per package
        for name in sorted(os.listdir("/var/lib/dpkg/status.d")):
            with open(os.path.join("/var/lib/dpkg/status.d", name), encoding="utf-8", errors="replace") as fh:
                texts.append(fh.read())
    except OSError:
        pass
    packages = {}
    for text in texts:
        for stanza in text.split("\n\n"):
            fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", stanza, re.M))
            name, version = fields.get("Package"), fields.get("Version")
            if not name or not version:
                continue
            if not fields.get("Status", "install ok installed").endswith(" installed"):
                continue
            if name in packages and packages[name] != version:
                name = "%s:%s" % (name, fields.get("Architecture", "?"))
            packages[name] = version
    return dict(sorted(packages.items()))


def probe_preprocessing(app, site, paths, owners):
    """Each preprocessing file where the image may hold it: under the app directory (copied
    there) and in site-packages (installed by a distribution, ``owner``)."""
    files, stale = {}, []
    for rel in paths:
        entry = {"app": None, "site": None, "owner": None}
        for where, root in (("app", app), ("site", site)):
            if not root:
                continue
            path = os.path.normpath(os.path.join(root, rel))
            try:
                entry[where] = "sha256:" + sha256_file(path).hexdigest()
            except OSError:
                continue
            if where == "site":
                entry["owner"] = owners.get(path)
            if rel.endswith(".py"):
                stale += [[rel, os.path.join(os.path.dirname(path), "__pycache__", c)] for c in stale_bytecode(path)]
        files[rel] = entry
    return files, sorted(stale)


def main(argv):
    options = json.loads(argv[1]) if len(argv) > 1 else {}
    venv = options.get("venv", "/opt/venv")
    site = os.path.join(venv, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
    cfg = {}
    try:
        with open(os.path.join(venv, "pyvenv.cfg"), encoding="utf-8") as fh:
            for line in fh:
                if "=" in line:
                    k, v = line.split("=", 1)
                    cfg[k.strip()] = v.strip()
    except OSError:
        cfg = None
    facts = {
        "probe": PROBE_VERSION,
        "python": platform.python_version(),
        "platform": "%s/%s" % (sys.platform, MACHINES.get(platform.machine(), platform.machine())),
        "executable": sys.executable,
        "path_python": shutil.which("python", path=os.environ.get("PATH", "")),
        "venv": venv,
        "pyvenv_cfg": cfg,
        "site_packages": site if os.path.isdir(site) else None,
    }
    recorded = {}
    if facts["site_packages"]:
        dists, duplicates, recorded = probe_distributions(site, bool(options.get("files")))
        facts["distributions"] = dists
        facts["duplicates"] = duplicates
        facts["unrecorded"] = probe_unrecorded(site, recorded)
    else:
        facts["distributions"], facts["duplicates"], facts["unrecorded"] = {}, [], {}
    facts["preprocessing"], facts["preprocessing_stale_bytecode"] = probe_preprocessing(
        options.get("app", "/app"), facts["site_packages"], options.get("preprocessing", []), recorded
    )
    facts["dpkg"] = probe_dpkg()
    sys.stdout.write(json.dumps(facts, sort_keys=True, separators=(",", ":")))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
