"""Distributions published only as source (an sdist, no wheel for the target), inside the build.

Standard library only (part of the ``imagesmith-runtime`` wheel): the build runs it from that
wheel as ``python3 -m imagesmith_runtime.sdists``. Three steps, each reading the pip-format
``requirements.lock``:

``sdists REQUIREMENTS WHEELS``
    prints the requirement lines (with their locked hashes) of the distributions for which
    WHEELS holds an sdist and no wheel. The ``sdist-build`` stage gives them to
    ``pip wheel --require-hashes``: the sdist is checked against the lock, then built (with the
    compilers that stage installs when ``toolchain`` says so; they never reach the images).

``toolchain REQUIREMENTS WHEELS``
    says, one ``imagesmith: sdist NAME-VERSION: ...`` line each on stderr, whether each of those
    sdists compiles something, and prints on stdout the names of those that do: the stage
    installs the compilers only when there is one. Decided from the archive's member names alone
    (``compiled_source``), never by building without compilers first: an sdist with optional C
    speedups would then build without them, silently.

``rehash REQUIREMENTS BUILT``
    prints REQUIREMENTS with the hashes of each distribution built in BUILT replaced by the
    sha256 of the wheel built from its (hash-checked) sdist, so the install step still runs
    its ``uv pip install --require-hashes`` over everything.
"""

import hashlib
import os
import re
import struct
import sys
import tarfile
import zipfile

_BLOCK_HEAD = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
_SDIST = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)\.(?:tar\.gz|zip)$")


# What makes an sdist need compilers: a source file of a compiled language, or a build system's file.
COMPILED_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".h", ".hpp", ".pyx", ".pxd", ".f", ".f90", ".rs", ".go")
BUILD_SYSTEM_FILES = ("Cargo.toml", "CMakeLists.txt", "meson.build")
# Bounds on what is read of an archive: members, one name's length, and (for a tar.gz) the bytes
# decompressed, so a hostile archive costs no more than a large real one (numpy: ~10,000 members).
MAX_MEMBERS = 100_000
MAX_NAME = 4096
MAX_TAR_BYTES = 4 << 30
# A tar's extended header (a GNU long name or link, a pax header) is read whole by tarfile before
# its member is seen: bounded here, or a hostile one is decompressed into memory at once.
MAX_HEADER = 1 << 20


class ArchiveError(Exception):
    """An sdist whose member names cannot be read within the bounds: says why."""


class _BoundedTarInfo(tarfile.TarInfo):
    """A ``TarInfo`` that refuses an extended header larger than ``MAX_HEADER`` before reading it."""

    def _proc_member(self, tarfile_):
        extended = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE)
        if self.type in (*extended, tarfile.SOLARIS_XHDTYPE) and self.size > MAX_HEADER:
            raise ArchiveError(f"an extended header of more than {MAX_HEADER} bytes")
        return super()._proc_member(tarfile_)


def _names_tar(path):
    with tarfile.open(path, mode="r|gz", tarinfo=_BoundedTarInfo) as archive:
        for count, member in enumerate(archive, 1):
            if count > MAX_MEMBERS:
                raise ArchiveError(f"more than {MAX_MEMBERS} members")
            if member.offset_data + member.size > MAX_TAR_BYTES:
                raise ArchiveError(f"more than {MAX_TAR_BYTES} bytes uncompressed")
            yield member.name


_ZIP_HELPERS = (
    "_EndRecData",
    "_ECD_ENTRIES_TOTAL",
    "_ECD_SIZE",
    "_ECD_LOCATION",
    "_ECD_SIGNATURE",
    "_CD_SIGNATURE",
    "_CD_FILENAME_LENGTH",
    "_CD_EXTRA_FIELD_LENGTH",
    "_CD_COMMENT_LENGTH",
    "_CD_FLAG_BITS",
    "stringEndArchive64",
    "sizeEndCentDir64",
    "sizeEndCentDir64Locator",
    "sizeCentralDir",
    "structCentralDir",
    "stringCentralDir",
)


def _names_zip(path):
    """The member names of the zip at ``path``, read one central-directory record at a time (as
    ``zipfile`` reads them, without building its list of every member first): a directory of
    more than ``MAX_MEMBERS`` records, stated in its end record or found, is refused from there.
    This reads with ``zipfile``'s own private helpers; a Python whose ``zipfile`` lacks them (the
    base's, any version) gets the public reader and the count checked after it."""
    if not all(hasattr(zipfile, name) for name in _ZIP_HELPERS):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if len(names) > MAX_MEMBERS:
            raise ArchiveError(f"more than {MAX_MEMBERS} members")
        yield from names
        return
    with open(path, "rb") as fh:
        end = zipfile._EndRecData(fh)  # the end record (zip64's when there is one): the stdlib's reader
        if not end:
            raise zipfile.BadZipFile("File is not a zip file")
        if end[zipfile._ECD_ENTRIES_TOTAL] > MAX_MEMBERS:
            raise ArchiveError(f"more than {MAX_MEMBERS} members")
        size = end[zipfile._ECD_SIZE]
        start = end[zipfile._ECD_LOCATION] - size  # as zipfile finds it, data before the zip allowed
        if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
            start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
        if start < 0:
            raise zipfile.BadZipFile("Bad offset for central directory")
        fh.seek(start)
        read, count = 0, 0
        while read < size:
            count += 1
            if count > MAX_MEMBERS:
                raise ArchiveError(f"more than {MAX_MEMBERS} members")
            record = fh.read(zipfile.sizeCentralDir)
            if len(record) != zipfile.sizeCentralDir:
                raise zipfile.BadZipFile("Truncated central directory")
            fields = struct.unpack(zipfile.structCentralDir, record)
            if fields[zipfile._CD_SIGNATURE] != zipfile.stringCentralDir:
                raise zipfile.BadZipFile("Bad magic number for central directory")
            raw = fh.read(fields[zipfile._CD_FILENAME_LENGTH])
            skipped = fields[zipfile._CD_EXTRA_FIELD_LENGTH] + fields[zipfile._CD_COMMENT_LENGTH]
            fh.seek(skipped, os.SEEK_CUR)
            read += len(record) + len(raw) + skipped
            name = raw.decode("utf-8" if fields[zipfile._CD_FLAG_BITS] & 0x800 else "cp437")
            yield name.split("\0", 1)[0]  # as zipfile's ZipInfo keeps it


