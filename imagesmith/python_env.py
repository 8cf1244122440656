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

The same choice places every other stage that only makes files for ``shared`` (the images' user,
the preprocessing wheel and its layer, the image facts, the app code's times): the template's
``builder`` stage. So a wheel-only lock runs nothing on the target. What still runs there
whatever the choice, being the target's own code: building distributions published only as
source (compilers, ``sdist-build``), installing system packages (dpkg and their maintainer
scripts; apt resolves and downloads them in ``builder``, the ``system-packages`` stage) and
the project's own wheel (its build backend); the image plan's steps say which (``plan.STEPS``:
``runs``), and ``emulated_steps`` reads them."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import layout, plan
from .lock import Lock
from .plan import ImagePlan
from .platforms import RESOLVER_PLATFORMS, platform_arch
from .runtime.sdists import ArchiveError, compiled_source

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


def sdists_in(house: Path) -> list[str]:
    """The distributions a wheelhouse holds as source only (built in the sdist-build stage)."""
    return sorted(p.name for p in house.iterdir() if not p.name.endswith(".whl"))


def pure_python(house: Path, sdists: Iterable[str]) -> list[str]:
    """Those of ``sdists`` (file names in the wheelhouse ``house``) that the sdist-build stage
    builds without compilers: the stage's own decision (runtime/sdists.py); an sdist it cannot
    read counts as compiled (the stage fails on it, saying why)."""
    pure = []
    for name in sdists:
        try:
            if compiled_source(str(house / name)) is None:
                pure.append(name)
        except ArchiveError:
            pass
    return pure


def emulated_steps(
    image: ImagePlan,
    lock: Lock,
    build: str,
    *,
    sdists: list[str],
    on: str = ON_BUILD,
    replaced: Iterable[str] = (),
    pure: Iterable[str] = (),
) -> list[str]:
    """What runs on ``lock``'s platform under emulation when built on ``build``, each with why
    ([] when ``build`` is the lock's platform, or when nothing needs the target). Read from the
    plan's steps (``plan.STEPS``: ``runs``): those whose stage runs in ``builder`` are emulated
    only when the Python environment is (the same choice), those that run in ``shared`` always;
    ``sdists``: the distributions built from source first, those of them in ``pure`` without
    compilers (pure Python: runtime/sdists.py's toolchain); ``replaced``: the stages the build
    replaces with a named context (they run nowhere)."""
    if build == lock.platform:
        return []
    skip = set(replaced)
    steps = []
    without = set(pure)
    compiled = [name for name in sdists if name not in without]
    if compiled:
        steps.append(f"building {', '.join(compiled)} from source (the target's compilers)")
    if without & set(sdists):
        names = ", ".join(name for name in sdists if name in without)
        steps.append(f"building {names} from source (pure Python: the target's pip, no compilers)")
    builder_why = ""
    if installs_on(lock, build, on) != build:
        if on != ON_BUILD:
            builder_why = f"{PYTHON_ENV_ARG}={on}"
        elif not lock.installer:
            builder_why = "the lock pins no installer; pip installs only for the platform it runs on"
        elif lock.base.source == "local":
            builder_why = (
                f"the base is a local image of {lock.platform} only: lock a registry base whose index has {build}"
            )
        else:
            builder_why = f"the lock pins no {build} image of the base with Python {lock.base.python_version}"
    seen: set[str] = set()
    for step in image.steps:
        if plan.heavy_group(step.name):  # part of the Python environment's stage
            continue
        if step.runs == plan.ON_BUILDER and builder_why and step.stage not in skip and step.stage not in seen:
            seen.add(step.stage)
            steps.append(f"{step.title} ({builder_why})")
        elif step.runs == plan.ON_TARGET:
            if step.stage and builder_why and step.stage not in skip:
                steps.append(f"resolving and downloading {step.title} ({builder_why})")
            steps.append(f"{step.title} ({step.why})")
    return steps


def emulation_refusal(problem: str | None, steps: list[str] | None) -> str | None:
    """Whether a build for a platform goes ahead on a machine that may not run its binaries:
    ``problem`` is ``platforms.emulation_problem``'s answer (None: it can run them), ``steps``
    what ``emulated_steps`` says runs there (None: not known, as when the stages that fetch the
    wheels run on the target). A platform on which nothing runs needs no QEMU: a wheel-only lock
    whose ``builder`` is the build platform's image of the base (no system packages, no sdist, no
    project wheel) builds without it; None then. Otherwise the refusal: the problem, with what
    would run emulated."""
    if problem is None or steps == []:
        return None
    return problem if steps is None else f"{problem} (what runs there: {'; '.join(steps)})"
