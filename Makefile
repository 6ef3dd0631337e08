# The README's quick start: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CONFIG ?= config/notifier.toml

.PHONY: run test lint typecheck install clean bench

$(BIN)/notifier: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	@touch $@

install: $(BIN)/notifier

run: install
	$(BIN)/notifier db upgrade --config $(CONFIG)
	$(BIN)/notifier run --config $(CONFIG)

lint: install
	$(BIN)/ruff check notifier tests bench
	$(BIN)/ruff format --check notifier tests bench

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Benchmarks print ratios against baselines measured in the same run (README, Benchmarks).
# bench/replicas.py needs PostgreSQL (NOTIFIER_TEST_POSTGRES_URL or --postgres).
bench: install
	$(BIN)/pip install --quiet -e '.[test,dev,bench]'
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/reminders.py
	$(BIN)/python bench/replicas.py
	$(BIN)/python bench/bigfeed.py
	$(BIN)/python bench/chat.py
