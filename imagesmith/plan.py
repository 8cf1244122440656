"""The image plan: one model of the images imagesmith builds, read by every side.

``plan_for(spec, lock)`` builds one ``ImagePlan`` per platform lock: its parity manifest and
digest (the only place that composes ``parity.digest(parity.manifest_from_lock(...))``), the
environment, the config each role's target sets, the images' user, and the ordered steps of the
``shared`` stage, each with the instruction it is, whether it adds a filesystem layer and what
invalidates it. ``render`` serialises the plan into the Dockerfile, ``build`` runs that, and the
plan's facts (``ImagePlan.facts``) go into the image as its facts file; verify rebuilds the
expected plan from those facts (``ImagePlan.from_facts``) and compares the image with it. So the
layer count over the base, the expected config and the parity each have this one home. The steps
include one per heavy distribution of the lock (``heavy_groups``: a layer of its own, before the
venv's), so the facts name those layers too.

The deploy side imports this module without the spec or the lock: both are only named for type
checking, and ``from_facts`` needs nothing but the facts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import layout, parity
from .runtime import preprocessing

if TYPE_CHECKING:
    from .lock import Lock
    from .spec import Spec


def parity_of(lock: Lock) -> str:
    """The parity digest of ``lock``: the digest of its manifest (``parity.py`` owns both)."""
    return parity.digest(parity.manifest_from_lock(lock))


def parities(locks: dict[str, Lock]) -> dict[str, str]:
    """``{platform: parity}`` of a build's locks."""
    return {platform: parity_of(one) for platform, one in locks.items()}


# ------------------------------------------------------------------------------------------------
# the environment


def image_env(env: dict[str, str], seed: int, determinism: bool) -> dict[str, str]:
    """The environment every image gets: the spec's env, then the seed and determinism settings
    (these win: they are part of the parity)."""
    out = dict(env)
    out.update(
        {
            "PYTHONHASHSEED": str(seed),
            "IMAGESMITH_SEED": str(seed),
            "IMAGESMITH_DETERMINISM": "on" if determinism else "off",
        }
    )
    if determinism:
        out.update(
            {
                "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
                "MKL_CBWR": "COMPATIBLE",
                "OMP_NUM_THREADS": out.get("OMP_NUM_THREADS", "1"),
                "OPENBLAS_NUM_THREADS": out.get("OPENBLAS_NUM_THREADS", "1"),
                "MKL_NUM_THREADS": out.get("MKL_NUM_THREADS", "1"),
                "TF_DETERMINISTIC_OPS": "1",
            }
        )
    return dict(sorted(out.items()))


def manifest_env(manifest: dict) -> dict[str, str]:
    """The environment an image with this parity manifest is built with (``image_env``)."""
    return image_env(dict(manifest["env"]), int(manifest["seed"]), bool(manifest["determinism"]))


# Set by the Dockerfile's shared stage before the spec's environment (``image_env``)
VENV_ENV = {
    "VIRTUAL_ENV": layout.VENV,
    "PATH": layout.IMAGE_PATH,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}


# ------------------------------------------------------------------------------------------------
# the image config: what a target sets, in comparable words

# The config fields a gate compares: everything in an image config that changes what runs
CONFIG_FIELDS = (
    "Entrypoint",
    "Cmd",
    "User",
    "WorkingDir",
    "Env",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
    "Labels",
)

# The labels every target sets from build arguments, and those the build sets when it knows a
# value (layout.OPTIONAL_LABELS: verify accepts them absent): any value is what the Dockerfile implies
BUILD_ARG_LABELS = ("org.opencontainers.image.created", *layout.OPTIONAL_LABELS)


