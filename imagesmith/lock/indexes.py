"""Per-package indexes (spec ``package_indexes``): the rule and how each tool is held to it.

The rule: a distribution pinned to an index is resolved and downloaded from that index only, and
no other distribution is taken from it. Both halves guard against dependency confusion: a
public look-alike of the pinned distribution never wins, and a pinned index (say, one that also
mirrors common packages) never supplies anything it was not named for.

Neither ``uv pip compile`` nor pip-compile has a per-package index option, so:

- **uv**: a generated ``pyproject.toml`` input (``uv_project``) declares each pinned index as an
  *explicit* index (``[[tool.uv.index]] explicit = true``: uv takes from it only the packages
  pinned to it) and pins each distribution to it with ``[tool.uv.sources]`` (uv then looks that
  name up on that index alone, as a direct or a transitive dependency). This is why a pinned
  distribution is also a requirement. uv's ``--emit-index-annotation`` says where each pin came
  from, and ``check_origins`` refuses a result that breaks the rule anyway.
- **pip-compile**: the pinned indexes are never given to it as indexes. imagesmith reads each
  pinned distribution's page on its index and writes a local find-links page
  (``find_links_page``) listing that distribution's files only, so nothing else can come from
  a pinned index. pip still also sees the distribution on the general indexes: when the
  version it chose has no file on the pinned index (``off_index``; a higher look-alike
  elsewhere), the resolution runs again with ``name!=version`` (``pinned_requirements``), a
  few times at most; the next step removes the other indexes' files of a version both have.
- **both** (``restrict_hashes``, run on every resolver's result): a pinned distribution keeps
  only the locked hashes of files that are on its own index, read over HTTP from that index's
  PEP 503 (HTML) or PEP 691 (JSON) page; none left is an error naming the versions it has.
- **downloads** (the host's ``pip download``, the Dockerfile's wheel-download stage):
  ``download_groups`` splits the locked pins, each pinned index fetching its distributions
  with ``--index-url`` naming it alone and the rest using the spec's general indexes, which
  never include a pinned one (spec/sections.py refuses that). ``--require-hashes`` checks every file.

Credentials for a pinned index come the same way as for the others (``credentials.index_netrc``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from html import escape
from html.parser import HTMLParser
from typing import Iterable, Mapping, Protocol, Sequence, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from ..credentials import redact
from ..errors import ResolutionError


class _Pin(Protocol):  # pins.Pin (the resolvers import this module, not the other way round)
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def hashes(self) -> tuple[str, ...]: ...


P = TypeVar("P", bound=_Pin)

# A pin's index: None for the spec's general indexes (index_url / extra_index_urls / the default).
General = None


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str  # absolute
    sha256: str | None  # hex, from the link's #sha256= fragment or the JSON "hashes"


def pinned_names(package_indexes: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name: url for name, url in package_indexes}


# --------------------------------------------------------------------------------------------
# Reading an index's page for one project


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def parse_page(body: bytes, content_type: str, page_url: str) -> list[IndexFile]:
    """The files a simple-repository page lists: PEP 691 JSON or PEP 503 HTML."""
    files = []
    if "json" in content_type:
        data = json.loads(body.decode("utf-8"))
        for entry in data.get("files", []):
            url = urljoin(page_url, entry["url"])
            digest = (entry.get("hashes") or {}).get("sha256")
            files.append(IndexFile(entry.get("filename") or _filename(url), url.split("#", 1)[0], digest))
        return files
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    for href in parser.hrefs:
        url = urljoin(page_url, href)
        base, _, fragment = url.partition("#")
        digest = fragment[len("sha256=") :] if fragment.startswith("sha256=") else None
        files.append(IndexFile(_filename(base), base, digest))
    return files


def _filename(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def _project_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return canonicalize_name(parse_wheel_filename(filename)[0])
        return canonicalize_name(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _version_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _credentials(netrc_text: str) -> dict[str, tuple[str, str]]:
    """``credentials.index_netrc``'s text back into {host: (login, password)}."""
    out = {}
    for line in netrc_text.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[0] == "machine" and parts[2] == "login" and parts[4] == "password":
            out[parts[1]] = (parts[3], parts[5])
    return out


