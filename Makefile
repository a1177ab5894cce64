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
# timm needs torchvision; the release paired with that torch, named with it so that pip
# never upgrades torch to satisfy a newer torchvision.
TORCHVISION := torchvision==0.28.0
PYTEST_WORKERS ?= auto

.PHONY: setup run test lint docs bench readme clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py src/resamplers/_native.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e '.[dev]' $(TORCH) $(TORCHVISION)
	$(BIN)/python -c "import resamplers.functional as F; print('native kernels:', F.native_available())"
	touch $(STAMP)

# The main job: fetch the real matting data (Debian packages, no root install), then compare
# the quick preset's operators on matting as two shard processes (one per core here), then
# time them in a separate phase and write the report.  Without apt the comparison runs on
# the synthetic source (the report says which data it used).
RESULTS ?= results/compare-matting-quick
run: setup
	$(BIN)/resamplers data fetch || echo "make run: data fetch failed; the comparison falls back to the synthetic source"
	$(BIN)/resamplers compare --task matting --preset quick --jobs 2 --out $(RESULTS)
	@echo "report: $(RESULTS)/report.html (and report.md)"

test: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

# ruff (lint and format) on everything, mypy on the library; configuration in pyproject.toml.
lint: setup
	$(BIN)/ruff check src tests tools docs
	$(BIN)/ruff format --check src tests tools docs
	$(BIN)/mypy

# The documentation site (mkdocs-material + mkdocstrings; configuration in mkdocs.yml) into
# site/; strict: a warning fails.  The operator pages and figures are generated from the
# registry at build time (docs/hooks.py).
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

bench: setup
	$(BIN)/resamplers bench --json results/bench.json

# Regenerate the README's operator table from the registry.
readme: setup
	$(BIN)/python tools/update_readme.py

clean:
	rm -rf $(VENV) build src/*.egg-info src/resamplers/*.so
