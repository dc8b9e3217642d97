# One-command set-up: `make train` and `make test` create .venv and install lstmkit into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build that CI uses. On a CUDA machine: `make install TORCH=torch`.
TORCH ?= torch==2.13.0
EXTRAS ?= dev,datasets,export,launchers,sweeps,gpu,docs
# pyright on src/ (settings in pyproject.toml); errors only, `$(BIN)/pyright` lists the warnings too
PYRIGHT = $(BIN)/pyright --pythonpath $(BIN)/python --level error

.PHONY: install train test check lint types format docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

train: install
	$(BIN)/lstmkit-train experiment=adding

# The full suite, what CI runs: lint, format, types, every test (slow ones included).
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PYRIGHT)
	$(BIN)/pytest --durations=15

# The fast loop (under 2 minutes on 2 cores): lint, format, types, and the tests not marked slow.
# pyright (one core, node) runs beside pytest; the recipe fails if either fails.
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PYRIGHT) > .pyright.log 2>&1 & pyright=$$!; \
	$(BIN)/pytest -m "not slow" --durations=15; tests=$$?; \
	wait $$pyright; types=$$?; cat .pyright.log; rm -f .pyright.log; \
	test $$tests -eq 0 -a $$types -eq 0

types: install
	$(PYRIGHT)

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
