# crm-sync: `make demo` runs a full sync on the embedded default, `make test` runs the tests,
# `make demo EXECUTOR=celery` runs it on PostgreSQL, Redis and two Celery workers,
# `make ui` keeps the Airflow UI up on the demo (until Ctrl-C), `make chaos` runs crash-safety trials of the load (CHAOS_ARGS, e.g. --trials 20 --seed 7).
# All of them create the virtual environment from requirements.txt and requirements-dev.txt when it is missing or stale.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)
PROFILE ?= gymdesk
EXECUTOR ?= local
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
CHAOS_ARGS ?= --trials 20

.PHONY: venv demo ui chaos test test-slow clean

venv: $(STAMP)

# pip and setuptools first, at the lock's versions: the ones `python -m venv` bundles have known advisories.
$(STAMP): requirements.txt requirements-dev.txt requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock pip setuptools
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

demo: venv
	$(BIN)/python -m harness.demo --profile $(PROFILE) --executor $(EXECUTOR)

ui: venv
	$(BIN)/python -m harness.ui --profile $(PROFILE)

chaos: venv
	$(BIN)/python -m harness.chaos $(CHAOS_ARGS)

test: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test-slow: venv
	$(BIN)/python -m pytest -m slow -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

clean:
	rm -rf .demo .chaos .pytest_cache .screenshots
