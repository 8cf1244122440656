"""The spec's tables: the keys each section takes, the patterns its values must match and the
bounds on its size. Every value that later reaches a Dockerfile is checked against one of these
strict patterns (``parse`` and ``sections`` apply them)."""

from __future__ import annotations

import re

from ..layout import IMAGE_USER

NAME_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
PYTHON_RE = re.compile(r"3\.[0-9]{1,2}")

# A Docker image reference: [host[:port]/]path[:tag][@sha256:hex]. No spaces, no quotes.
IMAGE_REF_RE = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?",
    re.ASCII,
)
DEB_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+~:-]+)?")
DIST_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", re.ASCII)  # PEP 508 names
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Project paths: plain relative POSIX paths, no globs, quotes, dollar signs or control characters.
PATH_RE = re.compile(r"[A-Za-z0-9_.@+-][A-Za-z0-9_.@+/ -]*")
CONTAINER_PATH_RE = re.compile(r"/[A-Za-z0-9_.@+/-]*")
# an entry point's object reference (the packaging spec's `module:attr.attr`): `app.predict:predict`,
# or a method of an object the module makes, `serve:predictor.predict`
MODULE_FUNC_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", re.ASCII)
RESOLVERS = ("uv", "pip-tools")
# Bounds: a spec is a small file; anything bigger is a mistake or an attack (alias bombs).
MAX_SPEC_BYTES = 1 << 20
MAX_VALUES = 20_000
MAX_DEPTH = 32
MAX_STRING = 8192
MAX_NAME = 128
MAX_PATH = 1024
MAX_PROBLEMS = 40
INSTALL_MODES = ("hermetic", "online")
# Who the images run as: imagesmith's own non-root user (layout.IMAGE_USER, numeric IDs), or
# root: no USER line at all, the base image's own user (usually root).
USERS = (IMAGE_USER, "root")


TOP_KEYS = (
    "name",
    "python",
    "platform",
    "platforms",
    "base",
    "resolver",
    "install",
    "system_packages",
    "requirements",
    "preprocessing",
    "source",
    "train",
    "serve",
    "seed",
    "env",
    "artifacts",
    "determinism",
    "accelerator",
    "cuda",
    "heavy",
    "signoff",
    "index_url",
    "extra_index_urls",
    "package_indexes",
    "user",
    "install_project",
    "dockerfile",
)
TRAIN_KEYS = ("command",)
SERVE_KEYS = ("command", "port", "latency_budget_ms")
REQ_KEYS = ("file", "packages", "pyproject", "extras", "groups", "uv_lock", "pylock", "poetry_lock")
LOCK_SOURCES = {"uv_lock": "uv.lock", "pylock": "pylock.toml", "poetry_lock": "poetry.lock"}
SIGNOFF_KEYS = ("predict", "samples", "rtol", "atol", "path", "request", "timeout")
MAX_SIGNOFF_TIMEOUT = 86_400
SIGNOFF_REQUESTS = ("list", "object")
HTTP_PATH_RE = re.compile(r"/[A-Za-z0-9_.~/-]*")
# A package index: http(s), a host, an optional port and a plain path. No user info, query or spaces.
NAME_GROUP_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")  # PEP 735 / PEP 508 names
INDEX_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/+-]*)?")
REQUIRED = ("name", "python", "base", "train", "serve")  # requirements: from pyproject.toml when absent

INSTALL_PROJECT = ("auto", True, False)
