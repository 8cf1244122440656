"""The image plan: one model of the images, which render serialises and verify reads back."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from imagesmith import parity
from imagesmith.lock.pins import Pin
from imagesmith.plan import HEAVY_PREFIX, STEPS, ImagePlan, heavy_groups, layers_of, plan_for, plan_steps
from imagesmith.render import render
from imagesmith.spec.load import load_spec
from tests.helpers import fake_lock

PROJECTS = Path(__file__).resolve().parent.parent / "projects"


@pytest.fixture
def tiny():
    return load_spec(PROJECTS / "tiny")


def _shared_instructions(text: str) -> list[str]:
    shared = text[text.index("AS shared") : text.index("FROM shared AS")]
    return [line.split()[0] for line in shared.splitlines()[1:] if line[:1].isupper() and not line.startswith("#")]


def test_the_dockerfile_runs_the_plans_steps_in_order(tiny):
    lock = fake_lock()
    plan = plan_for(tiny, lock)
    assert _shared_instructions(render(tiny, lock)) == [s.instruction for s in plan.steps]
    assert plan.layers_over_base == sum(1 for s in plan.steps if s.layer)


def test_optional_steps_follow_the_spec_and_lock(tiny):
    every = plan_steps(user=True, system_packages=True, source=True, project=True)
    assert every == STEPS
    none = plan_steps(user=False, system_packages=False, source=False, project=False)
    assert [s.name for s in none] == ["python-env", "workdir", "venv-env", "project-setup", "facts", "env", "labels"]
    assert layers_of(none) == 4
    root = replace(tiny, user="root")
    assert "user" not in [s.name for s in plan_for(root, fake_lock()).steps]
    assert _shared_instructions(render(root, fake_lock())) == [s.instruction for s in plan_for(root, fake_lock()).steps]


def test_the_parity_is_the_manifests_digest(tiny):
    lock = fake_lock()
    plan = plan_for(tiny, lock)
    assert plan.parity == parity.digest(parity.manifest_from_lock(lock)) == parity.digest(plan.manifest)


def test_verify_rebuilds_the_plan_from_the_facts(tiny):
    plan = plan_for(tiny, fake_lock())
    again = ImagePlan.from_facts(plan.facts())
    assert again == plan
    assert again.layers_added(("b",) * (1 + plan.layers_over_base), ("b",)) == 0
    assert again.layers_added(("b",) * (2 + plan.layers_over_base), ("b",)) == 1
    with pytest.raises(ValueError, match="steps imagesmith does not make"):
        ImagePlan.from_facts({**plan.facts(), "steps": ["curl | sh"]})
    with pytest.raises(ValueError, match="no parity manifest"):
        ImagePlan.from_facts({"steps": []})


def test_each_roles_config_differs_only_in_what_the_role_sets(tiny):
    plan = plan_for(tiny, fake_lock())
    train, serve = plan.configs["train"], plan.configs["serve"]
    assert train["Env"] == serve["Env"] and train["Env"]["IMAGESMITH_SEED"] == str(fake_lock().seed)
    assert train["Labels"]["io.imagesmith.role"] == "train" and serve["Labels"]["io.imagesmith.role"] == "serve"
    assert train["Entrypoint"][-2:] == ["train", "--"] and serve["Entrypoint"][-2:] == ["serve", "--"]


def test_render_writes_what_the_dockerfile_copies_and_check_sees_it_stale(tiny, tmp_path):
    import shutil

    from imagesmith.render import stale_context, write_context

    spec = replace(tiny, root=Path(shutil.copytree(tiny.root, tmp_path / "tiny")))
    lock = fake_lock()
    assert ".imagesmith/amd64/imagesmith_image.json is missing" in stale_context(spec, {lock.platform: lock})
    write_context(spec, {lock.platform: lock})
    assert stale_context(spec, {lock.platform: lock}) == []
    facts = spec.root / ".imagesmith" / "amd64" / "imagesmith_image.json"
    assert json.loads(facts.read_text()) == plan_for(spec, lock).facts()
    other = replace(lock, seed=8)
    assert stale_context(spec, {other.platform: other}) == [
        ".imagesmith/amd64/imagesmith_image.json is stale: it differs from a fresh render"
    ]
    # a platform no longer built: its files go, and nothing else of the folder's
    mine = spec.root / ".imagesmith" / "arm64" / "notes.txt"
    mine.parent.mkdir()
    mine.write_text("mine")
    (mine.parent / "imagesmith_image.json").write_text("{}")
    write_context(spec, {other.platform: other})
    assert mine.read_text() == "mine" and not (mine.parent / "imagesmith_image.json").exists()
    assert json.loads(facts.read_text())["seed"] == 8


def _pins(*names_versions: tuple[str, str]) -> tuple[Pin, ...]:
    return tuple(Pin(n, v, ("sha256:" + "f" * 64,)) for n, v in names_versions)


CUDA_STACK = (
    ("six", "1.17.0"),
    ("torch", "2.9.0"),
    ("nvidia-cublas-cu12", "12.8.4.1"),
    ("packaging", "25.0"),
    ("nvidia-cuda-runtime-cu12", "12.8.90"),
    ("triton", "3.5.0"),
    ("nvidia-ml-py", "13.580.82"),  # NVML bindings: small, no CUDA
)


def test_heavy_distributions_are_layers_of_their_own_in_a_stable_order(tiny):
    heavy = ["nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12", "torch", "triton"]
    plan = plan_for(tiny, fake_lock(packages=_pins(*CUDA_STACK)))
    names = [s.name for s in plan.steps]
    start = names.index("python-env") - len(heavy)
    assert names[start : names.index("python-env")] == [HEAVY_PREFIX + h for h in heavy]
    assert list(plan.heavy) == heavy
    assert all(s.instruction == "COPY" and s.layer for s in plan.steps[start : start + len(heavy)])
    light = plan_for(tiny, fake_lock())
    assert plan.layers_over_base == light.layers_over_base + len(heavy)
    # the lock's order and a new or bumped small pin change neither the heavy steps nor their order
    shuffled = (*reversed(CUDA_STACK), ("requests", "2.32.5"))
    bumped = plan_for(tiny, fake_lock(packages=_pins(*[(n, "9.9.9" if n == "six" else v) for n, v in shuffled])))
    assert bumped.steps == plan.steps
    assert heavy_groups(_pins(("six", "1.17.0"), ("torch", "2.9.0+cpu"))) == ("torch",)
    # the numeric stack's big distributions too, without any CUDA
    stack = _pins(("scipy", "1.17.1"), ("six", "1.17.0"), ("numpy", "2.4.6"), ("scikit-learn", "1.7.2"))
    assert heavy_groups(stack) == ("numpy", "scikit-learn", "scipy")


def test_the_dockerfile_copies_each_heavy_distribution_before_the_venv(tiny):
    lock = fake_lock(packages=_pins(*CUDA_STACK))
    plan = plan_for(tiny, lock)
    text = render(tiny, lock)
    assert _shared_instructions(text) == [s.instruction for s in plan.steps]
    copies = [line for line in text.splitlines() if line.startswith("COPY --from=python-env ")]
    assert copies == [f"COPY --from=python-env /python-env-heavy/{h}/ /" for h in plan.heavy] + [
        "COPY --from=python-env /python-env/ /"
    ]
    assert f"heavy /opt/venv/lib/python3.11/site-packages /python-env-heavy {' '.join(plan.heavy)} " in text


def test_verify_counts_the_heavy_layers_from_the_facts(tiny):
    plan = plan_for(tiny, fake_lock(packages=_pins(*CUDA_STACK)))
    facts = json.loads(json.dumps(plan.facts()))
    again = ImagePlan.from_facts(facts)
    assert again.steps == plan.steps and again.heavy == plan.heavy
    assert again.layers_over_base == plan.layers_over_base
    for bad in ("heavy:", "heavy:../etc", "heavy:Torch", "heavier:torch"):
        with pytest.raises(ValueError, match="steps imagesmith does not make"):
            ImagePlan.from_facts({**facts, "steps": [*facts["steps"], bad]})


def test_the_spec_names_more_heavy_distributions_that_the_lock_pins(tiny):
    lock = fake_lock(packages=_pins(*CUDA_STACK))
    plan = plan_for(replace(tiny, heavy=("packaging", "spacy")), lock)  # spacy is not pinned: no layer
    assert list(plan.heavy) == ["nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12", "packaging", "torch", "triton"]
    assert plan.layers_over_base == plan_for(tiny, lock).layers_over_base + 1
