"""Credentials: kept out of everything imagesmith writes, prints or bakes into an image.

- ``redact(text)`` is THE redactor: every URL in ``text`` loses its user info (``user@``,
  ``user:pass@``, ``:token@``, whatever the form), parsed with ``urllib.parse``. The engine's
  logs, the resolvers' messages and the ``org.opencontainers.image.source`` label go through it.
- ``credential_problem(key, value)`` says why a spec ``env:`` entry looks like a credential
  (names like ``*_TOKEN`` / ``*_PASSWORD`` / ``*_SECRET``, well-known token shapes, URLs with
  user info); the spec refuses those and points at private index credentials instead.
- ``index_netrc(urls)`` gathers the credentials for a spec's package indexes from the host: the
  netrc file (``$NETRC``, else ``~/.netrc``) and ``IMAGESMITH_INDEX_USERNAME`` /
  ``IMAGESMITH_INDEX_PASSWORD`` (for the ``index_url`` host). The text it returns is only ever
  written to a private temporary file that a container mounts, or that BuildKit receives as a
  secret (``RUN --mount=type=secret``): never the lock, a label, the Dockerfile, an image layer,
  a log or a stamp.
"""

from __future__ import annotations

import contextlib
import netrc
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator, Mapping, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

# A URL inside free text: scheme://... up to white space or a quote.
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
# Shapes of well-known tokens (GitHub, GitLab, Slack, AWS access keys, PyPI, JWT-like bearer tokens).
_TOKEN_RE = re.compile(
    r"(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}|"
    r"xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|pypi-[A-Za-z0-9_-]{20,}|"
    r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
)
_SECRET_NAME_RE = re.compile(
    r"(?:^|_)(?:TOKEN|PASSWORD|PASSWD|PASS|SECRET|SECRETS|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?|AUTH)$", re.I
)
USERNAME_ENV = "IMAGESMITH_INDEX_USERNAME"
PASSWORD_ENV = "IMAGESMITH_INDEX_PASSWORD"
SECRET_ID = "imagesmith-netrc"  # the BuildKit secret id the Dockerfile mounts as pip's netrc


def strip_userinfo(url: str) -> str:
    """``url`` without its user info (``https://tok@host/x`` -> ``https://host/x``); an scp-like
    git remote (``user@host:path``) loses its user too."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 netloc: keep nothing that could hold a secret
        return "<url>"
    if parts.scheme and parts.netloc:
        if "@" not in parts.netloc:
            return url
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    m = re.fullmatch(r"[^@/\s]+@([^:/\s]+:.*)", url)
    return m.group(1) if m else url


def has_userinfo(url: str) -> bool:
    return strip_userinfo(url) != url


def redact(text: str) -> str:
    """``text`` with the user info of every URL in it removed."""
    return _URL_RE.sub(lambda m: strip_userinfo(m.group(0)), text)


def credential_problem(key: str, value: str) -> str | None:
    """Why ``key=value`` (a spec env entry) looks like a credential, or None."""
    if _SECRET_NAME_RE.search(key):
        return f"the name {key} says it holds a credential"
    if _TOKEN_RE.search(value):
        return "the value looks like an access token"
    if any(has_userinfo(u) for u in _URL_RE.findall(value)):
        return "the value is a URL with a user name or password in it"
    return None


# --------------------------------------------------------------------------------------------
# Private index credentials, from the host


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def index_netrc(
    index_url: str | None, extra_index_urls: Sequence[str] = (), environ: Mapping[str, str] | None = None
) -> str:
    """netrc text with the host's credentials for these indexes only ("" when there are none):
    ``IMAGESMITH_INDEX_USERNAME``/``IMAGESMITH_INDEX_PASSWORD`` for ``index_url``'s host, then
    the host's netrc file for every index host. Other entries of the netrc file stay behind."""
    source: Mapping[str, str] = os.environ if environ is None else environ
    entries: dict[str, tuple[str, str]] = {}
    for url in [index_url or "", *extra_index_urls]:  # user info written into a URL (host env settings)
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        if parts.hostname and (parts.username or parts.password is not None):
            entries.setdefault(parts.hostname or "", (unquote(parts.username or ""), unquote(parts.password or "")))
    password = source.get(PASSWORD_ENV)
    if index_url and password and _host(index_url) not in entries:
        entries[_host(index_url)] = (source.get(USERNAME_ENV) or "__token__", password)
    path = source.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    hosts = [h for h in (_host(u) for u in [index_url or "", *extra_index_urls]) if h]
    if hosts and os.path.isfile(path):
        try:
            parsed = netrc.netrc(path)
        except (netrc.NetrcParseError, OSError, UnicodeDecodeError):
            parsed = None  # a netrc imagesmith cannot read is left to the tools that read it
        for host in hosts:
            auth = parsed.authenticators(host) if parsed else None
            if auth and host not in entries:
                entries[host] = (auth[0] or "", auth[2] or "")
    lines = []
    for host, (login, secret) in sorted(entries.items()):
        if not host or any(c.isspace() or c == '"' for c in host + login + secret):
            continue  # netrc cannot quote these; the tools would misread the file
        lines.append(f"machine {host} login {login} password {secret}")
    return "".join(line + "\n" for line in lines)