def normalize_config(config: dict | None) -> dict[str, Any]:
    """An image config's fields (``CONFIG_FIELDS``) in one comparable shape: Env and Labels as
    sorted dicts (a repeated variable: the last wins, as for the process), ExposedPorts and
    Volumes as sorted lists, absent and empty alike (None, "" or [] by field)."""
    config = config or {}
    env: dict[str, str] = {}
    for item in config.get("Env") or ():
        key, _, value = str(item).partition("=")
        env[key] = value
    return {
        "Entrypoint": list(config.get("Entrypoint") or []),
        "Cmd": list(config.get("Cmd") or []),
        "User": str(config.get("User") or ""),
        "WorkingDir": str(config.get("WorkingDir") or ""),
        "Env": dict(sorted(env.items())),
        "ExposedPorts": sorted(config.get("ExposedPorts") or {}),
        "Volumes": sorted(config.get("Volumes") or {}),
        "StopSignal": str(config.get("StopSignal") or ""),
        "Healthcheck": config.get("Healthcheck") or None,
        "OnBuild": list(config.get("OnBuild") or []),
        "Shell": list(config.get("Shell") or []),
        "Labels": dict(sorted((config.get("Labels") or {}).items())),
    }


def expected_config(base: dict[str, Any] | None, implied: dict[str, Any]) -> dict[str, Any]:
    """The config an image built from imagesmith's Dockerfile has: its base's (normalized; None
    when the base could not be read: then only what the Dockerfile sets is known) with what the
    Dockerfile sets laid over it, as Docker does: ENV and LABEL add to the base's, EXPOSE adds
    ports, ENTRYPOINT resets CMD, everything else replaces."""
    out = dict(base) if base is not None else {"Env": {}, "Labels": {}, "ExposedPorts": []}
    for key, value in implied.items():
        if key in ("Env", "Labels"):
            out[key] = {**out.get(key, {}), **value}
        elif key == "ExposedPorts":
            out[key] = sorted(set(out.get(key, [])) | set(value))
        else:
            out[key] = value
    if "Entrypoint" in implied and "Cmd" not in implied and base is not None:
        out["Cmd"] = []
    return out


def platforms_label(siblings: dict[str, str]) -> str:
    """The ``io.imagesmith.platforms`` label's value: ``{platform: parity}``, canonical JSON."""
    return json.dumps(dict(sorted(siblings.items())), separators=(",", ":"))


def image_user(spec: Spec) -> str:
    """The exact value of the USER line both targets get: ``"UID:GID"`` of the images' own
    non-root user (``layout.IMAGE_UID``/``IMAGE_GID``) by default; ``""`` when the spec opts out
    (``user: root``): then there is no USER line and the images run as the base image's user."""
    if spec.user == "root":
        return ""
    return f"{layout.IMAGE_UID}:{layout.IMAGE_GID}"


def role_config(
    *,
    role: str,
    command: list[str],
    port: int | None,
    user: str,
    env: dict[str, str],
    labels: dict[str, str | None],
) -> dict[str, Any]:
    """The image config a role's target sets, field by field, in the words of
    ``normalize_config``; fields it leaves to the base are absent. Labels set from build
    arguments (``BUILD_ARG_LABELS``) have the value None: any value is right."""
    return {
        "Entrypoint": [layout.VENV_PYTHON, "-m", layout.RUNTIME_MODULE, role, "--"],
        "Cmd": list(command),
        **({"User": user} if user else {}),
        "WorkingDir": layout.APP_DIR,
        "Env": dict(sorted({**VENV_ENV, **env}.items())),
        "ExposedPorts": [f"{port}/tcp"] if port else [],
        "Labels": dict(sorted({**labels, layout.LABEL_ROLE: role, **dict.fromkeys(BUILD_ARG_LABELS)}.items())),
    }


# ------------------------------------------------------------------------------------------------
# the steps of the shared stage


# Where a step's work runs (``Step.runs``): nowhere (image config, or files from the build
# context), in ``builder`` (a stage of its own whose files the step copies: on the build platform
# when the lock allows it, ``python_env.py``), or in ``shared`` itself, on the target platform
NOWHERE, ON_BUILDER, ON_TARGET = "", "builder", "target"


@dataclass(frozen=True)
class Step:
    """One instruction of the Dockerfile's ``shared`` stage: its name (the template's block),
    the instruction, whether BuildKit writes a filesystem layer for it, and what invalidates it
    (besides every step before it); what it makes, in words (``title``), the stage it copies
    its files from (``stage``, without the platform's suffix) and where its work runs
    (``runs``), with why for the target (``why``): what a build says runs emulated. A step
    that runs on the target may have a stage too, in ``builder``, that prepares what it runs
    (the system packages' downloads)."""

    name: str
    instruction: str
    layer: bool
    invalidated_by: tuple[str, ...]
    title: str = ""
    stage: str = ""
    runs: str = NOWHERE
    why: str = ""


