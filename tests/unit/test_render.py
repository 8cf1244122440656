"""Rendering: golden output, determinism, and escaping of every spec value.

The golden Dockerfile is tests/golden/tiny.Dockerfile. After an intended change to the template or
the runtime, regenerate it with `UPDATE_GOLDEN=1 python -m pytest tests/unit/test_render.py` and review the diff.
"""

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from imagesmith import parity
from imagesmith.errors import RenderError
from imagesmith.plan import image_user, plan_for
from imagesmith.render import copy_args, dquote, exec_form, render
from imagesmith.spec.load import load_spec
from tests.helpers import fake_lock

HERE = Path(__file__).resolve().parents[1]
GOLDEN = HERE / "golden" / "tiny.Dockerfile"


@pytest.fixture
def tiny():
    return load_spec(HERE / "projects" / "tiny")


def test_golden(tiny):
    text = render(tiny, fake_lock())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_render_is_deterministic(tiny):
    assert render(tiny, fake_lock()) == render(tiny, fake_lock())


def test_targets_share_the_stage_and_differ_only_in_metadata(tiny):
    text = render(tiny, fake_lock())
    stages = re.split(r"^FROM ", text, flags=re.M)
    train = next(s for s in stages if s.startswith("shared AS train"))
    serve = next(s for s in stages if s.startswith("shared AS serve"))
    allowed = ("ARG ", "LABEL ", "EXPOSE ", "USER ", "ENTRYPOINT ", "CMD ", "      ", "shared AS", "")
    for stage in (train, serve):
        for line in stage.splitlines():
            assert line.startswith(allowed), line


def test_parity_and_manifest_labels_are_the_parity_module_s(tiny):
    lock = fake_lock()
    text = render(tiny, lock)
    manifest = parity.manifest_from_lock(lock)
    assert f'io.imagesmith.parity="{parity.digest(manifest)}"' in text
    assert "FROM --platform=linux/amd64 ${IMAGESMITH_BASE} AS base" in text
    assert f"ARG IMAGESMITH_BASE=python:3.11-slim@sha256:{'a' * 64}" in text


def test_dependencies_come_before_code(tiny):
    """In the shared stage: the images' user, system packages, then the locked environment, then preprocessing,
    then the app code as the last layer."""
    text = render(tiny, fake_lock())
    shared = text[text.index("FROM base AS shared") : text.index("FROM shared AS train")]
    markers = (
        "COPY --from=user-files /user-files/ /",
        "dpkg $dpkg_args",
        "COPY --from=python-env /python-env/ /",
        "COPY --from=project-setup /project-setup/ /",
        "COPY --from=source /app/ /app/",
    )
    order = [shared.index(m) for m in markers]
    assert order == sorted(order)
    assert shared.count("COPY --from=source") == 1
    assert 'COPY ["app/main.py", "/app/app/main.py"]' in stage(text, "source")


def stage(text: str, name: str) -> str:
    """The text of the stage ``name`` (without the platform's suffix) of a rendered Dockerfile."""
    at = text.index(f" AS {name}\n")
    start = text.rindex("\nFROM ", 0, at) + 1
    end = text.find("\nFROM ", at)
    return text[start : end if end >= 0 else len(text)].strip()


def test_shared_runs_only_what_needs_the_target(tiny):
    """The steps of shared that make files copy them from stages that run in builder (the build
    platform's image of the base when the lock pins one: python_env.py); a RUN in shared is
    only a step the plan says runs on the target (system packages, the project's wheel)."""
    from imagesmith.plan import ON_TARGET

    lock = fake_lock()
    text = render(tiny, lock)
    shared = text[text.index("FROM base AS shared") : text.index("FROM shared AS train")]
    runs = [line for line in shared.splitlines() if line.startswith("RUN ")]
    assert len(runs) == sum(1 for s in plan_for(tiny, lock).steps if s.runs == ON_TARGET) == 1
    for name in ("user-files", "project-setup", "image-facts", "source", "preprocessing-build"):
        assert stage(text, name).startswith(f"FROM builder AS {name}\n"), name
    assert "FROM base AS builder\n" in text  # no other platform pinned: the target's base