def index_args(index_url: str | None, extra_index_urls: Sequence[str] = ()) -> list[str]:
    """pip/uv/pip-compile options naming the indexes, without any user info."""
    args = ["--index-url", strip_userinfo(index_url)] if index_url else []
    for url in extra_index_urls:
        args += ["--extra-index-url", strip_userinfo(url)]
    return args


@contextlib.contextmanager
def secret_file(text: str) -> Iterator[Path | None]:
    """``text`` in a private (0600) temporary file for the duration of the block; None when empty.
    The file is removed afterwards, whatever happens."""
    if not text:
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="imagesmith-secret-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(name, 0o600)
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


# The pip settings a download of the locked files keeps from the host (environment and config
# files): how to reach an index (certificates, proxy, time-outs, the keyring for credentials).
# Everything else (constraints, indexes, binary/source choices, ...) would change which files pip
# takes, and the lock alone decides that: pip runs with ``PIP_CONFIG_FILE`` set to the null device
# (no config file at all) and every other ``PIP_*`` variable removed.
PIP_KEPT = ("cert", "client-cert", "trusted-host", "proxy", "timeout", "default-timeout", "retries", "keyring-provider")


def _pip_env_name(key: str) -> str:
    """pip's environment variable for a config key (``client-cert`` -> ``PIP_CLIENT_CERT``)."""
    return "PIP_" + key.upper().replace("-", "_")


_PIP_KEPT_ENV = tuple(_pip_env_name(key) for key in PIP_KEPT)


def pip_environment(environ: Mapping[str, str], config: Mapping[str, str] = {}) -> dict[str, str]:  # noqa: B006
    """The environment for pip downloading locked files: ``environ`` without its ``PIP_*`` settings
    (but those of ``PIP_KEPT``), with the kept settings of pip's config files (``config``: key ->
    value, see ``pip_config``) as variables, and no config file."""
    env = {k: v for k, v in environ.items() if not k.startswith("PIP_") or k in _PIP_KEPT_ENV}
    for key, value in config.items():
        if key in PIP_KEPT:
            env.setdefault(_pip_env_name(key), value)
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def pip_config(python: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The ``PIP_KEPT`` settings of the config files ``python -m pip`` reads with ``environ``
    (global, then download sections; empty when pip cannot say)."""
    import ast
    import subprocess

    try:
        proc = subprocess.run(
            [python, "-m", "pip", "config", "list"], capture_output=True, text=True, env=dict(environ), timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, dict[str, str]] = {}
    for line in proc.stdout.splitlines():
        name, sep, raw = line.partition("=")
        section, _, key = name.partition(".")
        if not sep or section not in ("global", "download") or key not in PIP_KEPT:
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            continue
        found.setdefault(section, {})[key] = str(value)
    return {**found.get("global", {}), **found.get("download", {})}


def pip_isolated_shell() -> str:
    """The same for a Dockerfile's shell, as a prefix to ``python3 -m pip ...``: ``env`` with
    ``-u`` for every ``PIP_*`` variable the base image sets (but the kept ones), and no config
    file. Only names reach ``env -u``: a value never reaches the command line."""
    kept = "|".join(name[len("PIP_") :] for name in _PIP_KEPT_ENV)
    return f"env $(env | sed -nE '/^PIP_({kept})=/d;s/^(PIP_[A-Z0-9_]+)=.*/-u \\1/p') PIP_CONFIG_FILE=/dev/null"