def fetch_files(index_url: str, name: str, netrc_text: str = "", timeout: float = 60) -> list[IndexFile]:
    """The files of project ``name`` on the index at ``index_url`` (none: the index does not have
    it), with the host's credentials for that index, if any. Only files whose names say they
    belong to ``name`` are kept: a page cannot slip in another project's files."""
    import urllib.error  # here: a build whose wheels are cached never fetches a page
    import urllib.request

    page = index_url.rstrip("/") + f"/{name}/"
    handlers: list[urllib.request.BaseHandler] = []
    creds = _credentials(netrc_text)
    host = urlsplit(index_url).hostname or ""
    if host in creds:
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, index_url, *creds[host])
        handlers.append(urllib.request.HTTPBasicAuthHandler(manager))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(
        page, headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1", "User-Agent": "imagesmith"}
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            body, ctype, final = response.read(), response.headers.get("Content-Type", ""), response.geturl()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise ResolutionError(
            f"the package index {redact(index_url)} answered {exc.code} for {name}'s page",
            hint="check the index URL in package_indexes and the host's credentials for it (netrc)",
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ResolutionError(
            f"could not read {name}'s page on the package index {redact(index_url)}: {redact(str(exc))}",
            hint="check the network and the index URL in package_indexes",
        ) from exc
    try:
        files = parse_page(body, ctype, final)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ResolutionError(f"{name}'s page on {redact(index_url)} is not a simple-repository page ({exc})") from exc
    return [f for f in files if _project_of(f.filename) == canonicalize_name(name)]


# --------------------------------------------------------------------------------------------
# uv


def uv_project(package_indexes: Sequence[tuple[str, str]]) -> str:
    """A pyproject.toml for ``uv pip compile`` that pins each distribution to its explicit index."""
    urls = sorted({url for _, url in package_indexes})
    index_name = {url: f"imagesmith-pinned-{i}" for i, url in enumerate(urls, 1)}
    q = json.dumps  # a TOML basic string for these plain values (names and URLs are validated)
    lines = [
        "# Generated by imagesmith for the resolution only (spec package_indexes); never written to the project.",
        "[project]",
        f"name = {q('imagesmith-package-indexes')}",
        'version = "0"',
        "dependencies = [" + ", ".join(q(name) for name, _ in package_indexes) + "]",
        "",
    ]
    for url in urls:
        lines += ["[[tool.uv.index]]", f"name = {q(index_name[url])}", f"url = {q(url)}", "explicit = true", ""]
    lines.append("[tool.uv.sources]")
    lines += [f"{q(name)} = {{ index = {q(index_name[url])} }}" for name, url in package_indexes]
    return "\n".join(lines) + "\n"


def origins(compiled: str) -> dict[str, str]:
    """{distribution: index URL} from uv's ``--emit-index-annotation`` lines (``# from URL``)."""
    out: dict[str, str] = {}
    current = None
    for raw in compiled.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "-")) and not raw[:1].isspace():
            current = canonicalize_name(line.split("==", 1)[0].split("[", 1)[0].strip())
        elif line.startswith("# from ") and current:
            out[current] = line[len("# from ") :].strip()
    return out


def check_origins(found: Mapping[str, str], package_indexes: Sequence[tuple[str, str]]) -> None:
    """Refuse a resolution where a pinned distribution came from elsewhere, or another
    distribution came from a pinned index."""
    pinned = pinned_names(package_indexes)
    reserved = {u.rstrip("/") for u in pinned.values()}
    problems = []
    for name, origin in sorted(found.items()):
        where = origin.rstrip("/")
        if name in pinned and where != pinned[name].rstrip("/"):
            problems.append(f"{name} came from {redact(origin)}, not from its index {pinned[name]}")
        elif name not in pinned and where in reserved:
            problems.append(f"{name} came from {redact(origin)}, an index reserved for {_reserved_for(where, pinned)}")
    if problems:
        raise ResolutionError(
            "the resolution broke the spec's package_indexes:\n" + "\n".join(f"  - {p}" for p in problems),
            hint="a per-package index serves only the packages pinned to it; report this as a bug",
        )


def refuse_general(tool: str, general: Iterable[str], package_indexes: Sequence[tuple[str, str]]) -> None:
    """A pinned index among the general indexes a tool reads from the host's environment would
    serve every package: refused before the tool runs."""
    pinned = pinned_names(package_indexes)
    reserved = {u.rstrip("/") for u in pinned.values()}
    urls = {u.split("=", 1)[1] if "=" in u.split("://", 1)[0] else u for u in general}  # uv's NAME=URL
    clash = sorted({u for u in urls if u.rstrip("/") in reserved})
    if clash:
        raise ResolutionError(
            f"the host's settings for {tool} name {', '.join(redact(u) for u in clash)} as a general index, "
            f"but package_indexes reserves it for {_reserved_for(clash[0].rstrip('/'), pinned)}",
            hint="remove it from the environment's index settings (a per-package index serves only its packages)",
        )


def _reserved_for(url: str, pinned: Mapping[str, str]) -> str:
    return ", ".join(sorted(n for n, u in pinned.items() if u.rstrip("/") == url))