def test_system_packages_are_pinned_resolved_in_builder_and_installed_by_dpkg_alone(tiny):
    """apt resolves the pins for the target's architecture against the target base's own dpkg
    status and downloads them in builder; shared runs only dpkg, offline, in apt's order."""
    text = render(tiny, fake_lock())
    download = stage(text, "system-packages")
    assert download.startswith("FROM builder AS system-packages\n")
    assert "--download-only --no-install-recommends libgomp1=12.2.0-14" in download
    assert "-o APT::Architecture=amd64 " in download and "/target/var/lib/dpkg/status /tmp/status" in download
    shared = text[text.index("FROM base AS shared") : text.index("FROM shared AS train")]
    assert "apt-get" not in shared
    run = next(line for line in shared.split("\nRUN ")[1:] if "dpkg" in line)
    assert run.startswith("--network=none") and "from=system-packages,source=/system-packages" in run


def test_escaping_filters():
    assert dquote('a"b$c\\d') == '"a\\"b\\$c\\\\d"'
    assert exec_form(["python", "-c", 'print("x")']) == '["python", "-c", "print(\\"x\\")"]'
    assert copy_args("src/") == '["src/", "/app/src/"]'
    for bad in ("a\nRUN x", "x\r", "nul\0"):
        with pytest.raises(RenderError):
            dquote(bad)
        with pytest.raises(RenderError):
            exec_form([bad])
    for bad in ("../x", "/etc", "a*b", 'a"b'):
        with pytest.raises(RenderError):
            copy_args(bad)


def test_hostile_env_value_renders_quoted_on_one_line(tiny):
    """The hostile env value in fake_lock renders on one line, quoted, with $ escaped."""
    text = render(tiny, fake_lock())
    line = next(ln for ln in text.splitlines() if ln.startswith("ENV A="))
    assert line == 'ENV A="quote \\" dollar \\$HOME back\\\\slash" \\'


def test_the_iris_dockerfile_is_short_and_holds_no_code():
    """The Dockerfile is for reviewers: under 200 lines and 16 KB for the iris example whatever
    the number of pins, no embedded Python (no `python -c`) and no heredoc: the lock's data (the
    installer's pin, the image facts) are files in .imagesmith/, as is the in-image code (the
    runtime wheel)."""
    from imagesmith.lock.inputs import preprocessing_files
    from imagesmith.render import context_files

    spec = load_spec(HERE.parent / "examples" / "iris")
    lock = fake_lock(preprocessing=tuple(preprocessing_files(spec).items()))
    text = render(spec, lock)
    assert len(text.splitlines()) < 200 and len(text.encode()) < 16 * 1024
    from dataclasses import replace

    big = render(spec, replace(lock, packages=_big_lock().packages))  # about 1000 hashes
    assert big.count("\n") == text.count("\n") and len(big.encode()) < 16 * 1024
    assert not re.search(r"python3? (-[IS] )*-c\b", text)
    assert "<<" not in text
    files = context_files(spec, {lock.platform: lock})
    installer = files[".imagesmith/amd64/installer.lock"].decode()
    assert [ln for ln in installer.splitlines() if ln and not ln.startswith("#")] == [
        f"uv=={lock.installer[0].version} \\",
        f"    --hash={lock.installer[0].hashes[0]}",
    ]
    assert json.loads(files[".imagesmith/amd64/imagesmith_image.json"])["parity"] == parity.digest(
        parity.manifest_from_lock(lock)
    )
    wheel = f"imagesmith_runtime-{lock.runtime.version}-py3-none-any.whl"
    assert f'COPY [".imagesmith/{wheel}", "/"]' in text
    assert (
        text.count("python3 -m imagesmith_runtime.sdists ") == 3
    )  # sdist-build (sdists, toolchain) and the install step
    assert text.count("python3 -m imagesmith_runtime.installer ") == 1  # the install step
    assert '"-m", "imagesmith_runtime.preprocessing"' in text


