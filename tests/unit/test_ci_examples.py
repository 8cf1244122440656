"""The documented deploy path, read from the files that document it: every `imagesmith verify` in
the CI kit (examples/ci/) and in the shell examples of README.md and docs/ takes the signed path
(`--key`, `--role serve`), and what a pipeline hands its deploy is the digest the gate read, not a
tag. Without a key, verify is a diagnostic an image with the same layer count can fool
(docs/concepts/verification.md), so only a line that says it is a diagnostic may leave the key out. tests/engine/test_ci_kit.py runs
the kit's steps for real."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KIT = REPO / "examples" / "ci"


def kit_steps(path: Path) -> list[str]:
    """Every shell step of a pipeline: GitHub's `run:`, GitLab's `script:` lines."""
    doc = yaml.safe_load(path.read_text())
    if "jobs" in doc:
        return [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]
    return [line for job in doc.values() if isinstance(job, dict) for line in job.get("script", [])]


def verify_calls(text: str) -> list[list[str]]:
    """The argument lists of the `imagesmith verify` calls in shell text (up to a pipe, a
    redirection or the end of the command); a `"$(jq -r … build.json)"` argument becomes `BUILT`."""
    text = re.sub(r'"\$\(jq -r [^)]*\)"', "BUILT", text.replace("\\\n", " "))
    calls = []
    for match in re.finditer(r"imagesmith verify\b([^|>)\n]*)", text):
        calls.append(shlex.split(match.group(1), comments=True))
    return calls


DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def docs_shell_lines() -> list[str]:
    """The commands of every ```sh block of README.md and docs/, a continued line joined to one."""
    blocks = [block for path in DOCS for block in re.findall(r"```sh\n(.*?)```", path.read_text(), re.S)]
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_every_verify_of_the_ci_kit_is_the_signed_serve_gate(name):
    steps = kit_steps(KIT / name)
    calls = [call for step in steps for call in verify_calls(step)]
    assert len(calls) >= 2, calls  # a by-digest check after the build, and the deploy gate
    for call in calls:
        assert "--key" in call and call[call.index("--key") + 1] == "cosign.pub", call
        assert "--role" in call and call[call.index("--role") + 1] == "serve", call
    gate = [step for step in steps if "imagesmith verify" in step and "--json >" in step]
    assert len(gate) == 1 and "--labels-only" not in gate[0], gate  # the gate runs every check


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_the_ci_kit_hands_the_deploy_the_digest_the_gate_read(name):
    steps = kit_steps(KIT / name)
    gate = next(step for step in steps if "imagesmith verify" in step and "--json >" in step)
    gate_file = gate.rsplit(">", 1)[1].split()[0]
    deploy = [step for step in steps if "deploy.ref" in step]
    assert len(deploy) == 1, deploy
    assert f"jq -er 'select(.ok) | .digest' {gate_file}" in deploy[0]
    assert '"$REGISTRY/$IMAGE@$digest"' in deploy[0] and ":serve" not in deploy[0]
    # the secret key is given to build (and signing), never committed: the public key is
    assert any("--sign " in step and "imagesmith build" in step for step in steps)
    assert not any("cosign.key" in call for step in steps for call in verify_calls(step))


def test_the_documented_deploy_examples_take_the_signed_path():
    lines = [line for line in docs_shell_lines() if "imagesmith verify" in line]
    signed = [line for line in lines if "--key" in line]
    assert len(signed) >= 4, lines
    for line in lines:
        (call,) = verify_calls(line)
        if "--key" not in call:
            assert "# a diagnostic" in line, line  # only a line that says so leaves the key out
            continue
        assert "--role" in call and call[call.index("--role") + 1] == "serve", line
    # a deploy script takes what verify resolved, never the tag it was given
    for line in lines:
        if "--json |" in line:
            assert line.startswith("ref=$(") and "select(.ok) | .ref" in line, line


def test_verify_calls_finds_each_call_and_its_options():
    text = (
        'ref=$(imagesmith verify "$IMAGE" --role serve --key k.pub --json | jq .ref)\n'
        'imagesmith verify "$(jq -r .images.serve.pushed build.json)" \\\n  --pair x:y > out.json'
    )
    assert verify_calls(text) == [["$IMAGE", "--role", "serve", "--key", "k.pub", "--json"], ["BUILT", "--pair", "x:y"]]