# --------------------------------------------------------------------------------------------
# pip-compile


def find_links_page(package_indexes: Sequence[tuple[str, str]], netrc_text: str = "") -> str:
    """A local HTML page listing the pinned distributions' files on their indexes, and nothing
    else: pip-compile's ``--find-links`` (the pinned indexes are never pip's indexes)."""
    links = []
    for name, url in package_indexes:
        for f in fetch_files(url, name, netrc_text):
            href = f.url + (f"#sha256={f.sha256}" if f.sha256 else "")
            links.append(f'<a href="{escape(href)}">{escape(f.filename)}</a><br>')
    return "<!DOCTYPE html>\n<html><body>\n" + "\n".join(links) + "\n</body></html>\n"


# --------------------------------------------------------------------------------------------
# Both resolvers


def off_index(
    pins: Sequence[P], package_indexes: Sequence[tuple[str, str]], netrc_text: str = "", fetch=fetch_files
) -> list[P]:
    """The pinned distributions whose locked version has no file with a locked hash on their index."""
    pinned = pinned_names(package_indexes)
    out = []
    for pin in pins:
        if pin.name in pinned:
            files = fetch(pinned[pin.name], pin.name, netrc_text)
            if not set(pin.hashes) & {f"sha256:{f.sha256}" for f in files if f.sha256}:
                out.append(pin)
    return out


def pinned_requirements(package_indexes: Sequence[tuple[str, str]], excluded: Sequence[str] = ()) -> str:
    """pip-compile's extra input: each pinned distribution as a requirement (as uv's generated
    project makes it one), and ``name!=version`` for each look-alike version already refused."""
    lines = ["# Generated by imagesmith for the resolution only (spec package_indexes)."]
    lines += [name for name, _ in package_indexes]
    lines += list(excluded)
    return "\n".join(lines) + "\n"


def restrict_hashes(
    pins: Sequence[P], package_indexes: Sequence[tuple[str, str]], netrc_text: str = "", fetch=fetch_files
) -> list[P]:
    """Each pinned distribution keeps only the hashes of its files on its own index; an error
    when none is left (the version was chosen from another index) or the index lacks it."""
    pinned = pinned_names(package_indexes)
    out, problems = [], []
    for pin in pins:
        if pin.name not in pinned:
            out.append(pin)
            continue
        files = fetch(pinned[pin.name], pin.name, netrc_text)
        on_index = {f"sha256:{f.sha256}" for f in files if f.sha256 and _same_version(f.filename, pin.version)}
        kept = tuple(h for h in pin.hashes if h in on_index)
        if kept:
            out.append(replace(pin, hashes=kept))  # type: ignore[type-var]  # a dataclass
            continue
        versions = sorted({v for f in files if (v := _version_of(f.filename))}, key=_sort_key)
        has = f"it has {', '.join(versions)}" if versions else f"it has no {pin.name} at all"
        problems.append(
            f"{pin.name}=={pin.version} was resolved from files that are not on its index {pinned[pin.name]} ({has})"
        )
    if problems:
        raise ResolutionError(
            "a package pinned to an index (package_indexes) did not resolve from it:\n"
            + "\n".join(f"  - {p}" for p in problems),
            hint="require a version that its index has (e.g. name==version in the requirements), "
            "or check the index URL; with resolver: uv the pinned index is the only one consulted",
        )
    return out


def _same_version(filename: str, version: str) -> bool:
    from packaging.version import InvalidVersion, Version

    found = _version_of(filename)
    try:
        return found is not None and Version(found) == Version(version)
    except InvalidVersion:
        return found == version


def _sort_key(version: str):
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(version), "")
    except InvalidVersion:
        return (1, Version("0"), version)


# --------------------------------------------------------------------------------------------
# Downloads


def download_groups(pins: Sequence[P], package_indexes: Sequence[tuple[str, str]]) -> list[tuple[str | None, list[P]]]:
    """The pins split by where they are downloaded from: ``(None, …)`` the general indexes first,
    then ``(url, …)`` for each pinned index (sorted). Empty groups are left out."""
    pinned = pinned_names(package_indexes)
    groups: dict[str | None, list[P]] = {General: []}
    for url in sorted(set(pinned.values())):
        groups[url] = []
    for pin in pins:
        groups[pinned.get(pin.name, General)].append(pin)
    return [(url, group) for url, group in groups.items() if group]


def names_by_index(package_indexes: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """[(index URL, [distribution, ...])], sorted: what each pinned index serves."""
    by: dict[str, list[str]] = {}
    for name, url in package_indexes:
        by.setdefault(url, []).append(name)
    return [(url, sorted(names)) for url, names in sorted(by.items())]