# Every step the shared stage can have, in the order the Dockerfile runs them, slowest-changing
# first. A plan keeps those its spec and lock need (``plan_steps``).
# The steps that copy from a stage run nothing on the target: their stage runs in ``builder``
# (python_env.py: natively, from the same base's image of the build platform, when the lock pins
# one; the same files either way). Only what needs the target's own code runs in ``shared``.
STEPS = (
    Step("user", "COPY", True, ("the base image",), "the images' user", "user-files", ON_BUILDER),
    Step(
        "system-packages",
        "RUN",
        True,
        ("the locked system packages",),
        "system packages",
        "system-packages",
        ON_TARGET,
        why="dpkg and their maintainer scripts; apt resolves and downloads them in the builder stage",
    ),
    Step(
        "python-env",
        "COPY",
        True,
        ("the locked distributions", "the installer", "the runtime wheel"),
        "the Python environment",
        "python-env",
        ON_BUILDER,
    ),
    Step("workdir", "WORKDIR", True, ()),  # BuildKit writes a layer for WORKDIR too
    Step("venv-env", "ENV", False, ()),
    Step(
        "project-setup",
        "COPY",
        True,
        ("the preprocessing files", "the artifacts path"),
        "the preprocessing wheel and the artifacts folder",
        "project-setup",
        ON_BUILDER,
    ),
    Step("source", "COPY", True, ("the source files",), "the app code's file times", "source", ON_BUILDER),
    Step(
        "project",
        "RUN",
        True,
        ("the project's own wheel",),
        "the project's wheel",
        runs=ON_TARGET,
        why="its build backend, and the wheel may hold the target's code",
    ),
    # the last layer, so that verify finds it on top of an image without reading the rest
    Step(
        "facts",
        "COPY",
        True,
        ("the image facts: the parity, each role's config, the steps",),
        "the image facts",
        "image-facts",
        ON_BUILDER,
    ),
    Step("env", "ENV", False, ("the spec's env", "the seed", "determinism")),
    Step("labels", "LABEL", False, ("the parity", "the base")),
)
STEP_NAMES = tuple(s.name for s in STEPS)

# A heavy distribution's step: its files, moved out of the venv in the python-env stage
# (runtime/heavy.py), COPYed as a layer of their own right before the python-env step. Its name
# is the prefix and the distribution's canonical name.
HEAVY_PREFIX = "heavy:"
_CANONICAL = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")

# Distributions of tens to hundreds of megabytes installed, even without a CUDA marker in their name
# or version (a plain PyPI torch pulls its CUDA from nvidia-* wheels beside it). With every
# distribution ``gpu.classify`` reads as CUDA-bearing they are the lock's heavy distributions
# (``heavy_groups``): a layer each, so bumping a small pin or editing code reuses them in the build
# cache, the registry and on pull, and so the export compresses them in parallel (one gzip stream
# per layer; a single venv layer keeps one core busy while the others wait).
HEAVY_NAMES = frozenset(
    {
        # frameworks
        "jaxlib",
        "onnxruntime",
        "onnxruntime-gpu",
        "pytorch-triton",
        "tensorflow",
        "torch",
        "torchvision",
        "triton",
        # the numeric and data stack
        "catboost",
        "llvmlite",
        "numpy",
        "opencv-contrib-python",
        "opencv-contrib-python-headless",
        "opencv-python",
        "opencv-python-headless",
        "pandas",
        "polars",
        "pyarrow",
        "scikit-learn",
        "scipy",
        "sympy",
        "transformers",
        "xgboost",
    }
)


def heavy_groups(packages: Iterable[Any], named: Iterable[str] = ()) -> tuple[str, ...]:
    """The heavy distributions of a lock's pins (objects with canonical ``name`` and ``version``),
    each a layer of its own: the CUDA-bearing ones (``gpu.classify``), ``HEAVY_NAMES`` and those
    ``named`` (the spec's ``heavy``) that the lock pins, sorted by name, so the order depends on
    the lock and spec alone and a new small pin never moves them."""
    from . import gpu

    wanted = HEAVY_NAMES | frozenset(named)
    return tuple(
        sorted(
            {
                p.name
                for p in packages
                if _CANONICAL.match(p.name) and (p.name in wanted or gpu.classify(p.name, p.version) is not None)
            }
        )
    )


