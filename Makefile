# Two commands do all set-up on a fresh machine:
#   make run    set up, then run the main job
#   make test   set up, then run the whole test suite
# Targets are idempotent: set-up is redone only when the package definition changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done
# The CPU build of torch; a looser requirement can pull a multi-GB CUDA build.
TORCH  := torch==2.13.0
PYTEST_WORKERS ?= auto

.PHONY: setup run test bench readme clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py src/resamplers/_native.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -c "import resamplers.functional as F; print('native kernels:', F.native_available())"
	touch $(STAMP)

run: setup
	$(BIN)/resamplers bench

test: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

bench: setup
	$(BIN)/resamplers bench --json results/bench.json

# Regenerate the README's operator table from the registry.
readme: setup
	$(BIN)/python tools/update_readme.py

clean:
	rm -rf $(VENV) build src/*.egg-info src/resamplers/*.so
