"""``imagesmith build``: lock when needed, render, build train and serve with BuildKit, tag, push.

Both targets are built in one ``docker buildx bake`` solve from a bake definition made here
(``bake_definition``, pure). Where the images go depends on the builder: the engine's own
BuildKit (driver ``docker``) puts them straight into its image store; any other builder
(``docker-container``, ``remote``, ...) keeps them in its cache unless ``--load`` (into the
engine) or ``--push`` (straight to the registry, from the build) says otherwise; ``--push-only``
keeps them out of the engine with any builder. Digests always
come from BuildKit's metadata. Images are reproducible because the rendered Dockerfile sets
every file time itself and SOURCE_DATE_EPOCH (the project's last commit time) sets the
config's; the wheels come from a host cache keyed by hash (``wheels.py``); a local base image is
handed to the builder as an OCI layout bound to its digest.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

from . import fsutil, gpu_arch, parity, python_env
from .build_failure import describe_failure
from .credentials import SECRET_ID, index_netrc, secret_file, strip_userinfo
from .engine import Engine
from .engine.buildx import NoOciLayout
from .errors import LockError, UsageError
from .fsutil import atomic_write, holds
from .gitinfo import GitFacts, git_facts, git_facts_started, git_tag
from .layout import LABEL_USER, OPTIONAL_LABELS, RESERVED_LABELS, ROLES, checked_tag_option, image_ref, parity_tag
from .lock import Lock
from .lock.update import ensure_fresh_all, lock_project
from .plan import parities as plan_parities
from .plan import plan_for
from .platforms import emulation_problem, machine_platform, platform_arch
from .push_only import PUSH_ONLY, check_push_only, pushed_checked
from .render import check_replaceable, dockerignore, dockerignore_path, render, write_context
from .runtime_wheel import check_folder
from .source_context import staged
from .spec import Spec
from .wheels import WheelCache, default_cache_dir


@dataclass
class BuiltImage:
    role: str
    ref: str | None  # the engine's first tag (REPO:ROLE); None when the builder kept the image to itself
    id: str  # the image's manifest digest from BuildKit (the engine's image ID with the containerd store)
    pushed: str | None = None  # REGISTRY/REPO@sha256:... when pushed
    tags: list[str] = field(default_factory=list)  # every tag in the engine, ref first
    pushed_tags: list[str] = field(default_factory=list)  # every tag pushed


@dataclass
class BuildResult:
    parity: str  # the only platform's parity; with several, parity.index_digest of them all
    images: dict[str, BuiltImage] = field(default_factory=dict)
    dockerfile: Path | None = None
    bake: dict | None = None  # the bake definition (what `build --print` prints)
    platforms: dict[str, str] = field(default_factory=dict)  # platform -> its parity

    def as_json(self) -> dict:
        out: dict = {"parity": self.parity, "platforms": dict(self.platforms), "images": {}}
        for role, img in self.images.items():
            entry: dict = {"ref": img.ref, "id": img.id, "digest": img.id, "tags": list(img.tags)}
            if img.pushed:
                entry["pushed"] = img.pushed
                entry["pushed_tags"] = list(img.pushed_tags)
            out["images"][role] = entry
        return out


@dataclass
class BuildOptions:
    base: str | None = None
    locked: bool = False
    tag: str | None = None  # one repository for the tags (the API's short form of ``tags``)
    tags: tuple[str, ...] = ()  # REPO or REPO:TAG each (see image_tags); default: the spec's name
    labels: dict[str, str] = field(default_factory=dict)  # extra labels on both images (parse_labels)
    print_only: bool = False  # make the bake definition (contexts included) but do not build
    no_cache: bool = False
    builder: str | None = None
    cache_from: tuple[str, ...] = ()  # per target: see cache_refs
    cache_to: tuple[str, ...] = ()
    push: str | None = None  # REGISTRY/REPO: push REPO:train and REPO:serve from the build
    load: bool = False  # put the images into the engine even when the builder is not the engine's
    push_only: bool = False  # with push: the registry only, never the engine (no unpack into its store)
    epoch: int | None = None
    targets: tuple[str, ...] = ROLES
    install: str | None = None  # hermetic | online; default: the spec's
    cache_dir: Path | None = None  # the wheel cache; default ~/.cache/imagesmith
    python_env: str = python_env.ON_BUILD  # where a platform's Python environment is installed (python_env.py)


def build_project(
    spec: Spec,
    engine: Engine,
    options: BuildOptions,
    *,
    progress=lambda msg: None,
    echo: Callable[[str], None] | None = None,
    passthrough: bool = False,
) -> BuildResult:
    """Lock (unless ``options.locked``), render, and build. ``echo`` receives BuildKit's plain log
    line by line; ``passthrough`` lets BuildKit draw its own display on this terminal instead."""
    unknown = [t for t in options.targets if t not in ROLES]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}; imagesmith builds train and serve")
    check_push_only(
        push=options.push,
        push_only=options.push_only,
        load=options.load,
        tags=options.tags + ((options.tag,) if options.tag else ()),
    )
    check_replaceable(spec.dockerfile_path, origin=spec.origin)  # before anything runs: never over a user's file
    check_folder(spec.root)  # nor through a link out of the project
    base = options.base or spec.base
    engine.ping()
    # `docker buildx inspect` (the builder's driver) runs while the lock is checked and the
    # Dockerfile rendered: on an edit it is the slowest start-up step.
    # Its answer (and refusal: `_driver_checked`) is awaited before wheels are fetched for a named
    # builder, and before anything is built for the current one (see `confirm` below); a stale
    # lock is brought up to date first.
    engine.buildx_prefetch(options.builder)
    # The checkout's git facts (SOURCE_DATE_EPOCH, the OCI labels) are read meanwhile too
    git = git_facts_started(spec.root)
    # A platform this machine cannot run is refused where something must run there: by the lock
    # when it would run the platform's base (lock/emulation.py), else once its plan says a step
    # runs there (python_env.emulation_refusal)
    problems = {p: problem for p in spec.platforms if (problem := emulation_problem(p))}
    if options.locked:
        locks = ensure_fresh_all(spec, base)
    else:
        locked = lock_project(spec, engine, base=base, progress=progress)
        if locked.changed:
            progress(f"locked ({', '.join(locked.changed)} changed)")
        locks = locked.locks
    locks = gpu_arch.record(spec, locks, engine, WheelCache(options.cache_dir or default_cache_dir()), progress)
    lock = locks[spec.platform]
    text = render(spec, locks)
    write_context(spec, locks)  # what the Dockerfile copies from .imagesmith/: the runtime wheel, the facts
    dockerfile = spec.dockerfile_path
    ignore = dockerignore(spec)
    if not holds(dockerignore_path(dockerfile), ignore):
        atomic_write(dockerignore_path(dockerfile), ignore)
    if not holds(dockerfile, text):
        atomic_write(dockerfile, text)
        progress(f"rendered {dockerfile.name}")
    parities = plan_parities(locks)
    digest = parities[spec.platform] if len(parities) == 1 else parity.index_digest(parities)
    facts = git.result()
    epoch = options.epoch if options.epoch is not None else facts.source_date_epoch
    result = BuildResult(parity=digest, dockerfile=dockerfile, platforms=parities)
    tags = options.tags or ((options.tag,) if options.tag else (spec.name,))
    names = {role: image_tags(tags, role, digest) for role in options.targets}
    pushed = {role: image_tags((options.push,), role, digest) for role in options.targets} if options.push else {}
    cache_dir = options.cache_dir or default_cache_dir()
    with (
        staged(spec.root, spec.source, ignore, cache_dir, tuple(locks)) as source_images,
        secret_file(index_netrc(lock.index_url, lock.other_index_urls)) as netrc,
    ):
        # With the current builder, the bake starts before its driver is known, made for the engine's
        # own BuildKit (the default builder's), and `confirm` checks the answer of the prefetched
        # `docker buildx inspect` while buildx starts: a refusal (_driver_checked) or a definition
        # that another driver needs stops that bake before it solves anything. Named builders,
        # --print and BuildKit's own display wait for the answer first.
        speculate = options.builder is None and not passthrough and not options.print_only
        driver = ENGINE_DRIVER if speculate else _driver_checked(engine, options)
        contexts: dict[str, str] = {}
        sdists: dict[str, list[str]] = {}
        for platform, one in locks.items():
            suffix = f"-{platform_arch(platform)}" if spec.multi_platform else ""
            ours = build_contexts(spec, one, options, engine, progress)
            if source_images is not None:  # the source stage, staged on the host (source_context.py)
                ours["source"] = source_images[platform]
            house = Path(ours["wheels"]) if "wheels" in ours else None
            sdists[platform] = python_env.sdists_in(house) if house else []
            if house and not sdists[platform]:  # nothing to build from source: the sdist-build stage's RUN is skipped
                ours["sdist-build"] = str(_no_sdists(cache_dir))
            steps = (
                say_emulated(spec, one, house, sdists[platform], options, progress, replaced=ours) if house else None
            )
            refusal = python_env.emulation_refusal(problems.get(platform), steps)
            if refusal:
                raise UsageError(refusal)
            contexts.update({name + suffix: value for name, value in ours.items()})
        labels = {**oci_labels(spec.root, facts), **image_labels(options.labels)}

        def definition_for(driver: str) -> dict:
            return bake_definition(
                context=spec.root,
                dockerfile=dockerfile,
                targets=options.targets,
                names=names,
                push=pushed,
                load=options.load,
                push_only=options.push_only,
                driver=driver,
                build_args=build_args(epoch, options.python_env),
                contexts=contexts,
                labels=labels,
                cache_from=options.cache_from,
                cache_to=options.cache_to,
                no_cache=options.no_cache,
                secrets={SECRET_ID: netrc} if netrc else None,
                platforms=spec.platforms,
            )

        definition = result.bake = definition_for(driver)
        if options.print_only:
            return result
        guessed = driver

        def confirm() -> dict | None:
            nonlocal driver
            driver = _driver_checked(engine, options)
            if driver == guessed:
                return None
            again = definition_for(driver)
            if again == definition:
                return None
            result.bake = again
            return again

        progress(f"building {' and '.join(options.targets)}" + (f", pushing to {options.push}" if options.push else ""))
        bake = partial(engine.bake, cwd=spec.root, epoch=epoch, builder=options.builder, echo=echo)
        bake = partial(bake, describe_failure=describe_failure(spec, sdists), passthrough=passthrough)
        try:
            metadata = bake(definition, confirm=confirm if speculate else None)
        except NoOciLayout:
            if source_images is None:
                raise  # the base's layout: nothing else to hand the builder
            progress("the builder reads no OCI layout (the classic image store): the source stage runs in the build")
            contexts = {name: value for name, value in contexts.items() if name.partition("-")[0] != "source"}
            result.bake = definition_for(driver)
            metadata = bake(result.bake)
    if options.push_only:
        pushed_checked(engine, pushed, metadata)
    in_engine = (driver == "docker" and not options.push_only) or options.load
    for role in options.targets:
        image_digest = metadata[role]["containerimage.digest"]
        if driver == "docker" and options.push and in_engine:
            # The build named it REGISTRY/REPO:... only. The containerd image store knows it by
            # its manifest digest, the classic store by its config digest (its image ID).
            local = [image_digest, metadata[role].get("containerimage.config.digest") or image_digest]
            for name in names[role]:
                engine.tag(local, name)
        result.images[role] = BuiltImage(
            role=role,
            ref=names[role][0] if in_engine else None,
            id=image_digest,
            pushed=f"{options.push}@{image_digest}" if options.push else None,
            tags=list(names[role]) if in_engine else [],
            pushed_tags=list(pushed.get(role, [])),
        )
    return result


ENGINE_DRIVER = "docker"  # buildx's driver for the engine's own BuildKit


def _driver_checked(engine: Engine, options: BuildOptions) -> str:
    """The builder's driver, refused when the images would stay in the builder's own cache."""
    engine.buildx_available()
    driver = engine.builder_driver(options.builder)
    if driver != "docker" and not (options.load or options.push):
        raise UsageError(
            f"the builder {options.builder or '(current)'} (driver {driver}) keeps images in its own cache",
            hint="add --load to put them into the engine, or --push REGISTRY/REPO to push them",
        )
    return driver


def image_tags(tags: tuple[str, ...], role: str, parity_digest: str) -> list[str]:
    """The tags of one image. Each given tag is a repository (``REPO`` -> ``REPO:ROLE``) or a
    full reference (``REPO:TAG`` -> ``REPO:TAG-ROLE``: the role suffix keeps train and serve
    apart). The first repository also gets ``REPO:ROLE-<first 12 hex of the parity>``: a tag
    per parity that a deploy script can compute from the lock (`imagesmith parity-of`)."""
    out: list[str] = []
    for given in tags:
        name, tag = checked_tag_option(given)
        out.append(f"{name}:{tag}-{role}" if tag else image_ref(name, role))
    out.append(f"{checked_tag_option(tags[0])[0]}:{parity_tag(role, parity_digest)}")
    return list(dict.fromkeys(out))


_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,200}")


def image_labels(user: dict[str, str]) -> dict[str, str]:
    """The labels the build sets on both images beside the Dockerfile's: the user's own
    (``--label``) and, when there are any, ``io.imagesmith.labels`` listing them (canonical JSON),
    so that verify expects exactly them and still refuses a label someone adds later."""
    if not user:
        return {}
    return {**user, LABEL_USER: json.dumps(dict(sorted(user.items())), sort_keys=True, separators=(",", ":"))}


def parse_labels(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``--label KEY=VALUE`` values, checked: imagesmith's own labels (and the base labels) are
    not the user's to set; no line breaks."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _LABEL_KEY.fullmatch(key):
            raise UsageError(f"--label {item!r} is not KEY=VALUE with a plain key", hint="e.g. --label team=vision")
        if key.startswith(RESERVED_LABELS):
            raise UsageError(f"--label {key} is set by imagesmith itself", hint="choose another key")
        if any(c in value for c in "\n\r\0"):
            raise UsageError(f"--label {key}: the value contains a line break or NUL")
        labels[key] = value
    return dict(sorted(labels.items()))


def _csv(fields: dict[str, str]) -> str:
    """A buildx output/cache attribute string; values with a comma or quote are quoted (CSV)."""
    parts = []
    for key, value in fields.items():
        field_text = f"{key}={value}"
        parts.append(
            '"' + field_text.replace('"', '""') + '"' if ("," in field_text or '"' in field_text) else field_text
        )
    return ",".join(parts)


def _parse_csv(text: str) -> dict[str, str]:
    import csv

    row = next(csv.reader([text]), [])
    return {key: value for key, _, value in (item.partition("=") for item in row)}


def cache_refs(spec_text: str, role: str) -> str:
    """One cache per target from one ``--cache-to``/``--cache-from`` value, so the targets do not
    overwrite each other's cache: a registry ``ref=R:TAG`` becomes ``R:TAG-ROLE`` (``R:ROLE`` with
    no tag), a local ``dest``/``src`` folder gets a ``ROLE`` subfolder, a GitHub Actions ``scope``
    a ``-ROLE`` suffix. Anything else is passed as it is."""
    fields = _parse_csv(spec_text) if "=" in spec_text else {"type": "registry", "ref": spec_text}
    kind = fields.get("type", "registry")  # buildx's default type too
    if kind == "registry" and fields.get("ref"):
        ref = fields["ref"]
        name, at, digest = ref.partition("@")
        last = name.rsplit("/", 1)[-1]
        fields["ref"] = (f"{name}-{role}" if ":" in last else f"{name}:{role}") + (at + digest if at else "")
    elif kind == "local":
        for key in ("dest", "src"):
            if fields.get(key):
                fields[key] = fields[key].rstrip("/") + f"/{role}"
    elif kind == "gha":
        fields["scope"] = f"{fields.get('scope') or 'imagesmith'}-{role}"
    return _csv(fields)


def bake_definition(
    *,
    context: Path,
    dockerfile: Path,
    targets: tuple[str, ...],
    names: dict[str, list[str]],
    push: dict[str, list[str]],
    load: bool,
    driver: str,
    push_only: bool = False,
    build_args: dict[str, str],
    contexts: dict[str, str],
    labels: dict[str, str] | None = None,
    cache_from: tuple[str, ...] = (),
    cache_to: tuple[str, ...] = (),
    no_cache: bool = False,
    secrets: dict[str, Path] | None = None,
    platforms: tuple[str, ...] = (),
) -> dict:
    """The bake file (as a dict) that builds ``targets`` in one solve. Pure.

    Outputs: with the engine's own BuildKit (driver ``docker``) an image goes straight into the
    engine's store under ``names[role]``, or under ``push[role]`` and pushed from the build (the
    local names are added afterwards: pushing every name would push the local ones too). With
    any other builder: ``push`` pushes from the build and ``load`` exports into the engine
    (type=docker). ``push_only`` (with ``push``): the driver ``docker``'s exporter pushes and
    neither stores nor unpacks the image in the engine (``push_only.PUSH_ONLY``). ``labels`` go
    on both images. Each target writes its own cache (``cache_refs``) and reads every target's.
    ``secrets`` ({id: file}) are BuildKit secrets, mounted by ``RUN --mount=type=secret`` and
    never stored in an image or the cache."""
    common: dict = {
        "context": str(context),
        "dockerfile": str(dockerfile),
        "args": dict(sorted(build_args.items())),
        "contexts": dict(sorted(contexts.items())),
    }
    if labels:
        common["labels"] = dict(sorted(labels.items()))
    if secrets:
        common["secret"] = [f"id={key},src={path}" for key, path in sorted(secrets.items())]
    if no_cache:
        common["no-cache"] = True
    if platforms:
        common["platforms"] = list(platforms)
    reads = [cache_refs(c, role) for c in cache_from for role in targets]
    definition: dict = {"group": {"default": {"targets": list(targets)}}, "target": {}}
    for role in targets:
        outputs = []
        if driver == "docker":
            if role in push:
                pushing = PUSH_ONLY if push_only else {"push": "true"}
                outputs.append(_csv({"type": "image", "name": ",".join(push[role]), **pushing}))
            else:
                outputs.append(_csv({"type": "image", "name": ",".join(names[role])}))
        else:
            if role in push:
                outputs.append(_csv({"type": "image", "name": ",".join(push[role]), "push": "true"}))
            if load:
                outputs.append(_csv({"type": "docker", "name": ",".join(names[role])}))
        entry = dict(common, target=role, output=outputs)
        if reads:
            entry["cache-from"] = list(dict.fromkeys(reads))
        if cache_to:
            entry["cache-to"] = [cache_refs(c, role) for c in cache_to]
        definition["target"][role] = entry
    return definition


def build_args(epoch: int, python_env_on: str = python_env.ON_BUILD) -> dict[str, str]:
    created = dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    args = {"IMAGESMITH_CREATED": created}
    if python_env_on != python_env.ON_BUILD:
        args[python_env.PYTHON_ENV_ARG] = python_env_on
    return args


def oci_labels(root: Path, facts: GitFacts | None = None) -> dict[str, str]:
    """``org.opencontainers.image.revision``, ``.source`` and ``.version`` (``OPTIONAL_LABELS``),
    each only when known: git HEAD, the origin URL (credentials stripped), ``project_version``.
    A label with no value is left out, as the OCI annotations spec intends (not ``unknown``).
    ``facts``: ``root``'s git facts, read already (``git_facts``)."""
    facts = git_facts(root) if facts is None else facts
    values = (facts.revision, facts.source(strip_userinfo), project_version(root, facts.tag))
    return {name: value for name, value in zip(OPTIONAL_LABELS, values) if value}