def test_layout_names_reach_the_template(tiny):
    from imagesmith import layout

    text = render(tiny, fake_lock())
    assert f"WORKDIR {layout.APP_DIR}" in text and f"{layout.VENV_PYTHON} -m compileall" in text
    for label in (layout.LABEL_PARITY, layout.LABEL_ROLE, layout.LABEL_BASE_NAME):
        assert f"{label}=" in text


def test_both_targets_run_as_the_images_non_root_user(tiny):
    """The default: one user made in the first layer of shared from fixed lines (no useradd, which
    stamps the day into /etc/shadow), owning its home and the artifacts folder; USER, numeric,
    the same in both targets; ``image_user`` says what it is."""
    from imagesmith import layout

    assert image_user(tiny) == f"{layout.IMAGE_UID}:{layout.IMAGE_GID}" == "10001:10001"
    text = render(tiny, fake_lock())
    assert re.findall(r"^USER (.*)$", text, flags=re.M) == ["10001:10001", "10001:10001"]
    shared = text[text.index("FROM base AS shared") : text.index("FROM shared AS train")]
    assert shared.splitlines()[1] == "COPY --from=user-files /user-files/ /"
    user = stage(text, "user-files")
    assert "useradd" not in text and "adduser" not in text
    assert (
        "imagesmith_runtime.tree user /run/imagesmith/target /user-files \\\n      imagesmith "
        "imagesmith:x:10001:10001:imagesmith:/home/imagesmith:/usr/sbin/nologin imagesmith:x:10001: "
        "'imagesmith:!:::::::' 'imagesmith:!::'"
    ) in user
    assert user.endswith("--owner 10001:10001 /home/imagesmith") and "/artifacts" not in user
    assert "USER" not in shared  # the build steps run as root; only the targets switch


def test_user_root_opts_out_and_renders_what_it_did_before(tiny):
    from dataclasses import replace

    spec = replace(tiny, user="root")
    assert image_user(spec) == ""
    text = render(spec, fake_lock())
    assert "USER" not in text and "user-files" not in text
    # exactly the default without the user's stage and layer and the USER lines
    default = render(tiny, fake_lock())
    user_stage = stage(default, "user-files") + "\n\n"
    user_layer = "COPY --from=user-files /user-files/ /\n"

    # ... apart from what records the config and layer count verify compares (the user is in them)
    def unrecorded(t: str) -> str:
        return "\n".join(
            line for line in t.splitlines() if "io.imagesmith.config=" not in line and '"steps":' not in line
        )

    owned = (
        " \\\n && PYTHONPATH=/run/imagesmith/runtime/imagesmith_runtime-0+sha256.dddddddddddd-py3-none-any.whl"
        " python3 -m imagesmith_runtime.tree dirs /run/imagesmith/target /project-setup \\\n"
        "      --owner 10001:10001 /artifacts"
    )
    assert owned in default
    without_user = default.replace(user_stage, "", 1).replace(user_layer, "", 1)
    without_user = without_user.replace("USER 10001:10001\n", "").replace(owned, "")
    assert unrecorded(without_user) == unrecorded(text)
    assert plan_for(tiny, fake_lock()).configs["serve"]["User"] == "10001:10001"
    assert "User" not in plan_for(spec, fake_lock()).configs["serve"]


def test_the_artifacts_folder_the_user_owns_is_the_spec_s(tiny):
    from dataclasses import replace

    text = render(replace(tiny, artifacts="/data/model"), fake_lock())
    assert stage(text, "user-files").endswith("--owner 10001:10001 /home/imagesmith")
    assert "/project-setup \\\n      --owner 10001:10001 /data/model \\\n" in stage(text, "project-setup")


