"""What a project's spec says: the ``Spec`` value and its parts, as ``spec.load.load_spec``
builds them from ``imagesmith.yaml`` or ``[tool.imagesmith]`` in pyproject.toml.

The package is read top-down: ``load`` reads the file and calls ``parse.parse_spec``, which checks
each section with ``sections`` (generic values in ``values``, pyproject.toml in ``pyproject``)
against the tables in ``schema`` and collects every problem in ``problems.Problems``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..layout import IMAGE_USER
from ..platforms import platform_arch

SPEC_FILE = "imagesmith.yaml"
PYPROJECT = "pyproject.toml"
DOCKERFILE = "Dockerfile"  # where imagesmith writes its Dockerfile unless the spec says otherwise


@dataclass(frozen=True)
class Requirements:
    """Where the Python requirements come from: a file, an inline list, or pyproject dependencies."""

    file: str | None = None
    inline: tuple[str, ...] = ()
    pyproject: bool = False
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # PEP 735 dependency groups of pyproject.toml (or of the project's lock)
    lock: str | None = None  # the project's own lock, the source of truth: "uv_lock", "pylock" or "poetry_lock"


@dataclass(frozen=True)
class ProjectPackage:
    """The project itself, to be built into a wheel and installed into both images (spec
    ``install_project``): ``[project].name`` (canonical), ``[build-system].requires`` and its
    ``build-backend``, from pyproject.toml."""

    name: str
    requires: tuple[str, ...]
    backend: str


@dataclass(frozen=True)
class Target:
    command: tuple[str, ...]
    port: int | None = None
    latency_budget_ms: float | None = None


@dataclass(frozen=True)
class Signoff:
    predict: str | None = None
    samples: str | None = None
    rtol: float = 1e-5
    atol: float = 1e-6
    path: str = "/predict"  # the serve endpoint signoff POSTs each sample to
    request: str = "list"  # the request body: "list" = [sample] (a batch of one), "object" = sample
    timeout: int = 600  # seconds the batch function may take on all the samples (at most schema.MAX_SIGNOFF_TIMEOUT)


@dataclass(frozen=True)
class Spec:
    root: Path
    origin: str  # the file the spec was read from, relative to root (for messages)
    name: str
    python: str
    platform: str
    base: str
    resolver: str
    install: str
    system_packages: tuple[str, ...]
    requirements: Requirements
    preprocessing: tuple[str, ...]
    source: tuple[str, ...]
    train: Target
    serve: Target
    seed: int
    env: tuple[tuple[str, str], ...]
    artifacts: str
    determinism: bool
    accelerator: str | None = None
    cuda: str | None = None  # the CUDA major the lock must ship ("12"); None: whatever it resolves to (gpu.py)
    # canonical names, sorted: distributions that get a layer of their own besides plan.heavy_groups' picks
    heavy: tuple[str, ...] = ()
    signoff: Signoff = field(default_factory=Signoff)
    index_url: str | None = None  # replaces the default package index (no credentials: see credentials.py)
    extra_index_urls: tuple[str, ...] = ()
    # (canonical name, index URL), sorted: each named distribution comes from that index only,
    # and no other distribution comes from it (see lock/indexes.py)
    package_indexes: tuple[tuple[str, str], ...] = ()
    user: str = IMAGE_USER  # one of schema.USERS; render.image_user says what USER the Dockerfile sets
    project: ProjectPackage | None = None  # the project's own wheel goes into the images (install_project)
    # every platform the images are built for, in the spec's order (``platform`` is the first):
    # ``platforms: [linux/amd64, linux/arm64]`` builds both; each gets its own lock section
    platforms: tuple[str, ...] = ()
    dockerfile: str = DOCKERFILE  # where imagesmith writes its Dockerfile, relative to root

    def __post_init__(self) -> None:
        if not self.platforms:
            object.__setattr__(self, "platforms", (self.platform,))

    @property
    def multi_platform(self) -> bool:
        return len(self.platforms) > 1

    def for_platform(self, platform: str) -> "Spec":
        """This spec for one of its platforms alone (what each lock section is resolved from)."""
        return replace(self, platform=platform, platforms=(platform,))

    def requirements_lock_for(self, platform: str) -> Path:
        """The pip-format lock of ``platform``: ``requirements.lock`` for a one-platform spec,
        ``requirements-<arch>.lock`` (arch as BuildKit's TARGETARCH says it) for several."""
        if not self.multi_platform:
            return self.requirements_lock_path
        return self.root / f"requirements-{platform_arch(platform)}.lock"

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def lock_path(self) -> Path:
        return self.root / "imagesmith.lock"

    @property
    def requirements_lock_path(self) -> Path:
        return self.root / "requirements.lock"

    @property
    def dockerfile_path(self) -> Path:
        """Where imagesmith writes its Dockerfile (spec ``dockerfile``; never over a user's own file)."""
        return self.root / self.dockerfile