def project_version(root: Path, tag: str | None = None) -> str | None:
    """What ``org.opencontainers.image.version`` says: the git tag on HEAD (a release), else
    ``[project].version`` of pyproject.toml, else None (no label). ``tag``: ``git_tag``'s answer,
    read already."""
    tag = git_tag(root) if tag is None else tag
    if tag:
        return tag
    try:
        data = fsutil.read_toml(root / "pyproject.toml")
    except (OSError, ValueError):
        return None
    version = (data.get("project") or {}).get("version") if isinstance(data.get("project"), dict) else None
    return str(version) if isinstance(version, str) and version and "\n" not in version else None


def _no_sdists(cache_dir: Path) -> Path:
    """The sdist-build stage's result when nothing is built from source: an empty ``built/``."""
    folder = cache_dir / "no-sdists"
    (folder / "built").mkdir(parents=True, exist_ok=True)
    return folder


def say_emulated(
    spec: Spec,
    lock: Lock,
    house: Path,
    sdists: list[str],
    options: BuildOptions,
    progress,
    replaced: Iterable[str] = (),
) -> list[str]:
    """One progress line for a platform other than this machine's: where its Python environment
    is installed, and which steps run emulated and why, read from the image plan's steps
    (python_env.emulated_steps); ``sdists``: the wheelhouse ``house``'s sources
    (``python_env.sdists_in``, listed once by the caller); ``replaced``: the stages named
    contexts replace. Returns those steps."""
    build = machine_platform()
    if build == lock.platform:
        return []
    on = python_env.installs_on(lock, build, options.python_env)
    pure = python_env.pure_python(house, sdists)
    steps = python_env.emulated_steps(
        plan_for(spec, lock), lock, build, sdists=sdists, on=options.python_env, replaced=replaced, pure=pure
    )
    where = f"natively on {build}" if on == build else f"on {lock.platform}, emulated"
    said = "emulated: " + "; ".join(steps) if steps else "nothing runs emulated"
    progress(f"{lock.platform}: the Python environment is installed {where}; {said}")
    return steps


