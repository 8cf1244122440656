"""The lock: the contract both images are built from.

``imagesmith.lock`` (JSON, sorted, byte-identical for the same inputs) records

- ``inputs``: a digest of each input (requirements, resolver, target, base, system packages,
  preprocessing, environment), so ``lock`` with unchanged inputs does nothing and ``lock --check``
  can say which input changed;
- ``base``: the base image pinned to a digest, and whether that digest came from a registry or
  is the local engine's image ID; the Python version found in it; for a registry's multi-platform
  base, ``hosts``: the same index's manifests of the other platforms with the same Python (a
  build on one of them installs the Python environment natively: ``python_env.py``);
- ``packages``: every distribution pinned ``==`` with its sha256 hashes;
- ``system_packages``: Debian packages pinned to exact versions inside the base image;
- ``preprocessing``: content digests of the preprocessing files (bytes and relative paths);
- ``environment``: seed, determinism and environment variables;
- ``indexes``: the spec's package indexes, including ``package_indexes`` (never credentials;
  they are also part of the ``requirements`` input, see ``lock/indexes.py``);
- ``runtime``: imagesmith's in-image code, the ``imagesmith-runtime`` wheel (name, content
  version, sha256 of the wheel): part of the parity, so a new imagesmith whose in-image code
  changed makes the lock stale (input ``runtime``) until ``imagesmith lock`` re-pins it;
- ``build_system`` (only when the project itself is installed, spec ``install_project``): its
  ``[build-system].requires`` resolved by the same resolver, pinned with hashes. They build the
  project's wheel in the ``project-build`` stage and never reach the images, so they are not
  in the parity; they are part of the ``requirements`` input.
- ``installer``: the wheel of the tool that installs the pins inside the build (``INSTALLER``:
  uv, one exact version), resolved by the same resolver for the lock's Python and platform and
  pinned with hashes. Its wheel comes from the same wheelhouse and is hash-checked before it runs;
  it never reaches the images (not in the parity). Input ``installer``.
- ``wheels_only`` (written only when true): uv resolved every pin on the host with ``--no-build``,
  so each has a wheel for the target and nothing is built from source; the Dockerfile then has no
  ``sdist-toolchain`` stage (no compilers fetched by a plain ``docker buildx build``). Absent: not
  known (pip-tools, a resolution that moved into the base, a project's own lock), so the
  Dockerfile keeps the compilers' stage. Not in the parity: the images are the same either way.

``requirements.lock`` beside it is the same pins in pip's format.

A spec with several ``platforms`` gets one section per platform, each a whole lock of its own
(inputs, base pinned to that platform's manifest, pins and hashes, system packages: so each has
its own parity), under ``platforms`` keyed by platform, and one ``requirements-<arch>.lock`` per
platform. ``Lock`` is always ONE platform's lock; ``read_locks`` gives every section.
Only changed parts are redone: a preprocessing edit re-digests files, it does not re-resolve.

The package, top-down: ``update`` brings the lock up to date (``lock_project``) and says whether
it is (``check_lock``, ``ensure_fresh``); ``inputs`` digests what the lock is made from;
``lockfile`` reads, checks and writes the file; ``resolvers``, ``existing``, ``base``, ``system``
and ``indexes`` pin each part. This module holds the ``Lock`` value itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .. import __version__
from ..runtime import preprocessing
from . import cuda
from .base import BasePin
from .pins import Pin, render_requirements_lock

LOCK_FORMAT = 1
LOCK_FILE = "imagesmith.lock"
REQUIREMENTS_LOCK = "requirements.lock"


@dataclass(frozen=True)
class Lock:
    inputs: dict
    resolver: str
    python: str
    platform: str
    base: BasePin
    packages: tuple[Pin, ...]
    system_packages: tuple[tuple[str, str], ...]
    preprocessing: tuple[tuple[str, str], ...]  # (relative path, sha256)
    seed: int
    determinism: bool
    env: tuple[tuple[str, str], ...]
    extras: dict = field(default_factory=dict)  # forward-compatible sections
    index_url: str | None = None  # the spec's package indexes (never credentials)
    extra_index_urls: tuple[str, ...] = ()
    runtime: Pin | None = None  # the imagesmith-runtime wheel (None: a lock written before it existed)
    package_indexes: tuple[tuple[str, str], ...] = ()  # (name, index URL): see indexes.py
    build_system: tuple[Pin, ...] = ()  # the project's build backend, pinned (install_project)
    installer: tuple[Pin, ...] = ()  # the in-build installer's wheel (INSTALLER), pinned
    wheels_only: bool = False  # every pin has a wheel for the target (see the module docstring)

    @property
    def other_index_urls(self) -> list[str]:
        """Every index URL besides ``index_url`` (for ``credentials.index_netrc``)."""
        return [*self.extra_index_urls, *(url for _, url in self.package_indexes)]

    @property
    def preprocessing_digest(self) -> str:
        return preprocessing_digest(dict(self.preprocessing))

    @property
    def preprocessing_version(self) -> str | None:
        """The preprocessing wheel's version (content digest; see imagesmith/preprocessing.py),
        None when the spec names no preprocessing files."""
        return preprocessing.version_for(self.preprocessing_digest) if self.preprocessing else None

    def to_json(self) -> str:
        data = {"imagesmith_lock": LOCK_FORMAT, "generated_by": f"imagesmith {__version__}", **self.section()}
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def section(self) -> dict:
        """This platform's lock as a JSON object (the whole file for a one-platform spec)."""
        return {
            "inputs": dict(sorted(self.inputs.items())),
            "resolver": self.resolver,
            "target": {"python": self.python, "platform": self.platform},
            "base": {
                "name": self.base.name,
                "digest": self.base.digest,
                "source": self.base.source,
                "python_version": self.base.python_version,
                **({"index_digest": self.base.index} if self.base.index else {}),
                **({"hosts": dict(self.base.hosts)} if self.base.hosts else {}),
            },
            "packages": [p.as_dict() for p in self.packages],
            "system_packages": [{"name": n, "version": v} for n, v in self.system_packages],
            "preprocessing": {
                "files": dict(self.preprocessing),
                "digest": self.preprocessing_digest,
                "version": self.preprocessing_version,
            },
            "environment": {"seed": self.seed, "determinism": self.determinism, "env": dict(self.env)},
            **({"runtime": self.runtime.as_dict()} if self.runtime else {}),
            **({"build_system": [p.as_dict() for p in self.build_system]} if self.build_system else {}),
            **({"installer": [p.as_dict() for p in self.installer]} if self.installer else {}),
            **({"wheels_only": True} if self.wheels_only else {}),
            **{k: v for k, v in self.extras.items() if k != cuda.SECTION},
            **cuda.section(self),  # derived from the pins, never read back as it is (lock/cuda.py)
            **(
                {"indexes": self._indexes_json()}
                if self.index_url or self.extra_index_urls or self.package_indexes
                else {}
            ),
        }

    def _indexes_json(self) -> dict:
        out: dict = {"index_url": self.index_url, "extra_index_urls": list(self.extra_index_urls)}
        if self.package_indexes:
            out["package_indexes"] = dict(self.package_indexes)
        return out

    def requirements_text(self) -> str:
        """The pins in pip's format (``requirements.lock``, or ``requirements-<arch>.lock`` of a
        spec with several platforms: the same bytes either way, so a build step that mounts one
        platform's file is cached across both kinds of spec)."""
        header = (
            f"Generated by imagesmith {__version__} from {LOCK_FILE}; do not edit.\n"
            f"Python {self.python}, {self.platform}. Install with:\n"
            "  pip install --require-hashes --no-deps -r THIS_FILE"
        )
        return render_requirements_lock(self.packages, header)

    def build_system_text(self) -> str:
        """The build backend's pins in pip's format ("" when none): the Dockerfile carries it as
        a data file, so no other file beside the lock is needed."""
        if not self.build_system:
            return ""
        header = (
            f"Generated by imagesmith {__version__} from {LOCK_FILE}: the build backend of the project's wheel.\n"
            "Install with: pip install --require-hashes --no-deps -r FILE"
        )
        return render_requirements_lock(self.build_system, header)

    def installer_text(self) -> str:
        """The installer's pin in pip's format ("" when none): the Dockerfile carries it as a
        data file, like the build backend's."""
        if not self.installer:
            return ""
        header = (
            f"Generated by imagesmith {__version__} from {LOCK_FILE}: the installer used inside the build.\n"
            "Install with: pip install --require-hashes --no-deps -r FILE"
        )
        return render_requirements_lock(self.installer, header)


def preprocessing_digest(files: dict[str, str]) -> str:
    """The digest of ``{path: sha256}``: ``preprocessing.py`` owns the rule (it also runs in images)."""
    return preprocessing.digest_of(files)
