"""Where each platform's Python environment is installed: on the build platform when it can be.

The venv (the locked wheels installed by the locked uv, then bytecode compiled) is made in a
stage of its own, ``python-env``, and copied into ``shared`` as one layer. That stage runs on one
of two platforms, chosen by the build argument ``IMAGESMITH_PYTHON_ENV`` (``PYTHON_ENV_ARG``):

- ``build`` (the default): on the build platform (BuildKit's ``$BUILDPLATFORM``), natively, from
  the same base's image for that platform, pinned in the lock (``BasePin.hosts``: same image
  index, same Python version). uv installs the target's wheels for the target's platform
  (``--python-platform``) and the build platform's Python compiles the bytecode: a ``.pyc``
  depends on the Python version and the source, not on the machine.
- ``target``: on the target platform (under QEMU when it is not the build platform's).

The stage's command is the same text in both (the target's platform is named to uv either way),
so both give the same files, bit for bit, and so the same layer and image. A platform gets the
choice (``hosts``) only when the lock pins an installer (uv; pip cannot install for another
platform into a venv) and the base has another platform's image with the same Python; otherwise
its stage is the target's, as before, and ``emulated_steps`` says why.

What still runs on the target whatever the choice, being the target's own code: building
distributions published only as source (compilers, ``sdist-build``), installing system packages
(their maintainer scripts), and the short shell steps of ``shared`` (the images' user, the image
facts and preprocessing layer, the project's wheel)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from . import layout
from .lock import Lock
from .platforms import RESOLVER_PLATFORMS, platform_arch

PYTHON_ENV_ARG = "IMAGESMITH_PYTHON_ENV"  # build | target
ON_BUILD, ON_TARGET = "build", "target"
INSTALLER_CONTEXT = "python-env-installer-on-build"  # the build platform's installer wheel (+ suffix)
OUT = "/python-env"  # the stage's files, laid out from / (the venv and the app folder)
HEAVY_OUT = "/python-env-heavy"  # each heavy distribution's files, in OUT/<name>, laid out from /


@dataclass(frozen=True)
class Host:
    platform: str  # e.g. linux/amd64
    arch: str  # amd64
    ref: str  # the same base's image of this platform, pinned by digest


def hosts(lock: Lock) -> list[Host]:
    """The platforms, other than the lock's own, that can install its Python environment (empty:
    only the target can). Sorted by platform."""
    if not lock.installer:
        return []
    return [Host(p, platform_arch(p), lock.base.host_ref(p)) for p, _ in sorted(lock.base.hosts)]


def template_context(lock: Lock) -> dict:
    """What the template's python-env stages need for ``lock``'s platform."""
    return {
        "hosts": [{"platform": h.platform, "arch": h.arch, "ref": h.ref} for h in hosts(lock)],
        "arch": platform_arch(lock.platform),
        "arg": PYTHON_ENV_ARG,
        "installer_context": INSTALLER_CONTEXT,
        "python_platform": RESOLVER_PLATFORMS[lock.platform],
        "out": OUT,
        "heavy_out": HEAVY_OUT,
        "venv_parent": posixpath.dirname(layout.VENV),
    }


def installs_on(lock: Lock, build: str, on: str = ON_BUILD) -> str:
    """The platform ``lock``'s Python environment is installed on, built on ``build``."""
    if on == ON_BUILD and (build == lock.platform or build in dict(lock.base.hosts)) and lock.installer:
        return build
    return lock.platform


def emulated_steps(
    lock: Lock,
    build: str,
    *,
    sdists: list[str],
    user: bool,
    preprocessing: bool = False,
    project: bool = False,
    on: str = ON_BUILD,
) -> list[str]:
    """What runs on ``lock``'s platform under emulation when built on ``build``, each with why
    ([] when ``build`` is the lock's platform: nothing is emulated). ``user``, ``preprocessing``
    and ``project``: whether the spec makes the images' user, has preprocessing files, installs
    the project."""
    if build == lock.platform:
        return []
    steps = []
    if sdists:
        steps.append(f"building {', '.join(sdists)} from source (the target's compilers)")
    if installs_on(lock, build, on) != build:
        if on != ON_BUILD:
            why = f"{PYTHON_ENV_ARG}={on}"
        elif not lock.installer:
            why = "the lock pins no installer; pip installs only for the platform it runs on"
        elif lock.base.source == "local":
            why = f"the base is a local image of {lock.platform} only: lock a registry base whose index has {build}"
        else:
            why = f"the lock pins no {build} image of the base with Python {lock.base.python_version}"
        steps.append(f"the Python environment ({why})")
    if lock.system_packages:
        steps.append("system packages (their maintainer scripts)")
    if user:
        steps.append("the images' user (a shell step)")
    if preprocessing:
        steps.append("the preprocessing wheel's build and install (short Python steps)")
    if project:
        steps.append("the project's wheel (its build backend)")
    steps.append("the image facts layer (a shell step)")
    return steps
