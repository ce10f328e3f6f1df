# Set-up and everyday commands. A fresh machine needs only python3 (>= 3.11).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## Runs the whole nightly cycle on a demo data set, on the embedded SQLite database.
demo: $(STAMP)
	$(BIN)/relais demo

## Runs the test suite (PostgreSQL variants too when RELAIS_TEST_POSTGRES_URL is set), one
## pytest worker per core.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy relais models tasks flows deployments tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
