# The two set-up commands of the README work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/coinlens demo --home demo-home

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# Tests run in parallel workers (pytest-xdist; one thread each), a module's tests on one worker so
# that its prepared homes are built once. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2

test: lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=15

# The documentation site (site/): the CLI, settings and API reference pages are generated from
# the code as it builds; --strict fails on a broken link or a page left out of the navigation.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/identify.py
	$(BIN)/python bench/index.py
	$(BIN)/python bench/review_load.py
	$(BIN)/python bench/train.py

clean:
	rm -rf $(VENV) demo-home .pytest_cache bench/results site
