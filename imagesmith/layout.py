"""Facts about the images imagesmith makes, named once: paths, label names, roles, image refs.

Host code imports them from here and ``render.py`` passes them to the Dockerfile template (as
``layout``), so the template, verify, run and signoff cannot disagree about where things are.
Code inside images gets what it needs from its arguments or from the image facts file.
"""

from __future__ import annotations

import re

from .errors import UsageError
from .runtime import FACTS_FILE, PACKAGE

# Paths inside the images
VENV = "/opt/venv"
VENV_PYTHON = f"{VENV}/bin/python"
IMAGE_PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # PATH in both images
APP_DIR = "/app"  # the project's files (``source``), and the working directory
# The image facts (the image plan's facts: parity manifest, configs, steps), in the venv's folder:
# a fixed path, so verify reads it before it knows the image's Python version
FACTS_PATH = f"{VENV}/{FACTS_FILE}"
BUILD_MOUNTS = "/run/imagesmith"  # where build steps mount the lock, wheels and the runtime wheel
# imagesmith's own folder in the project (beside the Dockerfile, in the build context): what the
# Dockerfile copies from it (the runtime wheel, each platform's files), never the project's files,
# so a source or project build that copies the whole context leaves it out of the image
GENERATED_DIR = ".imagesmith"

# Every RUN in the shared stage marks its start on its tmpfs and ends by setting the time of every
# file newer than the mark to 0 (the layers' file times, whatever the clock). The kernel stamps
# files with a coarse clock (a tick of 1-10 ms) and `find -newer` is strict: a file written in the
# tick the mark was made in kept the build's time (the first RUN appends to /etc/passwd right after
# the mark: two clean builds differed, 1 in a few). So the command waits 50 ms after the mark,
# longer than any tick: whatever it writes is newer. The mark cannot be dated back instead: what
# BuildKit sets up just before the command (the read-only /etc/hosts) would then be newer too.
RUN_MARK = "touch /tmp/.imagesmith-mark && sleep 0.05"
RUN_NORMALIZE = (
    r"find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp \) -prune"
    r" -o -newer /tmp/.imagesmith-mark -print0 | xargs -0r touch -h -d @0"
)

# The images' own user (spec ``user``, the default): a fixed name and numeric IDs, so USER is
# numeric (no /etc/passwd lookup; Kubernetes' runAsNonRoot can check it), the same on every build
IMAGE_USER = "imagesmith"
IMAGE_UID = 10001
IMAGE_GID = 10001
IMAGE_HOME = f"/home/{IMAGE_USER}"

# The two images of a project; both are built from one Dockerfile, they differ only in config
ROLES = ("train", "serve")

# The entrypoint: the runtime package, run as a module by the venv's Python
RUNTIME_MODULE = PACKAGE

# Labels
LABEL_PARITY = "io.imagesmith.parity"
LABEL_ROLE = "io.imagesmith.role"
# a multi-platform build's images: {platform: parity} of every platform it was built for (JSON)
LABEL_PLATFORMS = "io.imagesmith.platforms"
# a GPU image's contract: CUDA, minimum NVIDIA driver, compiled architectures (lock/cuda.py), JSON
LABEL_GPU = "io.imagesmith.gpu"
# the user's own labels (``build --label``), {key: value} as JSON: set by the build beside them
LABEL_USER = "io.imagesmith.labels"
# set by the build only when known (build.oci_labels): no label rather than an empty or made-up value
OPTIONAL_LABELS = (
    "org.opencontainers.image.revision",
    "org.opencontainers.image.source",
    "org.opencontainers.image.version",
)
RESERVED_LABELS = ("io.imagesmith.", "org.opencontainers.image.base.")  # not the user's to set
LABEL_BASE_NAME = "org.opencontainers.image.base.name"
LABEL_BASE_DIGEST = "org.opencontainers.image.base.digest"
LABEL_PROBE = "io.imagesmith.probe"  # on containers verify starts
LABEL_SIGNOFF = "io.imagesmith.signoff"  # on containers signoff starts

