"""The command line's shape (CONTRIBUTING.md): one module per command, one place that prints
errors and JSON, no long functions; and the library functions the commands call instead of
holding logic of their own: ``rendered`` (render --check and what render writes),
``lock.stale_lock`` (the one stale-lock refusal), ``deploy.check``'s --expect and
``deploy.platform_image``."""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from pathlib import Path

import pytest

from imagesmith import deploy, rendered
from imagesmith.cli import app
from imagesmith.errors import FileWriteError, StaleLockError, UsageError, UserFileError
from imagesmith.lock.update import ensure_fresh_all, stale_lock
from imagesmith.platforms import machine_platform
from imagesmith.render import dockerignore_path, render
from imagesmith.spec.load import load_spec
from tests.fakes import FakeEngine, image_info
from tests.helpers import cli
from tests.unit.test_cli import locked  # noqa: F401 - the fixture

CLI = Path(__file__).resolve().parents[2] / "imagesmith" / "cli"


def test_each_command_is_a_module_of_its_own_and_none_is_long():
    commands = {info.name or info.callback.__name__: info.callback for info in app.registered_commands}
    assert list(commands)[:4] == ["init", "lock", "render", "build"]  # --help's order
    for name, callback in commands.items():
        assert callback.__module__ == f"imagesmith.cli.{name.replace('-', '_')}", name
    for path in sorted(CLI.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 600, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                assert node.end_lineno - start < 80, f"{path.name}: {node.name}"


def test_only_output_prints_errors_and_json():
    """No command module spells an `error:`/`hint:` line or a JSON document itself (build's
    --print dumps the bake definition, which is not an imagesmith document)."""
    for path in sorted(CLI.glob("*.py")):
        if path.name == "output.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not node.value.startswith(("error: ", "hint: ")), f"{path.name}:{node.lineno}"
                assert node.value != "imagesmith_json", f"{path.name}:{node.lineno}"
            if isinstance(node, ast.Attribute) and node.attr == "dumps" and path.name != "build.py":
                raise AssertionError(f"{path.name}:{node.lineno} writes JSON itself")


def test_rendered_compares_and_writes_what_render_leaves(locked):  # noqa: F811
    spec = load_spec(locked)
    locks = ensure_fresh_all(spec)
    text = render(spec, locks)
    target = spec.dockerfile_path
    problems = rendered.stale(spec, locks, text, target)
    assert problems[:2] == [
        f"{target} is missing: it differs from a fresh render",
        f"{dockerignore_path(target)} is stale or missing",
    ]
    wheel = rendered.write(spec, locks, text, target)
    assert wheel.is_file() and target.read_text() == text
    assert rendered.stale(spec, locks, text, target) == []
    target.write_text(text + "# edited\n")
    assert rendered.stale(spec, locks, text, target) == [f"{target} is stale: it differs from a fresh render"]
    with pytest.raises(FileWriteError, match="it is a folder"):
        rendered.write(spec, locks, text, locked / "reqs")
    mine = locked / "Mine.Dockerfile"
    mine.write_text("FROM scratch\n")
    with pytest.raises(UserFileError):
        rendered.write(spec, locks, text, mine)
    assert mine.read_text() == "FROM scratch\n"


def test_lock_check_reports_the_one_stale_lock_refusal(locked):  # noqa: F811
    spec = load_spec(locked)
    assert stale_lock(spec) is None
    (locked / "reqs" / "base.txt").write_text("six==1.16.0\n")
    refusal = stale_lock(spec)
    assert isinstance(refusal, StaleLockError) and refusal.changed == ["requirements"]
    with pytest.raises(StaleLockError) as raised:
        ensure_fresh_all(spec)
    assert str(raised.value) == str(refusal)
    proc = cli("lock", "--check", "-p", str(locked), "--json")
    assert proc.returncode == 1
    assert proc.stderr == f"error: {refusal}\nhint: {refusal.hint}\n"
    assert json.loads(proc.stdout) == {  # one document: the check's, not an error's besides
        "imagesmith_json": 1,
        "lock": str(locked / "imagesmith.lock"),
        "up_to_date": False,
        "changed": ["requirements"],
    }


def test_the_gate_refuses_a_malformed_expect_before_it_reads_the_image():
    engine = FakeEngine(default=image_info())
    with pytest.raises(UsageError, match="--expect must be sha256:<64 hex digits>, not 'sha256:12'"):
        deploy.check(engine, "x:serve", expect="sha256:12")
    assert engine.calls == []


def test_platform_image_narrows_a_reference_to_one_platform():
    here = machine_platform()
    digest = "sha256:" + "2" * 64
    engine = FakeEngine({"x:serve": replace(image_info(), platform=here)}, registry={"127.0.0.1:5000/x:serve": digest})
    assert deploy.platform_image(engine, "127.0.0.1:5000/x:serve", here) == f"127.0.0.1:5000/x@{digest}"
    assert deploy.platform_image(engine, "x:serve", here) == "x:serve"
    other = replace(image_info(), platform="linux/s390x")
    with pytest.raises(UsageError, match=f"its linux/s390x image, not {here}"):
        deploy.platform_image(FakeEngine({"x:serve": other}), "x:serve", here)


def test_quiet_silences_progress_but_not_a_warning(capsys):
    from imagesmith.cli import output

    was = output.OUT.quiet
    output.OUT.quiet = True
    try:
        show = output.progress()
        show("locking linux/amd64")
        show("warning: CUDA twice: the base image carries CUDA 12.4.1")
    finally:
        output.OUT.quiet = was
    assert capsys.readouterr().err == "imagesmith: warning: CUDA twice: the base image carries CUDA 12.4.1\n"