def heavy_step(group: str) -> Step:
    """The step that copies one heavy distribution's files (``heavy_groups``) as its own layer."""
    return Step(
        HEAVY_PREFIX + group, "COPY", True, (f"the locked {group}",), f"{group}'s layer", "python-env", ON_BUILDER
    )


def heavy_group(name: str) -> str | None:
    """The distribution a heavy step's name names (None: not a heavy step's name)."""
    group = name[len(HEAVY_PREFIX) :] if name.startswith(HEAVY_PREFIX) else ""
    return group if _CANONICAL.match(group) else None


def is_step_name(name: str) -> bool:
    """Whether imagesmith makes a step of this name (one of ``STEPS`` or a heavy step)."""
    return name in STEP_NAMES or heavy_group(name) is not None


def plan_steps(
    *, user: bool, system_packages: bool, source: bool, project: bool, heavy: tuple[str, ...] = ()
) -> tuple[Step, ...]:
    """The shared stage's steps for an image with these parts, in order; ``heavy``: the heavy
    distributions (``heavy_groups``), each a step right before the python-env step."""
    optional = {"user": user, "system-packages": system_packages, "source": source, "project": project}
    out: list[Step] = []
    for s in STEPS:
        if s.name == "python-env":
            out.extend(heavy_step(group) for group in heavy)
        if optional.get(s.name, True):
            out.append(s)
    return tuple(out)


def layers_of(steps: tuple[Step, ...]) -> int:
    """How many filesystem layers ``steps`` put on the base."""
    return sum(1 for s in steps if s.layer)


def shared_layers(a: tuple[str, ...] | list[str], b: tuple[str, ...] | list[str]) -> int:
    """How many layers two layer lists share from the bottom."""
    common = 0
    for x, y in zip(a, b):
        if x != y:
            break
        common += 1
    return common


# ------------------------------------------------------------------------------------------------
# the plan


@dataclass(frozen=True)
class ImagePlan:
    """The images of one platform: what render writes, build runs and verify expects."""

    platform: str
    manifest: dict[str, Any]
    parity: str
    env: dict[str, str]  # the spec's env with seed and determinism (``image_env``)
    configs: dict[str, dict[str, Any]]  # {role: the config its target sets (``role_config``)}
    user: str  # the USER line's value ("" for none)
    steps: tuple[Step, ...]
    artifacts: str = ""
    project: str | None = None  # the project's own distribution, when it is installed
    preprocessing: dict[str, str] | None = None  # the preprocessing wheel's name and version
    siblings: dict[str, str] | None = None  # a multi-platform build's {platform: parity}
    gpu: dict[str, Any] | None = None  # a GPU image's contract: the lock's gpu section (lock/cuda.py)

    @property
    def heavy(self) -> tuple[str, ...]:
        """The heavy distributions this plan gives layers of their own, in their order."""
        return tuple(g for s in self.steps if (g := heavy_group(s.name)))

    @property
    def layers_over_base(self) -> int:
        """How many filesystem layers the Dockerfile puts on the base (one home: the steps)."""
        return layers_of(self.steps)

    def layers_added(self, image_layers: tuple[str, ...] | list[str], base_layers: tuple[str, ...] | list[str]) -> int:
        """Filesystem layers an image has on top of what this plan makes (a child's; negative:
        fewer than the plan makes)."""
        return len(image_layers) - len(base_layers) - self.layers_over_base

    def facts(self) -> dict[str, Any]:
        """The image facts file's content (``imagesmith_image.json``): what the runtime in the
        image reads (``runtime/stamp.py``: parity, manifest, seed, artifacts, ...) and what
        verify rebuilds this plan from (``from_facts``)."""
        return {
            "artifacts": self.artifacts,
            "configs": self.configs,
            "determinism": bool(self.manifest["determinism"]),
            "manifest": self.manifest,
            "parity": self.parity,
            "preprocessing": self.preprocessing,
            "seed": self.manifest["seed"],
            "steps": [s.name for s in self.steps],
            **({"project": {"name": self.project}} if self.project else {}),
            **({"platforms": dict(self.siblings)} if self.siblings else {}),
            **({"gpu": self.gpu} if self.gpu else {}),
        }

    @classmethod
    def from_facts(cls, facts: dict[str, Any]) -> ImagePlan:
        """The plan an image's facts file describes (verify's expectation). ValueError when the
        facts name a step imagesmith does not make or hold no manifest."""
        manifest = facts.get("manifest")
        if not isinstance(manifest, dict):
            raise ValueError("the image facts hold no parity manifest")
        names = facts.get("steps") or []
        unknown = [n for n in names if not (isinstance(n, str) and is_step_name(n))]
        if unknown:
            raise ValueError(f"the image facts name steps imagesmith does not make: {', '.join(map(str, unknown))}")
        by_name = {s.name: s for s in STEPS}
        by_name.update({n: heavy_step(group) for n in names if (group := heavy_group(n))})
        project = facts.get("project")
        try:
            env = manifest_env(manifest)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"the image facts' manifest is not a parity manifest ({exc!r})") from None
        return cls(
            platform=str(manifest.get("platform", "")),
            manifest=manifest,
            parity=parity.digest(manifest),
            env=env,
            configs=dict(facts.get("configs") or {}),
            user=str(((facts.get("configs") or {}).get("serve") or {}).get("User") or ""),
            steps=tuple(by_name[n] for n in names),
            artifacts=str(facts.get("artifacts") or ""),
            project=project.get("name") if isinstance(project, dict) else None,
            preprocessing=facts.get("preprocessing"),
            siblings=facts.get("platforms"),
            gpu=facts.get("gpu") if isinstance(facts.get("gpu"), dict) else None,
        )