def build_contexts(
    spec: Spec, lock: Lock, options: BuildOptions, engine: Engine, progress=lambda msg: None
) -> dict[str, str]:
    """Named build contexts that replace stages of the rendered Dockerfile:

    - ``base``, for a base that exists only in the local engine: the image exported once as an
      OCI layout (cached by digest) and passed as ``oci-layout://DIR@DIGEST``. Bound to the
      locked digest, works on an engine that never built from it and with any builder. A tag
      that now names another image is refused: the lock pins what was resolved against.
    - ``wheels``, for hermetic installs (the default): a wheelhouse prepared on the host (the
      caller lists its sdists, and replaces ``sdist-build`` when it has none).

    The two are made at the same time (the base's export in a thread while the wheels download):
    neither needs the other, and a cold build waits for the longer one only."""
    from concurrent.futures import ThreadPoolExecutor

    contexts: dict[str, str] = {}
    cache_dir = options.cache_dir or default_cache_dir()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagesmith-base")
    base_layout = None
    if lock.base.source == "local":
        name = lock.base.name.split("@", 1)[0]
        found = engine.find_image(name) if "@" not in lock.base.name else None  # one inspect
        if found is not None and found.id != lock.base.digest:
            raise LockError(
                f"the base image {name} now names {found.id[:19]}, but {spec.lock_path.name} pins {lock.base.digest[:19]}",
                hint=f"run `imagesmith lock --upgrade-base` to pin what {name} names now, "
                f"or `docker tag {lock.base.digest} {name}` to go back",
            )
        base_layout = pool.submit(
            engine.save_oci_layout, lock.base.digest, cache_dir / "bases" / lock.base.digest.split(":", 1)[-1]
        )
    try:
        install = options.install or spec.install
        if install != "online":
            cache = WheelCache(cache_dir)
            house = cache.wheelhouse(lock, progress=progress)
            contexts["wheels"] = str(house)
            build = machine_platform()
            if python_env.hosts(lock) and python_env.installs_on(lock, build) == build:
                installer_only = replace(lock, platform=build, packages=(), build_system=())
                contexts[python_env.INSTALLER_CONTEXT] = str(cache.wheelhouse(installer_only, progress=progress))
        if base_layout is not None:
            contexts["base"] = f"oci-layout://{base_layout.result()}@{lock.base.digest}"
    finally:
        pool.shutdown(wait=True)
    return contexts
