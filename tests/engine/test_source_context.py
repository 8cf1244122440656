"""The source stage staged on the host (imagesmith/source_context.py) on the real engine: the
images `imagesmith build` makes with it are byte for byte those of the Dockerfile's own source
stage (the bake definition without the staged stage, built with plain buildx), after a first
build, an edit that keeps the file's size, and a deleted file; every time in the app layer is 0
whatever BuildKit uploaded before; and rules it cannot match exactly fall back to the
Dockerfile's stage.

BuildKit's cache finds a COPY by its files' contents and modes, not their times, so a cached app
layer would hide a layer whose times are wrong. So no app layer here comes from the cache: each
project's app/main.py ends with a line no build had before (``_fresh``), and the plain build
runs the source stage and every step of ``shared`` again (``no-cache-filter``; it would
otherwise take the staged build's app layer by its contents), as does a build of the same tree
again (``_bake``: the bake definition `imagesmith build` prints, built by plain buildx). What is
not about the app layer (the Python environment, the wheels) may come from the cache: clean
builds are test_build_repro.py's claim."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import PROJECTS, copy_project
from tests.helpers import cli

pytestmark = pytest.mark.engine

TAG = "imagesmith-test/staged-source"
# The stages whose steps the plain build runs again (see the module's docstring).
APP_STAGES = ["source", "shared", "train", "serve"]


def _fresh(root: Path) -> Path:
    """``root`` with a line no build had before at the end of app/main.py, so the app layers
    built from it cannot come from BuildKit's cache."""
    main = root / "app" / "main.py"
    main.write_text(main.read_text() + f"# build {uuid.uuid4().hex}\n")
    return root


@pytest.fixture(scope="module")
def tiny_lock(tmp_path_factory, engine, base_image) -> Path:
    """A folder with tiny's lock files, made once per worker by `imagesmith lock`: each project
    here starts from them (``_tiny``), as a checkout with a committed lock does, instead of
    resolving the same pin again for each copy. What changes the lock's inputs re-locks in the
    build as before; the source list and app/main.py, which these tests change, are not among them."""
    root = copy_project(PROJECTS / "tiny", tmp_path_factory.mktemp("tiny-lock") / "tiny", git=False)
    proc = cli("lock", "-p", str(root), "--base", base_image)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def _tiny(tiny_lock: Path, dest: Path) -> Path:
    """A copy of tiny (no git) at ``dest`` with the lock files of ``tiny_lock`` in it."""
    root = copy_project(PROJECTS / "tiny", dest, git=False)
    for name in ("imagesmith.lock", "requirements.lock"):
        shutil.copy2(tiny_lock / name, root / name)
    return root


