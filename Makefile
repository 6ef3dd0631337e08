# The README's quick start: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CONFIG ?= config/notifier.toml

.PHONY: run demo test lint typecheck install runtime clean lock bench bench-idle

# The versions come from requirements.lock (pinned, with hashes; `make lock` writes it
# after pyproject.toml changes), then the package itself without resolving anything again.
$(BIN)/notifier: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

install: $(BIN)/notifier

# What the daemon needs and nothing more (no test or dev tools): `make run` and `make demo`.
# On a venv `make install` made, the runtime lock installs nothing new (the same pins).
$(VENV)/.runtime: pyproject.toml requirements-runtime.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-runtime.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

runtime: $(VENV)/.runtime

run: runtime
	$(BIN)/notifier db upgrade --config $(CONFIG)
	$(BIN)/notifier run --config $(CONFIG)

# The seed scenario dated from today on a fresh var/demo.db, with a mail catcher and a
# webhook receiver that print what arrives (README, The seed scenario, step by step).
demo: runtime
	$(BIN)/notifier demo --config $(CONFIG)

lint: install
	$(BIN)/ruff check notifier tests bench
	$(BIN)/ruff format --check notifier tests bench

typecheck: install
	$(BIN)/mypy

# The suite in $(JOBS) processes (its waits are mostly on sockets and subprocesses), then
# the `serial` tests alone: they restart PostgreSQL, run replicas or watch the clock.
JOBS ?= 4
test: lint typecheck
	$(BIN)/pytest -m "not serial" -n $(JOBS)
	$(BIN)/pytest -m serial

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Both locks from pyproject.toml, keeping every version already locked that still fits
# (uv pip compile; `uv` itself is not a dependency: installed here on first use).
UV_COMPILE = $(VENV)/uv/bin/uv pip compile pyproject.toml --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --generate-hashes --quiet
lock:
	test -x $(VENV)/uv/bin/uv || ($(PYTHON) -m venv $(VENV)/uv && $(VENV)/uv/bin/pip install --quiet uv)
	$(UV_COMPILE) --extra test --extra dev -o requirements.lock
	$(UV_COMPILE) -c requirements.lock -o requirements-runtime.lock

# Benchmarks print ratios against baselines measured in the same run (README, Benchmarks),
# each figure is also recorded, and the last step prints them all as one table with the
# targets (var/bench/results.jsonl). PostgreSQL: NOTIFIER_TEST_POSTGRES_URL or the local one.
PG ?= $(or $(NOTIFIER_TEST_POSTGRES_URL),postgresql+asyncpg://root@127.0.0.1:5432/test)
RESULTS = var/bench/results.jsonl
bench: install
	$(BIN)/pip install --quiet -e '.[test,dev,bench]'
	mkdir -p var/bench && rm -f $(RESULTS)
	NOTIFIER_BENCH_RESULTS=$(RESULTS) $(BIN)/python bench/fanout.py
	NOTIFIER_BENCH_RESULTS=$(RESULTS) $(BIN)/python bench/fanout.py --emails 0 --postgres $(PG)
	NOTIFIER_BENCH_RESULTS=$(RESULTS) $(BIN)/python bench/reminders.py
	NOTIFIER_BENCH_RESULTS=$(RESULTS) $(BIN)/python bench/replicas.py --postgres $(PG)
	NOTIFIER_BENCH_RESULTS=$(RESULTS) $(BIN)/python bench/crowd.py --postgres $(PG)
	NOTIFIER_BENCH_RESULTS=$(RESULTS) $(BIN)/python bench/bigfeed.py
	NOTIFIER_BENCH_RESULTS=$(RESULTS) $(BIN)/python bench/chat.py
	NOTIFIER_BENCH_RESULTS=$(RESULTS) $(BIN)/python bench/hanging.py --changes 30
	NOTIFIER_BENCH_RESULTS=$(RESULTS) $(BIN)/python bench/kills.py fanout
	NOTIFIER_BENCH_RESULTS=$(RESULTS) $(BIN)/python bench/kills.py reminders --postgres $(PG)
	NOTIFIER_BENCH_RESULTS=$(RESULTS) $(BIN)/python bench/fuzz.py
	$(BIN)/python bench/summary.py $(RESULTS)

# An idle daemon's memory over an hour (its own target: it takes the hour).
bench-idle: install
	mkdir -p var/bench
	NOTIFIER_BENCH_RESULTS=var/bench/idle.jsonl $(BIN)/python bench/idle.py --seconds 3600