# What never goes into an image, whatever `source:` or `preprocessing:` names: version control,
# environment files (they hold secrets), the host's artifacts folder, virtualenvs and caches.
IGNORED = (
    ".git",
    ".hg",
    ".svn",
    ".env",
    ".env.*",
    ".envrc",
    "artifacts",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".cache",
    ".ipynb_checkpoints",
    "node_modules",
    "*.egg-info",
    ".netrc",
    ".pypirc",
    ".docker",
)

__all__ = [
    "APP_DIR",
    "IMAGE_PATH",
    "BUILD_MOUNTS",
    "FACTS_FILE",
    "FACTS_PATH",
    "GENERATED_DIR",
    "IGNORED",
    "IMAGE_GID",
    "IMAGE_HOME",
    "IMAGE_UID",
    "IMAGE_USER",
    "LABEL_BASE_DIGEST",
    "LABEL_BASE_NAME",
    "LABEL_GPU",
    "LABEL_PARITY",
    "LABEL_PLATFORMS",
    "LABEL_PROBE",
    "LABEL_ROLE",
    "LABEL_SIGNOFF",
    "LABEL_USER",
    "OPTIONAL_LABELS",
    "RESERVED_LABELS",
    "ROLES",
    "RUNTIME_MODULE",
    "VENV",
    "VENV_PYTHON",
    "image_ref",
    "site_packages",
    "template_context",
]


def site_packages(python: str) -> str:
    """The venv's site-packages for Python ``X.Y`` (a full ``X.Y.Z`` is cut to ``X.Y``)."""
    return f"{VENV}/lib/python{'.'.join(python.split('.')[:2])}/site-packages"


_REPO = re.compile(r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}")


def tag_option(given: str) -> tuple[str, str] | None:
    """A ``-t`` value of build or prune as (REPO, TAG): a repository (TAG "") or a ``REPO:TAG``
    reference, as Docker spells them; None when it is neither."""
    name, colon, tag = given.rpartition(":") if ":" in given.rsplit("/", 1)[-1] else (given, "", "")
    if not _REPO.fullmatch(name) or (colon and not _TAG.fullmatch(tag)):
        return None
    return name, tag


def checked_tag_option(given: str) -> tuple[str, str]:
    """``tag_option``, or a usage error naming the value."""
    found = tag_option(given)
    if found is None:
        raise UsageError(
            f"{given!r} is not an image repository or REPO:TAG reference",
            hint="e.g. -t registry.example/team/app or -t app:v1.2",
        )
    return found


def image_ref(repo: str, role: str) -> str:
    """The tag ``imagesmith build`` gives the ``role`` image of ``repo``: ``REPO:ROLE``."""
    return f"{repo}:{role}"


def parity_short(parity_digest: str) -> str:
    """The 12 hex digits of a parity digest that name its tag."""
    return parity_digest.split(":", 1)[-1][:12]


def parity_tag(role: str, parity_digest: str) -> str:
    """The tag ``imagesmith build`` also gives the ``role`` image of a parity: ``ROLE-<12 hex>``
    (``imagesmith prune`` removes old ones)."""
    return f"{role}-{parity_short(parity_digest)}"


PARITY_TAG_RE = rf"(?:{'|'.join(ROLES)})-[0-9a-f]{{12}}"  # what parity_tag gives, as a regex


def template_context(python: str) -> dict[str, str]:
    """What the Dockerfile template knows as ``layout``."""
    return {
        "venv": VENV,
        "venv_python": VENV_PYTHON,
        "app": APP_DIR,
        "generated": GENERATED_DIR,
        "mounts": BUILD_MOUNTS,
        "run_mark": RUN_MARK,
        "run_normalize": RUN_NORMALIZE,
        "site_packages": site_packages(python),
        "facts_file": FACTS_FILE,
        "label_parity": LABEL_PARITY,
        "label_role": LABEL_ROLE,
        "label_platforms": LABEL_PLATFORMS,
        "label_gpu": LABEL_GPU,
        "path": IMAGE_PATH,
        "label_base_name": LABEL_BASE_NAME,
        "label_base_digest": LABEL_BASE_DIGEST,
    }