def _project(tmp_path: Path, tiny_lock: Path) -> Path:
    root = _fresh(_tiny(tiny_lock, tmp_path / "tiny"))
    spec = (root / "imagesmith.yaml").read_text()
    (root / "imagesmith.yaml").write_text(spec.replace("  - app/main.py", "  - app/\n  - bin/run.sh"))
    (root / "app" / "sub").mkdir()
    (root / "app" / "empty").mkdir()
    (root / "app" / "sub" / "secret.txt").write_text("s\n")
    os.chmod(root / "app" / "sub" / "secret.txt", 0o600)
    os.chmod(root / "app" / "sub", 0o750)
    (root / "app" / "alias.py").symlink_to("main.py")
    (root / "app" / "run.log").write_text("left out by the project's .dockerignore\n")
    (root / "app" / "__pycache__").mkdir()
    (root / "app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"left out by imagesmith's rules")
    (root / "bin").mkdir()
    (root / "bin" / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(root / "bin" / "run.sh", 0o755)
    (root / ".dockerignore").write_text("app/*.log\n")
    return root


def _imagesmith(root: Path, base: str, *extra: str) -> dict:
    proc = cli("build", "-p", str(root), "--base", base, "-t", TAG, *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _plain(root: Path, base: str, tmp_path: Path) -> dict[str, str]:
    """The same build with the Dockerfile's own source stage (see ``_bake``)."""
    return _bake(root, base, tmp_path, TAG + "-plain", staged=False)


def _bake(root: Path, base: str, tmp_path: Path, tag: str, *, staged: bool) -> dict[str, str]:
    """The printed bake definition built by plain buildx as ``tag``, its app stages without the
    cache (``APP_STAGES``): with the staged source, or (not ``staged``) with the Dockerfile's own
    source stage instead. {role: digest}."""
    definition = _imagesmith(root, base, "--print")
    assert set(definition["target"]) == {"serve", "train"}
    for target in definition["target"].values():
        source = target["contexts"]["source"] if staged else target["contexts"].pop("source")
        assert source.startswith("oci-layout://")
        target["no-cache-filter"] = APP_STAGES
        target["output"] = [o.replace(TAG, tag) for o in target["output"]]
    (tmp_path / "bake.json").write_text(json.dumps(definition))
    meta = tmp_path / "meta.json"
    proc = subprocess.run(
        ["docker", "buildx", "bake", "-f", str(tmp_path / "bake.json"), "--provenance=false"]
        + ["--metadata-file", str(meta)],
        cwd=root,
        capture_output=True,
        text=True,
        env=dict(os.environ, SOURCE_DATE_EPOCH="0", BUILDX_NO_DEFAULT_ATTESTATIONS="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("find /app -exec touch" in proc.stderr) != staged  # which source stage ran
    lines = proc.stderr.splitlines()  # BuildKit's plain log: "#12 [shared 6/9] COPY ...", "#12 CACHED"
    copies = {line.split()[0] for line in lines if line.endswith("] COPY --from=source /app/ /app/")}
    cached = {line.split()[0] for line in lines if line.endswith(" CACHED")}
    assert copies and not copies & cached, "the app layer came from BuildKit's cache"
    return {role: entry["containerimage.digest"] for role, entry in json.loads(meta.read_text()).items()}


def _digests(built: dict) -> dict[str, str]:
    return {role: image["digest"] for role, image in built["images"].items()}


def _app_layer(ref: str) -> dict[str, tuple[int, int]]:
    """The app code's layer of an image (the last but the image facts'): {name: (mode, mtime)},
    read from the image as the engine exports it."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "image.tar"
        subprocess.run(["docker", "image", "save", "-o", str(archive), ref], check=True, capture_output=True)
        with tarfile.open(archive) as image:
            manifest = json.load(image.extractfile("manifest.json"))  # type: ignore[arg-type]
            layer = image.extractfile(manifest[0]["Layers"][-2])
            with tarfile.open(fileobj=layer) as files:  # type: ignore[arg-type]
                return {m.name: (m.mode, m.mtime) for m in files.getmembers()}


def test_staged_source_gives_the_dockerfiles_images(tmp_path, engine, base_image, tiny_lock):
    root = _project(tmp_path, tiny_lock)
    staged = _imagesmith(root, base_image, "--json")
    assert _digests(staged) == _plain(root, base_image, tmp_path)
    listing = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--user",
            "0",
            "--entrypoint",
            "sh",
            f"{TAG}:serve",
            "-c",
            "ls -lAR --time-style=+%s /app",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "secret.txt" in listing and "alias.py -> main.py" in listing and "empty" in listing
    assert "run.log" not in listing and "__pycache__" not in listing
    layer = _app_layer(f"{TAG}:serve")
    assert {name: mtime for name, (_, mtime) in layer.items() if mtime != 0} == {}
    assert layer["app/app/sub"][0] == 0o750 and layer["app/app/sub/secret.txt"][0] == 0o600

    main = root / "app" / "main.py"
    text = main.read_text()
    main.write_text(text.replace("a", "b", 1))  # an edit that keeps the size
    assert len(main.read_text()) == len(text)
    (root / "app" / "sub" / "secret.txt").unlink()
    edited = _imagesmith(root, base_image, "--json")
    assert _digests(edited) != _digests(staged)
    assert _digests(edited) == _plain(root, base_image, tmp_path)
    inside = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "cat", f"{TAG}:serve", "/app/app/main.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert inside == main.read_text()
    tags = {tag for built in (staged, edited) for image in built["images"].values() for tag in image["tags"]}
    subprocess.run(
        ["docker", "image", "rm", "-f", *sorted(tags | {t.replace(TAG, TAG + "-plain", 1) for t in tags})],
        capture_output=True,
    )


@pytest.mark.xdist_group("source-context-upload")  # a long test that shares no module fixture
def test_an_upload_of_another_project_with_the_same_folder_name_leaves_no_time_behind(
    tmp_path, engine, base_image, tiny_lock
):
    """BuildKit keeps one upload per context name and project folder name, and updates it in
    place: its receiver leaves the time of the upload on a folder whose entries changed. The
    staged folder was that upload's source once, and the app layer got the folder times of
    whatever was built before (a second checkout, a branch switch). The archive brings its own."""
    one = _fresh(_tiny(tiny_lock, tmp_path / "one" / "tiny"))
    two = _fresh(_tiny(tiny_lock, tmp_path / "two" / "tiny"))
    (two / "app" / "main.py").write_text((two / "app" / "main.py").read_text() + "# the other checkout\n")
    for root, tag in ((one, TAG + "-one"), (two, TAG + "-two"), (one, TAG + "-one-again")):
        if tag.endswith("-again"):  # the same tree again: the cache would give the first build's layer
            _bake(root, base_image, tmp_path, tag, staged=True)
        else:
            proc = cli("build", "-p", str(root), "--base", base_image, "-t", tag)
            assert proc.returncode == 0, proc.stderr[-3000:]
        layer = _app_layer(f"{tag}:serve")
        assert set(layer) == {"app", "app/app", "app/app/main.py"}
        assert {name: mtime for name, (_, mtime) in layer.items() if mtime != 0} == {}, tag
    ids = {
        tag: subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", f"{tag}:serve"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for tag in (TAG + "-one", TAG + "-two", TAG + "-one-again")
    }
    assert ids[TAG + "-one"] == ids[TAG + "-one-again"] != ids[TAG + "-two"]
    subprocess.run(
        ["docker", "image", "rm", "-f", *(f"{tag}:{role}" for tag in ids for role in ("train", "serve"))],
        capture_output=True,
    )


def test_rules_it_cannot_match_exactly_leave_the_dockerfiles_stage(tmp_path, base_image, tiny_lock):
    root = _project(tmp_path, tiny_lock)
    (root / ".dockerignore").write_text("app/*.log\n!app/keep.log\n")
    definition = _imagesmith(root, base_image, "--print")
    assert all("source" not in target["contexts"] for target in definition["target"].values())


def test_a_source_of_dot_leaves_imagesmiths_own_folder_out_of_the_image(tmp_path, engine, base_image, tiny_lock):
    """`source: [.]` copies the whole context: `.imagesmith/` (imagesmith's own folder, what the
    Dockerfile copies from) is not in the image, staged or not, and an edit inside it keeps the
    images' digests."""
    root = _fresh(_tiny(tiny_lock, tmp_path / "tiny"))
    spec = (root / "imagesmith.yaml").read_text()
    (root / "imagesmith.yaml").write_text(spec.replace("  - app/main.py", "  - ."))
    staged = _imagesmith(root, base_image, "--json")
    assert (root / ".imagesmith").is_dir()  # written by the build, beside the Dockerfile
    listing = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "ls", f"{TAG}:serve", "-A", "/app"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert ".imagesmith" not in listing and "imagesmith.yaml" in listing and "app" in listing
    assert _digests(staged) == _plain(root, base_image, tmp_path)
    (root / ".imagesmith" / "notes.txt").write_text("an edit inside imagesmith's own folder\n")
    again = _imagesmith(root, base_image, "--json")
    assert _digests(again) == _digests(staged)
    tags = {tag for built in (staged, again) for image in built["images"].values() for tag in image["tags"]}
    subprocess.run(
        ["docker", "image", "rm", "-f", *sorted(tags | {t.replace(TAG, TAG + "-plain", 1) for t in tags})],
        capture_output=True,
    )