def test_a_new_artifacts_path_leaves_every_layer_before_the_project_setup_as_it_was(tiny):
    """The artifacts folder is made in the project-setup layer (with the preprocessing wheel), not
    in the first layer of shared: a new `artifacts:` rebuilds no layer before it (a 2.6 GB
    environment is not exported again)."""
    from dataclasses import replace

    one = render(replace(tiny, artifacts="/artifacts"), fake_lock())
    other = render(replace(tiny, artifacts="/app/model"), fake_lock())
    shared = "FROM base AS shared"
    assert one[one.index(shared) :] == other[other.index(shared) :]  # the same steps copy the stages' files
    for name in ("user-files", "python-env", "source"):  # the stages of the layers before it
        assert stage(one, name) == stage(other, name) and "/artifacts" not in stage(one, name)
    assert "--owner 10001:10001 /artifacts" in stage(one, "project-setup")
    assert "--owner 10001:10001 /app/model" in stage(other, "project-setup")


def test_an_unchanged_render_comes_from_the_memo_without_jinja2(tiny, tmp_path, monkeypatch):
    """After an edit nothing render reads changed: the last text is reused (issue #17); any change
    of the context, the template or the filters renders again."""
    from imagesmith import render as render_module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = render(tiny, fake_lock())
    assert list((tmp_path / "cache" / "imagesmith" / "render").glob("*.json"))

    def no_jinja():
        raise AssertionError("rendered again")

    monkeypatch.setattr(render_module, "environment", no_jinja)
    assert render(tiny, fake_lock()) == first
    with pytest.raises(AssertionError, match="rendered again"):
        render(tiny, fake_lock(seed=8))
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = tmp_path / "templates"
    template.mkdir()
    (template / "Dockerfile.jinja").write_text("FROM scratch\n")
    monkeypatch.setattr(render_module, "TEMPLATES", template)
    assert render(tiny, fake_lock()) == "FROM scratch\n"


def _big_lock():
    """A lock whose parity manifest is over 64 KiB (a real ML stack's size: every wheel's hash)."""
    from imagesmith.lock.pins import Pin

    hashes = tuple(f"sha256:{i:064x}" for i in range(950))
    return fake_lock(packages=(Pin("six", "1.17.0", hashes), Pin("idna", "3.10", hashes[:40])))


def _joined(value: str) -> str:
    """A double-quoted Dockerfile value as BuildKit reads it: continued lines joined, unescaped."""
    assert value.startswith('"') and value.endswith('"')
    return re.sub(r"\\(.)", r"\1", value[1:-1].replace("\\\n", ""))


# over 64 KiB, with every character dquote escapes, and spaces and "#" where a line could break
LONG_VALUE = ('{"a":"x\\y","b":"q\\"$HOME",' * 2500) + " # tail, then\t#, \\"


def test_a_long_value_is_continued_over_short_lines_and_reads_back_the_same():
    value = LONG_VALUE
    quoted = dquote(value)
    lines = quoted.split("\n")
    assert len(lines) > 5 and max(len(ln) for ln in lines) <= 16 * 1024 + 2
    assert all(ln.endswith("\\") for ln in lines[:-1]) and _joined(quoted) == value
    assert not any(ln[:1] in (" ", "\t", "#") for ln in lines[1:])
    assert not any(ln.endswith(("\\\\\\", " \\")) for ln in lines[:-1])  # no escaped "\" or space before the break
    assert dquote("short $x") == '"short \\$x"'  # short values: one line, as before


def test_a_big_manifest_stays_out_of_the_dockerfile_and_its_labels(tiny):
    """A big stack's manifest is in the image facts file (.imagesmith/), never in the Dockerfile:
    the Dockerfile and every label keep their size whatever the number of pins."""
    from imagesmith.render import context_files

    lock = _big_lock()
    text = render(tiny, lock)
    assert len(text) < 16 * 1024 and max(len(ln) for ln in text.splitlines()) < 1024
    labels = re.findall(r'^(?:LABEL|      )\s*([\w.]+)=("(?:[^"\\]|\\.)*"|\S+)', text, re.M)
    assert labels and all(len(value) < 1024 for _, value in labels)
    facts = json.loads(context_files(tiny, {lock.platform: lock})[".imagesmith/amd64/imagesmith_image.json"])
    assert facts["manifest"] == parity.manifest_from_lock(lock)


