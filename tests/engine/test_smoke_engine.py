import pytest

pytestmark = pytest.mark.engine


def test_tiny_builds_and_runs(tiny_built, engine):
    spec, result = tiny_built
    out = engine.run(result.images["train"].ref, [], entrypoint=None)
    assert out.startswith("train 1.17.0 [0.25, 0.5, 1.0]")


def test_a_container_past_its_time_is_a_container_timeout_and_is_removed(engine, base_image):
    """run_to_end's wait runs out: ContainerTimeout (which signoff names as its batch function's
    time), not the EngineError of an engine lost while waiting; the container is gone after."""
    import subprocess
    import uuid

    from imagesmith.errors import ContainerTimeout

    name = f"imagesmith-test-timeout-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ContainerTimeout, match=r"`sleep` in .* did not finish within 1 s"):
        engine.containers.run_to_end(base_image, "sleep", 1, command=["sleep", "30"], name=name)
    listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"name={name}"], capture_output=True, text=True)
    assert listed.stdout.strip() == ""
