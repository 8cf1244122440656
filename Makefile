# imagesmith: `make demo` and `make test` do all the set-up on a fresh Debian machine.
PYTHON ?= python3
BASE ?= imagesmith-base:bookworm-py311
# Foreign platforms the engine is set up for (QEMU through binfmt, an arm64 base, a multi-platform
# registry base); the tests need linux/arm64. PLATFORMS= sets up the host's platform only.
PLATFORMS ?= linux/arm64
PYTEST_ARGS ?=
# `make test` runs the tests on this many pytest-xdist workers; each module stays on one worker
# (tests/conftest.py). 4 took about 11 min here on a normal day (bench/README.md; more workers than cores: much
# of the engine tier waits on the engine, the registry or the package indexes).
TEST_WORKERS ?= 4

.PHONY: install engine demo lint format test test-clock test-unit bench clean

# pip runs when something is missing or pyproject.toml changed (scripts/installed.py says which).
install:
	@if ! $(PYTHON) scripts/installed.py; then \
	  $(PYTHON) -m pip install -q --disable-pip-version-check -e '.[test]' && $(PYTHON) scripts/installed.py --record; \
	fi

# Docker engine with buildx, loopback registry, local Debian + Python 3.11 base image(s).
engine:
	bash scripts/setup-engine.sh --platforms '$(PLATFORMS)'

# The demo builds for this machine only: no QEMU, no arm64 base (minutes on a fresh machine).
demo: install
	bash scripts/setup-engine.sh --platforms ''
	IMAGESMITH_BASE=$(BASE) bash scripts/demo.sh

# ruff (lint and format, config in pyproject.toml; examples/ruff.toml makes each example's own modules
# first-party) and a lenient mypy; `make format` rewrites.
LINT_PATHS = imagesmith tests bench scripts examples
lint: install
	$(PYTHON) -m ruff check $(LINT_PATHS)
	$(PYTHON) -m ruff format --check $(LINT_PATHS)
	$(PYTHON) -m mypy

format: install
	$(PYTHON) -m ruff check --fix $(LINT_PATHS)
	$(PYTHON) -m ruff format $(LINT_PATHS)

# The session records how long the whole of `make test` took, from test-clock on, and each test
# module's seconds, longest first (build/test-times.json, for `make bench`): with --dist loadgroup a
# module runs on one worker, so the longest module bounds the run.
test: test-clock install lint engine
	IMAGESMITH_MAKE_TEST_STARTED=$$(cat build/make-test.started) IMAGESMITH_TEST_BASE=$(BASE) \
	  $(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-clock:
	@mkdir -p build && date +%s.%N > build/make-test.started

# The quick loop: tests/unit needs no engine and no registry (the CLI runs in-process there), on
# both cores (pytest-xdist). tests/tools (the real uv, pip-compile and pip against indexes on
# 127.0.0.1) and tests/engine run in `make test`.
test-unit: install
	$(PYTHON) -m pytest -n 2 tests/unit $(PYTEST_ARGS)

bench: install engine
	IMAGESMITH_BASE=$(BASE) $(PYTHON) bench/run.py $(BENCH_FLAGS)

clean:
	rm -rf examples/iris/imagesmith.lock examples/iris/requirements.lock examples/iris/Dockerfile examples/iris/Dockerfile.dockerignore examples/iris/.imagesmith examples/iris/artifacts
