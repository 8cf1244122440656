"""A failing build step mapped back to what the user wrote (build.describe_failure): the
sdist-toolchain stage's apt step names the sdist compilers and the sdists that need them, never
the ``system_packages`` key the user did not write."""

from dataclasses import replace
from pathlib import Path

from imagesmith.build_failure import describe_failure
from imagesmith.render import render
from imagesmith.spec.load import load_spec
from tests.helpers import fake_lock

TINY = Path(__file__).resolve().parents[1] / "projects" / "tiny"


def _failed(text: str, stage: str) -> str:
    """BuildKit's last line for a RUN of ``stage`` that exited 1 (its command quoted as BuildKit does)."""
    body = text[text.index(f"FROM builder AS {stage}\n") :]
    body = body[body.index("RUN ") + 4 : body.index("\n\n")]
    run = " ".join(body.replace("\\\n", " ").split()).replace('"', '\\"')
    return (
        f"#14 [{stage} 1/1] RUN ...\n#14 0.9 E: Unable to locate package build-essential\n"
        f'ERROR: failed to solve: process "/bin/sh -c {run}" did not complete successfully: exit code: 1'
    )


def test_the_sdist_compilers_failing_names_them_and_the_sdists_not_system_packages():
    spec = load_spec(TINY)
    assert not spec.system_packages  # the user asked for none
    log = _failed(render(spec, fake_lock()), "sdist-toolchain")
    what, from_spec = describe_failure(spec, {"linux/amd64": ["docopt-0.6.2.tar.gz"]})(log)
    assert what == "the sdist compilers (build-essential python3-dev for linux/amd64, needed by docopt-0.6.2.tar.gz)"
    assert not from_spec and "system_packages" not in what
    # the sdists unknown (an online install has no wheelhouse): still the compilers, not the key
    what, _ = describe_failure(spec)(log)
    assert what.startswith("the sdist compilers (build-essential python3-dev for linux/amd64, needed by a locked")


def test_a_system_packages_failure_still_names_the_key():
    spec = load_spec(TINY)
    spec = replace(spec, system_packages=("libgomp1",))
    log = (
        "#9 [shared 2/4] RUN apt-get install libgomp1\n#9 0.5 E: Unable to locate package libgomp1\n"
        'ERROR: failed to solve: process "/bin/sh -c apt-get install libgomp1" did not complete successfully: exit code: 100'
    )
    assert describe_failure(spec, {"linux/amd64": ["docopt-0.6.2.tar.gz"]})(log) == ("system_packages (libgomp1)", True)


def test_a_system_package_failing_to_install_in_shared_names_the_key():
    """The rendered shared stage's dpkg step (a maintainer script failing on the target): the
    ``system_packages`` key, as when apt-get installed them there; the sdist-build stage's dpkg
    (the compilers) is not it."""
    spec = replace(load_spec(TINY), system_packages=("libgomp1",))
    text = render(spec, fake_lock())
    shared = text[text.index("FROM base AS shared\n") :]
    body = next(run for run in shared.split("\nRUN ")[1:] if "dpkg $dpkg_args" in run)
    command = " ".join(body[: body.index("\n\n")].replace("\\\n", " ").split())
    command = command[command.index("touch ") :].replace('"', '\\"')
    log = (
        "#21 [shared 2/6] RUN --network=none ...\n#21 1.2 dpkg: error processing package libgomp1\n"
        f'ERROR: failed to solve: process "/bin/sh -c {command}" did not complete successfully: exit code: 1'
    )
    assert describe_failure(spec)(log) == ("system_packages (libgomp1)", True)


def test_the_excerpt_shows_the_block_with_the_failing_steps_output():
    """A bake of train and serve sharing the failing step: BuildKit may repeat the step's block
    for the second target with only what its session saw. The excerpt showed the last block, and
    the cause (uv's `Hash mismatch`) was missing from the error (a clean-clone run, 2026-12-08);
    the block with the step's output is shown, whichever comes last."""
    from imagesmith.engine.buildx import failure_excerpt

    full = [
        "------",
        " > [train python-env 1/1] RUN --network=none python3 -m imagesmith_runtime.install:",
        "1.07 error: Failed to install: six-1.17.0-py2.py3-none-any.whl",
        "1.07   cause: Hash mismatch for `six==1.17.0`",
        "------",
    ]
    partial = [
        "------",
        " > [serve python-env 1/1] RUN --network=none python3 -m imagesmith_runtime.install:",
        "------",
    ]
    final = ['ERROR: failed to solve: process "/bin/sh -c ..." did not complete successfully: exit code: 1']
    for log in (full + partial + final, partial + full + final):
        excerpt = failure_excerpt(["#20 [train python-env 1/1] RUN ...", *log])
        assert "Hash mismatch for `six==1.17.0`" in excerpt and excerpt.startswith(" > [train python-env")
        assert excerpt.endswith("exit code: 1")
    two = failure_excerpt(full + full[1:] + final)  # equals: the last one
    assert two.count("Hash mismatch") == 1