def test_every_pip_in_the_dockerfile_runs_isolated_from_the_bases_pip_settings(tiny):
    from imagesmith.credentials import pip_isolated_shell

    text = render(tiny, fake_lock())
    runs = text.replace("\\\n", " ").split("\n")
    pip_lines = [line for line in runs if "-m pip " in line or ".project " in line]
    assert pip_lines
    for line in pip_lines:
        for part in line.split("&&"):
            if "-m pip " in part or ".project build" in part or ".project install" in part:
                assert pip_isolated_shell() in part, part


def test_no_label_is_written_unknown(tiny):
    """Issue 23: revision, source and version are the build's labels, set only when known (no
    `unknown` default in the Dockerfile); created always has a value (SOURCE_DATE_EPOCH)."""
    from imagesmith.build import oci_labels

    text = render(tiny, fake_lock())
    assert "unknown" not in text and "org.opencontainers.image.created=" in text
    for name in ("revision", "source", "version"):
        assert f"org.opencontainers.image.{name}=" not in text
    assert oci_labels(Path("/nonexistent-imagesmith-project")) == {}


def test_every_instruction_starts_a_line_with_and_without_system_packages(tiny):
    """The optional stages (system packages, the compilers' downloads) leave the text around them
    as it was: no instruction glued to the end of the one before."""
    for lock in (fake_lock(), replace(fake_lock(), system_packages=()), fake_lock(wheels_only=True)):
        text = render(tiny, lock)
        assert re.findall(r"\S(?:FROM|RUN|COPY) ", text.replace("--from=", "")) == [], lock.system_packages
        assert ("FROM builder AS system-packages\n" in text) == bool(lock.system_packages)
        assert ("FROM builder AS sdist-toolchain\n" in text) == (not lock.wheels_only)


def test_a_wheel_only_lock_renders_no_compilers_stage_and_nothing_else_differs(tiny):
    """A lock that says every pin has a wheel for the target (wheels_only) gets no sdist-toolchain
    stage and no mount of it, so a plain `docker buildx build` runs no apt for compilers; its
    sdist-build stage only refuses sources. Every other stage is the text it was."""
    wheels = render(tiny, fake_lock(wheels_only=True))
    maybe = render(tiny, fake_lock())
    assert wheels == render(tiny, fake_lock(wheels_only=True))  # deterministic
    assert "sdist-toolchain" not in wheels and "build-essential" not in wheels
    assert "FROM builder AS sdist-toolchain\n" in maybe
    assert "from=sdist-toolchain," in stage(maybe, "sdist-build")
    built = stage(wheels, "sdist-build")
    assert "pip wheel" not in built and "dpkg" not in built
    assert "(wheels_only), but these came as source: lock again (imagesmith lock)" in built and "exit 1" in built
    assert "from=sdist-build,source=/built," in stage(wheels, "python-env")

    def others(text: str) -> list[str]:
        parts = re.split(r"\n(?=FROM )", text)
        return [p for p in parts if not re.match(r"FROM \S+ AS sdist-(toolchain|build)\n", p)]

    assert others(wheels) == others(maybe)


def test_each_platform_gets_the_compilers_stage_its_own_lock_needs(tmp_path):
    from tests.unit.test_multi_platform import write_spec

    spec = load_spec(write_spec(tmp_path / "p"))
    arm = fake_lock(platform="linux/arm64", wheels_only=True)
    text = render(spec, {"linux/amd64": fake_lock(), "linux/arm64": arm})
    assert "FROM builder-amd64 AS sdist-toolchain-amd64\n" in text
    assert "sdist-toolchain-arm64" not in text and "FROM base-arm64 AS sdist-build-arm64\n" in text


def test_a_source_of_dot_leaves_imagesmiths_own_folder_out_of_the_app_layer(tiny):
    """`source: [.]` copies the whole context, `.imagesmith/` too: the stage removes it before it
    sets the times (source_context.plan leaves it out the same way); other sources render as before."""
    text = render(replace(tiny, source=(".",)), fake_lock())
    assert stage(text, "source").endswith("\nRUN rm -rf /app/.imagesmith \\\n && find /app -exec touch -h -d @0 {} +")
    assert "rm -rf" not in stage(render(tiny, fake_lock()), "source")
