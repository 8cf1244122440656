import pytest

pytestmark = pytest.mark.engine


def test_tiny_builds_and_runs(tiny_built, engine):
    spec, result = tiny_built
    out = engine.run(result.images["train"].ref, [], entrypoint=None)
    assert out.startswith("train 1.17.0 [0.25, 0.5, 1.0]")