def plan_for(spec: Spec, lock: Lock, siblings: dict[str, str] | None = None) -> ImagePlan:
    """The plan of the images built from ``spec`` and one platform's ``lock``. ``siblings``: a
    multi-platform build's ``{platform: parity}`` (a model trained in one of its images may be
    served by another after a signoff: ``runtime/stamp.py``)."""
    from .lock import cuda  # the build side's: the deploy side reads the contract from the facts

    manifest = parity.manifest_from_lock(lock)
    digest = parity.digest(manifest)
    gpu = cuda.section(lock).get(cuda.SECTION)
    env = image_env(dict(lock.env), lock.seed, lock.determinism)
    user = image_user(spec)
    labels: dict[str, str | None] = {
        layout.LABEL_PARITY: digest,
        layout.LABEL_BASE_NAME: lock.base.name,
        layout.LABEL_BASE_DIGEST: lock.base.digest,
        **({layout.LABEL_PLATFORMS: platforms_label(siblings)} if siblings else {}),
        **({layout.LABEL_GPU: gpu_label} if (gpu_label := cuda.label(lock)) else {}),
    }
    commands = {"train": (None, spec.train.command), "serve": (spec.serve.port, spec.serve.command)}
    configs = {
        role: role_config(
            role=role, command=list(commands[role][1]), port=commands[role][0], user=user, env=env, labels=labels
        )
        for role in layout.ROLES
    }
    version = lock.preprocessing_version
    return ImagePlan(
        platform=lock.platform,
        manifest=manifest,
        parity=digest,
        env=env,
        configs=configs,
        user=user,
        steps=plan_steps(
            user=bool(user),
            system_packages=bool(lock.system_packages),
            source=bool(spec.source),
            project=spec.project is not None,
            heavy=heavy_groups(lock.packages, spec.heavy),
        ),
        artifacts=spec.artifacts,
        project=spec.project.name if spec.project else None,
        preprocessing={"name": preprocessing.distribution_name(spec.name), "version": version} if version else None,
        siblings=dict(siblings) if siblings else None,
        gpu=gpu,
    )


def plans_for(spec: Spec, locks: dict[str, Lock]) -> dict[str, ImagePlan]:
    """``{platform: plan}`` of a build's locks (the spec's order); several platforms know each
    other's parity (``siblings``)."""
    siblings = parities(locks) if len(locks) > 1 else None
    return {platform: plan_for(spec, one, siblings) for platform, one in locks.items()}