def compiled_source(path):
    """The first member of the sdist at ``path`` (a .tar.gz or .zip; read, never extracted) that
    needs compilers, relative to the sdist's top folder, or None for a pure-Python sdist. Raises
    ``ArchiveError`` when the member names cannot be read within the bounds above."""
    names = _names_zip(path) if path.endswith(".zip") else _names_tar(path)
    try:
        for name in names:
            if len(name) > MAX_NAME:
                raise ArchiveError(f"a member name longer than {MAX_NAME} characters")
            inner = name.split("/", 1)[1] if "/" in name else name
            base = inner.rsplit("/", 1)[-1]
            if base in BUILD_SYSTEM_FILES or base.lower().endswith(COMPILED_SUFFIXES):
                return inner
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, ValueError, UnicodeError) as exc:
        raise ArchiveError(f"not a readable {'zip' if path.endswith('.zip') else 'tar.gz'} archive ({exc})") from exc
    return None


def toolchain(text, folder, say):
    """The names (NAME-VERSION) of the sdists ``sdist_requirements`` keeps that need compilers;
    ``say`` gets one line for each of those sdists, in the lock's order."""
    wheels, sdists = _artifacts(folder)
    needed = []
    for name, version, _ in blocks(text):
        if name is None or (name, version) not in sdists or (name, version) in wheels:
            continue
        entry = sdists[(name, version)]
        label = entry[: -len(".zip")] if entry.endswith(".zip") else entry[: -len(".tar.gz")]
        try:
            found = compiled_source(os.path.join(folder, entry))
        except ArchiveError as exc:
            raise ArchiveError(f"sdist {entry}: {exc}") from exc
        if found is None:
            say(f"imagesmith: sdist {label}: pure Python, built without compilers")
        else:
            shown = "".join(c if c.isprintable() else "?" for c in found)  # one line in the build log
            say(f"imagesmith: sdist {label}: compiled sources ({shown}): compilers installed")
            needed.append(label)
    return needed


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def blocks(text):
    """[(name, version, lines)] of a requirements.lock, one block per distribution; comments
    and blank lines are kept as blocks with name None."""
    out = []
    for line in text.splitlines():
        m = _BLOCK_HEAD.match(line)
        if m:
            out.append((normalise(m.group(1)), m.group(2), [line]))
        elif line.startswith((" ", "\t")) and out and out[-1][0] is not None:
            out[-1][2].append(line)
        else:
            out.append((None, None, [line]))
    return out


def _artifacts(folder):
    wheels, sdists = set(), {}
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if entry.endswith(".whl"):
            parts = entry[:-4].split("-")
            wheels.add((normalise(parts[0]), parts[1]))
        else:
            m = _SDIST.match(entry)
            if m:
                sdists[(normalise(m.group("name")), m.group("version"))] = entry
    return wheels, sdists


def sdist_requirements(text, folder):
    wheels, sdists = _artifacts(folder)
    keep = []
    for name, version, lines in blocks(text):
        if name is not None and (name, version) in sdists and (name, version) not in wheels:
            keep.append("\n".join(lines).rstrip(" \\"))
    return "\n".join(keep) + ("\n" if keep else "")


def rehash(text, built):
    digests = {}
    for entry in sorted(os.listdir(built)) if os.path.isdir(built) else []:
        if entry.endswith(".whl"):
            parts = entry[:-4].split("-")
            with open(os.path.join(built, entry), "rb") as fh:
                digests[(normalise(parts[0]), parts[1])] = hashlib.sha256(fh.read()).hexdigest()
    out = []
    for name, version, lines in blocks(text):
        if name is not None and (name, version) in digests:
            out += [lines[0].split(" \\")[0] + " \\", "    --hash=sha256:" + digests[(name, version)]]
        else:
            out += lines
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 3 or argv[0] not in ("sdists", "toolchain", "rehash"):
        sys.stderr.write("usage: python -m imagesmith_runtime.sdists {sdists|toolchain|rehash} REQUIREMENTS FOLDER\n")
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        text = fh.read()
    if argv[0] == "toolchain":
        try:
            needed = toolchain(text, argv[2], lambda line: sys.stderr.write(line + "\n"))
        except ArchiveError as exc:
            sys.stderr.write(
                f"error: {exc}\nhint: imagesmith reads an sdist's member names to tell whether it needs compilers; pin a version published as a wheel\n"
            )
            return 1
        sys.stdout.write("".join(label + "\n" for label in needed))
        return 0
    sys.stdout.write(sdist_requirements(text, argv[2]) if argv[0] == "sdists" else rehash(text, argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
