# One-command set-up: `make train` and `make test` create .venv and install lstmkit into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build that CI uses. On a CUDA machine: `make install TORCH=torch`.
TORCH ?= torch==2.13.0
EXTRAS ?= dev,datasets,export,launchers,sweeps,gpu,docs

.PHONY: install train test check lint format docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

train: install
	$(BIN)/lstmkit-train

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The docs site into site/; --strict fails on a broken link, anchor or API reference.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: install
	$(BIN)/python scripts/benchmark_nn.py

clean:
	rm -rf $(VENV) outputs multirun site .pytest_cache .ruff_cache
